/**
 * `rollout replay <episodeId>`: renders a trajectory from the log (a terminal view, OpenAI chat
 * messages as JSONL, or the raw events as JSON). With `--verify` it prints instead only the verdict
 * of re-driving the agent's decisions over the recorded model and tool results — and at the first
 * divergence the fields that differ, exiting 3 — as text or (`--json`) one object. It never calls
 * a model or a tool; `--fork-at` does, from the turn it names on.
 *
 * Damage is not a divergence. An entry of the episode that cannot be decoded (a broken line, an
 * event type this build does not know) is shown where it is, marked `!` with its position, and
 * everything else is shown too; the replay then exits 4. `--verify` over such a gap says DAMAGED
 * (exit 4), unless the decisions diverge before it (DIVERGED, exit 3). On the embedded log, a
 * broken line whose subject cannot be read is named when it lies among the episode's positions.
 */
import * as Effect from "effect/Effect"
import { forkEpisode } from "../../actors/agent/fork.ts"
import { parseForEpisode } from "../../actors/agent/index.ts"
import {
  type Checked,
  check,
  describeEvent,
  type Gap,
  openAiMessage,
  toChat,
  type Verification,
} from "../../actors/agent/replay.ts"
import { runEpisode } from "../../actors/agent/shell.ts"
import { liveAgentPorts } from "../../app/actors.ts"
import type { UndecodableEvent } from "../../events/codec.ts"
import { readEvents } from "../../events/log/readEvents.ts"
import { entitySubject } from "../../events/subjects.ts"
import { terminalText } from "../../projections/terminalText.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface ReplayOptions {
  readonly format?: string
  readonly verify?: boolean
  readonly forkAt?: string
  readonly as?: string
  readonly json?: boolean
}

/** The exit code of a verification that diverged. */
export const DIVERGED_EXIT_CODE = 3
/** The exit code of a replay or verification over an episode with entries that do not decode. */
export const DAMAGED_EXIT_CODE = 4

/** An entry of the episode that cannot be used, where it is (with its type when that was read). */
const gapOf = (u: UndecodableEvent): Gap => ({
  position: u.position,
  ...(u.type === undefined ? {} : { type: u.type }),
  reason: `${u.stage}: ${u.reason}`,
  subjectKnown: true,
})

/**
 * Broken lines the embedded log could not attribute to any subject that lie among the episode's
 * positions: one of them may be an event of the episode.
 */
const unattributed = (
  positions: ReadonlyArray<number>,
  known: ReadonlyArray<number>,
  broken: ReadonlyArray<number>,
): Gap[] => {
  if (positions.length === 0) return []
  const first = Math.min(...positions)
  const last = Math.max(...positions)
  const seen = new Set(known)
  return broken
    .filter((p) => p > first && p < last && !seen.has(p))
    .map((position) => ({
      position,
      reason:
        "a line that does not decode and whose subject cannot be read: it may be one of this episode's events",
      subjectKnown: false,
    }))
}

/** A gap as the terminal view shows it, in the place of its event. */
const gapText = (g: Gap): string =>
  `! ${g.subjectKnown ? (g.type === undefined ? "undecodable entry" : `${g.type} that does not decode`) : "undecodable line of unknown subject"}: ${g.reason}`

/** "1 entry of this episode could not be decoded: position 418 (ModelResponded …)". */
const gapsLine = (gaps: ReadonlyArray<Gap>): string =>
  `replay: ${gaps.length} entr${gaps.length === 1 ? "y" : "ies"} of this episode could not be decoded (marked !): ${gaps
    .map((g) => `position ${g.position}${g.type === undefined ? "" : ` (${g.type})`}`)
    .join(", ")}`

/** The verdict of `--verify` over a damaged stream: what is missing, and what re-driving did without it. */
const damagedText = (c: Checked & { verdict: "damaged" }): string => {
  const lines = c.gaps.map(
    (g) =>
      `DAMAGED at position ${g.position}${g.type === undefined ? "" : ` (${g.type})`}: ${
        g.subjectKnown ? "this entry of the episode" : "a line of unknown subject among its events"
      } cannot be decoded (${g.reason}); the episode cannot be verified past it`,
  )
  const v = c.verification
  lines.push(
    v.ok
      ? `  without it, the other ${v.events} events re-drive cleanly (${v.decisions} decisions)`
      : `  without it, re-driving stops at position ${v.divergence.position}: ${v.divergence.reason}`,
  )
  return `${lines.join("\n")}\n`
}

const showValue = (value: unknown): string => (value === undefined ? "(absent)" : JSON.stringify(value))

/** The verdict of `--verify` as text: one line, and on a divergence the fields that differ. */
const verdictText = (v: Verification): string => {
  if (v.ok) return `verified: ${v.decisions} decisions over ${v.events} events reproduce the log\n`
  const d = v.divergence
  const lines = [
    `DIVERGED at position ${d.position}${d.recorded === undefined ? "" : ` (${d.recorded.type})`}: ${d.reason}`,
  ]
  if (d.differences.length > 0)
    for (const f of d.differences)
      lines.push(
        `  ${f.path === "" ? "(event)" : f.path}: recorded ${showValue(f.recorded)}, re-driven ${showValue(f.redriven)}`,
      )
  else {
    // No field-by-field comparison (one side has no event): show what there is.
    if (d.recorded !== undefined) lines.push(`  recorded: ${JSON.stringify(d.recorded)}`)
    if (d.redriven !== undefined) lines.push(`  re-driven: ${JSON.stringify(d.redriven)}`)
  }
  return `${lines.join("\n")}\n`
}

