/**
 * One evaluation run on the log (AgentToLeaP's "one command"): every task × k samples as an agent
 * episode, each scored as soon as it ends, with bounded concurrency. The run's own stream
 * (`ev.run.<runId>`) holds `RunStarted` (its config lists the tasks with level and category — never
 * a question or an answer), one `SampleScored` per sample and `RunFinished`; episodes are
 * `<runId>/<taskId>/<sample>` with the `runId` in `EpisodeStarted`.
 *
 * The run's stream is the evaluator's own state (`decider.ts`): this shell reads it, asks the
 * decider for every event it writes, and keeps the effects — episodes, the judge, the log, the
 * clock. Running again with the same run id resumes: the run's stream says which samples are
 * scored (they are never run again); every other sample goes to the episode runner — in this process through
 * the episode shell, or as a command to the agent workers (`episodeRunner.ts`) — which starts it,
 * continues it from its log (no recorded model or tool call is made again) or, when it already
 * finished, just returns its ending; and then it is scored here. Ground truths stay in memory: the
 * log sees them only as the content hash of a judge cache key.
 *
 * Samples the model server or the tools ended (`model_error`, `tool_infrastructure_error`, or an
 * episode the runner could not run) are counted apart, with their reasons; when none of this
 * invocation's samples got a single answer from the model, the run finishes `failed` saying why.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import { currentVersions, type DomainEvent, type EpisodePolicy, type EventOf } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import { bucketGet } from "../../projections/buckets.ts"
import { type Json, ownValue } from "../../projections/projection.ts"
import type { Metrics } from "../../projections/scoreboard/metrics.ts"
import {
  boardRow,
  infrastructureEndings,
  type RunBoard,
  type ScoreboardState,
} from "../../projections/scoreboard/scoreboard.ts"
import { boardMetrics } from "../../projections/scoreboard/scoreboardMetrics.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import { defaultPolicy, type StartEpisode } from "../agent/decider.ts"
import type { EpisodePorts } from "../agent/ports.ts"
import type { EpisodeError } from "../agent/shell.ts"
import type { Task } from "./datasets/task.ts"
import {
  decide,
  type EvaluationInput,
  type EvaluationState,
  evolve,
  type GaveUp,
  initial,
  pendingSamples,
  runEnding,
  scoredSamples,
  scoreOf,
} from "./decider.ts"
import { type EpisodeRunner, runHere } from "./episodeRunner.ts"
import { makeLiveBoard } from "./evalRunBoard.ts"
import { type JudgeCacheStats, makeCachedJudge } from "./evalRunJudge.ts"
import { countSample, noSamples, type SampleCounts } from "./progress.ts"
import type { RunDescription } from "./runDescription.ts"
import type { JudgeSettings } from "./scoring/judge.ts"
import { JudgeRequired, needsJudge, type ScorerName, sampleScore, scoreAnswer } from "./scoring/scorers.ts"

/** Run ids become the first part of episode ids and a folder name: no `/`, no leading dot. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** The episode of one sample: `<runId>/<taskId>/<sample>` (unambiguous, since run ids have no `/`). */
export const episodeIdFor = (runId: string, taskId: string, sample: number): string =>
  `${runId}/${taskId}/${sample}`

/** The run's own stream. */
export const runSubject = (namespace: string, runId: string): string => entitySubject(namespace, "run", runId)

/** The run's options do not fit it, or a run already in the log under that id. */
export class EvalRunRejected extends Schema.TaggedError<EvalRunRejected>()("EvalRunRejected", {
  runId: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `eval run ${this.runId}: ${this.reason}`
  }
}

export interface EvalProgress extends SampleCounts {
  readonly runId: string
  /** `done` is of `total`. */
  readonly total: number
  /** Samples already scored when this invocation started (a resume). */
  readonly resumedDone: number
}

export interface EvalRunOptions {
  readonly log: EventLogShape
  /** The agent's ports, to run episodes in this process (unless `runner` says otherwise). */
  readonly ports?: EpisodePorts
  /** Where episodes run; default `runHere(ports)`. */
  readonly runner?: EpisodeRunner
  /** The benchmark's tasks, ground truths in memory. */
  readonly tasks: ReadonlyArray<Task>
  readonly benchmark: string
  readonly scorer: ScorerName
  /** The judge model; required for judge scorers. */
  readonly judge?: JudgeSettings
  /** The agent model (a model name of the inference pool). */
  readonly model: string
  readonly k: number
  readonly concurrency: number
  /** Only the first `limit` tasks. */
  readonly limit?: number
  readonly runId: string
  /** Over AgentToLeaP's defaults (`defaultPolicy`). */
  readonly policy?: Partial<EpisodePolicy>
  readonly systemPrompt?: string
  /** More settings to record in `RunStarted.config` (e.g. the data file); never secrets. */
  readonly config?: { readonly [key: string]: Json }
  readonly onProgress?: (progress: EvalProgress) => void
  /** Stamps the events this driver writes; default the system clock. */
  readonly clock?: Clock
}

