/**
 * What a read of the log met and could not decode, as a read model's query reports it: how many
 * entries and at which positions. The same facts reach a command's `--json` object, its line on
 * stderr and, later, a viewer; how they are worded is the reader's business.
 */
import type { UndecodableEvent } from "../events/codec.ts"

/** What a reading query met and could not decode. */
export interface UndecodableSummary {
  readonly count: number
  readonly positions: ReadonlyArray<number>
}

/**
 * Distinct positions, in order (the same entry may reach a reader more than once, and the log's
 * index may know some already), with the largest count any source gives: a count resumed from a
 * checkpoint includes entries before it whose positions this run did not see.
 */
export const summarizeUndecodable = (
  entries: ReadonlyArray<Pick<UndecodableEvent, "position">>,
  count = 0,
  known: ReadonlyArray<number> = [],
): UndecodableSummary => {
  const positions = [...new Set([...known, ...entries.map((e) => e.position)])].sort((a, b) => a - b)
  return { count: Math.max(count, positions.length), positions }
}
