/**
 * Commands too large for a JetStream message (1 MB by default), end to end on a real nats-server:
 *
 * - `rollout eval --dispatch` of a custom benchmark with a 3 MB and a 1.35 MB question: each
 *   `RunEpisode` command travels with its question in the blob store, a `rollout worker --roles
 *   agent` process reads it back and starts the episode with the whole question, the model (a
 *   scripted server) sees the one that fits its context whole, and the run ends scored;
 * - the actor host on the same bus: a command whose blob was lost is dead-lettered, named by its
 *   own id, with a reason naming the field and the hash (never run with a hole), and a poison
 *   command with a 3 MB field is dead-lettered although the letter is over the message limit.
 */
import { type ChildProcess, execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { Effect, Result, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { probeActor } from "../../src/actors/probe/index.ts"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import type { LogRecord } from "../../src/events/schema.ts"
import { eventsFilter } from "../../src/events/subjects.ts"
import { lastInput, messageText } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { startHost } from "../../src/runtime/actorHost.ts"
import type { Command } from "../../src/runtime/command.ts"
import { makeJetStreamBus } from "../../src/runtime/jetStreamBus.ts"
import { threeMegabytes } from "../contract/commandBusContract.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"
import { startWorkerProcess } from "../support/workerProcess.ts"

const cli = path.resolve("bin/rollout.js")
const execute = promisify(execFile)
const started: ChildProcess[] = []
let nats: TestNatsServer | undefined
let model: ScriptedModelServer | undefined
const dirs: string[] = []

afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await nats?.stop()
  await model?.stop()
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

const tempDir = (prefix: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe("commands over JetStream's message limit", () => {
  it("eval --dispatch of a 3 MB question runs to the end on a worker, scored", async () => {
    nats ??= await startTestNatsServer()
    // Two questions over the 1 MB message limit. The 3 MB one is over the agent's context budget
    // too (128k estimated tokens, a token per four UTF-16 units), so the worker ends it at once
    // (context_limit); the 1.35 MB one, three-byte characters, fits the budget and reaches the
    // model, which answers with the digest of the question it finds: only a whole question gets
    // the expected answer.
    // (Trimmed as the benchmark loader trims them, so the question recorded is the one written.)
    const questions = {
      big: threeMegabytes().trimEnd(),
      wide: `${"日本語の問題。".repeat(64_000)}答えは？`,
      small: "What is two and two?",
    }
    expect(Buffer.byteLength(questions.big, "utf8")).toBeGreaterThan(3_000_000)
    expect(Buffer.byteLength(questions.wide, "utf8")).toBeGreaterThan(1_300_000)
    const seen: string[] = []
    model = await startScriptedModelServer({
      script: (request) => {
        const input = lastInput(request)
        const text = input === undefined ? "" : messageText(input)
        const asked = Object.values(questions).find((q) => text.includes(q))
        const answer = asked === undefined ? "lost" : sha256(asked)
        seen.push(answer)
        return { content: `<answer>${answer}</answer>` }
      },
    })
    const namespace = "largecmd"
    await startWorkerProcess(
      ["--nats", nats.url, "worker", "--roles", "agent", "--name", "agent-large", "--concurrency", "2"],
      { ROLLOUT_NAMESPACE: namespace, ROLLOUT_MODEL_AGENT_URL: model.url, ROLLOUT_TOOLS: "builtin" },
      started,
    )
    const cwd = tempDir("rollout-large-command-")
    const rows = Object.entries(questions).map(([id, question]) => ({
      id,
      question,
      answer: sha256(question),
    }))
    fs.writeFileSync(path.join(cwd, "tasks.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n"))
    const { stdout, stderr } = await execute(
      process.execPath,
      [
        cli,
        "--data-dir",
        "data",
        "--nats",
        nats.url,
        "eval",
        "--bench",
        "custom",
        "--data",
        "tasks.jsonl",
        "--map",
        "question=question,answer=answer,id=id",
        "--scorer",
        "gaia",
        "--model",
        "agent",
        "-k",
        "1",
        "--run",
        "large",
        "--dispatch",
        "--json",
      ],
      {
        cwd,
        env: { ...process.env, NO_COLOR: "1", ROLLOUT_NAMESPACE: namespace },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 45_000,
      },
    ).catch((error: { code: number; stdout: string; stderr: string }) => {
      throw new Error(`eval exited ${error.code}:\n${error.stderr}\n${error.stdout}`)
    })
    expect(stderr).not.toContain("internal error")
    const report = JSON.parse(stdout) as {
      metrics: { correct: number; runs: number }
      scoredNow: number
      failed: unknown[]
    }
    expect(report.failed).toEqual([])
    expect(report.scoredNow).toBe(3)
    expect(report.metrics).toMatchObject({ runs: 3, correct: 2 })
    expect(seen.sort()).toEqual([sha256(questions.small), sha256(questions.wide)].sort())

    // What the worker recorded: each episode started with the whole question the command carried.
    const handle = await acquire(connectNats({ servers: nats.url, name: "large-command-read" }))
    try {
      const log = await Effect.runPromise(makeJetStreamLog(handle.value, { namespace }))
      const events = Array.from(
        await Effect.runPromise(Stream.runCollect(log.read({ filter: eventsFilter(namespace, "episode") }))),
      ).map((entry) => {
        if (entry instanceof UndecodableEvent) throw new Error(entry.message)
        return Result.getOrThrow(decodeEvent(entry)).event
      })
      for (const [id, question] of Object.entries(questions)) {
        const start = events.find((e) => e.type === "EpisodeStarted" && e.taskId === id)
        expect(start?.type === "EpisodeStarted" && start.question === question, id).toBe(true)
      }
      const outcomes = Object.fromEntries(
        events.flatMap((e) => (e.type === "EpisodeFinished" ? [[e.episodeId, e.outcome]] : [])),
      )
      expect(outcomes).toEqual({
        "large/big/0": "context_limit",
        "large/wide/0": "answered",
        "large/small/0": "answered",
      })
    } finally {
      await handle.close()
    }
  }, 60_000)

  it("the host dead-letters a command whose blob is lost, naming the hash, and keeps a large poison command's letter", async () => {
    nats ??= await startTestNatsServer()
    const namespace = "largehost"
    const handle = await acquire(connectNats({ servers: nats.url, name: "large-host" }))
    const blobDir = tempDir("rollout-large-host-blobs-")
    try {
      const log = await Effect.runPromise(makeJetStreamLog(handle.value, { namespace }))
      const bus = await Effect.runPromise(
        makeJetStreamBus(handle.value, { namespace, blobStore: fileBlobStore(blobDir) }),
      )
      const probe = (id: string, payload: Command["payload"]): Command => ({
        commandId: id,
        actorKind: "probe",
        entityId: id,
        type: "RecordProbe",
        payload,
        issuedAt: "2026-01-01T00:00:00.000Z",
        correlationId: "large-host",
      })
      const notes = {
        good: `${threeMegabytes()}good`,
        lost: `${threeMegabytes()}lost`,
        poison: threeMegabytes(),
      }
      await Effect.runPromise(
        bus.send([
          probe("good", { seq: 1, note: notes.good }),
          probe("lost", { seq: 2, note: notes.lost }),
          probe("poison", { seq: "not a number", note: notes.poison }),
        ]),
      )
      // The blob of "lost" is content-addressed: its name is the hash of the note.
      const lost = sha256(notes.lost)
      fs.rmSync(path.join(blobDir, lost.slice(0, 2), lost))

      const host = await Effect.runPromise(
        startHost(log, bus, [probeActor], {
          worker: "w-large",
          concurrency: 2,
          ackWaitMs: 5_000,
          maxDeliver: 3,
          drainTimeoutMs: 5_000,
          conflictRetries: 4,
        }),
      )
      await until(
        "two dead letters",
        async () => (await Effect.runPromise(bus.deadLetters("probe"))).length >= 2,
      )
      await until("the good command", async () => (await Effect.runPromise(log.stats)).events >= 1)
      await Effect.runPromise(host.drain)

      const letters = await Effect.runPromise(bus.deadLetters("probe"))
      expect(letters.map((l) => [l.commandId, l.kind]).sort()).toEqual([
        ["lost", "malformed"],
        ["poison", "malformed"],
      ])
      const lostLetter = letters.find((l) => l.commandId === "lost")!
      expect(lostLetter.reason).toContain(lost)
      expect(lostLetter.reason).toContain("field payload.note")
      expect(lostLetter.reason).toContain("missing")
      const poison = letters.find((l) => l.commandId === "poison")!
      expect(poison.reason).toContain("seq")
      expect(poison.blobs).toEqual([["command", "payload", "note"]])
      expect(poison.command?.payload).toMatchObject({ note: { $blob: { sha256: sha256(notes.poison) } } })

      // Only the good command ran: nothing was recorded for the one with a hole.
      const records = Array.from(await Effect.runPromise(Stream.runCollect(log.read()))).filter(
        (e): e is LogRecord => !(e instanceof UndecodableEvent),
      )
      expect(records.map((r) => r.causationId)).toEqual(["good"])
      expect(host.counters.get("probe")).toMatchObject({ handled: 1, deadLettered: 2 })
    } finally {
      await handle.close()
    }
  }, 60_000)
})
