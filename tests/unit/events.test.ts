/**
 * Properties of the event vocabulary and its codec: every event type round-trips through the
 * bytes the log stores (values generated from the schemas themselves), the codec never throws on
 * any bytes and reports what it cannot decode with the position, retired versions are upcast, and
 * subject escaping is reversible for any id.
 */
import { fc, test } from "@fast-check/vitest"
import { Arbitrary, Effect, Result, type Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  decodeBody,
  decodeEvent,
  decodeStoredLine,
  encodeBody,
  encodeBodyJson,
  encodeStoredLine,
  peekBodyType,
  peekLineType,
} from "../../src/events/codec.ts"
import type { UpcasterTable } from "../../src/events/legacy.ts"
import { currentVersions, type EventType, eventSchemas, type NewEvent } from "../../src/events/schema.ts"
import {
  entitySubject,
  escapeToken,
  parseEntitySubject,
  subjectMatches,
  unescapeToken,
} from "../../src/events/subjects.ts"

/**
 * A fast-check arbitrary drawing from the schema's own generator (effect's `Arbitrary.schema`):
 * fast-check supplies the seed, the schema decides the shape, so every field rule is respected.
 */
const fromSchema = <A>(schema: Schema.Codec<A, unknown>): fc.Arbitrary<A> =>
  fc.integer().map((seed) => {
    const [value] = Effect.runSync(
      Arbitrary.sampleEffect(Arbitrary.schema(schema), { count: 1, seed, size: 8 }),
    )
    return value as A
  })

const meta = fc.record({
  eventId: fc.string({ minLength: 1, maxLength: 40 }),
  recordedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  correlationId: fc.string({ maxLength: 20 }),
  causationId: fc.string({ maxLength: 20 }),
  actor: fc.string({ maxLength: 12 }),
})

const types = Object.keys(eventSchemas) as EventType[]

describe("every event type round-trips through the stored bytes", () => {
  for (const type of types) {
    test.prop(
      [meta, fromSchema(eventSchemas[type] as Schema.Codec<unknown, unknown>), fc.integer({ min: 1 })],
      {
        numRuns: 60,
      },
    )(type, (m, event, position) => {
      const e = { ...m, event } as NewEvent
      const bytes = Result.getOrThrow(encodeBody(e))
      const record = Result.getOrThrow(decodeBody(bytes, position, "ns.ev.kind.id"))
      const envelope = Result.getOrThrow(decodeEvent(record))
      // Payloads are JSON: the only value JSON cannot carry that a schema admits is -0, read back as 0.
      const asJson = JSON.parse(JSON.stringify(event))
      expect(envelope).toEqual({
        ...m,
        position,
        subject: "ns.ev.kind.id",
        schemaVersion: currentVersions[type],
        event: asJson,
      })
      // The embedded log's line form carries the same body.
      const line = encodeStoredLine(position, "ns.ev.kind.id", Result.getOrThrow(encodeBodyJson(e)))
      expect(Result.getOrThrow(decodeStoredLine(line.trimEnd(), 0, "file"))).toEqual(record)
      // A scan reads the type from the bytes without parsing them, whatever the ids contain.
      expect(peekBodyType(bytes)).toBe(type)
      const lineBytes = Buffer.from(line)
      expect(peekLineType(lineBytes, 0, lineBytes.length)).toBe(type)
    })
  }
})

