/**
 * The CommandBus contract on the in-process adapter and on JetStream (a real nats-server), and what
 * only JetStream has: a message limit, so large fields of commands and dead letters travel through
 * the blob store (here files in a temporary directory, where a test can lose or damage a blob).
 */

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { connectNats, type NatsHandle } from "../../src/events/log/natsConnection.ts"
import { type Command, type DeadLetter, MalformedCommand } from "../../src/runtime/command.ts"
import type { CommandBusShape, Delivery } from "../../src/runtime/commandBus.ts"
import { makeInProcessBus } from "../../src/runtime/inProcessBus.ts"
import { type JetStreamBusOptions, makeJetStreamBus } from "../../src/runtime/jetStreamBus.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { type Acquired, acquire } from "../support/scoped.ts"
import { command, commandBusContract, threeMegabytes } from "./commandBusContract.ts"

commandBusContract("in-process", async () => ({
  open: async () => ({ bus: makeInProcessBus(), close: async () => undefined }),
  cleanup: async () => undefined,
}))

let server: TestNatsServer
beforeAll(async () => {
  server = await startTestNatsServer()
})
afterAll(async () => {
  await server?.stop()
})

commandBusContract("jetstream", async () => ({
  open: async (namespace) => {
    const handle = await acquire(connectNats({ servers: server.url, name: "bus-contract" }))
    const bus = await Effect.runPromise(makeJetStreamBus(handle.value, { namespace }))
    return { bus, close: handle.close }
  },
  cleanup: async () => undefined,
}))