export interface EvalRunResult {
  readonly runId: string
  /** True when the run was already in the log. */
  readonly resumed: boolean
  /** Samples already scored before this invocation. */
  readonly alreadyScored: number
  /** Samples scored by this invocation. */
  readonly scored: number
  /** Samples whose episode could not run to an end (the reason is in the log or here). */
  readonly failed: ReadonlyArray<GaveUp>
  readonly status: EventOf<"RunFinished">["status"]
  /** Samples this invocation ran to an end (or gave up on), and how many of them got a model answer. */
  readonly ranNow: number
  readonly reachedModel: number
  /** This invocation's samples that ended on infrastructure, by reason (most first). */
  readonly infrastructure: Readonly<Record<string, number>>
  readonly judge: JudgeCacheStats
  /**
   * Entries this invocation read and could not decode (the run's stream, its episodes, judge
   * verdicts), each once, by position: the run went on without them.
   */
  readonly undecodable: ReadonlyArray<UndecodableEvent>
  /** The run as the scoreboard projection sees it, and its metrics. */
  readonly board: RunBoard
  readonly state: ScoreboardState
  readonly metrics: Metrics
}

/** `reason`, cut at 80 characters so that reasons with the same start count together. */
const short = (reason: string): string => (reason.length > 80 ? `${reason.slice(0, 80)}…` : reason)

