/**
 * The eventCounts read model's queries, as plain data: the log's statistics with the count of its
 * events by type (the projection resumed from its checkpoint) and what could not be decoded, from
 * the log's own index and from the count's read. No printing, flags or exit codes: `rollout log
 * stats` prints these, and a viewer can show them.
 */
import * as Effect from "effect/Effect"
import type { EventLogShape, LogStats, LogUnavailable } from "../../events/log/eventLog.ts"
import type { CheckpointStoreShape } from "../../runtime/checkpointStore.ts"
import { type ProjectionRunError, runProjection } from "../runner/runner.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../undecodable.ts"
import { type EventCountsState, eventCounts } from "./eventCounts.ts"

/** Where the counts are read from: the log and the checkpoints. */
export interface EventCountsSource {
  readonly log: EventLogShape
  readonly checkpoints: CheckpointStoreShape
}

export interface LogCounts {
  readonly stats: LogStats
  /** The count by type and actor; undefined when not asked for (`byType: false`). */
  readonly counts: EventCountsState | undefined
  /**
   * Entries that do not decode: the positions the log's index knows and those the count met this
   * time, with the largest count either gives (a count resumed from a checkpoint includes entries
   * before it whose positions this read did not see).
   */
  readonly undecodable: UndecodableSummary
}

/** The log's statistics and, unless `byType` is false, its events counted by type. */
export const logCountsOf = (
  source: EventCountsSource,
  options: { readonly byType: boolean },
): Effect.Effect<LogCounts, ProjectionRunError | LogUnavailable> =>
  Effect.gen(function* () {
    const stats = yield* source.log.stats
    // The entries the count could not decode this time, collected with their positions.
    const met: Array<{ position: number }> = []
    const counts = options.byType
      ? (yield* runProjection(source.log, source.checkpoints, eventCounts, {
          live: false,
          onUndecodable: (u) => met.push(u),
        })).state
      : undefined
    const undecodable = summarizeUndecodable(
      met,
      Math.max(stats.damage?.undecodable ?? 0, counts?.undecodable ?? 0),
      stats.damage?.undecodablePositions,
    )
    return { stats, counts, undecodable }
  })

/** Event types with how many events each has, the most frequent first. */
export const typeCounts = (counts: EventCountsState): ReadonlyArray<readonly [string, number]> =>
  Object.entries(counts.byType).sort((a, b) => b[1] - a[1])
