/**
 * The batch file `rollout.batch.v1`: the same batch always encodes to the same bytes and decodes
 * back to itself; the header carries the documented metadata; each rule of the format broken
 * (written with the plain safetensors writer, so the encoder's own checks are not in the way) is
 * refused with a `BatchFileError` naming the field; and decoding never throws — on arbitrary bytes,
 * on mutated valid files, or on arbitrary metadata text (fast-check).
 */
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  readSafetensors,
  type TensorInput,
  writeSafetensors,
} from "../../../src/events/tensors/safetensors.ts"
import { BATCH_FORMAT, decodeBatch, encodeBatch } from "../../../src/projections/batches/batchFile.ts"
import type { Batch } from "../../../src/projections/batches/sequences.ts"

const batch: Batch = {
  run: "rl1",
  step: 3,
  tokenIds: Int32Array.from([1, 2, 10, 11, 5, 12]),
  lossMask: Uint8Array.from([0, 0, 1, 1, 0, 1]),
  logprobs: Float32Array.from([0, 0, -0.5, -0.25, 0, -1]),
  advantages: Float32Array.from([0, 0, 0.5, 0.5, 0, -0.25]),
  versions: Int32Array.from([-1, -1, 3, 2, -1, 1]),
  seqOffsets: [0, 4, 6],
  temperature: Float32Array.from([1, 0.5]),
  sequences: [
    {
      episode: "e1",
      group: "g1",
      task: "t",
      sample: 0,
      turns: [1, 1],
      score: 1,
      advantage: 0.5,
      split: "start",
    },
    {
      episode: "e2",
      group: "g1",
      task: "t",
      sample: 1,
      turns: [2, 3],
      score: 0,
      advantage: -0.25,
      split: "drift",
    },
  ],
  lags: [
    { lag: 0, tokens: 1 },
    { lag: 1, tokens: 1 },
    { lag: 2, tokens: 1 },
  ],
  drops: { zero_variance_group: 4, stale: 1 },
}

const tensorsOf = (b: Batch): Record<string, TensorInput> => ({
  token_ids: { dtype: "I32", shape: [b.tokenIds.length], data: b.tokenIds },
  loss_mask: { dtype: "U8", shape: [b.lossMask.length], data: b.lossMask },
  logprobs: { dtype: "F32", shape: [b.logprobs.length], data: b.logprobs },
  advantages: { dtype: "F32", shape: [b.advantages.length], data: b.advantages },
  versions: { dtype: "I32", shape: [b.versions.length], data: b.versions },
  seq_offsets: {
    dtype: "I64",
    shape: [b.seqOffsets.length],
    data: BigInt64Array.from(b.seqOffsets, (o) => BigInt(o)),
  },
  temperature: { dtype: "F32", shape: [b.temperature.length], data: b.temperature },
})

const metadataOf = (b: Batch): Record<string, string> => ({
  format: BATCH_FORMAT,
  run: b.run,
  step: String(b.step),
  sequences: JSON.stringify(b.sequences),
  lags: JSON.stringify(b.lags),
  drops: JSON.stringify(b.drops),
})

/** A file written with the plain writer, with tensors and metadata changed as a case asks. */
const fileWith = (
  change: (tensors: Record<string, TensorInput>, metadata: Record<string, string>) => void,
): Uint8Array => {
  const tensors = tensorsOf(batch)
  const metadata = metadataOf(batch)
  change(tensors, metadata)
  const written = writeSafetensors(tensors, metadata)
  if (Result.isFailure(written)) throw new Error(written.failure.message)
  return written.success
}

const fieldOf = (bytes: Uint8Array): string => {
  const decoded = decodeBatch(bytes)
  if (Result.isSuccess(decoded)) return "(decoded)"
  return decoded.failure.field
}