export const runEvaluation = (
  options: EvalRunOptions,
): Effect.Effect<EvalRunResult, EvalRunRejected | JudgeRequired | LogUnavailable> =>
  Effect.gen(function* () {
    const { runId, k, benchmark, scorer, model } = options
    const reject = (reason: string) => Effect.fail(new EvalRunRejected({ runId, reason }))
    if (!RUN_ID_PATTERN.test(runId))
      return yield* reject(
        `a run id is letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit`,
      )
    if (!Number.isInteger(k) || k < 1) return yield* reject(`k must be a positive integer, got ${k}`)
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      return yield* reject(`concurrency must be a positive integer, got ${options.concurrency}`)
    if (needsJudge(scorer) && options.judge === undefined) return yield* new JudgeRequired({ scorer })
    const runner = options.runner ?? (options.ports === undefined ? undefined : runHere(options.ports))
    if (runner === undefined) return yield* reject("neither agent ports nor an episode runner was given")
    const tasks = options.limit === undefined ? options.tasks : options.tasks.slice(0, options.limit)
    if (tasks.length === 0) return yield* reject("there are no tasks to run")
    const byId = new Map<string, Task>()
    for (const t of tasks) {
      if (byId.has(t.taskId)) return yield* reject(`task id "${t.taskId}" appears twice`)
      byId.set(t.taskId, t)
    }

    const clock = options.clock ?? systemClock
    const live = makeLiveBoard(options.log)
    const log = live.log
    const subject = runSubject(log.namespace, runId)
    const policy: EpisodePolicy = { ...defaultPolicy, ...options.policy }
    const cachedJudge =
      options.judge === undefined
        ? undefined
        : makeCachedJudge(options.log, options.judge, { benchmark, clock, correlationId: runId })

    // The run's stream, read through the watched log: the decider's state and the live board's.
    const read = yield* foldEvents(log, { filter: subject }, initial, evolve)
    let run: EvaluationState = read.state
    const resumed = run.started !== undefined

    /** Asks the decider, appends what it decided, and folds it into the decider's state. */
    const record = (input: EvaluationInput, eventId: string, expectedLastPosition?: number) =>
      Effect.gen(function* () {
        const decided = decide(run, input)
        if (Result.isFailure(decided)) return yield* reject(decided.failure.reason)
        const events: ReadonlyArray<DomainEvent> = decided.success
        if (events.length === 0) return
        const stamped = events.map((event, i) => ({
          eventId: events.length === 1 ? eventId : `${eventId}/${i}`,
          recordedAt: clock.iso(),
          correlationId: runId,
          causationId: eventId,
          actor: "evaluator",
          event,
        }))
        const appended = yield* log
          .append(subject, stamped, expectedLastPosition === undefined ? {} : { expectedLastPosition })
          .pipe(
            Effect.catchTag("InvalidEvent", (e) => Effect.die(e)),
            Effect.catchTag("ConcurrencyConflict", () =>
              reject(
                "another process is writing this run (its stream changed under us); run it from one place",
              ),
            ),
          )
        stamped.forEach((e, i) => {
          const position = appended.positions[i]
          if (position === undefined) return
          run = evolve(run, {
            ...e,
            position,
            subject,
            schemaVersion: currentVersions[e.event.type],
          })
        })
      })

    // The run: found (a resume, checked against these options) or started.
    const description: RunDescription = {
      runId,
      model,
      benchmark,
      k,
      tasks,
      scorer,
      judgeModel: options.judge?.model,
      policy,
      concurrency: options.concurrency,
      limit: options.limit,
      extra: options.config,
    }
    yield* record({ kind: "start", run: description }, `${runId}/started`, read.last)
    const finishedBefore = run.finished.length

    const pending = pendingSamples(run)
    const done = scoredSamples(run)
    // A resume folds the finished samples' episodes too, so the live board holds the whole run.
    yield* Effect.forEach(
      done,
      ({ taskId, sample }) =>
        Stream.runDrain(
          log.read({ filter: entitySubject(log.namespace, "episode", episodeIdFor(runId, taskId, sample)) }),
        ),
      { concurrency: 16, discard: true },
    )

    // The samples scored before this invocation count as their rows on the live board say.
    const before = ownValue(live.state().runs, runId)
    let counts = noSamples
    for (const { taskId, sample } of done) {
      const row = before === undefined ? null : boardRow(before, taskId, sample)
      const verdict = scoreOf(run, taskId, sample)?.verdict ?? "incorrect"
      counts = countSample(counts, { kind: "scored", verdict, outcome: row?.outcome ?? null })
    }
    let scoredNow = 0
    const failed: GaveUp[] = []
    let reachedModel = 0
    const reasons = new Map<string, number>()
    const countReason = (reason: string) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
    const report = () =>
      options.onProgress?.({
        runId,
        ...counts,
        total: done.length + pending.length,
        resumedDone: done.length,
      })
    report()

    const runSample = (task: Task, sample: number) =>
      Effect.gen(function* () {
        const episodeId = episodeIdFor(runId, task.taskId, sample)
        const start: StartEpisode = {
          kind: "start",
          episodeId,
          runId,
          taskId: task.taskId,
          sampleIndex: sample,
          question: task.question,
          model,
          policy,
          ...(options.systemPrompt === undefined ? {} : { systemPrompt: options.systemPrompt }),
        }
        const ended = yield* runner.run(log, start).pipe(
          Effect.map((ending) => ({ ok: true as const, ending })),
          // A log outage stops the run; a stuck episode or a refused append loses only this sample.
          Effect.catch((error: EpisodeError) =>
            error._tag === "LogUnavailable"
              ? Effect.fail(error)
              : Effect.succeed({ ok: false as const, reason: error.message }),
          ),
        )
        if (!ended.ok) {
          failed.push({ taskId: task.taskId, sample, reason: ended.reason })
          // What the log says of its episode (started or not, ended or not), so that it counts here
          // as the scoreboard will count it once the run has ended.
          yield* Stream.runDrain(log.read({ filter: entitySubject(log.namespace, "episode", episodeId) }))
          const board = ownValue(live.state().runs, runId)
          const row = board === undefined ? null : boardRow(board, task.taskId, sample)
          counts = countSample(counts, {
            kind: "gave_up",
            outcome: row?.outcome ?? null,
            open: bucketGet(live.state().open, episodeId) !== undefined,
          })
          countReason(`could not run: ${short(ended.reason)}`)
          report()
          return
        }
        // The live board has folded the whole episode by now: whether the model ever answered, and
        // the reason an infrastructure ending recorded.
        const board = ownValue(live.state().runs, runId)
        const row = board === undefined ? null : boardRow(board, task.taskId, sample)
        if ((row?.responses ?? 0) > 0) reachedModel++
        const { outcome, answer } = ended.ending
        if (infrastructureEndings.has(outcome)) countReason(row?.failure ?? `${outcome} (no reason recorded)`)
        // The one scoring path (`rollout score` takes it too); the judge's cache needs the log.
        const result = yield* scoreAnswer(
          scorer,
          { question: task.question, truth: task.answer, prediction: answer },
          cachedJudge?.judge,
        ).pipe(Effect.catchTag("JudgeRequired", (e) => Effect.die(e)))
        const { verdict, score } = sampleScore(result)
        yield* record(
          { kind: "score", taskId: task.taskId, sample, episodeId, scorer, verdict, score },
          `${runId}/scored/${task.taskId}/${sample}`,
        )
        scoredNow++
        counts = countSample(counts, { kind: "scored", verdict, outcome })
        report()
      })

    yield* Effect.forEach(pending, ({ taskId, sample }) => runSample(byId.get(taskId)!, sample), {
      concurrency: options.concurrency,
      discard: true,
    })

    const counted = [...reasons.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    const finish = {
      kind: "finish" as const,
      attempted: pending.length,
      reachedModel,
      gaveUp: failed,
      reasons: counted,
    }
    yield* record(finish, `${runId}/finished/${finishedBefore}`)
    const status = runEnding(run, finish).status
    const state = live.state()
    const board = ownValue(state.runs, runId)
    if (board === undefined) return yield* Effect.die(new Error(`the live scoreboard lost run ${runId}`))
    const undecodable = new Map<number, UndecodableEvent>()
    for (const u of [...read.undecodable, ...live.undecodable(), ...(cachedJudge?.undecodable() ?? [])])
      undecodable.set(u.position, u)
    return {
      runId,
      resumed,
      alreadyScored: done.length,
      scored: scoredNow,
      failed,
      status: board.status === "running" ? status : board.status,
      ranNow: pending.length,
      reachedModel,
      infrastructure: Object.fromEntries(counted),
      judge: cachedJudge?.stats() ?? { asked: 0, cached: 0 },
      undecodable: [...undecodable.values()].sort((a, b) => a.position - b.position),
      board,
      state,
      metrics: boardMetrics(state, board),
    }
  })
