/**
 * How the CLI words damage to the log: entries it could not decode (how many, and at which
 * positions), an incomplete last line, a cut a writer made. One line per finding, naming what and
 * where, with every piece of text that came from the log escaped for the terminal. Commands print
 * these lines on stderr (data stays on stdout) and put the same facts in their `--json` object.
 */
import * as path from "node:path"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { LogDamage } from "../../events/log/eventLog.ts"
import { terminalText } from "../../projections/terminalText.ts"
import type { UndecodableSummary } from "../../projections/undecodable.ts"

/** How many positions a line names before it says "and N more". */
const SHOWN = 10

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** "position 418", "positions 418 and 419", "positions 1, 2, …, 10 and 990 more". */
export const positionList = (count: number, positions: ReadonlyArray<number>): string => {
  const shown = positions.slice(0, Math.min(SHOWN, count))
  const rest = count - shown.length
  if (shown.length === 0) return "positions not known to this run"
  if (shown.length === 1 && rest === 0) return `position ${shown[0]}`
  const head = rest === 0 ? `${shown.slice(0, -1).join(", ")} and ${shown.at(-1)}` : shown.join(", ")
  return `positions ${head}${rest === 0 ? "" : ` and ${rest} more`}`
}

/**
 * "rebuild: 3 entries could not be decoded and were skipped: positions 418, 419 and 1002; first:
 * <reason>", or undefined when there were none. `what` names the reader; `done` says what became
 * of the entries ("were skipped", "are marked !"); `unlisted` says why some positions are not
 * listed and where to find them (a count resumed from a checkpoint).
 */
export const undecodableLine = (
  what: string,
  summary: UndecodableSummary,
  options: {
    readonly done?: string
    readonly first?: UndecodableEvent | undefined
    readonly unlisted?: string
  } = {},
): string | undefined => {
  if (summary.count === 0) return undefined
  const done = options.done ?? (summary.count === 1 ? "was skipped" : "were skipped")
  const unlisted =
    options.unlisted !== undefined && summary.count > summary.positions.length ? ` (${options.unlisted})` : ""
  const reason = options.first === undefined ? "" : `; first: ${terminalText(options.first.message)}`
  return `${what}: ${plural(summary.count, "entry", "entries")} could not be decoded and ${done}: ${positionList(
    summary.count,
    summary.positions,
  )}${unlisted}${reason}`
}

/** Why a count resumed from `projection`'s checkpoint lists fewer positions than it counts. */
export const beforeCheckpoint = (projection: string): string =>
  `the unlisted ones are before the ${projection} checkpoint: rollout projections rebuild ${projection} lists them`

/** "2 lines of <file> do not decode: positions 418 and 1002", or undefined for none. */
export const undecodableLinesLine = (damage: LogDamage, location: string): string | undefined =>
  damage.undecodable === 0
    ? undefined
    : `log damage: ${plural(damage.undecodable, "line")} of ${terminalText(location)} ${
        damage.undecodable === 1 ? "does" : "do"
      } not decode: ${positionList(damage.undecodable, damage.undecodablePositions)}`

/** The incomplete last line a reader sees: where, how big, what it was, who may still write it. */
export const tornTailLine = (damage: LogDamage, location: string): string | undefined => {
  const torn = damage.tornTail
  if (torn === undefined) return undefined
  const about = [
    torn.type === undefined ? undefined : `a ${terminalText(torn.type)}`,
    torn.subject === undefined ? undefined : `on ${terminalText(torn.subject)}`,
  ].filter((s) => s !== undefined)
  const what = about.length === 0 ? "" : `, ${about.join(" ")}`
  const who =
    torn.writer === undefined
      ? "the next writer cuts it and keeps its bytes"
      : `process ${torn.writer} holds the writer lock, so it may be a write in progress`
  return `log damage: ${terminalText(location)} ends in an incomplete line of ${plural(torn.bytes, "byte")} at offset ${
    torn.offset
  } (it would be position ${torn.position}${what}); it is not an event and is left out: ${who}`
}

const keptPath = (location: string, keptIn: string) => terminalText(path.join(path.dirname(location), keptIn))

/** The cut this writer made on open: where, how big, where the bytes are, where it is recorded. */
export const cutOnOpenLine = (damage: LogDamage, location: string): string | undefined => {
  const cut = damage.cutOnOpen
  if (cut === undefined) return undefined
  const recorded =
    cut.recordedAtPosition === 0
      ? "the cut is not recorded yet"
      : `the cut is recorded at position ${cut.recordedAtPosition} (LogTailCut)`
  return `log damage: cut an incomplete last line of ${plural(cut.bytes, "byte")} at offset ${
    cut.offset
  } off ${terminalText(location)} (it would have been position ${cut.position}); its bytes are kept in ${keptPath(
    location,
    cut.keptIn,
  )}, ${recorded}`
}

/** One line per kind of damage the log reported when it was opened (none for a sound log). */
export const damageLines = (damage: LogDamage, location: string): string[] =>
  [
    undecodableLinesLine(damage, location),
    tornTailLine(damage, location),
    cutOnOpenLine(damage, location),
  ].filter((line) => line !== undefined)

/** The cuts recorded in the log, one line each (for `log stats`). */
export const cutLines = (damage: LogDamage, location: string): string[] =>
  damage.cuts.map(
    (c) =>
      `cut at position ${c.recordedAtPosition}: ${plural(c.bytes, "byte")} at offset ${c.offset} (would have been position ${
        c.position
      }), sha256 ${terminalText(c.sha256)}, kept in ${keptPath(location, c.keptIn)}`,
  )