describe("decoding never throws and reports where", () => {
  test.prop([fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1 })])(
    "arbitrary bytes",
    (bytes, position) => {
      const decoded = decodeBody(bytes, position, "s")
      if (Result.isFailure(decoded)) expect(decoded.failure.position).toBe(position)
      else expect(decodeEvent(decoded.success)).toBeDefined()
    },
  )

  test.prop([fc.json(), fc.integer({ min: 1 })])("arbitrary JSON bodies", (json, position) => {
    const decoded = decodeBody(json, position, "s")
    const failure = Result.isSuccess(decoded)
      ? Result.getFailure(decodeEvent(decoded.success))
      : Result.getFailure(decoded)
    if (failure._tag === "Some") {
      expect(failure.value.position).toBe(position)
      expect(failure.value.message).toContain(`position ${position}`)
    }
  })

  test.prop([fc.uint8Array({ maxLength: 300 })])("the type peeks, on arbitrary bytes", (bytes) => {
    const body = peekBodyType(bytes)
    if (body !== undefined) expect(body).toMatch(/^[A-Za-z0-9]+$/)
    const buf = Buffer.from(bytes)
    const line = peekLineType(buf, 0, buf.length)
    if (line !== undefined) expect(line).toMatch(/^[A-Za-z0-9]+$/)
  })

  it("peeks only at bodies in the codec's layout", () => {
    expect(peekBodyType(Buffer.from('{"event":{"type":"RunStarted"},"eventId":"e"}'))).toBeUndefined()
    expect(peekBodyType(Buffer.from('{"eventId":"e","event":{"type":"Run Started"}}'))).toBeUndefined()
    expect(peekBodyType(Buffer.from('{"eventId":"e","event":{"type":"RunStarted'))).toBeUndefined()
    expect(peekBodyType(Buffer.from('{"eventId":"e","event":{"type":"RunStarted"}}'))).toBe("RunStarted")
  })

  test.prop([fc.string(), fc.integer({ min: 1 })])("arbitrary lines", (line, fallback) => {
    const decoded = decodeStoredLine(line, fallback, "events.ndjson:7")
    if (Result.isFailure(decoded)) expect(decoded.failure.message).toContain("position")
  })

  it("names an unknown type, a newer version and a schema violation with the position", () => {
    const body = (event: unknown, schemaVersion = 1) =>
      JSON.stringify({
        eventId: "e",
        recordedAt: "t",
        correlationId: "c",
        causationId: "c",
        actor: "a",
        schemaVersion,
        event,
      })
    const at = (json: string) => {
      const r = decodeEvent(Result.getOrThrow(decodeBody(json, 42, "ns.ev.x.y")))
      return Result.isFailure(r) ? r.failure : undefined
    }
    expect(at(body({ type: "Teleported" }))).toMatchObject({ position: 42, stage: "payload" })
    expect(at(body({ type: "Teleported" }))?.message).toContain('unknown event type "Teleported"')
    expect(at(body({ type: "RunFinished", runId: "r", status: "completed" }, 9))).toMatchObject({
      stage: "version",
    })
    expect(at(body({ type: "RunFinished", runId: "r", status: "exploded" }))).toMatchObject({
      position: 42,
      stage: "payload",
      eventId: "e",
    })
  })

  it("refuses to encode an event its schema rejects", () => {
    const bad = { eventId: "x", recordedAt: "t", correlationId: "c", causationId: "c", actor: "a" }
    const r = encodeBody({
      ...bad,
      event: { type: "EpisodeFinished", episodeId: "e", outcome: "gave_up", turns: 1 },
    } as never)
    expect(Result.isFailure(r) && r.failure.message).toContain("EpisodeFinished")
  })
})

describe("upcasting retired versions", () => {
  // A table as a real retirement would add it: RunFinished v1 had `ok: boolean`, v2 has `status`.
  const table: UpcasterTable = {
    RunFinished: {
      0: (p) => {
        const { ok, ...rest } = p as { ok: boolean }
        return { ...rest, status: ok ? "completed" : "failed" }
      },
    },
  }
  const record = (payload: object, schemaVersion: number) =>
    Result.getOrThrow(
      decodeBody(
        JSON.stringify({
          eventId: "e",
          recordedAt: "t",
          correlationId: "c",
          causationId: "c",
          actor: "a",
          schemaVersion,
          event: payload,
        }),
        3,
        "s",
      ),
    )

  it("lifts an old shape to the current one before validation", () => {
    // The table lifts v0 to v1 (the current version); a v1 record of the old shape is invalid.
    expect(
      Result.isFailure(decodeEvent(record({ type: "RunFinished", runId: "r", ok: true }, 1), table)),
    ).toBe(true)
    const legacy = { ...record({ type: "RunFinished", runId: "r", ok: false }, 1), schemaVersion: 0 }
    const lifted = Result.getOrThrow(decodeEvent(legacy, table))
    expect(lifted.event).toEqual({ type: "RunFinished", runId: "r", status: "failed" })
    expect(lifted.schemaVersion).toBe(1)
  })

  it("reports a missing step instead of guessing", () => {
    const legacy = { ...record({ type: "RunStarted", runId: "r" }, 1), schemaVersion: 0 }
    const r = decodeEvent(legacy, table)
    expect(Result.isFailure(r) && r.failure.message).toContain("no upcaster for RunStarted from v0 to v1")
  })
})

describe("subjects", () => {
  test.prop([fc.string({ minLength: 1, unit: "grapheme" })])(
    "escaping any id is reversible and one token",
    (id) => {
      const token = escapeToken(id)
      expect(token).toMatch(/^[A-Za-z0-9_=-]+$/)
      expect(unescapeToken(token)).toBe(id)
      const subject = entitySubject("ns", "episode", id)
      expect(parseEntitySubject(subject)).toEqual({ kind: "episode", id })
      expect(subjectMatches("ns.ev.episode.*", subject)).toBe(true)
      expect(subjectMatches("ns.ev.>", subject)).toBe(true)
      expect(subjectMatches("ns.ev.run.*", subject)).toBe(false)
    },
  )

  test.prop([fc.string({ minLength: 1 }), fc.string({ minLength: 1 })])(
    "different ids never share a subject",
    (a, b) => {
      fc.pre(a !== b)
      expect(escapeToken(a)).not.toBe(escapeToken(b))
    },
  )
})
