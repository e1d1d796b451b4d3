/**
 * What only the JetStream adapter has, against a real nats-server: the server's own dedupe-before-
 * expectation order (the contract relies on it), 10071 mapped to a typed conflict, a foreign
 * message on an event subject reported with its position, tail cleanup, replay backpressure,
 * reconnection after a crash, and connection errors that name a code but never the token.
 */
import { Effect, Exit, Fiber, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { UndecodableEvent } from "../../src/events/codec.ts"
import {
  type Appended,
  ConcurrencyConflict,
  EventLog,
  type EventLogShape,
  LogUnavailable,
} from "../../src/events/log/eventLog.ts"
import { layerJetStream, makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats, NatsClient, type NatsHandle } from "../../src/events/log/natsConnection.ts"
import type { LogRecord, NewEvent } from "../../src/events/schema.ts"
import { entitySubject, streamsFor } from "../../src/events/subjects.ts"
import { probe, waitFor } from "../contract/eventLogContract.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { type Acquired, acquire } from "../support/scoped.ts"

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E | undefined> => {
  const exit = await Effect.runPromise(Effect.exit(effect))
  if (Exit.isSuccess(exit)) return undefined
  const found = exit.cause.reasons.find((r) => r._tag === "Fail")
  return found?._tag === "Fail" ? (found.error as E) : undefined
}
const collect = (log: EventLogShape, options?: { filter?: string; from?: number }) =>
  run(Stream.runCollect(log.read(options)))

let server: TestNatsServer
let conn: Acquired<NatsHandle>
let namespaces = 0
const freshLog = async (readBuffer?: number): Promise<{ log: EventLogShape; ns: string }> => {
  const ns = `it${namespaces++}`
  const options = readBuffer === undefined ? { namespace: ns } : { namespace: ns, readBuffer }
  return { log: await run(makeJetStreamLog(conn.value, options)), ns }
}
const consumerCount = async (ns: string) =>
  (await conn.value.jsm.streams.info(streamsFor(ns).events)).state.consumer_count

beforeAll(async () => {
  server = await startTestNatsServer()
  conn = await acquire(connectNats({ servers: server.url, name: "jetstream-it" }))
})

afterAll(async () => {
  await conn?.close()
  await server?.stop()
})

describe("JetStream log", () => {
  it("relies on the server checking Nats-Msg-Id before the expected subject sequence", async () => {
    const { ns } = await freshLog()
    const { js } = conn.value
    const subject = entitySubject(ns, "probe", "raw")
    const body = new TextEncoder().encode("{}")
    const first = await js.publish(subject, body, { msgID: "raw-1", expect: { lastSubjectSequence: 0 } })
    await js.publish(subject, body, { msgID: "raw-2", expect: { lastSubjectSequence: first.seq } })
    // Both expectations are stale now; the ids are known, so the server answers "duplicate".
    const again = await js.publish(subject, body, { msgID: "raw-1", expect: { lastSubjectSequence: 0 } })
    expect(again).toMatchObject({ seq: first.seq, duplicate: true })
  })

  it("maps 10071 to ConcurrencyConflict with the actual last position", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "a")
    const written = await run(log.append(a, [probe("x1", 1), probe("x2", 2)], { expectedLastPosition: 0 }))
    const conflict = await failureOf(
      log.append(a, [probe("x3", 3)], { expectedLastPosition: written.positions[0]! }),
    )
    expect(conflict).toBeInstanceOf(ConcurrencyConflict)
    expect(conflict).toMatchObject({
      subject: a,
      expected: written.positions[0],
      actual: written.positions[1],
    })
    expect((conflict as ConcurrencyConflict).message).toContain(
      `expected last position ${written.positions[0]}`,
    )
  })

  it("dedupes a retried batch with a stale expectation through the adapter", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "a")
    const batch = [probe("r1", 1), probe("r2", 2), probe("r3", 3)]
    const first = await run(log.append(a, batch, { expectedLastPosition: 0 }))
    await run(log.append(a, [probe("r4", 4)], { expectedLastPosition: first.positions[2]! }))
    expect(await run(log.append(a, batch, { expectedLastPosition: 0 }))).toEqual({
      positions: first.positions,
      duplicates: 3,
    })
    // Pipelined appends dedupe too, and report the original positions in order.
    expect(await run(log.append(a, batch))).toEqual({ positions: first.positions, duplicates: 3 })
  })

  it("reports a foreign message on an event subject with its position and reads on", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "a")
    await run(log.append(a, [probe("u1", 1)]))
    const raw = await conn.value.js.publish(a, new Uint8Array([0xff, 0xfe, 0x00]))
    await conn.value.js.publish(a, new TextEncoder().encode('{"not":"an envelope"}'))
    await run(log.append(a, [probe("u2", 2)]))
    const entries = await collect(log, { filter: a })
    expect(entries).toHaveLength(4)
    const broken = entries[1]
    expect(broken).toBeInstanceOf(UndecodableEvent)
    expect(broken).toMatchObject({ position: raw.seq, subject: a, stage: "envelope" })
    expect((broken as UndecodableEvent).message).toContain(`position ${raw.seq}`)
    expect(entries[2]).toBeInstanceOf(UndecodableEvent)
    expect((entries[3] as LogRecord).eventId).toBe("u2")
  })

  it("refuses subjects outside the namespace, naming them", async () => {
    const { log, ns } = await freshLog()
    for (const subject of [
      "other.ev.probe.a",
      `${ns}.ev.probe.*`,
      `${ns}.ev..a`,
      `${ns}.ev.`,
      `${ns}.cmd.x.y`,
    ]) {
      const error = await failureOf(log.append(subject, [probe("f1", 1)]))
      expect(error).toBeInstanceOf(LogUnavailable)
      expect((error as LogUnavailable).reason).toContain(subject)
    }
    expect(await collect(log)).toHaveLength(0)
  })

  it("ends at once on an empty log, an empty filter, and a start past the end", async () => {
    const { log, ns } = await freshLog()
    expect(await collect(log)).toHaveLength(0)
    const a = entitySubject(ns, "probe", "a")
    const written = await run(log.append(a, [probe("e1", 1), probe("e2", 2)]))
    expect(await collect(log, { filter: entitySubject(ns, "probe", "none") })).toHaveLength(0)
    expect(await collect(log, { filter: `${ns}.ev.run.*` })).toHaveLength(0)
    expect(await collect(log, { from: written.positions[1]! + 1 })).toHaveLength(0)
    expect(await collect(log, { from: 10_000 })).toHaveLength(0)
    expect((await collect(log, { from: written.positions[1]! })).length).toBe(1)
    expect(await consumerCount(ns)).toBe(0)
  })

  it("reports stats from the stream", async () => {
    const { log, ns } = await freshLog()
    const empty = await run(log.stats)
    expect(empty).toMatchObject({
      backend: "nats",
      stream: streamsFor(ns).events,
      events: 0,
      firstPosition: 0,
    })
    expect(empty.location).toBe(server.url)
    await run(log.append(entitySubject(ns, "probe", "a"), [probe("s1", 1), probe("s2", 2)]))
    await run(log.append(entitySubject(ns, "run", "r"), [probe("s3", 3)]))
    const stats = await run(log.stats)
    expect(stats).toMatchObject({ events: 3, firstPosition: 1, lastPosition: 3, subjects: 2 })
    expect(stats.bytes).toBeGreaterThan(0)
  })

  it("tails: catch-up, then live, and deletes its consumer when interrupted", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "a")
    await run(log.append(a, [probe("t1", 1), probe("t2", 2)]))
    const seen: string[] = []
    const fiber = Effect.runFork(
      log
        .tail()
        .pipe(Stream.runForEach((e) => Effect.sync(() => seen.push("eventId" in e ? e.eventId : "?")))),
    )
    await waitFor(() => seen.length === 2)
    await run(log.append(a, [probe("t3", 3)]))
    await waitFor(() => seen.length === 3)
    expect(seen).toEqual(["t1", "t2", "t3"])
    expect(await consumerCount(ns)).toBe(1)
    // Interruption runs the finalizer, which deletes the server-side consumer.
    await run(Fiber.interrupt(fiber))
    expect(await consumerCount(ns)).toBe(0)
  })

  it("replays everything in order when the reader is slower than the server, holding at most its buffer", async () => {
    const { log, ns } = await freshLog(1_000)
    const total = 20_000
    const events: NewEvent[] = Array.from({ length: total }, (_, i) => probe(`b${i}`, i))
    for (let i = 0; i < total; i += 5_000) {
      await run(log.append(entitySubject(ns, "probe", `s${i % 3}`), events.slice(i, i + 5_000)))
    }
    let count = 0
    let previous = 0
    let ordered = true
    let stalled = false
    let largest = 0
    await run(
      log.read().pipe(
        Stream.runForEachArray((entries) =>
          Effect.gen(function* () {
            // A stall at the start lets the server run ahead of the reader, if it could.
            if (!stalled) {
              stalled = true
              yield* Effect.sleep("300 millis")
            }
            largest = Math.max(largest, entries.length)
            for (const e of entries) {
              if (!("eventId" in e) || e.position <= previous) ordered = false
              previous = (e as LogRecord).position
              count++
            }
          }),
        ),
      ),
    )
    expect(count).toBe(total)
    expect(ordered).toBe(true)
    // The reader never holds more than its buffer (1,000 here), however far behind it falls.
    expect(largest).toBeLessThanOrEqual(1_000)
    expect(await consumerCount(ns)).toBe(0)
  })

  it("re-creates a lost consumer after the last entry delivered and reads on in order", async () => {
    const { log, ns } = await freshLog(500)
    const total = 5_000
    await run(
      log.append(
        entitySubject(ns, "probe", "lost"),
        Array.from({ length: total }, (_, i) => probe(`l${i}`, i)),
      ),
    )
    const positions: number[] = []
    let deleted = false
    await run(
      log.read().pipe(
        Stream.runForEachArray((entries) =>
          Effect.promise(async () => {
            for (const e of entries) positions.push(e.position)
            if (!deleted && positions.length >= 1_000) {
              deleted = true
              // Delete the reader's consumer behind its back, as an operator or a server restart would.
              for await (const c of conn.value.jsm.consumers.list(streamsFor(ns).events))
                await conn.value.jsm.consumers.delete(streamsFor(ns).events, c.name)
            }
          }),
        ),
      ),
    )
    expect(deleted).toBe(true)
    expect(positions).toHaveLength(total)
    expect(positions.every((p, i) => i === 0 || p > positions[i - 1]!)).toBe(true)
    expect(await consumerCount(ns)).toBe(0)
  })

  it("a tail follows on across a crash (kill -9) and restart of the server", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "survivor")
    await run(log.append(a, [probe("s1", 1)]))
    const seen: string[] = []
    const fiber = Effect.runFork(
      log
        .tail({ filter: a })
        .pipe(Stream.runForEach((e) => Effect.sync(() => seen.push("eventId" in e ? e.eventId : "?")))),
    )
    await waitFor(() => seen.length === 1)
    await server.kill9()
    await server.restart()
    // Appends fail until the client has reconnected; the writer retries.
    const deadline = Date.now() + 15_000
    for (;;) {
      const exit = await Effect.runPromise(Effect.exit(log.append(a, [probe("s2", 2)])))
      if (Exit.isSuccess(exit)) break
      if (Date.now() > deadline) throw new Error(`append after restart kept failing: ${exit.cause}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // The tail's consumer died with the server; a new one picks up after the last entry delivered.
    await waitFor(() => seen.length === 2, 15_000)
    expect(seen).toEqual(["s1", "s2"])
    const state = await Effect.runPromise(Fiber.await(fiber).pipe(Effect.timeoutOption("10 millis")))
    expect(state._tag).toBe("None") // still following
    await run(Fiber.interrupt(fiber))
  })

  it("keeps working across a crash (kill -9) and restart of the server", async () => {
    const { log, ns } = await freshLog()
    const a = entitySubject(ns, "probe", "a")
    const before = await run(log.append(a, [probe("k1", 1), probe("k2", 2)], { expectedLastPosition: 0 }))
    await server.kill9()
    await server.restart()
    // The connection reconnects on its own; appends before the crash are durable and still deduped.
    // Until the client has reconnected an append can fail as unavailable; the writer retries.
    const retry = async (attempts: number): Promise<Appended> => {
      const exit = await Effect.runPromise(
        Effect.exit(
          log.append(a, [probe("k2", 2), probe("k3", 3)], { expectedLastPosition: before.positions[0]! }),
        ),
      )
      if (Exit.isSuccess(exit)) return exit.value
      if (attempts <= 1) throw new Error(`append after restart kept failing: ${exit.cause}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
      return retry(attempts - 1)
    }
    const after = await retry(100)
    expect(after.duplicates).toBe(1)
    expect(after.positions[0]).toBe(before.positions[1])
    const ids = (await collect(log, { filter: a })).map((e) => ("eventId" in e ? e.eventId : "?"))
    expect(ids).toEqual(["k1", "k2", "k3"])
  })
})

