/**
 * `npm run bench -- merge [--gb N] [--largest-mb N] [--method m] [--json] [--check]`: model merging
 * streamed one tensor at a time. Two synthetic BF16 checkpoints of N GB each (default 1; shaped
 * like a language model: one large embedding of --largest-mb, the rest 16 MB layer tensors, in two
 * shards with an index) are written to a temp folder, merged with `mergeModels`, and the folder is
 * deleted after. Measured in the same run: a plain file copy of the base checkpoint (read and write
 * through one 8 MB buffer; the baseline for MB/s) and the merge, reported as MB of checkpoint
 * produced per second and as input read per second; the merge's peak RSS (the kernel's high-water
 * mark, reset before the merge, and 20 ms samples) against the largest tensor. Both inputs were
 * just written, so both phases read from the page cache alike.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { renderShardIndex, shardFileName, shardIndexFile } from "../src/events/tensors/shardIndex.ts"
import { mergeModels } from "../src/programs/merge/mergeModels.ts"
import { methodNames } from "../src/programs/merge/mergeSpec.ts"
import { openSafetensorsWriter } from "../src/runtime/safetensorsFile.ts"
import type { Benchmark } from "./benchmark.ts"
import { Resources } from "./resources.ts"

const MB = 1e6
const LAYER_TENSOR_BYTES = 16 * 1024 * 1024
const COPY_BUFFER = 8 * 1024 * 1024

interface TensorPlan {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly bytes: number
}

/** A language-model-shaped list of BF16 tensors adding up to about `total` bytes. */
const shapeCheckpoint = (total: number, largest: number): TensorPlan[] => {
  const width = 2048
  const embedding = { name: "model.embed_tokens.weight", shape: [largest / 2 / width, width], bytes: largest }
  const tensors: TensorPlan[] = [embedding]
  let left = total - largest
  for (let layer = 0; left > 0; layer++)
    for (const part of ["self_attn.qkv_proj", "mlp.up_proj"]) {
      if (left <= 0) break
      tensors.push({
        name: `model.layers.${layer}.${part}.weight`,
        shape: [LAYER_TENSOR_BYTES / 2 / width, width],
        bytes: LAYER_TENSOR_BYTES,
      })
      left -= LAYER_TENSOR_BYTES
    }
  tensors.push({ name: "model.norm.weight", shape: [width], bytes: width * 2 })
  return tensors
}

/** Random BF16 values in roughly [-1, 1): a pool that tensors take rotated slices of. */
const randomPool = (elements: number): Uint16Array => {
  const pool = new Uint16Array(elements)
  const f32 = new Float32Array(1)
  const bits = new Uint32Array(f32.buffer)
  for (let i = 0; i < elements; i++) {
    f32[0] = Math.random() * 2 - 1
    pool[i] = (bits[0] as number) >>> 16
  }
  return pool
}

/** Write a two-shard checkpoint of these tensors, streamed, with its index. */
const writeCheckpoint = async (dir: string, tensors: ReadonlyArray<TensorPlan>, pool: Uint16Array) => {
  fs.mkdirSync(dir, { recursive: true })
  const half = Math.ceil(tensors.length / 2)
  const shards = [tensors.slice(0, half), tensors.slice(half)]
  const weightMap = new Map<string, string>()
  let totalSize = 0
  for (const [i, shard] of shards.entries()) {
    const file = shardFileName(i, shards.length)
    const writer = Result.getOrThrow(
      await openSafetensorsWriter(
        path.join(dir, file),
        shard.map((t) => ({ name: t.name, dtype: "BF16" as const, shape: t.shape })),
        { format: "pt" },
      ),
    )
    for (const t of writer.plan.tensors) {
      const n = (t.end - t.begin) / 2
      const data = new Uint16Array(n)
      const start = Math.floor(Math.random() * pool.length)
      for (let at = 0; at < n; ) {
        const from = (start + at) % pool.length
        const take = Math.min(n - at, pool.length - from)
        data.set(pool.subarray(from, from + take), at)
        at += take
      }
      Result.getOrThrow(await writer.write(t.name, new Uint8Array(data.buffer)))
      weightMap.set(t.name, file)
      totalSize += t.end - t.begin
    }
    Result.getOrThrow(await writer.close())
  }
  fs.writeFileSync(
    path.join(dir, shardIndexFile),
    Result.getOrThrow(renderShardIndex({ weightMap, totalSize })),
  )
  return totalSize
}

