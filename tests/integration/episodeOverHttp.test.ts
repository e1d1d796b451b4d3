/**
 * An episode end to end over real HTTP: the episode shell on the embedded log, the inference pool
 * with two scripted OpenAI-compatible servers (test doubles for GPU servers), and an echo tool.
 * The trajectory records the serving endpoint, usage and token ids, and verifies on replay.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultPolicy } from "../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { poolModelPort } from "../../src/actors/agent/modelPort.ts"
import { verify } from "../../src/actors/agent/replay.ts"
import { runEpisode } from "../../src/actors/agent/shell.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import { decodeEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { Envelope, LogRecord } from "../../src/events/schema.ts"
import {
  type ScriptedModelServer,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"

const servers: ScriptedModelServer[] = []
let dir: string
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-http-episode-"))
  for (let i = 0; i < 2; i++)
    servers.push(await startScriptedModelServer({ script: scripts.echoTool({ tool: "echo", turns: 4 }) }))
})
afterAll(async () => {
  for (const s of servers) await s.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("an episode over HTTP through the inference pool", () => {
  it("runs to its answer, records endpoint, usage and token ids, and verifies on replay", async () => {
    const config = Result.getOrThrow(
      modelsConfigFrom({
        agent: {
          endpoints: servers.map((s) => ({ url: s.url, maxConcurrency: 4 })),
          retries: 2,
          backoffMs: 10,
          returnTokenIds: true,
        },
      }),
    )
    const envelopes = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const log = yield* makeEmbeddedLog({ dataDir: dir, namespace: "http", fsync: "never" })
          const pool = yield* makeInferencePool(config, { log, namespace: "http" })
          const state = yield* runEpisode(
            log,
            {
              model: poolModelPort(pool, { logprobs: true }),
              tools: {
                call: ({ arguments: args }) =>
                  Effect.succeed({ ok: true as const, content: args as never, truncated: false }),
              },
              toolSpecs: [{ name: "echo", description: "echo", parameters: { type: "object" } }],
              parse: parseForEpisode,
            },
            "http-1",
            {
              kind: "start",
              episodeId: "http-1",
              taskId: "t",
              sampleIndex: 0,
              question: "Echo four times, then answer.",
              model: "agent",
              policy: defaultPolicy,
            },
          )
          expect(state.outcome).toBe("answered")
          expect(state.answer).toBe("done")
          const entries = yield* Stream.runCollect(log.read({ filter: "http.ev.episode.http-1" }))
          return Array.from(entries).map((e) => Result.getOrThrow(decodeEvent(e as LogRecord)))
        }),
      ),
    )
    const responded = envelopes.filter(
      (e): e is Envelope & { event: { type: "ModelResponded" } } => e.event.type === "ModelResponded",
    )
    expect(responded).toHaveLength(5)
    for (const r of responded) {
      if (r.event.type !== "ModelResponded") continue
      expect(servers.map((s) => s.url)).toContain(r.event.endpoint)
      expect(r.event.usage.promptTokens).toBeGreaterThan(0)
      expect(r.event.tokenIds?.length).toBeGreaterThan(0)
      expect(r.event.logprobs?.length).toBe(r.event.tokenIds?.length)
    }
    // Episode affinity: every turn of the episode went to the same server.
    expect(
      new Set(responded.map((r) => (r.event.type === "ModelResponded" ? r.event.endpoint : ""))),
    ).toHaveProperty("size", 1)
    expect(verify(envelopes, parseForEpisode)).toMatchObject({ ok: true })
    // The tool catalog went with every agent turn.
    const bodies = servers.flatMap((s) => s.requests).filter((r) => r.body !== undefined)
    expect(bodies.length).toBeGreaterThan(0)
    for (const r of bodies) {
      const tools = r.body?.tools as ReadonlyArray<{ function: { name: string } }> | undefined
      expect(tools?.map((t) => t.function.name)).toEqual(["echo"])
    }
  })
})