describe("rollout.batch.v1", () => {
  it("encodes deterministically and decodes back to the same batch", () => {
    const bytes = encodeBatch(batch)
    expect(encodeBatch({ ...batch, drops: { ...batch.drops } })).toEqual(bytes)
    const decoded = decodeBatch(bytes)
    expect(Result.isSuccess(decoded) ? decoded.success : decoded.failure).toEqual(batch)
    const file = readSafetensors(bytes)
    if (Result.isFailure(file)) throw new Error(file.failure.message)
    expect(file.success.metadata.format).toBe(BATCH_FORMAT)
    expect(file.success.metadata.step).toBe("3")
    expect(JSON.parse(file.success.metadata.drops!)).toEqual({ zero_variance_group: 4, stale: 1 })
    expect(file.success.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ["seq_offsets", "I64", [3]],
      ["advantages", "F32", [6]],
      ["logprobs", "F32", [6]],
      ["temperature", "F32", [2]],
      ["token_ids", "I32", [6]],
      ["versions", "I32", [6]],
      ["loss_mask", "U8", [6]],
    ])
  })

  it("decodes an empty batch (no sequence)", () => {
    const empty: Batch = {
      ...batch,
      tokenIds: new Int32Array(0),
      lossMask: new Uint8Array(0),
      logprobs: new Float32Array(0),
      advantages: new Float32Array(0),
      versions: new Int32Array(0),
      seqOffsets: [0],
      temperature: new Float32Array(0),
      sequences: [],
      lags: [],
      drops: {},
    }
    const decoded = decodeBatch(encodeBatch(empty))
    expect(Result.isSuccess(decoded) ? decoded.success : decoded.failure).toEqual(empty)
  })

  const cases: ReadonlyArray<
    [string, string, (t: Record<string, TensorInput>, m: Record<string, string>) => void]
  > = [
    ["a missing tensor", "temperature", (t) => delete t.temperature],
    [
      "a tensor of another format",
      "extra",
      (t) => (t.extra = { dtype: "U8", shape: [1], data: Uint8Array.from([1]) }),
    ],
    [
      "a wrong dtype",
      "logprobs.dtype",
      (t) => (t.logprobs = { dtype: "F64", shape: [6], data: Float64Array.from(batch.logprobs) }),
    ],
    [
      "a shape that disagrees with T",
      "loss_mask.shape",
      (t) => (t.loss_mask = { dtype: "U8", shape: [5], data: new Uint8Array(5) }),
    ],
    [
      "a loss mask of 2",
      "loss_mask[2]",
      (t) => (t.loss_mask = { dtype: "U8", shape: [6], data: Uint8Array.from([0, 0, 2, 1, 0, 1]) }),
    ],
    [
      "a trained token the policy did not sample",
      "loss_mask[0]",
      (t) => (t.loss_mask = { dtype: "U8", shape: [6], data: Uint8Array.from([1, 0, 1, 1, 0, 1]) }),
    ],
    [
      "an advantage where nothing trains",
      "advantages[4]",
      (t) =>
        (t.advantages = { dtype: "F32", shape: [6], data: Float32Array.from([0, 0, 0.5, 0.5, 0.1, -0.25]) }),
    ],
    [
      "a log-prob on a token not sampled",
      "logprobs[1]",
      (t) =>
        (t.logprobs = { dtype: "F32", shape: [6], data: Float32Array.from([0, -1, -0.5, -0.25, 0, -1]) }),
    ],
    [
      "a version newer than the step",
      "versions[2]",
      (t) => (t.versions = { dtype: "I32", shape: [6], data: Int32Array.from([-1, -1, 4, 2, -1, 1]) }),
    ],
    [
      "offsets that do not end at T",
      "seq_offsets[2]",
      (t) => (t.seq_offsets = { dtype: "I64", shape: [3], data: BigInt64Array.from([0n, 4n, 5n]) }),
    ],
    [
      "offsets going back",
      "seq_offsets[2]",
      (t) => (t.seq_offsets = { dtype: "I64", shape: [3], data: BigInt64Array.from([0n, 5n, 4n]) }),
    ],
    ["another format", "__metadata__.format", (_, m) => (m.format = "rollout.batch.v0")],
    ["a step that is not decimal", "__metadata__.step", (_, m) => (m.step = "03")],
    ["a missing metadata key", "__metadata__.lags", (_, m) => delete m.lags],
    ["an unknown metadata key", '__metadata__."extra"', (_, m) => (m.extra = "1")],
    ["sequences that are not JSON", "__metadata__.sequences", (_, m) => (m.sequences = "[{")],
    [
      "one sequence described for two",
      "__metadata__.sequences",
      (_, m) => (m.sequences = JSON.stringify(batch.sequences.slice(1))),
    ],
    [
      "an unknown split",
      "__metadata__.sequences[1].split",
      (_, m) =>
        (m.sequences = JSON.stringify([batch.sequences[0], { ...batch.sequences[1], split: "guess" }])),
    ],
    [
      "turns out of order",
      "__metadata__.sequences[0].turns",
      (_, m) =>
        (m.sequences = JSON.stringify([{ ...batch.sequences[0], turns: [2, 1] }, batch.sequences[1]])),
    ],
    [
      "lags that are not the tensors'",
      "__metadata__.lags",
      (_, m) => (m.lags = JSON.stringify([{ lag: 0, tokens: 3 }])),
    ],
    [
      "a negative drop count",
      '__metadata__.drops."stale"',
      (_, m) => (m.drops = JSON.stringify({ stale: -1 })),
    ],
  ]

  for (const [what, field, change] of cases)
    it(`refuses ${what}, naming ${field}`, () => {
      expect(fieldOf(fileWith(change))).toBe(field)
    })

  it("refuses bytes that are not safetensors, naming the header", () => {
    expect(fieldOf(Uint8Array.from([1, 2, 3]))).toBe("header_length")
  })
})

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

describe("decodeBatch never throws (fast-check)", () => {
  const valid = encodeBatch(batch)

  it("on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const decoded = decodeBatch(bytes)
        expect(Result.isFailure(decoded)).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it("on valid files with bytes changed; what still decodes re-encodes to a file that decodes the same", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (changes) => {
          const bytes = Uint8Array.from(valid)
          for (const [at, value] of changes) bytes[at] = value
          const decoded = decodeBatch(bytes)
          if (Result.isSuccess(decoded)) {
            // Still a valid batch (a changed score, say): it re-encodes to a file that decodes the same.
            const again = decodeBatch(encodeBatch(decoded.success))
            expect(Result.isSuccess(again) ? again.success : again.failure).toEqual(decoded.success)
          } else expect(decoded.failure.field.length).toBeGreaterThan(0)
        },
      ),
      { numRuns: 1000 },
    )
  })

  it("on arbitrary metadata text, naming the key", () => {
    const keys = ["format", "run", "step", "sequences", "lags", "drops"] as const
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.oneof(fc.string(), fc.json()), (key, text) => {
        const decoded = decodeBatch(fileWith((_, m) => (m[key] = text)))
        if (Result.isSuccess(decoded)) return
        // Text the key cannot hold is blamed on the key; a value it can hold (step "0") may break
        // another rule (a version newer than the step), which is then the field named.
        const unreadable =
          (key === "format" && text !== BATCH_FORMAT) ||
          (key === "run" && text === "") ||
          (key === "step" && !/^(0|[1-9][0-9]*)$/.test(text)) ||
          (["sequences", "lags", "drops"].includes(key) && !isJson(text))
        if (unreadable) expect(decoded.failure.field).toContain(`__metadata__.${key}`)
        else expect(decoded.failure.field.length).toBeGreaterThan(0)
      }),
      { numRuns: 500 },
    )
  })
})