/** A plain copy of every file of a folder, read and written through one buffer. */
const copyFolder = (from: string, to: string): number => {
  fs.mkdirSync(to, { recursive: true })
  const buffer = Buffer.allocUnsafe(COPY_BUFFER)
  let bytes = 0
  for (const name of fs.readdirSync(from)) {
    const input = fs.openSync(path.join(from, name), "r")
    const output = fs.openSync(path.join(to, name), "w")
    for (;;) {
      const n = fs.readSync(input, buffer, 0, buffer.length, null)
      if (n === 0) break
      fs.writeSync(output, buffer, 0, n)
      bytes += n
    }
    fs.closeSync(input)
    fs.closeSync(output)
  }
  return bytes
}

/** The kernel's peak RSS of this process (VmHWM), in bytes; undefined where /proc is not there. */
const peakRss = (): number | undefined => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Reset the peak RSS to the current RSS (Linux: writing 5 to clear_refs); false where not allowed. */
const resetPeakRss = (): boolean => {
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5")
    return true
  } catch {
    return false
  }
}

const runMerge = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      gb: { type: "string", default: "1" },
      "largest-mb": { type: "string", default: "64" },
      method: { type: "string", default: "linear" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const gb = Number(values.gb)
  if (!(gb > 0 && gb <= 64)) throw new Error(`--gb must be a number in (0, 64], got ${values.gb}`)
  const largestMb = Number(values["largest-mb"])
  if (!(Number.isInteger(largestMb) && largestMb >= 16 && largestMb <= 4096))
    throw new Error(`--largest-mb must be an integer from 16 to 4096, got ${values["largest-mb"]}`)
  const method = values.method
  if (!(methodNames as ReadonlyArray<string>).includes(method))
    throw new Error(`--method must be one of ${methodNames.join(", ")}, got ${method}`)
  const params: Record<string, number> =
    method === "slerp" ? { t: 0.4 } : method === "ties" || method.startsWith("dare") ? { density: 0.5 } : {}

  const resources = new Resources()
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up\n`)
    resources.release().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    const root = resources.tempDir("rollout-bench-merge-")
    const tensors = shapeCheckpoint(Math.round(gb * 1024 ** 3), largestMb * 1024 * 1024)
    const largestTensor = Math.max(...tensors.map((t) => t.bytes))
    process.stderr.write(
      `merge benchmark: two BF16 checkpoints of ${tensors.length} tensors, ${gb} GB each (largest ${largestMb} MiB), ${method}\n`,
    )
    const pool = randomPool(8 * 1024 * 1024)
    const checkpointBytes = await writeCheckpoint(path.join(root, "base"), tensors, pool)
    await writeCheckpoint(path.join(root, "other"), tensors, pool)

    const copyStart = performance.now()
    const copied = copyFolder(path.join(root, "base"), path.join(root, "copy"))
    const copySeconds = (performance.now() - copyStart) / 1000
    fs.rmSync(path.join(root, "copy"), { recursive: true, force: true })

    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const rssBefore = process.memoryUsage().rss
    const kernelPeak = resetPeakRss()
    let sampledPeak = rssBefore
    const sampler = setInterval(() => {
      sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss)
    }, 20)
    let lastReport = 0
    const summary = await Effect.runPromise(
      mergeModels({
        method,
        base: path.join(root, "base"),
        models: [{ dir: path.join(root, "other"), weight: 0.5 }],
        params,
        out: path.join(root, "merged"),
        onProgress: (p) => {
          const now = performance.now()
          if (now - lastReport < 2000 && p.tensorsDone < p.tensorsTotal) return
          lastReport = now
          process.stderr.write(`  merged ${p.tensorsDone}/${p.tensorsTotal} tensors\n`)
        },
      }),
    ).finally(() => clearInterval(sampler))
    const peak = Math.max(sampledPeak, (kernelPeak ? peakRss() : undefined) ?? 0)
    const growth = peak - rssBefore

    const copyRate = copied / MB / copySeconds
    const mergeRate = summary.bytesWritten / MB / summary.seconds
    const readRate = summary.bytesRead / MB / summary.seconds
    const targets = [
      {
        name: "peak RSS growth during the merge",
        goal: `≤ 8 × the largest tensor (${((8 * largestTensor) / MB).toFixed(0)} MB)`,
        actual: `${(growth / MB).toFixed(0)} MB = ${(growth / largestTensor).toFixed(2)} × the largest tensor`,
        pass: growth <= 8 * largestTensor,
      },
      {
        name: "merge throughput vs a plain copy",
        goal: "≥ 0.25 × the copy's MB/s",
        actual: `${mergeRate.toFixed(0)} vs ${copyRate.toFixed(0)} MB/s = ${(mergeRate / copyRate).toFixed(2)} ×`,
        pass: mergeRate >= 0.25 * copyRate,
      },
    ]
    const environment = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      peakFrom: kernelPeak ? "VmHWM (reset before the merge) and 20 ms samples" : "20 ms samples",
    }
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          benchmark: "merge",
          method,
          checkpointBytes,
          tensors: tensors.length,
          largestTensorBytes: largestTensor,
          copy: { bytes: copied, seconds: copySeconds, mbPerSecond: copyRate },
          merge: {
            bytesRead: summary.bytesRead,
            bytesWritten: summary.bytesWritten,
            seconds: summary.seconds,
            mbPerSecond: mergeRate,
            readMbPerSecond: readRate,
            ofCopy: mergeRate / copyRate,
          },
          memory: { rssBefore, peakRss: peak, growth, growthOfLargestTensor: growth / largestTensor },
          environment,
          targets,
        })}\n`,
      )
    } else {
      process.stdout.write(
        `\nmerge benchmark (${method}): two ${(checkpointBytes / MB).toFixed(0)} MB BF16 checkpoints, ${tensors.length} tensors, ` +
          `largest ${(largestTensor / MB).toFixed(1)} MB; node ${environment.node}, ${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}\n\n` +
          `plain copy of the base (baseline): ${(copied / MB).toFixed(0)} MB in ${copySeconds.toFixed(2)} s = ${copyRate.toFixed(0)} MB/s\n` +
          `merge: ${(summary.bytesRead / MB).toFixed(0)} MB read, ${(summary.bytesWritten / MB).toFixed(0)} MB written in ${summary.seconds.toFixed(2)} s = ` +
          `${mergeRate.toFixed(0)} MB/s written (${readRate.toFixed(0)} MB/s read), ${(mergeRate / copyRate).toFixed(2)} × the copy\n` +
          `RSS: ${(rssBefore / MB).toFixed(0)} MB before, ${(peak / MB).toFixed(0)} MB peak (+${(growth / MB).toFixed(0)} MB = ${(growth / largestTensor).toFixed(2)} × the largest tensor)\n\n`,
      )
      for (const t of targets)
        process.stdout.write(`${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.actual} (goal ${t.goal})\n`)
    }
    return values.check && targets.some((t) => !t.pass) ? 1 : 0
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    await resources.release()
  }
}

export const mergeBenchmark: Benchmark = {
  name: "merge",
  summary:
    "streamed model merge of two synthetic ≥ 1 GB BF16 checkpoints vs a plain file copy; peak RSS vs the largest tensor (--gb, --largest-mb, --method, --json, --check)",
  run: runMerge,
}
