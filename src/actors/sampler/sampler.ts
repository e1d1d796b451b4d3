/**
 * The sampler actor's shell (`rollout rl run`): starts GRPO groups of an RL run as agent episodes,
 * scores every sample with the evaluation's scorers, and publishes each training step the batch plan
 * closes. Its state is the log: it follows every event of the namespace from the start (a tail), folds
 * them into the sampler's own state (`decider.ts`: groups started, samples scored, batches published
 * and acknowledged, the versions the endpoints serve) and into the batch plan (which groups make
 * which step), and decides from those alone. So a run killed at any point and started again with the
 * same run id goes on where the log stands: groups it had started finish (their episodes resume from
 * their logs; no recorded model or tool call is made again), no group starts twice (`GroupStarted`
 * first, with a deterministic event id), and a step is published once (`BatchPublished` is
 * idempotent by its event id, and derived from the log alone, so a second derivation gives the same
 * bytes).
 *
 * Episodes run where the runner says: in this process, or as `RunEpisode` commands to agent workers
 * on NATS. A sample whose episode cannot be run to an end is tried once more; if it fails again its
 * group cannot complete: this invocation gives up on it (it enters no step), reports the reason in
 * `lost`, and goes on without it. A resumed run tries such a group again.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { BlobStoreShape } from "../../events/log/blobStore.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { DomainEvent, Envelope } from "../../events/schema.ts"
import { entitySubject, eventsFilter } from "../../events/subjects.ts"
import { applyBatchPlan, type BatchesState, initialBatches } from "../../projections/batches/batchPlan.ts"
import { publishableSteps, runPlan } from "../../projections/batches/queries.ts"
import {
  applyEpisodeTokens,
  type EpisodeTokens,
  emptyEpisodeTokens,
} from "../../projections/batches/sequences.ts"
import type { Json } from "../../projections/projection.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import type { StartEpisode } from "../agent/decider.ts"
import type { Task } from "../evaluator/datasets/task.ts"
import type { EpisodeRunner } from "../evaluator/episodeRunner.ts"
import { makeCachedJudge } from "../evaluator/evalRunJudge.ts"
import type { JudgeSettings } from "../evaluator/scoring/judge.ts"
import { type ScorerName, sampleScore, scoreAnswer } from "../evaluator/scoring/scorers.ts"
import {
  abandonGroup,
  type Brake,
  evolveSampler,
  groupAt,
  groupIdOf,
  initialSampler,
  liveVersion,
  mayStartGroup,
  openGroups,
  type PlanView,
  rlEpisodeId,
  type SamplerLimits,
  type SamplerState,
  type StartedGroup,
  samplingDone,
  unscoredSamples,
} from "./decider.ts"
import { BATCH_MEDIA_TYPE, derivePlanned } from "./plannedBatch.ts"
import type { RlConfig } from "./rlConfig.ts"

/** The run cannot start or resume as asked. */
export class RlRunRejected extends Schema.TaggedError<RlRunRejected>()("RlRunRejected", {
  runId: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `rl run ${this.runId}: ${this.reason}`
  }
}

export interface RlProgress {
  readonly runId: string
  readonly groupsStarted: number
  readonly groupsInFlight: number
  readonly samplesScored: number
  readonly stepsPublished: number
  readonly stepsConsumed: number
  readonly liveVersion: string
  /** The brake holding back the next group, if one does. */
  readonly waiting: Brake
}

export interface RlRunOptions {
  readonly log: EventLogShape
  readonly blobs: BlobStoreShape
  readonly runner: EpisodeRunner
  readonly config: RlConfig
  /** The training tasks, ground truths in memory. */
  readonly tasks: ReadonlyArray<Task>
  readonly benchmark: string
  readonly scorer: ScorerName
  readonly judge?: JudgeSettings
  readonly runId: string
  /** Wait, once sampling is done, until the trainer has acknowledged every batch (default false). */
  readonly waitForTrainer?: boolean
  readonly onProgress?: (progress: RlProgress) => void
  readonly clock?: Clock
  /** How often the loop looks at the state when nothing else wakes it; default 20 ms. */
  readonly pollMs?: number
}

export interface RlRunResult {
  readonly runId: string
  readonly resumed: boolean
  readonly groupsStarted: number
  readonly samplesScored: number
  readonly stepsPublished: number
  readonly stepsConsumed: number
  /** Samples that could not be run to an end (their groups never completed), with the reason. */
  readonly lost: ReadonlyArray<{ readonly episodeId: string; readonly reason: string }>
  /** Entries of the log that could not be decoded (the run went on without them). */
  readonly undecodable: number
}

