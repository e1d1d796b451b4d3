/**
 * The scoreboard's queries, as plain data: the scoreboard folded to the end of the log (resumed
 * from its checkpoint) with what the read could not decode and which run's latest event sits in
 * a torn last line, and one run's report — the same report whether `rollout eval` builds it live
 * or `rollout scores --run` rebuilds it from the log. No printing, flags or exit codes: a command
 * prints these, and a viewer can show them.
 */
import * as Effect from "effect/Effect"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogDamage, LogUnavailable } from "../../events/log/eventLog.ts"
import { parseEntitySubject } from "../../events/subjects.ts"
import type { CheckpointStoreShape } from "../../runtime/checkpointStore.ts"
import { ownValue } from "../projection.ts"
import { type ProjectionRunError, runProjection } from "../runner/runner.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../undecodable.ts"
import type { Metrics } from "./metrics.ts"
import { type RunBoard, type ScoreboardState, scoreboard } from "./scoreboard.ts"
import {
  type BoardSample,
  boardMetrics,
  boardSamples,
  type InfrastructureFailures,
  infrastructureFailures,
} from "./scoreboardMetrics.ts"

/** Where the scoreboard is read from: the log, its checkpoints, and how often to save one. */
export interface ScoreboardSource {
  readonly log: EventLogShape
  readonly checkpoints: CheckpointStoreShape
  /** Save a checkpoint after this many entries (the runner's default when absent). */
  readonly checkpointEvery?: number
}

export interface FoldedScoreboard {
  readonly state: ScoreboardState
  /**
   * Entries the scoreboard could not decode: the count since position 0, the positions met this
   * time and those given as known (entries before its checkpoint were counted by an earlier run,
   * their positions not kept).
   */
  readonly undecodable: UndecodableSummary
  /** The first entry met this time that did not decode, for its reason. */
  readonly first: UndecodableEvent | undefined
}

/** Folds the scoreboard up to the end of the log, resuming from its checkpoint. */
export const foldScoreboard = (
  source: ScoreboardSource,
  known?: ReadonlyArray<number>,
): Effect.Effect<FoldedScoreboard, ProjectionRunError> =>
  Effect.gen(function* () {
    const met: UndecodableEvent[] = []
    const result = yield* runProjection(source.log, source.checkpoints, scoreboard, {
      live: false,
      ...(source.checkpointEvery === undefined ? {} : { checkpointEvery: source.checkpointEvery }),
      onUndecodable: (u) => met.push(u),
    })
    return {
      state: result.state,
      undecodable: summarizeUndecodable(met, result.undecodable, known),
      first: met[0],
    }
  })

/** The scoreboard with what the log said of its own damage when it was read. */
export interface Scoreboard extends FoldedScoreboard {
  /** The run whose latest event is in the log's incomplete last line: its status may be behind. */
  readonly tornRun: string | undefined
  readonly damage: LogDamage | undefined
}

/** The run whose event the log's incomplete last line holds, when its subject says so. */
export const tornRunOf = (damage: LogDamage | undefined): string | undefined => {
  const subject = damage?.tornTail?.subject
  const entity = subject === undefined ? undefined : parseEntitySubject(subject)
  return entity?.kind === "run" ? entity.id : undefined
}

/**
 * The scoreboard of the whole log. Broken lines reach every projection, so the positions the
 * log's index knows are the scoreboard's too.
 */
export const scoreboardOf = (
  source: ScoreboardSource,
): Effect.Effect<Scoreboard, ProjectionRunError | LogUnavailable> =>
  Effect.gen(function* () {
    const { damage } = yield* source.log.stats
    const folded = yield* foldScoreboard(source, damage?.undecodablePositions)
    return { ...folded, tornRun: tornRunOf(damage), damage }
  })

export interface EvalReport {
  readonly runId: string
  readonly benchmark: string | null
  readonly model: string
  readonly scorer: string | null
  readonly judgeModel: string | null
  readonly k: number
  readonly status: RunBoard["status"]
  readonly reason: string | null
  readonly startedAt: string
  readonly finishedAt: string | null
  readonly metrics: Metrics
  /** Samples the model server or the tools ended (counted as wrong), by reason. */
  readonly infrastructure: InfrastructureFailures
  /** Bad rows of the data file the run left out (`--skip-bad-rows`), or null. */
  readonly skippedBadRows: { readonly count: number; readonly rows: ReadonlyArray<string> } | null
  readonly samples: ReadonlyArray<BoardSample>
}

/** A run's report from the scoreboard and the run's metrics. */
export const evalReport = (state: ScoreboardState, board: RunBoard, metrics: Metrics): EvalReport => {
  const samples = boardSamples(state, board)
  return {
    runId: board.runId,
    benchmark: board.benchmark,
    model: board.model,
    scorer: board.scorer,
    judgeModel: board.judgeModel,
    k: metrics.k,
    status: board.status,
    reason: board.reason,
    startedAt: board.startedAt,
    finishedAt: board.finishedAt,
    metrics,
    infrastructure: infrastructureFailures(samples),
    skippedBadRows: board.skippedBadRows ?? null,
    samples,
  }
}

/** The report of run `runId`, or undefined when the scoreboard has no such run. */
export const runReport = (state: ScoreboardState, runId: string): EvalReport | undefined => {
  const board = ownValue(state.runs, runId)
  return board === undefined ? undefined : evalReport(state, board, boardMetrics(state, board))
}
