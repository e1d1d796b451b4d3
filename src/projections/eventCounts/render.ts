/**
 * The eventCounts read model rendered: the table of events by type and the JSON object of
 * `rollout log stats --json`. Pure strings and shapes, for the CLI and a viewer alike.
 */
import { table } from "../terminalText.ts"
import type { EventCountsState } from "./eventCounts.ts"
import { type LogCounts, typeCounts } from "./queries.ts"

/** Events by type as a text table (most frequent first), or undefined when the log has none. */
export const typeCountsTable = (counts: EventCountsState): string | undefined => {
  const rows = typeCounts(counts)
  return rows.length === 0 ? undefined : table(["type", "events"], rows)
}

/**
 * `rollout log stats --json`: the statistics, the namespace, the counts when taken, and what does
 * not decode — null when nothing could tell (not counted, and no index that knows).
 */
export const logStatsJson = (read: LogCounts, namespace: string) => ({
  ...read.stats,
  namespace,
  ...(read.counts === undefined ? {} : { counts: read.counts }),
  undecodable: read.counts === undefined && read.stats.damage === undefined ? null : read.undecodable,
})