/** Settings recorded in `RunStarted.config`: what the plan and a resume need, never ground truths. */
const runConfig = (options: RlRunOptions, taskIds: ReadonlyArray<string>): Json => {
  const { config } = options
  return {
    source: config.source,
    tasks: { bench: config.tasks.bench, data: config.tasks.data, ids: [...taskIds] },
    groupSize: config.groupSize,
    concurrency: config.concurrency,
    seed: config.seed,
    epochs: config.epochs,
    ...(config.steps === undefined ? {} : { steps: config.steps }),
    rewards: config.rewards as unknown as Json,
    staleness: { ...config.staleness },
    batch: { ...config.batch },
    maxUnconsumedBatches: config.maxUnconsumedBatches,
    scorer: options.scorer,
    ...(options.judge === undefined ? {} : { judgeModel: options.judge.model }),
    policy: { ...config.policy },
  }
}

export const runRl = (
  options: RlRunOptions,
): Effect.Effect<RlRunResult, RlRunRejected | LogUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const { log, runId, config } = options
    const clock = options.clock ?? systemClock
    const reject = (reason: string) => Effect.fail(new RlRunRejected({ runId, reason }))
    const tasks = options.tasks
    if (tasks.length === 0) return yield* reject("there are no tasks to train on")
    const byId = new Map<string, Task>()
    for (const task of tasks) {
      if (byId.has(task.taskId)) return yield* reject(`task id "${task.taskId}" appears twice`)
      byId.set(task.taskId, task)
    }
    const taskIds = tasks.map((task) => task.taskId)
    const epochs = config.epochs
    const limits: SamplerLimits = {
      groupSize: config.groupSize,
      concurrency: config.concurrency,
      batchGroups: "groups" in config.batch ? config.batch.groups : undefined,
      maxLag: config.staleness.maxLag,
      maxUnconsumedBatches: config.maxUnconsumedBatches,
      totalGroups: taskIds.length * epochs,
      steps: config.steps,
    }
    const runSubject = entitySubject(log.namespace, "run", runId)

    // The run's own stream first: a resume must match what was started.
    const before = yield* foldEvents(log, { filter: runSubject }, initialSampler(runId), evolveSampler)
    const resumed = before.state.started
    const recorded = before.state.model
    if (resumed && recorded !== config.model)
      return yield* reject(`it was started with model "${recorded}", not "${config.model}"`)

    /** Appends the sampler's events to the run stream, each under its deterministic id. */
    const append = (id: string, event: DomainEvent) =>
      log
        .append(runSubject, [
          {
            eventId: id,
            recordedAt: clock.iso(),
            correlationId: runId,
            causationId: id,
            actor: "sampler",
            event,
          },
        ])
        .pipe(
          Effect.catchTag("InvalidEvent", (e) => Effect.die(e)),
          Effect.catchTag("ConcurrencyConflict", (e) => Effect.die(e)),
        )

    if (!resumed)
      yield* append(`${runId}/started`, {
        type: "RunStarted",
        runId,
        kind: "rl",
        model: config.model,
        benchmark: options.benchmark,
        k: config.groupSize,
        taskCount: taskIds.length,
        config: runConfig(options, taskIds),
      })

    // Everything the namespace holds, folded once; then every new event, as the tail brings it.
    const caught = yield* foldEvents(
      log,
      { filter: eventsFilter(log.namespace) },
      { sampler: initialSampler(runId), plan: initialBatches, tokens: new Map<string, EpisodeTokens>() },
      (acc, envelope) => ({
        sampler: evolveSampler(acc.sampler, envelope),
        plan: applyBatchPlan(acc.plan, envelope),
        tokens: foldTokens(acc.tokens, runId, envelope),
      }),
    )
    let sampler: SamplerState = caught.state.sampler
    let plan: BatchesState = caught.state.plan
    const tokens = caught.state.tokens
    let undecodable = caught.undecodable.length
    let changed = 0
    const tail = yield* log.tail({ filter: eventsFilter(log.namespace), from: caught.last + 1 }).pipe(
      Stream.runForEachArray((entries) =>
        Effect.sync(() => {
          for (const entry of entries) {
            if (entry instanceof UndecodableEvent) {
              undecodable++
              continue
            }
            const decoded = decodeEvent(entry)
            if (Result.isFailure(decoded)) {
              undecodable++
              continue
            }
            sampler = evolveSampler(sampler, decoded.success)
            plan = applyBatchPlan(plan, decoded.success)
            foldTokens(tokens, runId, decoded.success)
          }
          changed++
        }),
      ),
      Effect.forkScoped,
    )

    const cachedJudge =
      options.judge === undefined
        ? undefined
        : makeCachedJudge(log, options.judge, { benchmark: options.benchmark, clock, correlationId: runId })

    const lost: Array<{ episodeId: string; reason: string }> = []

    /** Runs one sample to its end (one retry), scores it and records the score. */
    const runSample = (group: StartedGroup, sample: number) =>
      Effect.gen(function* () {
        const task = byId.get(group.taskId)
        const episodeId = rlEpisodeId(runId, group.group, sample)
        if (task === undefined) {
          lost.push({ episodeId, reason: `task "${group.taskId}" is no longer in the task set` })
          return false
        }
        const start: StartEpisode = {
          kind: "start",
          episodeId,
          runId,
          taskId: task.taskId,
          sampleIndex: sample,
          group: group.group,
          question: task.question,
          model: config.model,
          policy: config.policy,
        }
        const attempt = options.runner.run(log, start)
        const ending = yield* attempt.pipe(
          Effect.catch((error) => (error._tag === "LogUnavailable" ? Effect.fail(error) : attempt)),
          Effect.map((value) => ({ ok: true as const, value })),
          Effect.catch((error) =>
            error._tag === "LogUnavailable"
              ? Effect.fail(error)
              : Effect.succeed({ ok: false as const, reason: error.message }),
          ),
        )
        if (!ending.ok) {
          lost.push({ episodeId, reason: ending.reason })
          return false
        }
        const result = yield* scoreAnswer(
          options.scorer,
          { question: task.question, truth: task.answer, prediction: ending.value.answer },
          cachedJudge?.judge,
        ).pipe(Effect.catchTag("JudgeRequired", (e) => Effect.die(e)))
        const { verdict, score } = sampleScore(result)
        yield* append(`${runId}/scored/${group.group}/${sample}`, {
          type: "SampleScored",
          runId,
          taskId: task.taskId,
          sampleIndex: sample,
          group: group.group,
          episodeId,
          scorer: options.scorer,
          verdict,
          score,
        })
        return true
      })

    const running = new Set<string>()
    /** Groups whose every sample this invocation scored: done, though the tail may not show it yet. */
    const scoredHere = new Set<string>()
    /**
     * Runs a group's unscored samples. One that could not be run to an end makes the group one this
     * invocation gives up on: it can never complete, so it enters no step, and the run goes on.
     */
    const runGroup = (group: StartedGroup) =>
      Effect.forEach(unscoredSamples(sampler, group), (sample) => runSample(group, sample), {
        concurrency: "unbounded",
      }).pipe(
        Effect.tap((ok) =>
          Effect.sync(() => {
            if (ok.includes(false)) sampler = abandonGroup(sampler, group.group)
            else scoredHere.add(group.group)
          }),
        ),
        // The loop looks again once a group's fiber ends (its end may be what it waits for).
        Effect.ensuring(
          Effect.sync(() => {
            running.delete(group.group)
            changed++
          }),
        ),
        Effect.forkScoped,
      )

    const publishing = new Set<number>()
    /** Builds a closed step's batch from the folded plan and tokens, stores it, and announces it. */
    const publish = (step: number) =>
      Effect.gen(function* () {
        const derived = derivePlanned(plan, tokens, runId, step)
        if (Result.isFailure(derived)) return yield* reject(derived.failure.message)
        const { bytes, summary } = derived.success
        const blob = yield* options.blobs
          .put(bytes, BATCH_MEDIA_TYPE)
          .pipe(Effect.mapError((e) => new RlRunRejected({ runId, reason: e.message })))
        yield* append(`${runId}/batch/${step}`, { type: "BatchPublished", ...summary, blob })
        // Its episodes' tokens are in the blob now; the plan keeps what a later step needs.
        for (const episode of derived.success.episodes) tokens.delete(episode)
      })

    const progress = (waiting: RlProgress["waiting"]) =>
      options.onProgress?.({
        runId,
        groupsStarted: Object.keys(sampler.groups).length,
        groupsInFlight: openGroups(sampler).length,
        samplesScored: Object.values(sampler.scored).reduce((sum, list) => sum + list.length, 0),
        stepsPublished: sampler.published.length,
        stepsConsumed: sampler.consumed.length,
        liveVersion: String(liveVersion(sampler)),
        waiting,
      })

    let finishing = false
    let lastSeen = -1
    while (true) {
      // Closed steps are published as soon as the plan closes them (one at a time, in order).
      for (const step of publishableSteps(plan, runId)) {
        if (publishing.has(step)) continue
        publishing.add(step)
        yield* publish(step)
      }
      // Groups in flight that no fiber of this invocation runs: a resume's, or a new one's.
      for (const group of openGroups(sampler)) {
        if (running.has(group.group) || scoredHere.has(group.group)) continue
        running.add(group.group)
        yield* runGroup(group)
      }
      const view = planView(plan, runId)
      let verdict = mayStartGroup(sampler, limits, view)
      while (verdict.start && !finishing) {
        const index = Object.keys(sampler.groups).length
        const { taskId, epoch } = groupAt(taskIds, config.seed, index)
        const group = groupIdOf(index)
        const version = String(liveVersion(sampler))
        yield* append(`${runId}/group/${group}`, {
          type: "GroupStarted",
          runId,
          group,
          taskId,
          epoch,
          samples: config.groupSize,
          version,
        })
        // Wait for the tail to fold it, so the next verdict counts this group.
        while (!Object.hasOwn(sampler.groups, group)) yield* Effect.sleep(1)
        running.add(group)
        yield* runGroup(sampler.groups[group]!)
        verdict = mayStartGroup(sampler, limits, planView(plan, runId))
      }
      progress(verdict.start ? "concurrency" : verdict.why)
      if (!finishing && samplingDone(sampler, limits, planView(plan, runId)) && running.size === 0) {
        finishing = true
        if (!sampler.finished) {
          // Every step the plan will hold: those closed, and the open one this event closes.
          const view = runPlan(plan, runId)
          const batches = (view?.stepsClosed ?? 0) + ((view?.open.samples ?? 0) > 0 ? 1 : 0)
          yield* append(`${runId}/finished`, { type: "RunFinished", runId, status: "completed", batches })
        }
      }
      if (finishing && sampler.finished && publishableSteps(plan, runId).length === 0) {
        const allConsumed = sampler.published.every((step) => sampler.consumed.includes(step))
        if (!options.waitForTrainer || allConsumed) break
      }
      // Nothing to do until the tail folds something new.
      while (changed === lastSeen) yield* Effect.sleep(options.pollMs ?? 20)
      lastSeen = changed
    }
    yield* Fiber.interrupt(tail)
    return {
      runId,
      resumed,
      groupsStarted: Object.keys(sampler.groups).length,
      samplesScored: Object.values(sampler.scored).reduce((sum, list) => sum + list.length, 0),
      stepsPublished: sampler.published.length,
      stepsConsumed: sampler.consumed.length,
      lost,
      undecodable,
    }
  })

/** What the sampler's brakes need of the plan: groups in steps (closed and open) and steps closed. */
const planView = (plan: BatchesState, runId: string): PlanView => {
  const view = runPlan(plan, runId)
  if (view === undefined) return { groupsInSteps: 0, stepsClosed: 0 }
  return {
    groupsInSteps: view.steps.reduce((sum, step) => sum + step.groups, 0) + view.open.groups,
    stepsClosed: view.stepsClosed,
  }
}

/**
 * Keeps the token-exact record of every episode of the run (mutating `tokens`, the shell's own map):
 * the sampler builds each batch from memory instead of reading the log again per step.
 */
const foldTokens = (
  tokens: Map<string, EpisodeTokens>,
  runId: string,
  envelope: Envelope,
): Map<string, EpisodeTokens> => {
  const { event } = envelope
  if (event.type === "EpisodeStarted") {
    if (event.runId === runId && !tokens.has(event.episodeId))
      tokens.set(event.episodeId, emptyEpisodeTokens(event.episodeId))
    return tokens
  }
  if (!("episodeId" in event)) return tokens
  const held = tokens.get(event.episodeId)
  if (held !== undefined) tokens.set(event.episodeId, applyEpisodeTokens(held, envelope))
  return tokens
}