export const replayCommand = (global: GlobalOptions, episodeId: string, options: ReplayOptions) =>
  Effect.gen(function* () {
    const format = options.json === true ? "json" : (options.format ?? "text")
    if (!["text", "openai", "json"].includes(format)) {
      return yield* Effect.fail(new UsageError(`--format must be text, openai or json, got "${format}"`))
    }
    if (options.verify === true && format === "openai")
      return yield* Effect.fail(
        new UsageError(
          "--verify prints a verdict, not the trajectory: drop --format openai (--json for JSON)",
        ),
      )
    const config = yield* configFrom(global)
    const forkAt = yield* integerFlag("--fork-at", options.forkAt)
    return yield* withRuntime(config, { mode: forkAt === undefined ? "reader" : "writer" }, (runtime) =>
      Effect.gen(function* () {
        const subject = entitySubject(config.log.namespace, "episode", episodeId)
        const read = yield* readEvents(runtime.log, { filter: subject })
        const envelopes = read.state
        const gaps = read.undecodable.map(gapOf)
        const damage = (yield* runtime.log.stats).damage
        const unknownSubject =
          damage === undefined
            ? []
            : unattributed(
                [...envelopes.map((e) => e.position), ...gaps.map((g) => g.position)],
                gaps.map((g) => g.position),
                damage.undecodablePositions,
              )
        const allGaps = [...gaps, ...unknownSubject].sort((a, b) => a.position - b.position)
        if (envelopes.length === 0 && gaps.length === 0) {
          return yield* Effect.fail(
            new UsageError(
              `no episode "${episodeId}" in the ${config.log.backend} log at ${runtime.location}`,
            ),
          )
        }
        if (forkAt !== undefined) {
          if (gaps.length > 0)
            return yield* Effect.fail(
              new UsageError(
                `cannot fork ${episodeId}: ${gaps.length} of its entries do not decode (first at position ${gaps[0]!.position}: ${gaps[0]!.reason})`,
              ),
            )
          const newId = options.as ?? `${episodeId}~fork${forkAt}`
          const live = yield* liveAgentPorts({ log: runtime.log, configDir: global.config ?? "config" })
          const fork = forkEpisode(envelopes, newId, forkAt, live)
          if ("error" in fork) return yield* Effect.fail(new UsageError(fork.error))
          process.stderr.write(
            `forking ${episodeId} at turn ${forkAt} as ${newId} (turns before it are replayed)\n`,
          )
          const state = yield* runEpisode(runtime.log, fork.ports, newId, fork.start)
          const summary = {
            episodeId: newId,
            forkedFrom: episodeId,
            atTurn: forkAt,
            outcome: state.outcome,
            turns: state.turn,
            answer: state.answer,
          }
          if (options.json === true) printJson(summary)
          else
            process.stdout.write(
              `${newId}: ${state.outcome} after ${state.turn} turns${state.answer === undefined ? "" : `, answer: ${state.answer}`}\n`,
            )
          return
        }
        if (options.verify === true) {
          const checked = check(envelopes, allGaps, parseForEpisode)
          const { verification } = checked
          if (format === "json")
            printJson({
              episodeId,
              subject,
              verdict: checked.verdict,
              verification,
              ...(checked.verdict === "damaged" ? { gaps: checked.gaps } : {}),
            })
          else
            process.stdout.write(
              terminalText(checked.verdict === "damaged" ? damagedText(checked) : verdictText(verification), {
                multiline: true,
              }),
            )
          if (checked.verdict === "diverged") process.exitCode = DIVERGED_EXIT_CODE
          if (checked.verdict === "damaged") process.exitCode = DAMAGED_EXIT_CODE
          return
        }
        // Everything that decodes is shown; what does not is marked where it is.
        if (format === "json") {
          const events = [
            ...envelopes.map((e) => ({ position: e.position, recordedAt: e.recordedAt, ...e.event })),
            ...allGaps.map((g) => ({ position: g.position, undecodable: g })),
          ].sort((a, b) => a.position - b.position)
          printJson({ episodeId, subject, events, gaps: allGaps })
        } else if (format === "openai") {
          for (const m of toChat(envelopes)) process.stdout.write(`${JSON.stringify(openAiMessage(m))}\n`)
        } else {
          const rows = [
            ...envelopes.map((e) => ({ position: e.position, text: describeEvent(e.event) })),
            ...allGaps.map((g) => ({ position: g.position, text: gapText(g) })),
          ].sort((a, b) => a.position - b.position)
          for (const r of rows)
            process.stdout.write(`${String(r.position).padStart(8)}  ${terminalText(r.text)}\n`)
        }
        if (gaps.length > 0) {
          process.stderr.write(`rollout: ${terminalText(gapsLine(gaps))}\n`)
          process.exitCode = DAMAGED_EXIT_CODE
        }
        if (unknownSubject.length > 0)
          process.stderr.write(
            `rollout: replay: ${unknownSubject.length} undecodable line(s) of unknown subject lie among this episode's positions (${unknownSubject
              .map((g) => `position ${g.position}`)
              .join(", ")}): one may be its event\n`,
          )
      }),
    )
  })
