/**
 * `rollout replay <episodeId>`: renders a trajectory from the log (a terminal view, OpenAI chat
 * messages as JSONL, or the raw events as JSON). With `--verify` it prints instead only the verdict
 * of re-driving the agent's decisions over the recorded model and tool results — and at the first
 * divergence the fields that differ, exiting 3 — as text or (`--json`) one object. It never calls
 * a model or a tool; `--fork-at` does, from the turn it names on.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { forkEpisode } from "../actors/agent/fork.ts"
import { parseForEpisode } from "../actors/agent/index.ts"
import { describeEvent, openAiMessage, toChat, type Verification, verify } from "../actors/agent/replay.ts"
import { runEpisode } from "../actors/agent/shell.ts"
import { liveAgentPorts } from "../actors/registry.ts"
import { decodeEvent, UndecodableEvent } from "../events/codec.ts"
import type { Envelope } from "../events/schema.ts"
import { entitySubject } from "../events/subjects.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  UsageError,
  withRuntime,
} from "./invocation.ts"

export interface ReplayOptions {
  readonly format?: string
  readonly verify?: boolean
  readonly forkAt?: string
  readonly as?: string
  readonly json?: boolean
}

/** The exit code of a verification that diverged. */
export const DIVERGED_EXIT_CODE = 3

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
        const entries = yield* Stream.runCollect(runtime.log.read({ filter: subject }))
        const envelopes: Envelope[] = []
        for (const entry of entries) {
          const decoded = entry instanceof UndecodableEvent ? Result.fail(entry) : decodeEvent(entry)
          if (Result.isFailure(decoded)) return yield* Effect.fail(new UsageError(decoded.failure.message))
          envelopes.push(decoded.success)
        }
        if (envelopes.length === 0) {
          return yield* Effect.fail(
            new UsageError(
              `no episode "${episodeId}" in the ${config.log.backend} log at ${runtime.location}`,
            ),
          )
        }
        if (forkAt !== undefined) {
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
          const verification = verify(envelopes, parseForEpisode)
          if (format === "json") printJson({ episodeId, subject, verification })
          else process.stdout.write(verdictText(verification))
          if (!verification.ok) process.exitCode = DIVERGED_EXIT_CODE
          return
        }
        if (format === "json") {
          printJson({
            episodeId,
            subject,
            events: envelopes.map((e) => ({ position: e.position, recordedAt: e.recordedAt, ...e.event })),
          })
        } else if (format === "openai") {
          for (const m of toChat(envelopes)) process.stdout.write(`${JSON.stringify(openAiMessage(m))}\n`)
        } else {
          for (const e of envelopes)
            process.stdout.write(`${String(e.position).padStart(8)}  ${describeEvent(e.event)}\n`)
        }
      }),
    )
  })
