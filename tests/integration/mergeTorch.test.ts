/**
 * The merge cross-checked against torch: random checkpoints (F32, F16, BF16; one file or sharded)
 * are merged by `mergeModels` and by the trainer's torch reference (`/usr/bin/python3 -m
 * rollout_trainer.merge_reference`, run in trainer/), and every tensor must agree within the output
 * dtype's tolerance — for each method, with list parameters over layers, DARE's seeded drop, and
 * SLERP's parallel fallback. Needs Debian's torch under /usr/bin/python3 (CI has it); without it
 * the suite is skipped with a message saying so.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it } from "vitest"
import type { DType } from "../../src/events/tensors/dtypes.ts"
import { mergeModels } from "../../src/programs/merge/mergeModels.ts"
import type { ModelEntry, ParamValue } from "../../src/programs/merge/mergeSpec.ts"
import type { FloatDType } from "../../src/programs/merge/tensorCodec.ts"
import { type Model, randomModel, readModel, writeModel } from "../unit/merge/checkpoints.ts"

const python = "/usr/bin/python3"
const torchCheck = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" })
const hasTorch = torchCheck.status === 0
if (!hasTorch)
  process.stderr.write(
    `mergeTorch.test.ts: SKIPPED — torch is not importable by ${python} (${(torchCheck.stderr ?? torchCheck.error?.message ?? "").trim().split("\n").pop()}); install Debian's python3-torch to run the cross-check\n`,
  )

const root = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-merge-torch-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

/** |ts − torch| ≤ rtol·|torch| + atol: one unit in the last place of the output dtype, and float32 noise. */
const tolerance: Record<string, { rtol: number; atol: number }> = {
  F32: { rtol: 2e-5, atol: 2e-6 },
  F16: { rtol: 2 ** -10, atol: 2e-6 },
  BF16: { rtol: 2 ** -7, atol: 2e-6 },
}

interface Case {
  readonly name: string
  readonly method: string
  readonly dtype: DType
  readonly out?: FloatDType
  readonly shards?: number
  readonly weights: ReadonlyArray<ModelEntry["weight"]>
  readonly params: Record<string, ParamValue>
  /** Models as small perturbations of the base (for SLERP's parallel fallback). */
  readonly near?: number
}

const cases: ReadonlyArray<Case> = [
  {
    name: "linear, three models, a weight list over layers, sharded",
    method: "linear",
    dtype: "F32",
    shards: 3,
    weights: [[0.2, 1, 0.5], 2],
    params: { base_weight: 0.5 },
  },
  { name: "linear into bf16", method: "linear", dtype: "F32", out: "BF16", weights: [1], params: {} },
  {
    name: "slerp on bf16 with t over layers",
    method: "slerp",
    dtype: "BF16",
    weights: [undefined],
    params: { t: [0.1, 0.9] },
  },
  {
    name: "slerp of nearly parallel tensors (linear fallback)",
    method: "slerp",
    dtype: "F32",
    weights: [undefined],
    params: { t: 0.3 },
    near: 0.01,
  },
  {
    name: "task arithmetic on f16",
    method: "task_arithmetic",
    dtype: "F16",
    shards: 2,
    weights: [0.7, 0.4],
    params: { lambda: 0.8 },
  },
  {
    name: "ties with a density list, bf16 out",
    method: "ties",
    dtype: "F32",
    out: "BF16",
    weights: [1, 0.6, 0.3],
    params: { density: [0.3, 0.7] },
  },
  {
    name: "ties on bf16 inputs (ties in magnitude)",
    method: "ties",
    dtype: "BF16",
    weights: [1, 1],
    params: { density: 0.4, normalize: false },
  },
  {
    name: "dare_linear, 1/density rescale",
    method: "dare_linear",
    dtype: "F32",
    weights: [0.5, 0.5],
    params: { density: 0.3, rescale: "inverse", seed: 11 },
  },
  {
    name: "dare_ties, L1 rescale, f16 out",
    method: "dare_ties",
    dtype: "BF16",
    out: "F16",
    weights: [1, 0.8],
    params: { density: 0.5, seed: 5, lambda: [1, 0.5] },
  },
]

describe.skipIf(!hasTorch)("the merge against torch", () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))("%s", async (_name, c, i) => {
    const dir = path.join(root, `case-${i}`)
    const base = randomModel(100 + i, { dtype: c.dtype, layers: 4, width: 12 })
    const models: Model[] = c.weights.map((_, m) =>
      randomModel(200 + 10 * i + m, {
        dtype: c.dtype,
        layers: 4,
        width: 12,
        ...(c.near === undefined ? {} : { near: base, spread: c.near }),
      }),
    )
    writeModel(path.join(dir, "base"), base, c.shards ?? 1)
    for (const [k, m] of models.entries()) writeModel(path.join(dir, `m${k}`), m, k % 2 === 0 ? 1 : 2)
    const entries: ModelEntry[] = c.weights.map((w, k) => ({
      dir: path.join(dir, `m${k}`),
      ...(w === undefined ? {} : { weight: w }),
    }))
    const summary = await Effect.runPromise(
      mergeModels({
        method: c.method,
        base: path.join(dir, "base"),
        models: entries,
        params: c.params,
        out: path.join(dir, "ts"),
        ...(c.out === undefined ? {} : { dtype: c.out }),
      }),
    )
    expect(summary.merged).toBe(Object.keys(base).length - 1)
    expect(summary.copied).toBe(1)
    const spec = {
      method: c.method,
      base: path.join(dir, "base"),
      models: entries,
      params: c.params,
      out: path.join(dir, "torch"),
      dtype: c.out ?? null,
    }
    execFileSync(python, ["-m", "rollout_trainer.merge_reference", "--spec", JSON.stringify(spec)], {
      cwd: path.resolve("trainer"),
      encoding: "utf8",
    })
    const ours = readModel(path.join(dir, "ts"))
    const theirs = readModel(path.join(dir, "torch"))
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort())
    let compared = 0
    let worst = 0
    for (const [name, t] of Object.entries(theirs)) {
      const o = ours[name]
      expect(o?.dtype, name).toBe(t.dtype)
      expect(o?.shape, name).toEqual(t.shape)
      if (!(t.values instanceof Float32Array)) {
        expect(Array.from(o?.raw ?? []), name).toEqual(Array.from(t.raw))
        continue
      }
      const { rtol, atol } = tolerance[t.dtype] as { rtol: number; atol: number }
      const a = o?.values as Float32Array
      for (let k = 0; k < t.values.length; k++) {
        const want = t.values[k] as number
        const got = a[k] as number
        const error = Math.abs(got - want)
        worst = Math.max(worst, error / (Math.abs(want) + 1e-30))
        if (error > rtol * Math.abs(want) + atol)
          expect.fail(
            `${c.name}: ${name}[${k}] is ${got}, torch has ${want} (tolerance ${rtol}·|x| + ${atol})`,
          )
        compared++
      }
    }
    expect(compared).toBeGreaterThan(1000)
  })
})
