/**
 * The one contract every `EventLog` adapter passes (embedded and JetStream): append/read order,
 * optimistic concurrency, dedupe by event id, read from a position and by subject, tail with
 * catch-up, concurrent writers, durability across a restart, and a model-based property test
 * against a plain array. An adapter test file calls `eventLogContract` with a harness.
 */
import { fc } from "@fast-check/vitest"
import { Effect, Exit, Fiber, Stream } from "effect"
import { describe, expect, it } from "vitest"
import type { UndecodableEvent } from "../../src/events/codec.ts"
import {
  ConcurrencyConflict,
  type EventLogShape,
  type LogEntry,
  LogUnavailable,
  PassedOver,
} from "../../src/events/log/eventLog.ts"
import type { LogRecord, NewEvent } from "../../src/events/schema.ts"
import { entitySubject, eventsFilter } from "../../src/events/subjects.ts"

export interface OpenLog {
  readonly log: EventLogShape
  readonly close: () => Promise<void>
}

export interface LogHarness {
  /** Opens a fresh log instance on the harness's storage, in its own namespace. */
  readonly open: (namespace: string) => Promise<OpenLog>
  /** Restarts the storage engine itself (JetStream: the nats-server process) keeping its data. */
  readonly restart?: () => Promise<void>
  readonly cleanup: () => Promise<void>
}

let counter = 0
/** A unique namespace per test so tests on one server never see each other's events. */
export const freshNamespace = (tag: string): string => `c${process.pid % 1000}${tag}${counter++}`

export const probe = (eventId: string, seq: number, worker = "w"): NewEvent => ({
  eventId,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "corr",
  causationId: `cmd-${eventId}`,
  actor: "contract",
  event: { type: "ProbeRecorded", probeId: "p", seq, worker },
})

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const exitOf = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.exit(effect))

const isRecord = (e: LogEntry): e is LogRecord => !("_tag" in e)
export const readAll = (log: EventLogShape, options?: { filter?: string; from?: number }) =>
  run(Stream.runCollect(log.read(options))).then((entries) => Array.from(entries))
const records = async (log: EventLogShape, options?: { filter?: string; from?: number }) => {
  const entries = await readAll(log, options)
  const broken = entries.filter((e) => !isRecord(e)) as UndecodableEvent[]
  expect(broken.map((b) => b.message)).toEqual([])
  return entries.filter(isRecord)
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const found = exit.cause.reasons.find((r) => r._tag === "Fail")
  return found?._tag === "Fail" ? (found.error as E) : undefined
}

