/**
 * The merge formulas on hand-computed fixtures (linear, SLERP and its parallel fallback, task
 * arithmetic, TIES with its magnitude pruning and sign election, DARE's drop and both
 * rescalings), properties under fast-check (a model merged with itself is the model, for every
 * method; linear stays within the inputs' range), the layer-list parameters, the seeded stream,
 * and the bulk codecs against dtypes.ts's element-wise ones.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { fromFloat32, toFloat32 } from "../../../src/events/tensors/dtypes.ts"
import { depthOf, layerCount, layerIndexOf, valueAt } from "../../../src/programs/merge/layerParams.ts"
import { linearMerge } from "../../../src/programs/merge/linear.ts"
import {
  checkTensorWeights,
  MergeError,
  type MergePlan,
  mergeTensor,
  methodNames,
  planMerge,
} from "../../../src/programs/merge/mergeSpec.ts"
import { mix32, streamKey, streamUniform } from "../../../src/programs/merge/prng.ts"
import { slerpMerge } from "../../../src/programs/merge/slerp.ts"
import { dropRandomly, keepLargest } from "../../../src/programs/merge/sparsify.ts"
import { taskVectorMerge } from "../../../src/programs/merge/taskArithmetic.ts"
import { decodeFloats, encodeFloats, floatDTypes } from "../../../src/programs/merge/tensorCodec.ts"

const f32 = (...v: number[]) => Float32Array.from(v)
const plain = (a: Float32Array) => Array.from(a)
const plan = (method: string, models: number, params: Record<string, unknown> = {}): MergePlan => {
  const p = planMerge(
    method as MergePlan["method"],
    Array.from({ length: models }, (_, i) => ({ dir: `m${i}` })),
    params as never,
  )
  if (p instanceof MergeError) throw p
  return p
}
const settings = {
  sparsify: "none",
  density: 1,
  rescale: "l1",
  consensus: false,
  normalize: false,
  lambda: 1,
  seed: 0,
} as const

describe("linear", () => {
  it("is Σ wᵢθᵢ / Σ wᵢ", () => {
    // (1·1 + 3·3) / 4 = 2.5 and (1·2 + 3·6) / 4 = 5
    expect(plain(linearMerge([f32(1, 2), f32(3, 6)], [1, 3], true, new Float32Array(2)))).toEqual([2.5, 5])
    // three models, no normalising: 2·1 + 1·(−1) + 0.5·4 = 3
    expect(plain(linearMerge([f32(1), f32(-1), f32(4)], [2, 1, 0.5], false, new Float32Array(1)))).toEqual([
      3,
    ])
  })
  it("takes the base with base_weight (default 1)", () => {
    const p = plan("linear", 1, { base_weight: 3 })
    // base 2, model 6, weights 3 and 1: (6 + 6) / 4 = 3
    expect(plain(mergeTensor(p, "x", 0, f32(2), [f32(6)], new Float32Array(1)))).toEqual([3])
  })
  it("refuses weights summing to zero, naming the tensor", () => {
    const p = planMerge("linear", [{ dir: "a", weight: -1 }], {})
    if (p instanceof MergeError) throw p
    const error = checkTensorWeights(p, "model.layers.0.mlp.weight", 2)
    expect(error?.reason).toContain('"model.layers.0.mlp.weight"')
    expect(error?.reason).toContain("sum to zero")
    // a list that crosses zero only at some depths: refused there, accepted elsewhere
    const q = planMerge("linear", [{ dir: "a", weight: [-1, 0] }], {})
    if (q instanceof MergeError) throw q
    expect(checkTensorWeights(q, "model.layers.0.x", 3)).toBeInstanceOf(MergeError)
    expect(checkTensorWeights(q, "model.layers.2.x", 3)).toBeUndefined()
  })
  test.prop([
    fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 50 }),
    fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 50 }),
    fc.double({ min: 0.01, max: 10, noNaN: true }),
  ])("stays between its inputs", (a, b, w) => {
    const n = Math.min(a.length, b.length)
    const out = linearMerge([a.subarray(0, n), b.subarray(0, n)], [1, w], true, new Float32Array(n))
    for (let i = 0; i < n; i++) {
      const lo = Math.min(a[i] as number, b[i] as number)
      const hi = Math.max(a[i] as number, b[i] as number)
      expect(out[i]).toBeGreaterThanOrEqual(lo)
      expect(out[i]).toBeLessThanOrEqual(hi)
    }
  })
})

describe("slerp", () => {
  it("follows the arc between orthogonal vectors", () => {
    // Ω = π/2: both coefficients sin(π/4)/sin(π/2) = √2/2
    const out = new Float32Array(2)
    const step = slerpMerge(0.5, f32(1, 0), f32(0, 1), out)
    expect(step.linear).toBe(false)
    expect(out[0]).toBeCloseTo(Math.SQRT1_2, 6)
    expect(out[1]).toBeCloseTo(Math.SQRT1_2, 6)
    // t = 1/3 at Ω = π/2: sin(π/3) and sin(π/6)
    slerpMerge(1 / 3, f32(2, 0), f32(0, 4), out)
    expect(out[0]).toBeCloseTo(2 * Math.sin(Math.PI / 3), 5)
    expect(out[1]).toBeCloseTo(4 * Math.sin(Math.PI / 6), 5)
  })
  it("falls back to linear when the vectors are nearly parallel", () => {
    const out = new Float32Array(2)
    const step = slerpMerge(0.25, f32(1, 2), f32(2, 4), out)
    expect(step.linear).toBe(true)
    expect(plain(out)).toEqual([1.25, 2.5])
    // anti-parallel too (|dot| > 0.9995)
    expect(slerpMerge(0.5, f32(1, 1), f32(-1, -1.0001), out).linear).toBe(true)
  })
  it("needs exactly one model and a t in [0, 1]", () => {
    expect(planMerge("slerp", [{ dir: "a" }, { dir: "b" }], { t: 0.5 })).toBeInstanceOf(MergeError)
    expect((planMerge("slerp", [{ dir: "a" }], {}) as MergeError).reason).toContain("--param t")
    expect((planMerge("slerp", [{ dir: "a" }], { t: 1.5 }) as MergeError).reason).toContain(
      "1.5 is outside [0, 1]",
    )
    expect(planMerge("slerp", [{ dir: "a", weight: 0.3 }], {})).not.toBeInstanceOf(MergeError)
  })
})

describe("task arithmetic, TIES, DARE", () => {
  it("task arithmetic is θ_base + λ Σ wᵢ(θᵢ − θ_base)", () => {
    // deltas (1, −1, 0) and (0, 2, 0); weights 1 and 0.5; λ = 2: base + 2·(1, 0, 0)
    const out = taskVectorMerge(
      "x",
      f32(1, 1, 1),
      [f32(2, 0, 1), f32(1, 3, 1)],
      [1, 0.5],
      { ...settings, lambda: 2 },
      new Float32Array(3),
    )
    expect(plain(out)).toEqual([3, 1, 1])
  })
  it("TIES keeps the largest entries, elects a sign by mass and averages the agreeing ones", () => {
    // density 0.5 keeps 2 of 4: m1 → (3, 0, 0, −2), m2 → (0, 2, 0, −3); mass (3, 2, 0, −5) →
    // signs (+, +, + (0 counts as +), −); kept: (3 | 2 | none | −2, −3) → (3, 2, 0, −2.5)
    const p = plan("ties", 2, { density: 0.5 })
    const out = mergeTensor(
      p,
      "x",
      0,
      f32(0, 0, 0, 0),
      [f32(3, -1, 0.5, -2), f32(-1, 2, 1, -3)],
      new Float32Array(4),
    )
    expect(plain(out)).toEqual([3, 2, 0, -2.5])
  })
  it("TIES elects + when the mass cancels exactly", () => {
    // deltas +1 and −1 with equal weights: mass 0 counts as +, so only +1 is kept (divided by its weight 1)
    const p = plan("ties", 2, { density: 1 })
    expect(plain(mergeTensor(p, "x", 0, f32(5), [f32(6), f32(4)], new Float32Array(1)))).toEqual([6])
  })
  it("TIES without normalize sums the agreeing entries; a minority sign is dropped", () => {
    // all kept (density 1): mass (1 + 2 − 4) = −1 → only −4 agrees
    const p = plan("ties", 3, { density: 1, normalize: false })
    expect(plain(mergeTensor(p, "x", 0, f32(10), [f32(11), f32(12), f32(6)], new Float32Array(1)))).toEqual([
      6,
    ])
  })
  it("magnitude pruning breaks ties by the lower index, like a stable descending sort", () => {
    expect(plain(keepLargest(f32(1, -1, 1, 0.5), 0.5))).toEqual([1, -1, 0, 0])
    expect(plain(keepLargest(f32(0.5, 1, -1, 1), 0.25))).toEqual([0, 1, 0, 0])
    expect(plain(keepLargest(f32(1, 2, 3), 0.2))).toEqual([0, 0, 0])
  })
  test.prop([
    fc.float32Array({ noNaN: true, noDefaultInfinity: true, minLength: 1, maxLength: 200 }),
    fc.double({ min: 0, max: 1, noNaN: true }),
  ])(
    "magnitude pruning keeps exactly ⌊density·n⌋ entries, none smaller than a dropped one",
    (values, density) => {
      const kept = keepLargest(Float32Array.from(values), density)
      const k = density >= 1 ? values.length : Math.floor(density * values.length)
      const ranks = keptByRank(values, k)
      for (let i = 0; i < values.length; i++) expect(kept[i]).toBe(ranks.has(i) ? values[i] : 0)
    },
  )
  it("DARE keeps an entry when its draw is below the density, and rescales as named", () => {
    const delta = Float32Array.from({ length: 1000 }, (_, i) => (i % 7) - 3 + 0.25)
    const key = streamKey(7, 0, "w")
    const keptMask = [...delta.keys()].map((i) => streamUniform(key, i) < 0.3)
    const inverse = dropRandomly(Float32Array.from(delta), 0.3, "inverse", { seed: 7, model: 0, tensor: "w" })
    const none = dropRandomly(Float32Array.from(delta), 0.3, "none", { seed: 7, model: 0, tensor: "w" })
    const l1 = dropRandomly(Float32Array.from(delta), 0.3, "l1", { seed: 7, model: 0, tensor: "w" })
    for (let i = 0; i < delta.length; i++) {
      expect(none[i]).toBe(keptMask[i] ? delta[i] : 0)
      expect(inverse[i]).toBeCloseTo(keptMask[i] ? (delta[i] as number) / 0.3 : 0, 5)
    }
    const sumAbs = (a: Float32Array) => a.reduce((s, v) => s + Math.abs(v), 0)
    expect(sumAbs(l1)).toBeCloseTo(sumAbs(delta), 1)
    // about 30% kept
    const kept = keptMask.filter(Boolean).length
    expect(kept).toBeGreaterThan(250)
    expect(kept).toBeLessThan(350)
  })
  it("DARE needs a density in (0, 1]; TIES a density in [0, 1]", () => {
    expect((planMerge("dare_ties", [{ dir: "a" }], {}) as MergeError).reason).toContain(
      "needs --param density",
    )
    expect(planMerge("dare_linear", [{ dir: "a" }], { density: 0 })).toBeInstanceOf(MergeError)
    expect(planMerge("ties", [{ dir: "a" }], { density: 0 })).not.toBeInstanceOf(MergeError)
    expect(planMerge("ties", [{ dir: "a" }], { density: [0.5, 1.2] })).toBeInstanceOf(MergeError)
  })
})

/** The indices a stable descending sort by magnitude puts first. */
const keptByRank = (values: Float32Array, k: number): Set<number> =>
  new Set(
    [...values.keys()]
      .sort((a, b) => Math.abs(values[b] as number) - Math.abs(values[a] as number) || a - b)
      .slice(0, k),
  )

