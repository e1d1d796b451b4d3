/**
 * `rollout log stats` and `rollout log tail`: look at the log itself. On the embedded log these
 * open it read-only, so they work while another process is writing. Both say what they could not
 * decode and where: `stats` counts it for the whole log (with an incomplete last line and the cuts
 * recorded), `tail` marks each such entry and counts those it printed. Everything printed from
 * the log is escaped for the terminal. The counts are the eventCounts read model's
 * (`projections/eventCounts/`); this parses and prints.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { UndecodableEvent } from "../../events/codec.ts"
import type { LogEntry } from "../../events/log/eventLog.ts"
import { logCountsOf } from "../../projections/eventCounts/queries.ts"
import { logStatsJson, typeCountsTable } from "../../projections/eventCounts/render.ts"
import { terminalText } from "../../projections/terminalText.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../../projections/undecodable.ts"
import {
  beforeCheckpoint,
  cutLines,
  cutOnOpenLine,
  positionList,
  tornTailLine,
  undecodableLine,
} from "../terminal/damageReport.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  withRuntime,
} from "../terminal/invocation.ts"

export const logStatsCommand = (global: GlobalOptions, options: { json?: boolean; types?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    // This command reports the log's damage itself, on stdout with the rest of the stats.
    return yield* withRuntime(config, { mode: "reader", reportDamage: false }, (runtime) =>
      Effect.gen(function* () {
        const read = yield* logCountsOf(runtime, { byType: options.types !== false })
        const { stats, counts, undecodable } = read
        if (options.json === true) {
          printJson(logStatsJson(read, config.log.namespace))
          return
        }
        const lines = [
          `backend     ${stats.backend}`,
          `location    ${terminalText(stats.location)}`,
          `stream      ${stats.stream} (namespace ${config.log.namespace})`,
          `events      ${stats.events}`,
          `bytes       ${stats.bytes}`,
          `positions   ${stats.firstPosition}..${stats.lastPosition}`,
          `subjects    ${stats.subjects}`,
          `undecodable ${undecodableText(undecodable, counts !== undefined, stats.damage !== undefined)}`,
        ]
        process.stdout.write(`${lines.join("\n")}\n`)
        if (stats.damage !== undefined) {
          const damage = [
            tornTailLine(stats.damage, stats.location),
            cutOnOpenLine(stats.damage, stats.location),
            ...cutLines(stats.damage, stats.location),
          ].filter((l) => l !== undefined)
          if (damage.length > 0) process.stdout.write(`\n${damage.join("\n")}\n`)
        }
        const byType = counts === undefined ? undefined : typeCountsTable(counts)
        if (byType !== undefined) process.stdout.write(`\n${byType}\n`)
      }),
    )
  })

/**
 * The `undecodable` line of `log stats`: the count and the positions. Without the count by type
 * (`--no-types`) only the embedded log's index knows anything: lines whose envelope is broken.
 */
const undecodableText = (summary: UndecodableSummary, counted: boolean, indexed: boolean): string => {
  if (!counted && !indexed) return "not counted (--no-types: only a read of the log finds them)"
  const scope = counted ? "" : " (envelopes only: --no-types checks no payload)"
  if (summary.count === 0) return `0${scope}`
  const unlisted = summary.count > summary.positions.length ? ` (${beforeCheckpoint("eventCounts")})` : ""
  return `${summary.count}: ${positionList(summary.count, summary.positions)}${unlisted}${scope}`
}

export interface TailOptions {
  readonly follow?: boolean
  readonly filter?: string
  readonly from?: string
  readonly limit?: string
  readonly json?: boolean
}

const describeEntry = (entry: LogEntry): Record<string, unknown> =>
  entry instanceof UndecodableEvent
    ? { position: entry.position, subject: entry.subject, undecodable: entry.message }
    : {
        position: entry.position,
        subject: entry.subject,
        type: entry.type,
        eventId: entry.eventId,
        recordedAt: entry.recordedAt,
        correlationId: entry.correlationId,
        causationId: entry.causationId,
        actor: entry.actor,
        schemaVersion: entry.schemaVersion,
        payload: entry.payload,
      }

/** One entry as one tab-separated line; every field from the log is escaped (tabs and newlines too). */
const line = (entry: LogEntry): string =>
  entry instanceof UndecodableEvent
    ? `${entry.position}\t!\t${terminalText(entry.message)}`
    : [entry.position, entry.recordedAt, entry.type, entry.subject, entry.eventId]
        .map((field) => terminalText(String(field)))
        .join("\t")

/**
 * Prints entries from `--from` (default: the last 20 when not following). With `--json` and no
 * `--follow`, one JSON object `{from, events, undecodable}`; with `--follow`, one JSON object per
 * line. An entry that does not decode is printed where it is (marked `!`), and the count of them
 * with their positions ends the output on stderr.
 */
export const logTailCommand = (global: GlobalOptions, options: TailOptions) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    const parsed = {
      from: yield* integerFlag("--from", options.from),
      limit: yield* integerFlag("--limit", options.limit),
    }
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const stats = yield* runtime.log.stats
        const from =
          parsed.from ??
          (options.follow === true ? stats.lastPosition + 1 : Math.max(1, stats.lastPosition - 19))
        const read = { from, ...(options.filter === undefined ? {} : { filter: options.filter }) }
        let stream = options.follow === true ? runtime.log.tail(read) : runtime.log.read(read)
        if (parsed.limit !== undefined) stream = Stream.take(stream, parsed.limit)
        if (options.follow === true) {
          return yield* Stream.runForEach(stream, (entry) =>
            Effect.sync(() => {
              process.stdout.write(
                `${options.json === true ? JSON.stringify(describeEntry(entry)) : line(entry)}\n`,
              )
            }),
          )
        }
        const entries = Array.from(yield* Stream.runCollect(stream))
        const broken = entries.filter((e): e is UndecodableEvent => e instanceof UndecodableEvent)
        const undecodable = summarizeUndecodable(broken)
        if (options.json === true) return printJson({ from, events: entries.map(describeEntry), undecodable })
        process.stdout.write(entries.map((e) => `${line(e)}\n`).join(""))
        const report = undecodableLine(`log tail: of the ${entries.length} entries printed`, undecodable, {
          done: undecodable.count === 1 ? "is marked !" : "are marked !",
        })
        if (report !== undefined) process.stderr.write(`rollout: ${report}\n`)
      }),
    )
  })
