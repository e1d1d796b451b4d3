/**
 * Damage to the embedded log's file as a failing disk, a bad copy or a crash would leave it, made
 * by fast-check (lines replaced by arbitrary bytes, inserted, deleted; the file cut anywhere; a
 * partial line appended) and checked against a model of the file: a reader reports exactly the
 * lines that do not decode with their positions and the incomplete last line with its offset,
 * and never throws; a writer cuts that line only after keeping its bytes, records the cut in the
 * log, and every later reader lists the cut.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { UndecodableEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape, LogDamage, LogEntry } from "../../src/events/log/eventLog.ts"
import type { NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  damageArb,
  damaged,
  type Expected,
  expectedOf,
  garbage,
  linesOf,
  NEWLINE,
} from "../support/logDamage.ts"

const NS = "dmg"

const probe = (i: number): NewEvent => ({
  eventId: `e${i}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "c",
  causationId: `cmd-${i}`,
  actor: "test",
  event: { type: "ProbeRecorded", probeId: `p${i % 3}`, seq: i, worker: "w\u001b[31mred" },
})

/** Runs `body` with the log open in `mode`, closing it afterwards. */
const withLog = async <A>(
  dir: string,
  mode: "writer" | "reader",
  body: (log: EventLogShape) => Effect.Effect<A, unknown>,
): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  try {
    const log = await Effect.runPromise(
      Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: NS, mode, fsync: "never" })),
    )
    return await Effect.runPromise(body(log))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const fileOf = (dir: string) => path.join(dir, "log", NS, "events.ndjson")

const readEverything = (log: EventLogShape) =>
  Effect.gen(function* () {
    const stats = yield* log.stats
    const entries: LogEntry[] = Array.from(yield* Stream.runCollect(log.read()))
    return { stats, entries }
  })

const checkReport = (damage: LogDamage | undefined, expected: Expected) => {
  expect(damage).toBeDefined()
  expect(damage!.undecodable).toBe(expected.broken.length)
  expect(damage!.undecodablePositions).toEqual(expected.broken)
  if (expected.tail === undefined) expect(damage!.tornTail).toBeUndefined()
  else
    expect(damage!.tornTail).toMatchObject({
      offset: expected.tail.offset,
      bytes: expected.tail.bytes.length,
      position: expected.complete + 1,
    })
}

