/**
 * `rollout demo`: the whole agent path on a fresh machine, offline. It starts the scripted
 * OpenAI-compatible model server — a TEST DOUBLE standing in for a GPU server, said so in its
 * output — routes it through the inference pool, and runs episodes as `RunEpisode` commands through
 * the actor host on the embedded log, with the built-in `echo` tool. Then it prints the outcomes
 * and how to replay them. Point `config/models.yaml` (or ROLLOUT_MODEL_AGENT_URL) at a real
 * server and run `rollout worker --roles agent` for the real thing.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { runEpisodePayload } from "../../actors/agent/actor.ts"
import { modelsConfigFrom } from "../../actors/inference/modelsConfig.ts"
import { builtinToolsAgent, hostActors } from "../../app/actors.ts"
import { UndecodableEvent } from "../../events/codec.ts"
import { eventsFilter } from "../../events/subjects.ts"
import { scripts, startScriptedModelServer } from "../../programs/scriptedModel/server.ts"
import { table } from "../../projections/terminalText.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  progressLine,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export const demoCommand = (
  global: GlobalOptions,
  options: { episodes?: string; turns?: string; json?: boolean },
) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    if (config.log.backend !== "embedded") {
      return yield* Effect.fail(
        new UsageError("rollout demo runs on the embedded log; drop --nats / --log nats"),
      )
    }
    const episodes = (yield* integerFlag("--episodes", options.episodes)) ?? 8
    const turns = (yield* integerFlag("--turns", options.turns, 0)) ?? 3
    const server = yield* Effect.acquireRelease(
      Effect.promise(() => startScriptedModelServer({ script: scripts.echoTool({ tool: "echo", turns }) })),
      (s) => Effect.promise(() => s.stop()),
    )
    if (options.json !== true) {
      process.stderr.write(
        `model: scripted test double at ${server.url} (no GPU; it calls echo ${turns} times, then answers)\n`,
      )
    }
    const models = modelsConfigFrom({ agent: { endpoints: [{ url: server.url, maxConcurrency: 16 }] } })
    if (Result.isFailure(models)) return yield* Effect.fail(models.failure)
    return yield* withRuntime(config, {}, (runtime) =>
      Effect.gen(function* () {
        const actor = yield* builtinToolsAgent(runtime.log, models.success)
        const host = yield* hostActors(runtime, [actor], { worker: "demo" })
        const runId = `demo-${Date.now().toString(36)}`
        const from = (yield* runtime.log.stats).lastPosition + 1
        const issuedAt = new Date().toISOString()
        yield* runtime.bus.send(
          Array.from({ length: episodes }, (_, i) => ({
            commandId: `${runId}/run/${i}`,
            actorKind: "agent",
            entityId: `${runId}-${i}`,
            type: "RunEpisode",
            payload: runEpisodePayload({
              kind: "start",
              episodeId: `${runId}-${i}`,
              taskId: `demo-task-${i}`,
              sampleIndex: 0,
              question: `Demo question ${i}`,
              model: "agent",
              runId,
            }),
            issuedAt,
            correlationId: runId,
          })),
        )
        const finished: Array<{ episode: string; outcome: string; turns: number; answer?: string }> = []
        const progress = progressLine()
        yield* runtime.log.tail({ from, filter: eventsFilter(config.log.namespace, "episode") }).pipe(
          Stream.runForEachWhile((entry) =>
            Effect.sync(() => {
              if (entry instanceof UndecodableEvent || entry.type !== "EpisodeFinished") return true
              const e = entry.payload as {
                episodeId: string
                outcome: string
                turns: number
                answer?: string
              }
              if (!e.episodeId.startsWith(runId)) return true
              finished.push({
                episode: e.episodeId,
                outcome: e.outcome,
                turns: e.turns,
                ...(e.answer === undefined ? {} : { answer: e.answer }),
              })
              if (options.json !== true) progress.update(`episodes finished: ${finished.length}/${episodes}`)
              return finished.length < episodes
            }),
          ),
          Effect.timeout("120 seconds"),
        )
        yield* host.drain
        finished.sort((a, b) => a.episode.localeCompare(b.episode, "en", { numeric: true }))
        if (options.json === true) {
          printJson({ runId, model: "scripted test double", episodes: finished, dataDir: runtime.location })
          return
        }
        progress.done(`episodes finished: ${finished.length}/${episodes}`)
        process.stdout.write(
          `${table(
            ["episode", "outcome", "turns", "answer"],
            finished.map((f) => [f.episode, f.outcome, f.turns, f.answer ?? "-"]),
          )}\n\nThe log is in ${runtime.location}. Replay an episode, or check it re-drives identically:\n` +
            `  node bin/rollout.js replay ${finished[0]?.episode ?? `${runId}-0`}\n` +
            `  node bin/rollout.js replay ${finished[0]?.episode ?? `${runId}-0`} --verify\n` +
            "For a real model: set ROLLOUT_MODEL_AGENT_URL=http://<host>:8000/v1 (or edit config/models.yaml) and\n" +
            "run `rollout worker --roles agent --nats <url>` workers that take RunEpisode commands.\n",
        )
      }),
    )
  }).pipe(Effect.scoped)
