/**
 * Item 7 of the agent capability with real processes: two `rollout worker --roles agent` processes
 * on a real nats-server run episodes against a scripted OpenAI-compatible server (a test double for
 * a GPU server); one worker is `kill -9`ed mid-episode. Every episode still ends answered, no model
 * completion or tool result is recorded twice, and every episode verifies by replay.
 */
import type { ChildProcess } from "node:child_process"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { afterAll, describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { verify } from "../../src/actors/agent/replay.ts"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import type { Envelope } from "../../src/events/schema.ts"
import {
  type ScriptedModelServer,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import type { Command } from "../../src/runtime/command.ts"
import { makeJetStreamBus } from "../../src/runtime/jetStreamBus.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"
import { startWorkerProcess } from "../support/workerProcess.ts"

const _cli = path.resolve("bin/rollout.js")
const namespace = "killagent"
const episodes = 12
const started: ChildProcess[] = []
let nats: TestNatsServer | undefined
let model: ScriptedModelServer | undefined

afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await nats?.stop()
  await model?.stop()
})

const startWorker = (url: string, name: string): Promise<ChildProcess> =>
  startWorkerProcess(
    ["--nats", url, "worker", "--roles", "agent", "--name", name, "--ack-wait", "1500", "--concurrency", "8"],
    { ROLLOUT_NAMESPACE: namespace, ROLLOUT_MODEL_AGENT_URL: model!.url, ROLLOUT_TOOLS: "builtin" },
    started,
  )

describe("kill -9 of a worker running agent episodes", () => {
  it("another worker resumes each episode from the log; no completion or tool result twice", async () => {
    nats = await startTestNatsServer()
    // Each model call takes 15 ms, so episodes are mid-flight when the worker dies.
    model = await startScriptedModelServer({
      script: scripts.echoTool({ tool: "echo", turns: 25 }),
      latencyMs: 15,
    })
    const [a] = await Promise.all([startWorker(nats.url, "agent-a"), startWorker(nats.url, "agent-b")])
    const handle = await acquire(connectNats({ servers: nats.url, name: "kill-agent-test" }))
    try {
      const log = await Effect.runPromise(makeJetStreamLog(handle.value, { namespace }))
      const bus = await Effect.runPromise(makeJetStreamBus(handle.value, { namespace }))
      const commands: Command[] = Array.from({ length: episodes }, (_, i) => ({
        commandId: `run-${i}`,
        actorKind: "agent",
        entityId: `episode-${i}`,
        type: "RunEpisode",
        payload: { taskId: `task-${i}`, sampleIndex: 0, question: `question ${i}`, model: "agent" },
        issuedAt: "2026-01-01T00:00:00.000Z",
        correlationId: "kill-agent",
      }))
      await Effect.runPromise(bus.send(commands))

      const read = async () => {
        const entries = Array.from(
          await Effect.runPromise(Stream.runCollect(log.read({ filter: `${namespace}.ev.episode.*` }))),
        )
        return entries.map((e) => {
          if (e instanceof UndecodableEvent) throw new Error(e.message)
          return Result.getOrThrow(decodeEvent(e))
        })
      }
      const count = async (type: string) => (await read()).filter((e) => e.event.type === type).length
      const deadline = Date.now() + 120_000
      while ((await count("ModelResponded")) < 60) {
        if (Date.now() > deadline) throw new Error("episodes did not get going")
        await new Promise((r) => setTimeout(r, 50))
      }
      a!.kill("SIGKILL")
      while ((await count("EpisodeFinished")) < episodes) {
        if (Date.now() > deadline) throw new Error(`only ${await count("EpisodeFinished")} episodes finished`)
        await new Promise((r) => setTimeout(r, 100))
      }

      const all = await read()
      const bySubject = new Map<string, Envelope[]>()
      for (const e of all) bySubject.set(e.subject, [...(bySubject.get(e.subject) ?? []), e])
      expect(bySubject.size).toBe(episodes)
      for (const [subject, events] of bySubject) {
        const finished = events.filter((e) => e.event.type === "EpisodeFinished")
        expect(finished, subject).toHaveLength(1)
        expect(finished[0]!.event).toMatchObject({ outcome: "answered", answer: "done" })
        const requests = events.flatMap((e) => (e.event.type === "ModelResponded" ? [e.event.requestId] : []))
        expect(new Set(requests).size, `${subject}: a completion recorded twice`).toBe(requests.length)
        const results = events.flatMap((e) => (e.event.type === "ToolCallCompleted" ? [e.event.callId] : []))
        expect(new Set(results).size, `${subject}: a tool result recorded twice`).toBe(results.length)
        const verdict = verify(events, parseForEpisode)
        expect(verdict.ok ? verdict : JSON.stringify(verdict).slice(0, 1500), subject).toMatchObject({
          ok: true,
        })
      }
      expect(await Effect.runPromise(bus.deadLetters())).toEqual([])
    } finally {
      await handle.close()
    }
  }, 180_000)
})
