/**
 * A command as the JetStream bus carries it, fuzzed: any command survives encoding and parsing;
 * any bytes parse to a command or a `MalformedCommand`, never a throw; a `blobs` list comes back as
 * written, and a broken one is refused naming it. And the large-fields mechanism on any JSON value
 * (as a command, not an event): moving the large fields of a value over the limit to a real file
 * blob store and reading them back gives the value again, and the stored JSON fits the limit.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Result } from "effect"
import * as fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { type LargeFields, moveLargeFields, restoreLargeFields } from "../../src/events/log/largeFields.ts"
import {
  type Command,
  commandOf,
  encodeCommand,
  encodeWithBlobs,
  MalformedCommand,
  parseCommand,
} from "../../src/runtime/command.ts"

const text = fc.string({ unit: "grapheme", maxLength: 40 })
const nonEmpty = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 })
const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)))

const commandArb: fc.Arbitrary<Command> = fc.record(
  {
    commandId: nonEmpty,
    actorKind: nonEmpty,
    entityId: nonEmpty,
    type: nonEmpty,
    payload: json as fc.Arbitrary<Command["payload"]>,
    issuedAt: text,
    correlationId: text,
    causationId: text,
  },
  { requiredKeys: ["commandId", "actorKind", "entityId", "type", "payload", "issuedAt", "correlationId"] },
)

const where = "TEST_COMMANDS seq 1"

describe("a command on the wire", () => {
  it("survives encoding and parsing whole, with no blobs listed", () => {
    fc.assert(
      fc.property(commandArb, (command) => {
        const parsed = Result.getOrThrow(parseCommand(encodeCommand(command), where))
        expect(parsed.blobs).toBeUndefined()
        expect(Result.getOrThrow(commandOf(parsed.value, where))).toEqual(command)
      }),
    )
  })

  it("parses any bytes to a command or a MalformedCommand naming where, never a throw", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.uint8Array().map((b) => Buffer.from(b)),
        ),
        (bytes) => {
          const parsed = parseCommand(bytes, where)
          const command = Result.flatMap(parsed, ({ value }) => commandOf(value, where))
          if (Result.isFailure(command)) {
            expect(command.failure).toBeInstanceOf(MalformedCommand)
            expect(command.failure.message).toContain(where)
          }
        },
      ),
    )
  })

  it("gives back the blobs list as written", () => {
    const path = fc.array(fc.oneof(fc.string(), fc.nat()), { minLength: 1, maxLength: 4 })
    fc.assert(
      fc.property(commandArb, fc.array(path, { minLength: 1, maxLength: 3 }), (command, blobs) => {
        const parsed = Result.getOrThrow(parseCommand(encodeWithBlobs(command, blobs), where))
        expect(parsed.blobs).toEqual(blobs)
        expect("blobs" in parsed.value).toBe(false)
      }),
    )
  })

  it("refuses a broken blobs list, naming it", () => {
    for (const blobs of [[[]], [[-1]], [[1.5]], "payload.question", [[{ key: "x" }]]]) {
      const parsed = parseCommand(JSON.stringify({ commandId: "c", blobs }), where)
      expect(Result.isFailure(parsed)).toBe(true)
      if (Result.isFailure(parsed)) expect(parsed.failure.reason).toMatch(/^blobs: /)
    }
  })
})

/** The bytes of the largest field of `node` that could move: a string, or an array of scalars (whole). */
const largestMovable = (node: unknown, root = false): number => {
  if (typeof node === "string") return root ? 0 : Buffer.byteLength(node, "utf8")
  if (Array.isArray(node)) {
    if (!root && node.every((x) => typeof x === "number" || typeof x === "boolean" || x === null))
      return JSON.stringify(node).length
    return Math.max(0, ...node.map((x) => largestMovable(x)))
  }
  if (node !== null && typeof node === "object")
    return Math.max(
      0,
      ...Object.entries(node).map(([key, x]) => (root && key === "type" ? 0 : largestMovable(x))),
    )
  return 0
}

describe("large fields of any JSON value", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-command-blobs-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
  const fields: LargeFields = { store: fileBlobStore(dir), inlineLimit: 4096 }

  // Values with some large strings and number arrays among small ones, at any depth.
  const big = fc.oneof(
    fc.string({ unit: "grapheme", minLength: 3000, maxLength: 6000 }),
    fc.array(fc.integer(), { minLength: 2000, maxLength: 3000 }),
  )
  const leaf = fc.oneof({ weight: 3, arbitrary: json }, { weight: 1, arbitrary: big })
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      leaf,
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 4 }),
    ),
  }))

  it("moves them out until the JSON fits, and reads them back to the same value", async () => {
    let movedSome = 0
    await fc.assert(
      fc.asyncProperty(value, async (original) => {
        const before = JSON.stringify(original)
        const bytes = Buffer.byteLength(before, "utf8")
        fc.pre(bytes > fields.inlineLimit)
        const moved = moveLargeFields(original, bytes, fields)
        if (moved === undefined) return
        const { value: withMarkers, paths } = await Effect.runPromise(moved)
        // The original is not touched.
        expect(JSON.stringify(original)).toBe(before)
        // It fits, or nothing that may move is left: only fields under a sixteenth of the limit.
        const stored = JSON.stringify(withMarkers)
        if (Buffer.byteLength(stored, "utf8") > fields.inlineLimit)
          expect(largestMovable(withMarkers, true)).toBeLessThan(fields.inlineLimit / 16)
        // Read back from a copy parsed from the stored JSON, as a bus reads its message.
        const copy = JSON.parse(stored) as unknown
        const hole = await Effect.runPromise(restoreLargeFields(copy, paths, fields.store))
        expect(hole).toBeUndefined()
        expect(copy).toEqual(original)
        movedSome++
      }),
      { numRuns: 60 },
    )
    // The property held for values that really had fields moved, not only for the trivial cases.
    expect(movedSome).toBeGreaterThan(20)
  })

  it("reports a field whose blob is gone, with its hash", async () => {
    const original = { payload: { question: "q".repeat(10_000) } }
    const moved = moveLargeFields(original, 10_050, fields)
    expect(moved).toBeDefined()
    const { value: withMarkers, paths } = await Effect.runPromise(moved!)
    const sha256 = (withMarkers as { payload: { question: { $blob: { sha256: string } } } }).payload.question
      .$blob.sha256
    fs.rmSync(path.join(dir, sha256.slice(0, 2), sha256))
    const hole = await Effect.runPromise(restoreLargeFields(withMarkers, paths, fields.store))
    expect(hole?.path).toEqual(["payload", "question"])
    expect(hole?.reason).toContain(sha256)
    expect(hole?.reason).toContain("missing")
  })
})