describe("JetStream command bus: large fields", () => {
  let handle: Acquired<NatsHandle>
  let blobDir: string
  let n = 0
  beforeAll(async () => {
    handle = await acquire(connectNats({ servers: server.url, name: "bus-large" }))
    blobDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-bus-blobs-"))
  })
  afterAll(async () => {
    await handle?.close()
    if (blobDir !== undefined) fs.rmSync(blobDir, { recursive: true, force: true })
  })

  const open = (options: Partial<JetStreamBusOptions> = {}) =>
    Effect.runPromise(
      makeJetStreamBus(handle.value, {
        namespace: `large${process.pid % 1000}x${n++}`,
        blobStore: fileBlobStore(blobDir),
        ...options,
      }),
    )

  const large = (i: number, question = threeMegabytes()): Command & { payload: { question: string } } => ({
    ...command(i),
    payload: { seq: i, question },
  })

  /** Consumes until `enough` says so; every delivery is handed to `settle` (ack by default). */
  const consumeUntil = async (
    bus: CommandBusShape,
    enough: (seen: ReadonlyArray<Delivery>) => boolean,
    settle: (d: Delivery) => Effect.Effect<void> = (d) => d.ack,
  ): Promise<ReadonlyArray<Delivery>> => {
    const seen: Delivery[] = []
    const stop = Deferred.makeUnsafe<void>()
    const fiber = Effect.runFork(
      bus.consume(
        "probe",
        { concurrency: 2, maxDeliver: 5, ackWaitMs: 5_000, drainTimeoutMs: 5_000, stop },
        (d) =>
          Effect.andThen(
            Effect.sync(() => seen.push(d)),
            settle(d),
          ),
      ),
    )
    const deadline = Date.now() + 30_000
    while (!enough(seen)) {
      if (Date.now() > deadline) throw new Error(`timed out after ${seen.length} deliveries`)
      await new Promise((r) => setTimeout(r, 20))
    }
    await Effect.runPromise(Effect.andThen(Deferred.succeed(stop, undefined), Fiber.join(fiber)))
    return seen
  }

  /** The file of the blob a delivery's raw bytes name at `payload.question`. */
  const blobFileOf = (raw: string): { file: string; sha256: string } => {
    const wire = JSON.parse(raw) as { payload: { question: { $blob: { sha256: string } } } }
    const sha256 = wire.payload.question.$blob.sha256
    return { file: path.join(blobDir, sha256.slice(0, 2), sha256), sha256 }
  }

  it("without the blob store the server refuses the same command (max_payload)", async () => {
    const bus = await open({ inlineLimitBytes: Number.POSITIVE_INFINITY })
    const exit = await Effect.runPromise(Effect.exit(bus.send([large(1)])))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(exit)).toMatch(/max.?payload/i)
  })

  it("sends the large field as a marker under the limit and reads it back", async () => {
    const bus = await open()
    const sent = large(1)
    await Effect.runPromise(bus.send([sent]))
    const [delivery] = await consumeUntil(bus, (seen) => seen.length >= 1)
    expect(delivery!.command).toEqual(sent)
    expect(Buffer.byteLength(delivery!.raw, "utf8")).toBeLessThan(4096)
    expect(JSON.parse(delivery!.raw)).toMatchObject({ blobs: [["payload", "question"]] })
    expect(fs.existsSync(blobFileOf(delivery!.raw).file)).toBe(true)
  })

  it("a missing or damaged blob makes the command malformed, naming the field and the hash", async () => {
    const bus = await open()
    // Two questions, so two blobs: one is deleted, the other overwritten with other bytes.
    const missing = large(1, `${threeMegabytes()}missing`)
    const damaged = large(2, `${threeMegabytes()}damaged`)
    await Effect.runPromise(bus.send([missing, damaged]))
    // Taken once without settling for good (to learn where the blobs are), then handed back.
    const peek = await consumeUntil(
      bus,
      (seen) => seen.length >= 2,
      (d) => d.retry(200),
    )
    const files = new Map(peek.map((d) => [(d.command as Command).commandId, blobFileOf(d.raw)] as const))
    const lost = files.get(missing.commandId)!
    const broken = files.get(damaged.commandId)!
    fs.rmSync(lost.file)
    fs.writeFileSync(broken.file, Buffer.alloc(fs.statSync(broken.file).size, 0x61))

    const seen = await consumeUntil(
      bus,
      (all) => all.filter((d) => d.command instanceof MalformedCommand).length >= 2,
      (d) => d.term,
    )
    const reasons = seen.flatMap((d) => (d.command instanceof MalformedCommand ? [d.command.message] : []))
    const lostReason = reasons.find((r) => r.includes(lost.sha256))
    const brokenReason = reasons.find((r) => r.includes(broken.sha256))
    expect(lostReason).toContain(`command ${missing.commandId}`)
    expect(lostReason).toContain("field payload.question")
    expect(lostReason).toContain("is missing")
    expect(brokenReason).toContain(`command ${damaged.commandId}`)
    expect(brokenReason).toContain("is damaged")
  })

  it("a store that cannot be read hands the command back, and it is delivered whole once it can", async () => {
    const bus = await open()
    const sent = large(1, `${threeMegabytes()}unreachable`)
    await Effect.runPromise(bus.send([sent]))
    const [peek] = await consumeUntil(
      bus,
      (seen) => seen.length >= 1,
      (d) => d.retry(100),
    )
    const { file } = blobFileOf(peek!.raw)
    const content = fs.readFileSync(file)
    // A directory where the blob's file should be: reading it fails (EISDIR), as a broken disk would.
    fs.rmSync(file)
    fs.mkdirSync(file)
    const handed: Delivery[] = []
    const stop = Deferred.makeUnsafe<void>()
    const fiber = Effect.runFork(
      bus.consume(
        "probe",
        { concurrency: 1, maxDeliver: 5, ackWaitMs: 5_000, drainTimeoutMs: 5_000, stop },
        (d) =>
          Effect.andThen(
            Effect.sync(() => handed.push(d)),
            d.ack,
          ),
      ),
    )
    // Long enough for a few attempts (500 ms, then 1 s): none reaches the handler.
    await new Promise((r) => setTimeout(r, 1_800))
    expect(handed).toEqual([])
    const { redelivered } = await Effect.runPromise(bus.stats("probe"))
    expect(redelivered).toBeGreaterThanOrEqual(1)
    fs.rmdirSync(file)
    fs.writeFileSync(file, content)
    const deadline = Date.now() + 20_000
    while (handed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await Effect.runPromise(Effect.andThen(Deferred.succeed(stop, undefined), Fiber.join(fiber)))
    expect(handed).toHaveLength(1)
    expect(handed[0]!.command).toEqual(sent)
    expect(handed[0]!.attempt).toBeGreaterThan(2)
  })

  it("keeps a dead letter of a large command, its field in the blob store, and names an undecodable command by the id it carries", async () => {
    const bus = await open()
    const sent = large(1)
    const letter: DeadLetter = {
      actorKind: "probe",
      commandId: sent.commandId,
      command: sent,
      raw: "{}",
      reason: "rejected",
      kind: "rejected",
      attempts: 1,
      worker: "w",
      at: "2026-01-01T00:00:00.000Z",
    }
    await Effect.runPromise(bus.deadLetter(letter))
    const unnamed = (raw: string, attempts: number): DeadLetter => ({
      actorKind: "probe",
      commandId: "unknown",
      raw,
      reason: "malformed",
      kind: "malformed",
      attempts,
      worker: "w",
      at: "2026-01-01T00:00:00.000Z",
    })
    await Effect.runPromise(bus.deadLetter(unnamed(JSON.stringify({ commandId: "c-lost" }), 1)))
    // Two undecodable commands at the same attempt are two letters, not one deduplicated away.
    await Effect.runPromise(bus.deadLetter(unnamed("not json {", 1)))
    await Effect.runPromise(bus.deadLetter(unnamed("not json either {", 1)))
    const letters = await Effect.runPromise(bus.deadLetters("probe"))
    expect(letters).toHaveLength(4)
    const kept = letters.find((l) => l.commandId === sent.commandId)!
    expect(kept.blobs).toEqual([["command", "payload", "question"]])
    expect(kept.command?.payload).toMatchObject({
      seq: 1,
      question: {
        $blob: {
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          bytes: Buffer.byteLength(sent.payload.question),
        },
      },
    })
    expect(letters.map((l) => l.commandId).sort()).toEqual(["c-1", "c-lost", "unknown", "unknown"])
  })
})
