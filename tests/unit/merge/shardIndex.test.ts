/**
 * The sharded checkpoint's index (`model.safetensors.index.json`): a valid index read, each kind of
 * malformed index refused with its field named, render → parse round trips, and fuzzing (arbitrary
 * text, arbitrary JSON, and mutated valid indexes never throw). Also the command-line forms of a
 * merge (`--models`, `--param`, `--method`), fuzzed the same way, and the streaming safetensors
 * writer (header first, then one tensor at a time, in any order; refusals named).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { afterAll, describe, expect, it } from "vitest"
import { readSafetensors, tensorBytes, writeSafetensors } from "../../../src/events/tensors/safetensors.ts"
import {
  parseShardIndex,
  renderShardIndex,
  ShardIndexError,
  shardFileName,
} from "../../../src/events/tensors/shardIndex.ts"
import {
  MergeError,
  methodNames,
  parseMethod,
  parseModels,
  parseParams,
} from "../../../src/programs/merge/mergeSpec.ts"
import { openSafetensorsWriter } from "../../../src/runtime/safetensorsFile.ts"

const failure = (text: string) => {
  const r = parseShardIndex(text)
  if (Result.isSuccess(r)) throw new Error(`accepted ${text}`)
  return r.failure
}

describe("model.safetensors.index.json", () => {
  it("reads the weight map, the shards in order and the total size", () => {
    const r = parseShardIndex(
      JSON.stringify({
        metadata: { total_size: 1234, format: "pt" },
        weight_map: {
          b: "model-00002-of-00002.safetensors",
          a: "model-00001-of-00002.safetensors",
          c: "model-00002-of-00002.safetensors",
        },
      }),
    )
    const index = Result.getOrThrow(r)
    expect([...index.weightMap]).toEqual([
      ["b", "model-00002-of-00002.safetensors"],
      ["a", "model-00001-of-00002.safetensors"],
      ["c", "model-00002-of-00002.safetensors"],
    ])
    expect(index.shards).toEqual(["model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors"])
    expect(index.totalSize).toBe(1234)
    expect(index.metadata).toEqual({ format: "pt" })
  })
  it.each([
    ["not json", "index", "is not JSON"],
    ["[1]", "index", "not a JSON object"],
    ["{}", "weight_map", "is missing"],
    ['{"weight_map": []}', "weight_map", "must be an object"],
    ['{"weight_map": {}}', "weight_map", "names no tensor"],
    ['{"weight_map": {"a": 3}}', 'weight_map."a"', "must be a shard file name"],
    ['{"weight_map": {"a": "../x.safetensors"}}', 'weight_map."a"', "not a plain file name"],
    ['{"weight_map": {"a": "x.bin"}}', 'weight_map."a"', "does not end in .safetensors"],
    ['{"weight_map": {"a": ""}}', 'weight_map."a"', "is empty"],
    ['{"weight_map": {"__metadata__": "x.safetensors"}}', 'weight_map."__metadata__"', "reserved"],
    ['{"metadata": 3, "weight_map": {"a": "x.safetensors"}}', "metadata", "must be an object"],
    [
      '{"metadata": {"total_size": -1}, "weight_map": {"a": "x.safetensors"}}',
      "metadata.total_size",
      "non-negative integer",
    ],
    [
      '{"metadata": {"total_size": "9"}, "weight_map": {"a": "x.safetensors"}}',
      "metadata.total_size",
      "non-negative integer",
    ],
  ])("refuses %s naming %s", (text, field, reason) => {
    const e = failure(text)
    expect(e).toBeInstanceOf(ShardIndexError)
    expect(e.field).toBe(field)
    expect(e.reason).toContain(reason)
    expect(e.message).toContain("model.safetensors.index.json")
  })
  it("renders sorted, two-space indented, with the total size", () => {
    const text = Result.getOrThrow(
      renderShardIndex({
        weightMap: new Map([
          ["b", "s2.safetensors"],
          ["a", "s1.safetensors"],
        ]),
        totalSize: 10,
      }),
    )
    expect(text).toBe(
      '{\n  "metadata": {\n    "total_size": 10\n  },\n  "weight_map": {\n    "a": "s1.safetensors",\n    "b": "s2.safetensors"\n  }\n}\n',
    )
    expect(shardFileName(0, 3)).toBe("model-00001-of-00003.safetensors")
    expect(
      Result.isFailure(renderShardIndex({ weightMap: new Map([["a", "x/y.safetensors"]]), totalSize: 1 })),
    ).toBe(true)
  })
  const shard = fc
    .stringMatching(/^[A-Za-z0-9_.-]{1,20}$/)
    .filter((s) => s !== "." && s !== "..")
    .map((s) => `${s}.safetensors`)
  test.prop([
    fc.dictionary(
      fc.string({ minLength: 1 }).filter((k) => k !== "__metadata__"),
      shard,
      { minKeys: 1 },
    ),
    fc.nat(),
  ])("round-trips any weight map", (map, total) => {
    const weightMap = new Map(Object.entries(map))
    const back = Result.getOrThrow(
      parseShardIndex(Result.getOrThrow(renderShardIndex({ weightMap, totalSize: total }))),
    )
    expect(new Map([...back.weightMap].sort())).toEqual(new Map([...weightMap].sort()))
    expect(back.totalSize).toBe(total)
  })
  test.prop([fc.string()])("never throws on arbitrary text", (text) => {
    const r = parseShardIndex(text)
    if (Result.isFailure(r)) expect(r.failure.field.length).toBeGreaterThan(0)
  })
  test.prop([fc.jsonValue()])("never throws on arbitrary JSON", (value) => {
    const r = parseShardIndex(JSON.stringify(value))
    if (Result.isFailure(r)) expect(r.failure.reason.length).toBeGreaterThan(0)
  })
  test.prop([fc.nat(), fc.string({ maxLength: 4 }), fc.nat()])(
    "never throws on a mutated index",
    (at, insert, cut) => {
      const valid =
        '{"metadata": {"total_size": 8}, "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors"}}'
      const i = at % valid.length
      const text = valid.slice(0, i) + insert + valid.slice(i + (cut % 3))
      const r = parseShardIndex(text)
      expect(Result.isSuccess(r) || r.failure instanceof ShardIndexError).toBe(true)
    },
  )
})

describe("a merge's command-line forms", () => {
  it("reads --models with weights and lists over layers", () => {
    expect(parseModels("a,b:0.5,c:[0.2, 0.8],d:-1e-1")).toEqual([
      { dir: "a" },
      { dir: "b", weight: 0.5 },
      { dir: "c", weight: [0.2, 0.8] },
      { dir: "d", weight: -0.1 },
    ])
    // a colon in a folder name without a number after it stays in the name
    expect(parseModels("runs/x:y")).toEqual([{ dir: "runs/x:y" }])
    expect((parseModels("a,,b") as MergeError).reason).toContain("entry 2")
    expect((parseModels("a:0.5x") as MergeError).reason).toContain('"0.5x"')
    expect((parseModels("a:[0.2,") as MergeError).reason).toContain("does not close")
    expect((parseModels(":0.5") as MergeError).reason).toContain("no directory")
  })
  it("reads --param by the method's parameters", () => {
    expect(
      parseParams("dare_ties", ["density=[0.2,0.6]", "rescale=inverse", "seed=42", "normalize=true"]),
    ).toEqual({
      density: [0.2, 0.6],
      rescale: "inverse",
      seed: 42,
      normalize: true,
    })
    expect((parseParams("ties", ["densty=0.2"]) as MergeError).reason).toMatch(
      /unknown parameter \(did you mean "density"\?\); ties takes/,
    )
    expect((parseParams("linear", ["density=0.2"]) as MergeError).reason).toContain(
      "not a parameter of linear",
    )
    expect((parseParams("ties", ["density"]) as MergeError).reason).toContain("expected key=value")
    expect((parseParams("ties", ["density=abc"]) as MergeError).reason).toContain('"abc" is not a number')
    expect((parseParams("dare_ties", ["rescale=l2"]) as MergeError).reason).toContain("l1, inverse, none")
    expect((parseParams("dare_ties", ["seed=-1"]) as MergeError).reason).toContain("--param seed")
    expect((parseParams("ties", ["normalize=yes"]) as MergeError).reason).toContain("true or false")
    expect((parseParams("ties", ["density=0.1", "density=0.2"]) as MergeError).reason).toContain("twice")
  })
  it("suggests methods for an unknown one", () => {
    expect((parseMethod("dare") as MergeError).reason).toContain('did you mean "dare_linear" or "dare_ties"?')
    expect((parseMethod("slrep") as MergeError).reason).toContain('"slerp"')
    expect((parseMethod("task-arithmetic") as MergeError).reason).toContain('"task_arithmetic"')
    for (const m of methodNames) expect(parseMethod(m)).toBe(m)
  })
  test.prop([fc.string(), fc.array(fc.string()), fc.constantFrom(...methodNames)])(
    "never throws on any text",
    (models, params, method) => {
      const m = parseModels(models)
      if (!(m instanceof MergeError)) for (const e of m) expect(e.dir.length).toBeGreaterThan(0)
      const p = parseParams(method, params)
      expect(p instanceof MergeError || typeof p === "object").toBe(true)
      expect(parseMethod(models) instanceof MergeError || methodNames.includes(models as never)).toBe(true)
    },
  )
})

describe("the streaming safetensors writer", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-writer-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
  const tensors = {
    b: { dtype: "F32" as const, shape: [2], data: new Float32Array([1, 2]) },
    a: { dtype: "BF16" as const, shape: [3], data: new Uint16Array([1, 2, 3]) },
    c: { dtype: "I64" as const, shape: [1], data: new BigInt64Array([7n]) },
  }
  it("writes the same bytes as the in-memory writer, tensors in any order", async () => {
    const file = path.join(dir, "s.safetensors")
    const writer = Result.getOrThrow(
      await openSafetensorsWriter(
        file,
        Object.entries(tensors).map(([name, t]) => ({ name, ...t })),
        { format: "pt" },
      ),
    )
    for (const name of ["a", "c", "b"] as const) {
      const t = tensors[name]
      Result.getOrThrow(await writer.write(name, new Uint8Array(t.data.buffer)))
    }
    Result.getOrThrow(await writer.close())
    const expected = Result.getOrThrow(writeSafetensors(tensors, { format: "pt" }))
    const written = new Uint8Array(fs.readFileSync(file))
    expect(Buffer.from(written).equals(Buffer.from(expected))).toBe(true)
    const back = Result.getOrThrow(readSafetensors(written))
    expect(Array.from(tensorBytes(back, "c") as Uint8Array)).toEqual(
      Array.from(new Uint8Array(tensors.c.data.buffer)),
    )
  })
  it("refuses unknown, repeated, wrongly sized and missing tensors by name", async () => {
    const file = path.join(dir, "t.safetensors")
    const writer = Result.getOrThrow(
      await openSafetensorsWriter(
        file,
        Object.entries(tensors).map(([name, t]) => ({ name, ...t })),
      ),
    )
    const fail = async (p: Promise<Result.Result<void, { field: string; reason: string }>>) => {
      const r = await p
      if (Result.isSuccess(r)) throw new Error("accepted")
      return `${r.failure.field}: ${r.failure.reason}`
    }
    expect(await fail(writer.write("z", new Uint8Array(4)))).toContain('"z".data: is not a tensor planned')
    expect(await fail(writer.write("b", new Uint8Array(4)))).toContain(
      '"b".data: 4 bytes, but F32 [2] takes 8',
    )
    Result.getOrThrow(await writer.write("b", new Uint8Array(8)))
    expect(await fail(writer.write("b", new Uint8Array(8)))).toContain("written twice")
    expect(await fail(writer.close())).toContain("was never written (2 tensors missing")
  })
})