describe("a damaged embedded log", () => {
  it("reports every undecodable line and the torn tail with positions; a writer keeps and records what it cuts", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10 }),
        damageArb,
        fc.nat({ max: 400 }),
        fc.oneof(
          fc.constant(Buffer.alloc(0)),
          garbage.map((g) => Buffer.from(g.filter((b) => b !== NEWLINE))),
        ),
        async (n, damage, cut, partial) => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damage-"))
          try {
            await withLog(dir, "writer", (log) =>
              log.append(
                entitySubject(NS, "probe", "a"),
                Array.from({ length: n }, (_, i) => probe(i)),
              ),
            )
            const file = fileOf(dir)
            const sound = fs.readFileSync(file)
            const original = linesOf(sound)
            const bytes = damaged(original, damage, cut, partial)
            fs.writeFileSync(file, bytes)
            const expected = expectedOf(bytes, original)

            // A reader: reports, reads every complete line, shortens nothing.
            const seen = await withLog(dir, "reader", readEverything)
            checkReport(seen.stats.damage, expected)
            expect(seen.stats.lastPosition).toBe(expected.complete)
            expect(seen.entries.map((e) => e.position)).toEqual(
              Array.from({ length: expected.complete }, (_, i) => i + 1),
            )
            expect(seen.entries.filter((e) => e instanceof UndecodableEvent).map((e) => e.position)).toEqual(
              expected.broken,
            )
            expect(fs.readFileSync(file).equals(bytes)).toBe(true)

            // A writer: cuts the tail after keeping it, and records the cut where the line would be.
            const opened = await withLog(dir, "writer", (log) =>
              Effect.gen(function* () {
                const stats = yield* log.stats
                const appended = yield* log.append(entitySubject(NS, "probe", "b"), [probe(1000)])
                return { stats, appended }
              }),
            )
            const damageNow = opened.stats.damage!
            expect(damageNow.tornTail).toBeUndefined()
            expect(damageNow.undecodable).toBe(expected.broken.length)
            if (expected.tail === undefined) {
              expect(damageNow.cutOnOpen).toBeUndefined()
              expect(damageNow.cuts).toEqual([])
              expect(opened.appended.positions).toEqual([expected.complete + 1])
              expect(fs.readFileSync(file).subarray(0, bytes.length).equals(bytes)).toBe(true)
            } else {
              const cutMade = damageNow.cutOnOpen!
              const sha256 = createHash("sha256").update(expected.tail.bytes).digest("hex")
              expect(cutMade).toMatchObject({
                offset: expected.tail.offset,
                bytes: expected.tail.bytes.length,
                position: expected.complete + 1,
                recordedAtPosition: expected.complete + 1,
                sha256,
              })
              expect(damageNow.cuts).toEqual([cutMade])
              const kept = fs.readFileSync(path.join(path.dirname(file), cutMade.keptIn))
              expect(kept.equals(expected.tail.bytes)).toBe(true)
              expect(opened.appended.positions).toEqual([expected.complete + 2])
              // Everything before the cut is byte for byte what it was.
              const now = fs.readFileSync(file)
              expect(
                now.subarray(0, expected.tail.offset).equals(bytes.subarray(0, expected.tail.offset)),
              ).toBe(true)
              // Every later reader still lists the cut, and sees no torn line.
              const after = await withLog(dir, "reader", readEverything)
              expect(after.stats.damage!.cuts).toEqual([cutMade])
              expect(after.stats.damage!.tornTail).toBeUndefined()
              const record = after.entries[expected.complete]!
              expect(record).toMatchObject({
                position: expected.complete + 1,
                type: "LogTailCut",
                payload: { offset: expected.tail.offset, bytes: expected.tail.bytes.length, sha256 },
              })
            }
          } finally {
            fs.rmSync(dir, { recursive: true, force: true })
          }
        },
      ),
      { numRuns: 80 },
    )
  }, 120_000)

  it("records a kept cut whose record a crash prevented, once", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damage-"))
    try {
      await withLog(dir, "writer", (log) => log.append(entitySubject(NS, "probe", "a"), [probe(1), probe(2)]))
      // A side file as a writer leaves it when it dies between keeping the bytes and recording them.
      const torn = Buffer.from('{"position":3,"subject":"dmg.ev.probe.a","bo')
      const cuts = path.join(path.dirname(fileOf(dir)), "cuts")
      fs.mkdirSync(cuts)
      const sha256 = createHash("sha256").update(torn).digest("hex")
      const name = `position-3-offset-${fs.statSync(fileOf(dir)).size}-${sha256.slice(0, 12)}.torn`
      fs.writeFileSync(path.join(cuts, name), torn)
      const first = await withLog(dir, "writer", (log) => log.stats)
      expect(first.damage!.cuts).toEqual([
        expect.objectContaining({ recordedAtPosition: 3, position: 3, bytes: torn.length, sha256 }),
      ])
      // The next writer finds it recorded and writes nothing more.
      const second = await withLog(dir, "writer", (log) => log.stats)
      expect(second.lastPosition).toBe(3)
      expect(second.damage!.cuts).toHaveLength(1)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("reports a broken line that still names its subject to that subject's readers, where it is", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damage-"))
    try {
      const a = entitySubject(NS, "probe", "a")
      const b = entitySubject(NS, "probe", "b")
      await withLog(dir, "writer", (log) =>
        Effect.gen(function* () {
          yield* log.append(a, [probe(1)])
          yield* log.append(b, [probe(2)])
          yield* log.append(a, [probe(3)])
        }),
      )
      const lines = linesOf(fs.readFileSync(fileOf(dir)))
      lines[1] = Buffer.concat([lines[1]!.subarray(0, 70), Buffer.from("\u001b[31m broken")])
      fs.writeFileSync(fileOf(dir), Buffer.concat(lines.flatMap((l) => [l, Buffer.from([NEWLINE])])))
      const read = (filter: string) =>
        withLog(dir, "reader", (log) =>
          Effect.map(Stream.runCollect(log.read({ filter })), (e) => Array.from(e)),
        )
      const ofB = await read(b)
      expect(ofB).toHaveLength(1)
      expect(ofB[0]).toBeInstanceOf(UndecodableEvent)
      expect(ofB[0]!.position).toBe(2)
      expect((await read(a)).map((e) => e.position)).toEqual([1, 3])
      expect((await read(`${NS}.ev.>`)).map((e) => e.position)).toEqual([1, 2, 3])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("says that a live writer may still be writing the incomplete line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damage-"))
    try {
      await withLog(dir, "writer", (log) =>
        Effect.gen(function* () {
          yield* log.append(entitySubject(NS, "probe", "a"), [probe(1)])
          fs.appendFileSync(
            fileOf(dir),
            '{"position":2,"subject":"dmg.ev.probe.a","body":{"eventId":"x","event":{"type":"ProbeRe',
          )
          const seen = yield* Effect.promise(() => withLog(dir, "reader", (reader) => reader.stats))
          expect(seen.damage!.tornTail).toMatchObject({
            position: 2,
            subject: "dmg.ev.probe.a",
            writer: process.pid,
          })
        }),
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
