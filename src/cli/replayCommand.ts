/**
 * `rollout replay <episodeId>`: renders a trajectory from the log (a terminal view, OpenAI chat
 * messages as JSONL, or the raw events as JSON) and, with `--verify`, re-drives the agent's
 * decisions over the recorded model and tool results, exiting non-zero at the first divergence
 * with a diff. It never calls a model or a tool.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { forkEpisode } from "../actors/agent/fork.ts"
import { parseForEpisode } from "../actors/agent/index.ts"
import { describeEvent, openAiMessage, toChat, verify } from "../actors/agent/replay.ts"
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

export const replayCommand = (global: GlobalOptions, episodeId: string, options: ReplayOptions) =>
  Effect.gen(function* () {
    const format = options.json === true ? "json" : (options.format ?? "text")
    if (!["text", "openai", "json"].includes(format)) {
      return yield* Effect.fail(new UsageError(`--format must be text, openai or json, got "${format}"`))
    }
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
        const verification = options.verify === true ? verify(envelopes, parseForEpisode) : undefined
        if (format === "json") {
          printJson({
            episodeId,
            subject,
            events: envelopes.map((e) => ({ position: e.position, recordedAt: e.recordedAt, ...e.event })),
            ...(verification === undefined ? {} : { verification }),
          })
        } else if (format === "openai") {
          for (const m of toChat(envelopes)) process.stdout.write(`${JSON.stringify(openAiMessage(m))}\n`)
        } else {
          for (const e of envelopes)
            process.stdout.write(`${String(e.position).padStart(8)}  ${describeEvent(e.event)}\n`)
        }
        if (verification !== undefined && format !== "json") {
          process.stderr.write(
            verification.ok
              ? `verified: ${verification.decisions} decisions over ${verification.events} events reproduce the log\n`
              : `DIVERGED at position ${verification.divergence.position}: ${verification.divergence.reason}\n` +
                  `  recorded: ${JSON.stringify(verification.divergence.recorded)}\n` +
                  `  redriven: ${JSON.stringify(verification.divergence.redriven)}\n`,
          )
        }
        if (verification !== undefined && !verification.ok) process.exitCode = 3
      }),
    )
  })
