/**
 * The parts of the large-fields mechanism that need no storage engine: the size check that keeps
 * small events on the fast path agrees with the exact byte count; a stored body listing blob
 * fields is only ever decoded after the log reads them back (a hand-decoded one is refused, naming
 * them), and a malformed list is envelope damage; the `log.inlineLimitBytes` key decodes with its
 * default, refuses nonsense with its path, and reaches the log through the runtime's wiring.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, it as prop } from "@fast-check/vitest"
import { Effect, Exit, Result, Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { openRuntime } from "../../src/app/wiring.ts"
import { decodeBody, decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { overInlineLimit } from "../../src/events/log/largeFields.ts"
import type { LogRecord } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { loadConfig } from "../../src/runtime/config.ts"

const body = (extra: Record<string, unknown>, event: unknown) =>
  JSON.stringify({
    eventId: "e1",
    recordedAt: "2026-01-01T00:00:00.000Z",
    correlationId: "c",
    causationId: "c",
    actor: "a",
    schemaVersion: 1,
    ...extra,
    event,
  })

const marker = { $blob: { sha256: "a".repeat(64), bytes: 3, mediaType: "text/plain;charset=utf-8" } }

describe("large fields", () => {
  prop.prop([fc.string({ unit: "grapheme", maxLength: 3000 }), fc.integer({ min: 1, max: 9000 })])(
    "over-limit check agrees with the exact UTF-8 byte count",
    (text, limit) => {
      expect(overInlineLimit(text, limit)).toBe(Buffer.byteLength(text, "utf8") > limit)
    },
  )

  it("refuses to decode a record whose blob fields were not read back, naming them", () => {
    const decoded = decodeBody(
      body({ blobs: [["question"]] }, { type: "EpisodeStarted", question: marker }),
      7,
      "ns.ev.episode.e",
    )
    const record = Result.getOrThrow(decoded)
    expect(record.blobs).toEqual([["question"]])
    const event = decodeEvent(record)
    expect(Result.isFailure(event)).toBe(true)
    const error = (event as Result.Failure<never, UndecodableEvent>).failure
    expect(error.stage).toBe("blob")
    expect(error.message).toContain("position 7")
    expect(error.message).toContain("question")
  })

  it("reports a malformed list of blob fields as envelope damage", () => {
    for (const blobs of [[], "question", [[]], [["a", -1]], [[1.5]], [{ path: "a" }]]) {
      const decoded = decodeBody(body({ blobs }, { type: "EpisodeStarted" }), 3, "ns.ev.episode.e")
      expect(Result.isFailure(decoded)).toBe(true)
      const error = (decoded as Result.Failure<never, UndecodableEvent>).failure
      expect(error).toBeInstanceOf(UndecodableEvent)
      expect(error.stage).toBe("envelope")
      expect(error.message).toContain("blobs")
    }
    // A body without the list has no `blobs` key at all: the common record keeps its shape.
    const plain = Result.getOrThrow(decodeBody(body({}, { type: "EpisodeStarted" }), 1, "s"))
    expect(Object.hasOwn(plain, "blobs")).toBe(false)
  })
})

describe("log.inlineLimitBytes", () => {
  const configDir = (yaml: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-inline-"))
    fs.writeFileSync(path.join(dir, "rollout.yaml"), yaml)
    return dir
  }

  it("defaults to 256 KiB and refuses a limit below 1 KiB, naming the key", () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-inline-"))
    expect(Effect.runSync(loadConfig({ dir: empty, env: {} })).log.inlineLimitBytes).toBe(262_144)
    const dir = configDir("log:\n  inlineLimitBytes: 100\n")
    const failed = Effect.runSync(Effect.flip(loadConfig({ dir, env: {} })))
    expect(failed.message).toContain("inlineLimitBytes")
    expect(failed.message).toContain("rollout.yaml")
    fs.rmSync(empty, { recursive: true })
    fs.rmSync(dir, { recursive: true })
  })

  it("reaches the embedded log through the runtime's wiring", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-inline-data-"))
    const dir = configDir(
      `log:\n  dataDir: ${JSON.stringify(dataDir)}\n  namespace: wired\n  inlineLimitBytes: 2048\n`,
    )
    const config = Effect.runSync(loadConfig({ dir, env: {} }))
    const scope = Effect.runSync(Scope.make())
    try {
      const runtime = await Effect.runPromise(Scope.provide(scope)(openRuntime(config)))
      const question = "q".repeat(10_000)
      const subject = entitySubject("wired", "episode", "e1")
      await Effect.runPromise(
        runtime.log.append(subject, [
          {
            eventId: "e1",
            recordedAt: "2026-01-01T00:00:00.000Z",
            correlationId: "c",
            causationId: "c",
            actor: "test",
            event: {
              type: "EpisodeStarted",
              episodeId: "e1",
              taskId: "t",
              sampleIndex: 0,
              question,
              model: "m",
              maxTurns: 1,
            },
          },
        ]),
      )
      const line = fs.readFileSync(path.join(dataDir, "log", "wired", "events.ndjson"), "utf8")
      expect(line.length).toBeLessThan(2048)
      expect(line).toContain('"$blob"')
      const [entry] = Array.from(
        await Effect.runPromise(Stream.runCollect(runtime.log.read({ filter: subject }))),
      )
      const event = Result.getOrThrow(decodeEvent(entry as LogRecord)).event
      expect(event).toMatchObject({ type: "EpisodeStarted", question })
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dataDir, { recursive: true, force: true })
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