describe("every method", () => {
  const params: Record<string, Record<string, unknown>> = {
    linear: {},
    slerp: { t: 0.3 },
    task_arithmetic: { lambda: 0.7 },
    ties: { density: 0.4 },
    dare_linear: { density: 0.5, rescale: "inverse" },
    dare_ties: { density: 0.5, seed: 3 },
  }
  test.prop([
    fc.constantFrom(...methodNames),
    fc.float32Array({
      noNaN: true,
      noDefaultInfinity: true,
      min: Math.fround(-1e30),
      max: Math.fround(1e30),
      minLength: 1,
      maxLength: 64,
    }),
  ])("merges a model with itself into the model, bit for bit", (method, values) => {
    const p = plan(method, method === "slerp" ? 1 : 2, params[method])
    // distinct arrays, as mergeModels hands them (the task-vector methods overwrite the models'),
    // and the result written over the base's copy, as mergeModels does
    const others = Array.from({ length: method === "slerp" ? 1 : 2 }, () => Float32Array.from(values))
    const base = Float32Array.from(values)
    const out = mergeTensor(p, "model.layers.1.w", 3, base, others, base)
    for (let i = 0; i < values.length; i++)
      expect(Object.is(out[i], values[i]) || out[i] === values[i]).toBe(true)
  })
})

