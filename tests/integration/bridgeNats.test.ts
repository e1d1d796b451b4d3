/**
 * The trainer bridge as its own process on NATS (a real nats-server on a random loopback port),
 * run as `rollout rl bridge` runs it (the command module from the build, through
 * tests/support/rlBridgeMain.mjs), with weights going to a scripted vLLM-style model server. First
 * the NATS request/reply subjects: the token, `status`, `next` whose reply carries the batch's blob
 * ref (the bytes read from the Object Store), an ack, metrics, weights. Then `kill -9` of the
 * bridge process, twice, while the simulated trainer (a test double) consumes the run's batches
 * over HTTP: each time the bridge is started again on the same port and token file, rebuilds its
 * state from the log, and the trainer goes on. At the end every step was consumed exactly once
 * (one `BatchConsumed` per step, none skipped, in order), each version published once, and the
 * trainer saw every step once, in order, with the bytes the batch builder stored.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import { requestBridge } from "../../src/actors/trainer/bridgeNats.ts"
import { runSimulatedTrainer, SIMULATED_TRAINER_NAME } from "../../src/actors/trainer/simulatedTrainer.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats, type NatsHandle } from "../../src/events/log/natsConnection.ts"
import { blobBucketFor, objectBlobStore } from "../../src/events/log/objectBlobStore.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { BlobRef, DomainEvent, EventOf } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  type ScriptedModelServer,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"

const NS = "bridgekill"
const RUN = "rl-kill"
const STEPS = 14
const subject = entitySubject(NS, "run", RUN)
const entry = path.resolve("tests/support/rlBridgeMain.mjs")

const started: Array<ChildProcess> = []
const cleanups: Array<() => Promise<void> | void> = []
let nats: TestNatsServer | undefined
let model: ScriptedModelServer | undefined

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await model?.stop()
  await nats?.stop()
})

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })

interface BridgeProcess {
  readonly child: ChildProcess
  readonly summary: {
    url: string
    tokenFile: string
    nats: Record<string, string>
    next: number
    version: string
  }
}

/** Starts the bridge process; resolves with its start summary (one JSON object on stdout). */
const startBridge = (dir: string, port: number): Promise<BridgeProcess> =>
  new Promise((resolve, reject) => {
    const globals = { nats: nats!.url, dataDir: path.join(dir, "data"), config: path.join(dir, "config") }
    const options = { run: RUN, port: String(port), json: true }
    const child = spawn(process.execPath, [entry, JSON.stringify(globals), JSON.stringify(options)], {
      env: { ...process.env, ROLLOUT_NAMESPACE: NS },
      stdio: ["ignore", "pipe", "pipe"],
    })
    started.push(child)
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => reject(new Error(`bridge not ready in 20 s:\n${stderr}`)), 20_000)
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      try {
        const summary = JSON.parse(stdout) as BridgeProcess["summary"]
        clearTimeout(timer)
        resolve({ child, summary })
      } catch {
        // Not the whole object yet.
      }
    })
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`bridge exited (${code ?? signal}) before it was ready:\n${stderr}`))
    })
  })

const kill9 = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

const append = (log: EventLogShape, eventId: string, event: DomainEvent) =>
  Effect.runPromise(
    log.append(subject, [
      {
        eventId,
        recordedAt: new Date().toISOString(),
        correlationId: RUN,
        causationId: "test",
        actor: "test",
        event,
      },
    ]),
  )

const eventsOf = async <T extends DomainEvent["type"]>(
  log: EventLogShape,
  type: T,
): Promise<Array<EventOf<T>>> => {
  const read = await Effect.runPromise(readEvents(log, { filter: subject }))
  expect(read.undecodable).toEqual([])
  return read.state.flatMap((e) => (e.event.type === type ? [e.event as EventOf<T>] : []))
}