describe("layers", () => {
  it("provides EventLog from layerJetStream on NatsClient.layer, and drains on release", async () => {
    const layer = layerJetStream({ namespace: "layered" }).pipe(
      Layer.provide(NatsClient.layer({ servers: server.url, name: "layered" })),
    )
    const program = Effect.gen(function* () {
      const log = yield* EventLog
      const subject = entitySubject("layered", "probe", "a")
      yield* log.append(subject, [probe("l1", 1)])
      return yield* log.lastPosition(subject)
    })
    expect(await run(Effect.provide(program, layer))).toBe(1)
  })
})

describe("NATS connection errors", () => {
  it("names the socket code for an unreachable server", async () => {
    const error = await failureOf(Effect.scoped(connectNats({ servers: "nats://127.0.0.1:1" })))
    expect(error).toBeInstanceOf(LogUnavailable)
    expect(error).toMatchObject({ backend: "nats", operation: "connect" })
    expect((error as LogUnavailable).code).toBe("ECONNREFUSED")
  })

  it("never shows the token, neither from options nor from the URL", async () => {
    const secret = "s3cr3t-token-value"
    const guarded = await startTestNatsServer({ token: secret })
    try {
      const wrong = await failureOf(
        Effect.scoped(
          connectNats({ servers: `nats://wrong-${secret}@127.0.0.1:${new URL(guarded.url).port}` }),
        ),
      )
      expect(wrong).toBeInstanceOf(LogUnavailable)
      expect(JSON.stringify(wrong)).not.toContain(secret)
      expect((wrong as LogUnavailable).message).not.toContain(secret)
      const ok = await acquire(connectNats({ servers: guarded.url, token: secret }))
      const log = await run(makeJetStreamLog(ok.value, { namespace: "guarded" }))
      expect((await run(log.stats)).location).not.toContain(secret)
      await ok.close()
    } finally {
      await guarded.stop()
    }
  })

  it("refuses to adopt a stream with other subjects", async () => {
    await conn.value.jsm.streams.add({ name: streamsFor("taken").events, subjects: ["elsewhere.>"] })
    const error = await failureOf(makeJetStreamLog(conn.value, { namespace: "taken" }))
    expect(error).toBeInstanceOf(LogUnavailable)
    expect((error as LogUnavailable).reason).toContain("elsewhere.>")
  })
})