export const eventLogContract = (name: string, makeHarness: () => Promise<LogHarness>): void => {
  describe(`EventLog contract: ${name}`, () => {
    const withLog = async (
      tag: string,
      body: (log: EventLogShape, ns: string, h: LogHarness) => Promise<void>,
    ) => {
      const harness = await makeHarness()
      const ns = freshNamespace(tag)
      const opened = await harness.open(ns)
      try {
        await body(opened.log, ns, harness)
      } finally {
        await opened.close()
        await harness.cleanup()
      }
    }

    it("appends in order and reads back every envelope field", () =>
      withLog("order", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const appended = await run(log.append(a, [probe("e1", 1), probe("e2", 2), probe("e3", 3)]))
        expect(appended.duplicates).toBe(0)
        expect(appended.positions).toHaveLength(3)
        expect([...appended.positions].sort((x, y) => x - y)).toEqual(appended.positions)
        const got = await records(log)
        expect(got.map((r) => r.eventId)).toEqual(["e1", "e2", "e3"])
        expect(got.map((r) => r.position)).toEqual(appended.positions)
        expect(got[0]).toMatchObject({
          subject: a,
          schemaVersion: 1,
          type: "ProbeRecorded",
          recordedAt: "2026-01-01T00:00:00.000Z",
          correlationId: "corr",
          causationId: "cmd-e1",
          actor: "contract",
          payload: { type: "ProbeRecorded", probeId: "p", seq: 1, worker: "w" },
        })
        expect(await run(log.lastPosition(a))).toBe(appended.positions[2])
        expect(await run(log.lastPosition(entitySubject(ns, "probe", "none")))).toBe(0)
      }))

    it("reads one entity by subject, a kind by wildcard, and from a position", () =>
      withLog("subject", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const b = entitySubject(ns, "probe", "b.with dots/and spaces")
        const r = entitySubject(ns, "run", "r1")
        for (let i = 0; i < 10; i++) {
          await run(log.append(i % 2 === 0 ? a : b, [probe(`x${i}`, i)]))
        }
        await run(log.append(r, [probe("r0", 0)]))
        const onlyA = await records(log, { filter: a })
        expect(onlyA.map((e) => e.eventId)).toEqual(["x0", "x2", "x4", "x6", "x8"])
        const onlyB = await records(log, { filter: b })
        expect(onlyB.map((e) => e.subject)).toEqual(Array(5).fill(b))
        const probes = await records(log, { filter: eventsFilter(ns, "probe") })
        expect(probes).toHaveLength(10)
        const all = await records(log)
        expect(all).toHaveLength(11)
        const from = all[6]!.position
        const tail = await records(log, { from })
        expect(tail.map((e) => e.eventId)).toEqual(all.slice(6).map((e) => e.eventId))
        const aFrom = await records(log, { filter: a, from })
        expect(aFrom.map((e) => e.eventId)).toEqual(
          all
            .slice(6)
            .filter((e) => e.subject === a)
            .map((e) => e.eventId),
        )
        expect(await records(log, { from: all[10]!.position + 1 })).toEqual([])
        const stats = await run(log.stats)
        expect(stats).toMatchObject({ events: 11, lastPosition: all[10]!.position, subjects: 3 })
        expect(stats.bytes).toBeGreaterThan(0)
      }))

    it("scans: the positions a read yields, whole records of the types asked for, the rest passed over", () =>
      withLog("scan", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const r = entitySubject(ns, "run", "r1")
        const started: NewEvent = {
          ...probe("s1", 0),
          event: {
            type: "RunStarted",
            runId: "r1",
            kind: "eval",
            model: "m",
            // An envelope-like text inside a payload string must not fool the type peek.
            config: { note: ',"event":{"type":"ProbeRecorded"' },
          },
        }
        await run(log.append(a, [probe("p1", 1), probe("p2", 2)]))
        await run(log.append(r, [started]))
        await run(log.append(a, [probe("p3", 3)]))
        const read = await records(log)
        for (const options of [{}, { filter: eventsFilter(ns, "run") }, { from: read[1]!.position }]) {
          const expected = await records(log, options)
          const scanned = Array.from(
            await run(Stream.runCollect(log.scan({ ...options, types: new Set(["RunStarted"]) }))),
          )
          expect(scanned.map((e) => e.position)).toEqual(expected.map((e) => e.position))
          // Both adapters do pass over (decoding everything would be correct, only slow).
          if (expected.some((e) => e.type === "ProbeRecorded"))
            expect(scanned.some((e) => e instanceof PassedOver)).toBe(true)
          scanned.forEach((entry, i) => {
            const full = expected[i]!
            if (full.type === "RunStarted") expect(entry).toEqual(full)
            else if (entry instanceof PassedOver)
              expect(entry).toMatchObject({ position: full.position, subject: full.subject, type: full.type })
            else expect(entry).toEqual(full)
          })
        }
        // Asked for every type there is, a scan is a read.
        const everything = await run(
          Stream.runCollect(log.scan({ types: new Set(["RunStarted", "ProbeRecorded"]) })),
        )
        expect(Array.from(everything)).toEqual(read)
      }))

    it("rejects a stale expectation with a typed conflict and writes nothing", () =>
      withLog("conflict", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const first = await run(log.append(a, [probe("c1", 1)], { expectedLastPosition: 0 }))
        const p1 = first.positions[0]!
        const again = failureOf(await exitOf(log.append(a, [probe("c2", 2)], { expectedLastPosition: 0 })))
        expect(again).toBeInstanceOf(ConcurrencyConflict)
        expect(again).toMatchObject({ subject: a, expected: 0 })
        const ok = await run(log.append(a, [probe("c2", 2), probe("c3", 3)], { expectedLastPosition: p1 }))
        expect(ok.positions).toHaveLength(2)
        // Other subjects do not move this subject's position.
        await run(log.append(entitySubject(ns, "probe", "other"), [probe("o1", 1)]))
        const stale = failureOf(await exitOf(log.append(a, [probe("c4", 4)], { expectedLastPosition: p1 })))
        expect(stale).toBeInstanceOf(ConcurrencyConflict)
        const ids = (await records(log, { filter: a })).map((e) => e.eventId)
        expect(ids).toEqual(["c1", "c2", "c3"])
        const next = await run(log.append(a, [probe("c4", 4)], { expectedLastPosition: ok.positions[1]! }))
        expect(next.duplicates).toBe(0)
      }))

    it("dedupes by event id, also when a retry carries a stale expectation", () =>
      withLog("dedupe", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const first = await run(log.append(a, [probe("d1", 1), probe("d2", 2)], { expectedLastPosition: 0 }))
        const retry = await run(log.append(a, [probe("d1", 1), probe("d2", 2)], { expectedLastPosition: 0 }))
        expect(retry).toEqual({ positions: first.positions, duplicates: 2 })
        const mixed = await run(log.append(a, [probe("d2", 2), probe("d3", 3)], { expectedLastPosition: 0 }))
        expect(mixed.duplicates).toBe(1)
        expect(mixed.positions[0]).toBe(first.positions[1])
        const plain = await run(log.append(a, [probe("d3", 3)]))
        expect(plain).toEqual({ positions: [mixed.positions[1]], duplicates: 1 })
        expect((await records(log)).map((e) => e.eventId)).toEqual(["d1", "d2", "d3"])
      }))

    it("refuses an invalid event or a foreign subject before writing anything", () =>
      withLog("invalid", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const bad = {
          ...probe("i2", 2),
          event: { type: "ProbeRecorded", probeId: "", seq: -1 },
        } as unknown as NewEvent
        const exit = await exitOf(log.append(a, [probe("i1", 1), bad]))
        expect(failureOf(exit)).toMatchObject({ _tag: "InvalidEvent", eventId: "i2" })
        const unknownType = { ...probe("i3", 3), event: { type: "Nope" } } as unknown as NewEvent
        expect(failureOf(await exitOf(log.append(a, [unknownType])))).toMatchObject({ _tag: "InvalidEvent" })
        const foreign = failureOf(await exitOf(log.append("elsewhere.ev.probe.a", [probe("i4", 4)])))
        expect(foreign).toBeInstanceOf(LogUnavailable)
        expect(await records(log)).toEqual([])
      }))

    it("tails: catches up, then follows live appends until interrupted", () =>
      withLog("tail", async (log, ns) => {
        const a = entitySubject(ns, "probe", "a")
        const b = entitySubject(ns, "probe", "b")
        await run(log.append(a, [probe("t1", 1), probe("t2", 2)]))
        await run(log.append(b, [probe("tb", 0)]))
        const seen: string[] = []
        const fiber = Effect.runFork(
          log.tail({ filter: a }).pipe(
            Stream.filter(isRecord),
            Stream.tap((r) => Effect.sync(() => seen.push(r.eventId))),
            Stream.take(5),
            Stream.runDrain,
          ),
        )
        await waitFor(() => seen.length === 2)
        await run(log.append(a, [probe("t3", 3)]))
        await run(log.append(b, [probe("tb2", 0)]))
        await run(log.append(a, [probe("t4", 4), probe("t5", 5)]))
        await run(Fiber.join(fiber))
        expect(seen).toEqual(["t1", "t2", "t3", "t4", "t5"])
        // An open tail is released when interrupted.
        const open = Effect.runFork(Stream.runDrain(log.tail({ filter: b })))
        await run(Fiber.interrupt(open))
      }))

    it("lets concurrent writers race on one subject: each event exactly once, none lost", () =>
      withLog("race", async (log, ns) => {
        const a = entitySubject(ns, "probe", "hot")
        const writers = 6
        const perWriter = 15
        let conflicts = 0
        const writer = (w: number) =>
          Effect.gen(function* () {
            for (let i = 0; i < perWriter; i++) {
              const event = probe(`w${w}-${i}`, i, `w${w}`)
              for (;;) {
                const last = yield* log.lastPosition(a)
                const exit = yield* Effect.exit(log.append(a, [event], { expectedLastPosition: last }))
                if (Exit.isSuccess(exit)) break
                const error = failureOf(exit)
                if (!(error instanceof ConcurrencyConflict)) return yield* Effect.die(error)
                conflicts++
              }
            }
          })
        await run(
          Effect.all(
            Array.from({ length: writers }, (_, w) => writer(w)),
            { concurrency: "unbounded" },
          ),
        )
        const got = await records(log, { filter: a })
        expect(got).toHaveLength(writers * perWriter)
        expect(new Set(got.map((e) => e.eventId)).size).toBe(writers * perWriter)
        for (let w = 0; w < writers; w++) {
          const mine = got.filter((e) => e.eventId.startsWith(`w${w}-`)).map((e) => e.eventId)
          expect(mine).toEqual(Array.from({ length: perWriter }, (_, i) => `w${w}-${i}`))
        }
        expect(conflicts).toBeGreaterThanOrEqual(0)
      }))

    it("keeps everything across a close and reopen (and a restart of the engine)", async () => {
      const harness = await makeHarness()
      const ns = freshNamespace("durable")
      try {
        const a = entitySubject(ns, "probe", "a")
        let opened = await harness.open(ns)
        for (let i = 0; i < 50; i++) await run(opened.log.append(a, [probe(`k${i}`, i)]))
        const before = await records(opened.log)
        await opened.close()
        if (harness.restart !== undefined) await harness.restart()
        opened = await harness.open(ns)
        const after = await records(opened.log)
        expect(after).toEqual(before)
        // Dedupe and expectations still hold after the reopen.
        const last = before[before.length - 1]!.position
        expect(await run(opened.log.lastPosition(a))).toBe(last)
        const dup = await run(opened.log.append(a, [probe("k49", 49)]))
        expect(dup.duplicates).toBe(1)
        const more = await run(opened.log.append(a, [probe("k50", 50)], { expectedLastPosition: last }))
        expect(more.positions[0]).toBeGreaterThan(last)
        await opened.close()
      } finally {
        await harness.cleanup()
      }
    })

    it("behaves like a plain array (model-based, fast-check)", async () => {
      const harness = await makeHarness()
      try {
        // Ops are what writers really do: append a batch of new events (with no, the current or a
        // stale expectation), or retry an earlier batch verbatim (as after a lost ack).
        const op = fc.oneof(
          fc.record({
            kind: fc.constant("append" as const),
            subject: fc.integer({ min: 0, max: 2 }),
            size: fc.integer({ min: 1, max: 3 }),
            expect: fc.constantFrom("none", "current", "stale"),
          }),
          fc.record({ kind: fc.constant("retry" as const), which: fc.nat(), stale: fc.boolean() }),
        )
        await fc.assert(
          fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
            const ns = freshNamespace("model")
            const { log, close } = await harness.open(ns)
            try {
              const model: Array<{ subject: string; id: string }> = []
              const batches: Array<{ subject: string; ids: string[]; positions: ReadonlyArray<number> }> = []
              let n = 0
              for (const o of ops) {
                if (o.kind === "retry") {
                  if (batches.length === 0) continue
                  const batch = batches[o.which % batches.length]!
                  const options = o.stale ? { expectedLastPosition: 0 } : {}
                  const again = await run(
                    log.append(
                      batch.subject,
                      batch.ids.map((id, k) => probe(id, k)),
                      options,
                    ),
                  )
                  expect(again).toEqual({ positions: batch.positions, duplicates: batch.ids.length })
                  continue
                }
                const subject = entitySubject(ns, "probe", `s${o.subject}`)
                const ids = Array.from({ length: o.size }, () => `m${n++}`)
                const last = model.filter((m) => m.subject === subject).length
                const lastReal = await run(log.lastPosition(subject))
                expect(lastReal === 0).toBe(last === 0)
                const expected =
                  o.expect === "none"
                    ? undefined
                    : o.expect === "current"
                      ? lastReal
                      : lastReal === 0
                        ? 1
                        : lastReal - 1
                const exit = await exitOf(
                  log.append(
                    subject,
                    ids.map((id, k) => probe(id, k)),
                    expected === undefined ? {} : { expectedLastPosition: expected },
                  ),
                )
                if (o.expect === "stale") {
                  expect(failureOf(exit)).toBeInstanceOf(ConcurrencyConflict)
                  continue
                }
                if (Exit.isFailure(exit)) throw new Error(`unexpected failure: ${String(failureOf(exit))}`)
                expect(exit.value.duplicates).toBe(0)
                batches.push({ subject, ids, positions: exit.value.positions })
                for (const id of ids) model.push({ subject, id })
              }
              const got = await records(log)
              expect(got.map((r) => ({ subject: r.subject, id: r.eventId }))).toEqual(model)
              for (let i = 1; i < got.length; i++)
                expect(got[i]!.position).toBeGreaterThan(got[i - 1]!.position)
              for (const batch of batches) {
                const bySubject = await records(log, { filter: batch.subject })
                const at = new Map(bySubject.map((r) => [r.eventId, r.position]))
                expect(batch.ids.map((id) => at.get(id))).toEqual(batch.positions)
              }
            } finally {
              await close()
            }
          }),
          { numRuns: 25 },
        )
      } finally {
        await harness.cleanup()
      }
    })
  })
}

/** Waits for a condition by polling briefly; bounded so a broken adapter fails instead of hanging. */
export const waitFor = async (condition: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