describe("the trainer bridge on NATS, killed with kill -9", () => {
  it("answers on its NATS subjects, and after two kill -9s every step is consumed exactly once", async () => {
    nats = await startTestNatsServer()
    model = await startScriptedModelServer({ script: scripts.echo(), weights: { version: "0" } })
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-bridge-kill-"))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    fs.mkdirSync(path.join(dir, "config"))
    fs.writeFileSync(
      path.join(dir, "config", "models.yaml"),
      `models:\n  policy:\n    endpoints:\n      - url: ${model.url}\n    weightUpdates: vllm\n`,
    )
    const checkpoints = path.join(dir, "checkpoints")
    const checkpointPath = (version: number) => {
      const at = path.join(checkpoints, `v${version}`)
      fs.mkdirSync(at, { recursive: true })
      fs.writeFileSync(path.join(at, "model.safetensors"), `weights ${version}`)
      return at
    }

    const handle = await acquire(connectNats({ servers: nats.url, name: "bridge-kill-test" }))
    cleanups.push(handle.close)
    const connection: NatsHandle = handle.value
    const log = await Effect.runPromise(makeJetStreamLog(connection, { namespace: NS }))
    const blobs = objectBlobStore(connection, { bucket: blobBucketFor(NS) })

    // The run and its batches, as the sampler and batch builder record them.
    await append(log, `${RUN}/started`, { type: "RunStarted", runId: RUN, kind: "rl", model: "policy" })
    const stored: Array<{ ref: BlobRef; bytes: Uint8Array }> = []
    for (let step = 0; step < STEPS; step++) {
      const bytes = new Uint8Array(randomBytes(256 + step))
      const ref = await Effect.runPromise(blobs.put(bytes, "application/octet-stream"))
      stored.push({ ref, bytes })
      await append(log, `${RUN}/batch/${step}`, {
        type: "BatchPublished",
        runId: RUN,
        step,
        hash: ref.sha256,
        blob: ref,
        groups: [`task-${step}`],
        samples: 8,
        sequences: 8,
        tokens: bytes.byteLength,
        trainedTokens: 32,
        lags: [{ lag: 0, tokens: 32 }],
        drops: {},
      })
    }

    const port = await freePort()
    let bridge = await startBridge(dir, port)
    expect(bridge.summary.url).toBe(`http://127.0.0.1:${port}`)
    expect(bridge.summary.nats.next).toBe(`${NS}.bridge.${RUN}.next`)
    expect(fs.statSync(bridge.summary.tokenFile).mode & 0o777).toBe(0o600)
    const token = fs.readFileSync(bridge.summary.tokenFile, "utf8").trim()
    const client = { nats: connection, namespace: NS, runId: RUN, token }

    // NATS request/reply: the token first, then status, next (the blob ref; bytes from the Object Store).
    const refused = await requestBridge({ ...client, token: "wrong-token-wrong-token" }, "status")
    expect(refused).toMatchObject({ status: 401, error: expect.stringContaining("bearer token") })
    expect(await requestBridge(client, "status")).toMatchObject({
      status: 200,
      run: RUN,
      model: "policy",
      published: STEPS,
      next: 0,
    })
    const first = await requestBridge(client, "next", { wait: 0 })
    expect(first).toMatchObject({ status: 200, run: RUN, step: 0, hash: stored[0]!.ref.sha256 })
    const ref = (first.batch as EventOf<"BatchPublished">).blob
    expect(new Uint8Array(await Effect.runPromise(blobs.get(ref)))).toEqual(stored[0]!.bytes)
    expect(await requestBridge(client, "next", { ack: 5, wait: 0 })).toMatchObject({ status: 409 })
    expect(await requestBridge(client, "batch", { step: 3 })).toMatchObject({ status: 200, step: 3 })
    expect(
      await requestBridge(client, "metrics", { step: 0, version: 1, metrics: { loss: "x" } }),
    ).toMatchObject({
      status: 400,
      error: expect.stringMatching(/^metrics\.loss: /),
    })
    // The NATS trainer trains step 0 and hands over to the HTTP trainer (which starts from version 1).
    expect(
      await requestBridge(client, "metrics", { step: 0, version: 1, metrics: { loss: 1 } }),
    ).toMatchObject({ status: 200, recorded: true })
    expect(await requestBridge(client, "weights", { version: 1, path: checkpointPath(1) })).toMatchObject({
      status: 200,
      model: "policy",
      version: "1",
      endpoints: [expect.objectContaining({ ok: true })],
    })
    expect(await requestBridge(client, "next", { ack: 0, wait: 0 })).toMatchObject({ status: 200, step: 1 })

    // The simulated trainer over HTTP, while the bridge is killed twice mid-training: right after
    // the trainer published the weights of steps 4 and 9, as it sends `next?ack=<step>` (the kill
    // lands before, during or after the ack is recorded; the trainer retries the same request).
    // Not mid weight update: a server left paused mid-sequence is the pool's concern, not this test's.
    const killAfter = [4, 9]
    const kills: Array<Promise<void>> = []
    const training = runSimulatedTrainer({
      url: bridge.summary.url,
      token,
      stepMs: 60,
      checkpointPath,
      startVersion: 1,
      waitSeconds: 2,
      unreachableForMs: 30_000,
      onStep: (step) => {
        if (killAfter.includes(step.step)) kills.push(kill9(bridge.child))
      },
    })
    for (let kill = 0; kill < killAfter.length; kill++) {
      const deadline = Date.now() + 30_000
      while (kills.length <= kill && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 5))
      expect(kills.length).toBeGreaterThan(kill)
      await kills[kill]
      await new Promise((resolve) => setTimeout(resolve, 300))
      bridge = await startBridge(dir, port)
      expect(fs.readFileSync(bridge.summary.tokenFile, "utf8").trim()).toBe(token)
    }
    await append(log, `${RUN}/finished`, { type: "RunFinished", runId: RUN, status: "completed" })
    const result = await training
    expect(result.finished).toBe(true)
    expect(result.retries).toBeGreaterThan(0)
    expect(result.steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS - 1 }, (_, i) => i + 1))
    expect(result.steps.map((s) => s.hash)).toEqual(stored.slice(1).map((s) => s.ref.sha256))

    const consumed = await eventsOf(log, "BatchConsumed")
    expect(consumed.map((e) => e.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i))
    expect(consumed.slice(1).every((e) => e.trainer === SIMULATED_TRAINER_NAME)).toBe(true)
    expect((await eventsOf(log, "WeightsPublished")).map((e) => e.version)).toEqual(
      Array.from({ length: STEPS }, (_, i) => String(i + 1)),
    )
    expect((await eventsOf(log, "TrainerStepReported")).map((e) => e.step)).toEqual(
      Array.from({ length: STEPS }, (_, i) => i),
    )
    expect(await requestBridge(client, "status")).toMatchObject({
      status: 200,
      acknowledged: STEPS,
      next: STEPS,
      finished: true,
      version: String(STEPS),
    })
    const info = (await (await fetch(`${model.url.replace(/\/v1$/, "")}/weight_info`)).json()) as Record<
      string,
      unknown
    >
    expect(info.weight_version).toBe(String(STEPS))

    // SIGTERM stops it cleanly.
    const exited = new Promise<number | null>((resolve) => bridge.child.once("exit", (code) => resolve(code)))
    bridge.child.kill("SIGTERM")
    expect(await exited).toBe(0)
  }, 120_000)
})