describe("parameters over layers", () => {
  it("reads the layer index from the name and places it in depth", () => {
    expect(layerIndexOf("model.layers.12.mlp.up_proj.weight")).toBe(12)
    expect(layerIndexOf("transformer.h.3.attn.c_attn.weight")).toBe(3)
    expect(layerIndexOf("model.norm.weight")).toBeUndefined()
    expect(layerCount(["model.layers.0.a", "model.layers.4.a", "lm_head.weight"])).toBe(5)
    expect(depthOf("model.layers.2.a", 5)).toBe(0.5)
    expect(depthOf("model.embed_tokens.weight", 5)).toBe(0)
    expect(depthOf("lm_head.weight", 5)).toBe(1)
    expect(depthOf("model.norm.weight", 5)).toBe(1)
  })
  it("interpolates a list evenly over depth", () => {
    expect(valueAt([0, 1], 0.25)).toBe(0.25)
    expect(valueAt([0, 1, 0], 0.5)).toBe(1)
    expect(valueAt([0, 1, 0], 0.75)).toBe(0.5)
    expect(valueAt([0.2, 0.4, 0.8], 1)).toBe(0.8)
    expect(valueAt([5], 0.3)).toBe(5)
    expect(valueAt(0.7, 0.9)).toBe(0.7)
  })
  it("a density list thins deeper layers differently", () => {
    const p = plan("ties", 1, { density: [0, 1] })
    const base = new Float32Array(4)
    const model = () => f32(1, 2, 3, 4) // a fresh array each time: the merge overwrites it with its delta
    // layer 0 of 3 → density 0: nothing kept; layer 2 of 3 → density 1: all kept
    expect(plain(mergeTensor(p, "model.layers.0.w", 3, base, [model()], new Float32Array(4)))).toEqual([
      0, 0, 0, 0,
    ])
    expect(plain(mergeTensor(p, "model.layers.2.w", 3, base, [model()], new Float32Array(4)))).toEqual([
      1, 2, 3, 4,
    ])
    // layer 1 → density 0.5: the two largest
    expect(plain(mergeTensor(p, "model.layers.1.w", 3, base, [model()], new Float32Array(4)))).toEqual([
      0, 0, 3, 4,
    ])
  })
})

