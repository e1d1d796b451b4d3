/**
 * `mergeModels` on model folders and `rollout merge` as a user runs it (the compiled CLI): one-file
 * and sharded checkpoints in and out (the output keeps the base's sharding, index, metadata and
 * side files), a model merged with itself is the model byte for byte, the output dtype by flag,
 * integer tensors copied, and every refusal named before anything is written: a missing folder, a
 * tensor missing from a model or extra in it, mismatched shapes, weights summing to zero, an
 * output folder that already holds a checkpoint, a bad --param, an unknown method with suggestions,
 * a bad --dtype. `--json` prints one JSON object; progress goes to stderr.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { afterAll, describe, expect, it } from "vitest"
import { mergeModels } from "../../src/programs/merge/mergeModels.ts"
import { runRollout } from "../support/cli.ts"
import { randomModel, readModel, writeModel } from "../unit/merge/checkpoints.ts"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-merge-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
const at = (...parts: string[]) => path.join(root, ...parts)

const failure = async (options: Parameters<typeof mergeModels>[0]): Promise<string> => {
  const exit = await Effect.runPromiseExit(mergeModels(options))
  if (Exit.isSuccess(exit)) throw new Error("the merge was accepted")
  return String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error.message : r._tag)).join("; "))
}

describe("mergeModels", () => {
  const base = randomModel(1, { dtype: "BF16" })
  const other = randomModel(2, { dtype: "BF16" })
  writeModel(at("base"), base, 1)
  writeModel(at("base-sharded"), base, 3)
  writeModel(at("other"), other, 2)
  fs.writeFileSync(at("base-sharded", "config.json"), '{"model_type": "toy"}\n')

  it("merges a model with itself into the same bytes, for every method, single file and sharded", async () => {
    const cases = [
      ["linear", {}],
      ["slerp", { t: 0.3 }],
      ["task_arithmetic", { lambda: 0.5 }],
      ["ties", { density: 0.3 }],
      ["dare_linear", { density: 0.5 }],
      ["dare_ties", { density: 0.5, rescale: "inverse" }],
    ] as const
    for (const [method, params] of cases) {
      const out = at(`self-${method}`)
      await Effect.runPromise(
        mergeModels({ method, base: at("base-sharded"), models: [{ dir: at("base") }], params, out }),
      )
      const ours = readModel(out)
      const theirs = readModel(at("base-sharded"))
      expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort())
      for (const [name, t] of Object.entries(theirs))
        expect(Buffer.from(ours[name]?.raw ?? []).equals(Buffer.from(t.raw)), `${method} ${name}`).toBe(true)
    }
  })

  it("keeps the base's sharding, index, metadata and side files, and writes the dtype asked", async () => {
    const out = at("sharded-f32")
    const summary = await Effect.runPromise(
      mergeModels({
        method: "linear",
        base: at("base-sharded"),
        models: [{ dir: at("other"), weight: [1, 3] }],
        out,
        dtype: "F32",
      }),
    )
    expect(summary.files).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
    ])
    expect(summary.sideFiles).toEqual(["config.json"])
    expect(fs.readdirSync(out).sort()).toEqual([...summary.files, "config.json"].sort())
    expect(summary.merged).toBe(Object.keys(base).length - 1)
    expect(summary.copied).toBe(1)
    const merged = readModel(out)
    const index = JSON.parse(fs.readFileSync(path.join(out, "model.safetensors.index.json"), "utf8"))
    expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(base).sort())
    expect(index.metadata.total_size).toBe(Object.values(merged).reduce((s, t) => s + t.raw.byteLength, 0))
    // layer 0 of 3 → the model's weight 1: (base + other) / 2; the last layer → 3: (base + 3·other) / 4
    const name0 = "model.layers.0.mlp.up_proj.weight"
    const name2 = "model.layers.2.mlp.up_proj.weight"
    for (const [name, w] of [
      [name0, 1],
      [name2, 3],
    ] as const) {
      const b = base[name]?.values as Float32Array
      const o = other[name]?.values as Float32Array
      const m = merged[name]
      expect(m?.dtype).toBe("F32")
      for (let i = 0; i < b.length; i++)
        expect(m?.values[i]).toBeCloseTo(((b[i] as number) + w * (o[i] as number)) / (1 + w), 5)
    }
    expect(Array.from(merged["model.rotary.positions"]?.raw ?? [])).toEqual(
      Array.from(base["model.rotary.positions"]?.values ?? []),
    )
  })

  it("refuses what it cannot merge, naming the tensors, before writing anything", async () => {
    const missing = { ...other }
    delete (missing as Record<string, unknown>)["model.layers.1.mlp.up_proj.weight"]
    writeModel(at("missing"), missing)
    const extra = {
      ...other,
      "extra.weight": { dtype: "F32" as const, shape: [2], values: new Float32Array(2) },
    }
    writeModel(at("extra"), extra)
    const reshaped = {
      ...other,
      "model.norm.weight": { dtype: "BF16" as const, shape: [4, 2], values: new Float32Array(8) },
    }
    writeModel(at("reshaped"), reshaped)
    const out = at("refused")
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("missing") }], out }),
    ).toMatch(/lacks 1 of the base's tensors: "model.layers.1.mlp.up_proj.weight"/)
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("extra") }], out }),
    ).toMatch(/has 1 tensors the base lacks: "extra.weight"/)
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("reshaped") }], out }),
    ).toMatch(/model.norm.weight \[4, 2\] vs the base's \[8\]/)
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("other"), weight: -1 }], out }),
    ).toMatch(/weights of tensor ".*" sum to zero \(1 \+ -1\)/)
    expect(
      await failure({ method: "linear", base: at("nowhere"), models: [{ dir: at("other") }], out }),
    ).toContain("--base")
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("base") }], out: at("base") }),
    ).toContain("is one of the merged models")
    expect(fs.existsSync(out) && fs.readdirSync(out).length > 0).toBe(false)
  })

  it("refuses an index that names a missing shard or a tensor the shard lacks", async () => {
    writeModel(at("broken"), other, 2)
    const indexPath = at("broken", "model.safetensors.index.json")
    const index = JSON.parse(fs.readFileSync(indexPath, "utf8"))
    index.weight_map["model.norm.weight"] = "model-00001-of-00002.safetensors"
    fs.writeFileSync(indexPath, JSON.stringify(index))
    const message = await failure({
      method: "linear",
      base: at("base"),
      models: [{ dir: at("broken") }],
      out: at("o1"),
    })
    expect(message).toMatch(
      /puts tensor "model.norm.weight" in model-00001-of-00002.safetensors, which does not hold it|holds tensor "model.norm.weight"/,
    )
    fs.rmSync(at("broken", "model-00002-of-00002.safetensors"))
    expect(
      await failure({ method: "linear", base: at("base"), models: [{ dir: at("broken") }], out: at("o1") }),
    ).toContain("names the shard model-00002-of-00002.safetensors, which is missing")
    fs.mkdirSync(at("empty"))
    expect(
      await failure({ method: "linear", base: at("empty"), models: [{ dir: at("other") }], out: at("o1") }),
    ).toContain("neither model.safetensors nor model.safetensors.index.json")
  })
})

describe("rollout merge", () => {
  const cwd = root
  it("merges and prints one JSON object with --json; progress on stderr", async () => {
    const r = await runRollout(
      [
        "merge",
        "--method",
        "ties",
        "--base",
        at("base"),
        "--models",
        `${at("other")}:0.7`,
        "--param",
        "density=[0.2,0.8]",
        "--out",
        at("cli-out"),
        "--dtype",
        "f16",
        "--json",
      ],
      { cwd },
    )
    expect(r.stderr).toMatch(/merge ties: \d+\/\d+ tensors/)
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary).toMatchObject({ method: "ties", dtype: "F16", files: ["model.safetensors"], copied: 1 })
    expect(summary.models).toEqual([{ dir: at("other"), weight: 0.7 }])
    expect(readModel(at("cli-out"))["model.norm.weight"]?.dtype).toBe("F16")
    const text = await runRollout(
      [
        "merge",
        "--method",
        "slerp",
        "--base",
        at("base"),
        "--models",
        at("other"),
        "--param",
        "t=0.5",
        "--out",
        at("cli-text"),
      ],
      { cwd },
    )
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/merged \d+ tensors \(1 copied from the base\) of 2 models with slerp/)
  })
  it.each([
    [["--method", "dare"], /unknown method "dare" \(did you mean "dare_linear" or "dare_ties"\?\)/],
    [
      ["--method", "ties", "--param", "densty=0.5"],
      /--param densty: unknown parameter \(did you mean "density"\?\)/,
    ],
    [["--method", "ties", "--param", "density=lots"], /--param density: "lots" is not a number/],
    [["--method", "ties"], /ties needs --param density/],
    [["--method", "linear", "--dtype", "f8"], /--dtype must be one of f32, f16, bf16, got "f8"/],
    [["--method", "linear", "--base", "no-such-dir"], /--base no-such-dir: no such directory/],
    [["--method", "linear", "--out", "cli-out"], /already holds a checkpoint/],
  ])("refuses %j clearly", async (flags, message) => {
    const defaults: Record<string, string> = {
      "--base": at("base"),
      "--models": at("other"),
      "--out": at("never"),
    }
    const args = [...flags]
    for (const [flag, value] of Object.entries(defaults)) if (!args.includes(flag)) args.push(flag, value)
    const r = await runRollout(["merge", ...args], { cwd })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(message)
    expect(r.stdout).toBe("")
  })
})
