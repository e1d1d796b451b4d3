/**
 * AgentDock's lifecycle events across a NATS outage, against a real nats-server that is killed
 * (kill -9) and restarted: events made while it is down wait and are all written once it is back,
 * in order, with the time they happened, none twice; past the buffer the oldest pool samples go
 * first and the loss is counted and said; what is still held when the dock closes is counted and
 * said. End to end: `rollout dock up` on NATS, the server killed, `dock status` says how many wait.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { Effect, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LifecycleRecorder } from "../../src/actors/tools/lifecycleRecorder.ts"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats, type NatsHandle } from "../../src/events/log/natsConnection.ts"
import type { DomainEvent, Envelope } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { type Acquired, acquire } from "../support/scoped.ts"

let server: TestNatsServer
let conn: Acquired<NatsHandle>
let namespaces = 0

beforeAll(async () => {
  server = await startTestNatsServer()
  conn = await acquire(connectNats({ servers: server.url, name: "dock-recorder-it" }))
}, 60_000)
afterAll(async () => {
  await conn?.close()
  await server?.stop()
})

const freshLog = async (): Promise<{ log: EventLogShape; ns: string }> => {
  const ns = `rec${namespaces++}`
  return { log: await Effect.runPromise(makeJetStreamLog(conn.value, { namespace: ns })), ns }
}

const started = (replica: string): DomainEvent => ({
  type: "ToolReplicaStarted",
  server: "s",
  version: "v1",
  replica,
  restarts: 0,
  startMs: 1,
})
const sampled = (queued: number): DomainEvent => ({
  type: "ToolPoolSampled",
  server: "s",
  queued,
  replicas: [],
})

/** Polls `condition` (which may ask a process) until it holds. */
const waitFor = async (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const recorded = async (log: EventLogShape, ns: string): Promise<Envelope[]> => {
  const entries = await Effect.runPromise(Stream.runCollect(log.read({ filter: `${ns}.ev.tool.>` })))
  return Array.from(entries).flatMap((e) => {
    if (e instanceof UndecodableEvent) throw e
    const d = decodeEvent(e)
    if (d._tag === "Failure") throw d.failure
    return [d.success]
  })
}

describe("lifecycle events while NATS is down", () => {
  it("are held, retried and all written once it is back, in order, once each, with their own time", async () => {
    const { log, ns } = await freshLog()
    const said: string[] = []
    const recorder = new LifecycleRecorder(log, { retryMs: 100, maxRetryMs: 400, say: (l) => said.push(l) })
    const subject = entitySubject(ns, "tool", "s")
    recorder.add(subject, started("before"))
    await waitFor(() => recorder.status().recorded === 1, 10_000)

    await server.kill9()
    const madeAt = new Date().toISOString()
    for (let i = 0; i < 30; i++) recorder.add(subject, started(`down-${i}`))
    await waitFor(() => recorder.status().failingSince !== undefined, 30_000)
    expect(recorder.status()).toMatchObject({ pending: 30, dropped: 0, recorded: 1 })
    expect(said[0]).toMatch(
      /could not record \d+ lifecycle event\(s\): .*holding them \(up to 10000\) and retrying/,
    )

    const backAt = new Date().toISOString()
    await server.restart()
    await waitFor(() => recorder.status().pending === 0, 60_000)
    expect(recorder.status()).toMatchObject({ recorded: 31, dropped: 0 })
    expect(recorder.status().failingSince).toBeUndefined()
    expect(said.at(-1)).toMatch(/takes lifecycle events again after [\d.]+ s: recording the 30 held/)

    const events = await recorded(log, ns)
    expect(events.map((e) => (e.event as { replica: string }).replica)).toEqual([
      "before",
      ...Array.from({ length: 30 }, (_, i) => `down-${i}`),
    ])
    expect(new Set(events.map((e) => e.eventId)).size).toBe(31)
    // The time each happened (while the server was down), not when the log came back.
    for (const e of events.slice(1)) expect(e.recordedAt <= backAt).toBe(true)
    for (const e of events.slice(1)) expect(e.recordedAt >= madeAt.slice(0, 19)).toBe(true)
    await recorder.flush()
  }, 120_000)

  it("past the buffer drop pool samples first, count and say it; what is held at close is counted and said", async () => {
    const { log, ns } = await freshLog()
    const said: string[] = []
    const recorder = new LifecycleRecorder(log, {
      buffer: 5,
      retryMs: 100,
      maxRetryMs: 200,
      say: (l) => said.push(l),
    })
    const subject = entitySubject(ns, "tool", "s")
    await server.kill9()
    try {
      recorder.add(subject, sampled(1))
      recorder.add(subject, started("a"))
      recorder.add(subject, sampled(2))
      recorder.add(subject, started("b"))
      recorder.add(subject, started("c"))
      recorder.add(subject, started("d"))
      recorder.add(subject, sampled(3))
      // Seven made, five may wait: the two oldest samples go (the one in flight, if any, stays).
      const s = recorder.status()
      expect(s.pending).toBe(5)
      expect(s.dropped).toBe(2)
      expect(said.some((l) => /dropping the oldest beyond that \(.*ToolPoolSampled\)/.test(l))).toBe(true)
    } finally {
      await server.restart()
    }
    await waitFor(() => recorder.status().pending === 0, 60_000)
    const replicas = (await recorded(log, ns))
      .filter((e) => e.event.type === "ToolReplicaStarted")
      .map((e) => (e.event as { replica: string }).replica)
    expect(replicas).toEqual(["a", "b", "c", "d"])

    // Closing while the log is down: a bounded wait, then the loss is counted and said.
    await server.kill9()
    try {
      recorder.add(subject, started("late"))
      const t0 = Date.now()
      await recorder.flush(1_000)
      expect(Date.now() - t0).toBeLessThan(10_000)
      expect(recorder.status()).toMatchObject({ pending: 0, dropped: 3 })
      expect(said.at(-1)).toMatch(
        /1 lifecycle event\(s\) not recorded before closing \(1 ToolReplicaStarted\)/,
      )
    } finally {
      await server.restart()
    }
  }, 120_000)
})

const cli = path.resolve("bin/rollout.js")
const exec = promisify(execFile)

describe("rollout dock status during an outage", () => {
  let up: ChildProcess | undefined
  let dir: string | undefined
  afterAll(async () => {
    if (up !== undefined && up.exitCode === null) up.kill("SIGKILL")
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  it("says how many lifecycle events wait for the log, and that they are written once it is back", async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-dock-outage-"))
    const configDir = path.join(dir, "config")
    fs.mkdirSync(configDir)
    fs.writeFileSync(
      path.join(configDir, "tools.yaml"),
      [
        "servers:",
        "  everything:",
        "    command: mcp-server-everything",
        "    args: [stdio]",
        "gateway:",
        "  port: 0",
      ].join("\n"),
    )
    const globals = ["--config", configDir, "--data-dir", path.join(dir, "data"), "--nats", server.url]
    const env = { ...process.env, ROLLOUT_DOCK_TOKEN: "test-token-0123456789" }
    up = spawn(process.execPath, [cli, ...globals, "dock", "up"], { env, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    up.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    let stdout = ""
    up.stdout?.on("data", (c: Buffer) => {
      stdout += c.toString()
    })
    await waitFor(() => /MCP gateway: http/.test(stdout), 60_000)
    const status = async () =>
      JSON.parse(
        (await exec(process.execPath, [cli, ...globals, "dock", "status", "--json"], { env })).stdout,
      )
    await waitFor(async () => (await status()).recording?.recorded > 0, 30_000)

    await server.kill9()
    try {
      // A call moves the pool, so the sampler records a sample, which now has to wait.
      await exec(
        process.execPath,
        [cli, ...globals, "dock", "call", "everything__echo", "--args", '{"message":"x"}'],
        {
          env,
        },
      )
      await waitFor(async () => (await status()).recording.pending > 0, 30_000)
      const waiting = await status()
      expect(waiting.recording).toMatchObject({ dropped: 0, buffer: 10_000 })
      expect(waiting.recording.failingSince).toEqual(expect.any(String))
      const text = (await exec(process.execPath, [cli, ...globals, "dock", "status"], { env })).stdout
      expect(text).toMatch(/lifecycle events: \d+ pending for the log \(the log has not taken them since /)
      expect(stderr).toMatch(/rollout dock: could not record \d+ lifecycle event\(s\)/)
    } finally {
      await server.restart()
    }
    await waitFor(async () => (await status()).recording.pending === 0, 60_000)
    expect((await status()).recording).toMatchObject({ pending: 0, dropped: 0 })
    await waitFor(() => /takes lifecycle events again/.test(stderr), 10_000)
  }, 180_000)
})