describe("the seeded stream", () => {
  it("is uniform enough, and differs by seed, model and tensor", () => {
    const key = streamKey(0, 0, "a")
    let sum = 0
    let lo = 1
    let hi = 0
    const buckets = new Array(10).fill(0)
    for (let i = 0; i < 100_000; i++) {
      const u = streamUniform(key, i)
      lo = Math.min(lo, u)
      hi = Math.max(hi, u)
      sum += u
      buckets[Math.floor(u * 10)]++
    }
    expect(lo).toBeGreaterThanOrEqual(0)
    expect(hi).toBeLessThan(1)
    expect(sum / 100_000).toBeCloseTo(0.5, 2)
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500)
    const keys = new Set([
      streamKey(0, 0, "a"),
      streamKey(1, 0, "a"),
      streamKey(0, 1, "a"),
      streamKey(0, 0, "b"),
    ])
    expect(keys.size).toBe(4)
    expect(mix32(0)).toBe(0)
    expect(mix32(1)).not.toBe(mix32(2))
  })
})

describe("bulk codecs", () => {
  test.prop([
    fc.constantFrom(...floatDTypes),
    fc.float32Array({ minLength: 0, maxLength: 64 }),
    fc.integer({ min: 0, max: 7 }),
  ])("agree bit for bit with dtypes.ts's element codecs, aligned or not", (dtype, values, shift) => {
    const encoded = encodeFloats(dtype, Float32Array.from(values))
    expect(Array.from(encoded)).toEqual(Array.from(fromFloat32(dtype, values)))
    const misaligned = new Uint8Array(encoded.byteLength + shift).subarray(shift)
    misaligned.set(encoded)
    const decoded = decodeFloats(dtype, misaligned)
    const reference = toFloat32(dtype, encoded)
    expect(decoded.length).toBe(reference.length)
    for (let i = 0; i < reference.length; i++)
      expect(
        Object.is(decoded[i], reference[i]) || (Number.isNaN(decoded[i]) && Number.isNaN(reference[i])),
      ).toBe(true)
  })
})
