/**
 * One evaluation run on the log (AgentToLeaP's "one command"): every task × k samples as an agent
 * episode, each scored as soon as it ends, with bounded concurrency. The run's own stream
 * (`ev.run.<runId>`) holds `RunStarted` (its config lists the tasks with level and category — never
 * a question or an answer), one `SampleScored` per sample and `RunFinished`; episodes are
 * `<runId>/<taskId>/<sample>` with the `runId` in `EpisodeStarted`.
 *
 * Running again with the same run id resumes: the run's stream says which samples are scored (they
 * are never run again); every other sample goes to the episode runner — in this process through
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
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import type { DomainEvent, EpisodePolicy, EventOf } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import { type Json, ownValue } from "../../projections/projection.ts"
import type { Metrics } from "../../projections/scoreboard/metrics.ts"
import {
  boardRow,
  infrastructureEndings,
  type RunBoard,
  type ScoreboardState,
} from "../../projections/scoreboard/scoreboard.ts"
import { boardMetrics, crashedOutcomes } from "../../projections/scoreboard/scoreboardMetrics.ts"
import { defaultPolicy, type StartEpisode } from "../agent/decider.ts"
import type { EpisodePorts } from "../agent/ports.ts"
import type { EpisodeError } from "../agent/shell.ts"
import type { Task } from "./datasets/task.ts"
import { type EpisodeRunner, runHere } from "./episodeRunner.ts"
import { makeLiveBoard } from "./evalRunBoard.ts"
import { type JudgeCacheStats, makeCachedJudge } from "./evalRunJudge.ts"
import {
  type RunDescription,
  readRun,
  resumeMismatch,
  runStartedEvent,
  runSubject,
  sampleKey,
} from "./evalRunStream.ts"
import type { JudgeSettings } from "./scoring/judge.ts"
import { xbenchExactMatch } from "./scoring/judgeTemplates.ts"
import {
  JudgeRequired,
  needsJudge,
  type ScoreResult,
  type ScorerName,
  scoreAnswer,
} from "./scoring/scorers.ts"

/** Run ids become the first part of episode ids and a folder name: no `/`, no leading dot. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** The episode of one sample: `<runId>/<taskId>/<sample>` (unambiguous, since run ids have no `/`). */
export const episodeIdFor = (runId: string, taskId: string, sample: number): string =>
  `${runId}/${taskId}/${sample}`

/** The run's options do not fit it, or a run already in the log under that id. */
export class EvalRunRejected extends Schema.TaggedError<EvalRunRejected>()("EvalRunRejected", {
  runId: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `eval run ${this.runId}: ${this.reason}`
  }
}

export interface EvalProgress {
  readonly runId: string
  /** Samples scored (judge failures included) or given up on, of `total`. */
  readonly done: number
  readonly total: number
  /** Samples already scored when this invocation started (a resume). */
  readonly resumedDone: number
  readonly correct: number
  /** Samples that count as wrong without a verdict so far: crashed, timed out, judge failed, could not run. */
  readonly failures: number
  /** Of `failures`, those the model server or the tools caused (or that could not run at all). */
  readonly infrastructure: number
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
  /** Clock readings for the events this driver writes; default the wall clock. */
  readonly now?: () => string
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
  readonly failed: ReadonlyArray<{
    readonly taskId: string
    readonly sample: number
    readonly reason: string
  }>
  readonly status: EventOf<"RunFinished">["status"]
  /** Samples this invocation ran to an end (or gave up on), and how many of them got a model answer. */
  readonly ranNow: number
  readonly reachedModel: number
  /** This invocation's samples that ended on infrastructure, by reason (most first). */
  readonly infrastructure: Readonly<Record<string, number>>
  readonly judge: JudgeCacheStats
  /** The run as the scoreboard projection sees it, and its metrics. */
  readonly board: RunBoard
  readonly state: ScoreboardState
  readonly metrics: Metrics
}

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
    const ids = new Set<string>()
    for (const t of tasks) {
      if (ids.has(t.taskId)) return yield* reject(`task id "${t.taskId}" appears twice`)
      ids.add(t.taskId)
    }

    const now = options.now ?? (() => new Date().toISOString())
    const live = makeLiveBoard(options.log)
    const log = live.log
    const subject = runSubject(log.namespace, runId)
    const policy: EpisodePolicy = { ...defaultPolicy, ...options.policy }
    const cachedJudge =
      options.judge === undefined
        ? undefined
        : makeCachedJudge(options.log, options.judge, { benchmark, now, correlationId: runId })

    const append = (eventId: string, event: DomainEvent, expectedLastPosition?: number) =>
      log
        .append(
          subject,
          [
            {
              eventId,
              recordedAt: now(),
              correlationId: runId,
              causationId: eventId,
              actor: "evaluator",
              event,
            },
          ],
          expectedLastPosition === undefined ? {} : { expectedLastPosition },
        )
        .pipe(
          Effect.catchTag("InvalidEvent", (e) => Effect.die(e)),
          Effect.catchTag("ConcurrencyConflict", () =>
            reject(
              "another process is writing this run (its stream changed under us); run it from one place",
            ),
          ),
        )

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
    const run = yield* readRun(log, runId)
    if (run.started !== undefined) {
      const mismatch = resumeMismatch(run.started, description)
      if (mismatch !== undefined) return yield* reject(mismatch)
    } else yield* append(`${runId}/started`, runStartedEvent(description), run.last)

    // Samples in passes (every task's sample 0, then 1, …): an interrupted run has whole passes.
    const all: Array<{ task: Task; sample: number }> = []
    for (let sample = 0; sample < k; sample++) for (const task of tasks) all.push({ task, sample })
    const pending = all.filter(({ task, sample }) => !run.scored.has(sampleKey(task.taskId, sample)))
    const done = all.filter(({ task, sample }) => run.scored.has(sampleKey(task.taskId, sample)))
    // A resume folds the finished samples' episodes too, so the live board holds the whole run.
    yield* Effect.forEach(
      done,
      ({ task, sample }) =>
        Stream.runDrain(
          log.read({
            filter: entitySubject(log.namespace, "episode", episodeIdFor(runId, task.taskId, sample)),
          }),
        ),
      { concurrency: 16, discard: true },
    )

    let correct = 0
    let failures = 0
    let infrastructure = 0
    for (const s of run.scored.values()) {
      if (s.verdict === "correct") correct++
      if (s.verdict === "judge_failed") failures++
    }
    // Crashed and timed-out samples scored before this invocation count as failures too.
    const before = ownValue(live.state().runs, runId)
    for (const sample of done) {
      const row = before === undefined ? null : boardRow(before, sample.task.taskId, sample.sample)
      if (
        row?.outcome != null &&
        row.verdict !== "judge_failed" &&
        (row.outcome === "timeout" || crashedOutcomes.has(row.outcome))
      )
        failures++
      if (row?.outcome != null && infrastructureEndings.has(row.outcome)) infrastructure++
    }
    let finishedCount = done.length
    let scoredNow = 0
    const failed: Array<{ taskId: string; sample: number; reason: string }> = []
    let reachedModel = 0
    const reasons = new Map<string, number>()
    const countReason = (reason: string) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
    const report = () =>
      options.onProgress?.({
        runId,
        done: finishedCount,
        total: all.length,
        resumedDone: done.length,
        correct,
        failures,
        infrastructure,
      })
    report()

    const score = (
      task: Task,
      prediction: string | undefined,
    ): Effect.Effect<ScoreResult, LogUnavailable> => {
      const input = { question: task.question, truth: task.answer, prediction }
      // A missing answer, an exact scorer and xbench's exact match decide without a judge.
      if (
        prediction === undefined ||
        cachedJudge === undefined ||
        !needsJudge(scorer) ||
        (scorer === "xbench" && xbenchExactMatch(prediction, task.answer))
      )
        return Effect.orDie(scoreAnswer(scorer, input))
      return Effect.map(
        cachedJudge.judge(scorer, { ...input, prediction }),
        (judged): ScoreResult => ({
          scorer,
          correct: judged.outcome === "correct",
          status: judged.outcome === "judge_failed" ? "judge_failed" : "scored",
          method: judged.method,
          ...(judged.failure === undefined ? {} : { reason: judged.failure.message }),
          judge: judged,
        }),
      )
    }

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
          failures++
          infrastructure++
          countReason(
            `could not run: ${ended.reason.length > 80 ? `${ended.reason.slice(0, 80)}…` : ended.reason}`,
          )
          finishedCount++
          report()
          return
        }
        // The live board has folded the whole episode by now: whether the model ever answered, and
        // the reason an infrastructure ending recorded.
        const board = ownValue(live.state().runs, runId)
        const row = board === undefined ? null : boardRow(board, task.taskId, sample)
        if ((row?.responses ?? 0) > 0) reachedModel++
        if (infrastructureEndings.has(ended.ending.outcome)) {
          infrastructure++
          countReason(row?.failure ?? `${ended.ending.outcome} (no reason recorded)`)
        }
        const result = yield* score(task, ended.ending.answer)
        const verdict: EventOf<"SampleScored">["verdict"] =
          result.status === "judge_failed" ? "judge_failed" : result.correct ? "correct" : "incorrect"
        yield* append(`${runId}/scored/${task.taskId}/${sample}`, {
          type: "SampleScored",
          runId,
          taskId: task.taskId,
          sampleIndex: sample,
          episodeId,
          scorer,
          verdict,
          score: verdict === "correct" ? 1 : 0,
        })
        scoredNow++
        finishedCount++
        if (verdict === "correct") correct++
        const outcome = ended.ending.outcome
        if (
          verdict === "judge_failed" ||
          outcome === "timeout" ||
          (outcome !== undefined && crashedOutcomes.has(outcome))
        )
          failures++
        report()
      })

    yield* Effect.forEach(pending, ({ task, sample }) => runSample(task, sample), {
      concurrency: options.concurrency,
      discard: true,
    })

    const counted = [...reasons.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    const unreached = pending.length > 0 && reachedModel === 0
    const status: EventOf<"RunFinished">["status"] =
      failed.length === 0 && !unreached ? "completed" : "failed"
    // A resume that had nothing left to do does not finish the run again.
    if (run.finished === 0 || pending.length > 0) {
      const first = failed[0]
      const reason = unreached
        ? `no sample reached model ${model} (${pending.length} tried): ${counted.map(([r, n]) => `${r} ×${n}`).join("; ")}`
        : first === undefined
          ? undefined
          : `${failed.length} sample(s) could not run to an end; first: ${first.taskId}#${first.sample}: ${first.reason}`
      yield* append(`${runId}/finished/${run.finished}`, {
        type: "RunFinished",
        runId,
        status,
        ...(reason === undefined ? {} : { reason }),
      })
    }
    const state = live.state()
    const board = ownValue(state.runs, runId)
    if (board === undefined) return yield* Effect.die(new Error(`the live scoreboard lost run ${runId}`))
    return {
      runId,
      resumed: run.started !== undefined,
      alreadyScored: done.length,
      scored: scoredNow,
      failed,
      status: board.status === "running" ? status : board.status,
      ranNow: pending.length,
      reachedModel,
      infrastructure: Object.fromEntries(counted),
      judge: cachedJudge?.stats() ?? { asked: 0, cached: 0 },
      board,
      state,
      metrics: boardMetrics(state, board),
    }
  })
