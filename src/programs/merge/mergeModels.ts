/**
 * `mergeModels`: the streaming shell around the merge formulas, callable by the CLI (`rollout
 * merge`) and by anything else that wants a merged checkpoint (the RL loop's policy blends). It
 * opens the base and the models (headers only), refuses a merge that cannot be done — tensors
 * missing from a model or extra in it, shapes that differ, weights that sum to zero where the
 * method divides by them, an output folder that already holds a checkpoint — before it writes
 * anything, then goes through the base's shards and, for each, writes the header and then one
 * tensor at a time: read that tensor from every model, decode to float32, merge, encode to the
 * output dtype, write. Only one tensor's worth of data is in memory at once, in buffers sized for
 * the largest tensor and reused for every tensor (about (models + 1) × its float32 size, plus its
 * stored and output sizes). The output keeps the
 * base's sharding (and its index), metadata and side files (config.json, tokenizer files);
 * tensors that are not floats (integer buffers) are copied from the base. Shards are written as
 * `.partial` files and renamed when all are done, so a failed merge leaves no half checkpoint.
 */
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { type DType, dtypeSize } from "../../events/tensors/dtypes.ts"
import { renderShardIndex, shardIndexFile } from "../../events/tensors/shardIndex.ts"
import { openSafetensorsWriter, type SafetensorsWriter } from "../../runtime/safetensorsFile.ts"
import { layerCount } from "./layerParams.ts"
import {
  checkTensorWeights,
  MergeError,
  type MergePlan,
  type MethodName,
  type ModelEntry,
  mergeTensor,
  type ParamValue,
  parseMethod,
  planMerge,
} from "./mergeSpec.ts"
import { type ModelDir, openModelDir, readModelTensor, singleFile } from "./modelDir.ts"
import { decodeFloats, encodeFloats, type FloatDType, isFloatDType } from "./tensorCodec.ts"

export interface MergeProgress {
  readonly tensorsDone: number
  readonly tensorsTotal: number
  readonly bytesDone: number
  readonly bytesTotal: number
  readonly tensor: string
}

export interface MergeOptions {
  readonly method: MethodName | string
  readonly base: string
  readonly models: ReadonlyArray<ModelEntry>
  readonly params?: Readonly<Record<string, ParamValue>>
  readonly out: string
  /** The float tensors' output dtype (default: each tensor keeps the base's). */
  readonly dtype?: FloatDType
  /** Called after each tensor. */
  readonly onProgress?: (progress: MergeProgress) => void
}

export interface MergeSummary {
  readonly method: MethodName
  readonly out: string
  readonly files: ReadonlyArray<string>
  readonly tensors: number
  /** Float tensors merged, and other tensors copied from the base. */
  readonly merged: number
  readonly copied: number
  readonly layers: number
  readonly bytesRead: number
  readonly bytesWritten: number
  /** The largest tensor as the base stores it, and as merged in float32. */
  readonly largestTensorBytes: number
  readonly largestTensorF32Bytes: number
  readonly sideFiles: ReadonlyArray<string>
  readonly seconds: number
}

const describe = (names: ReadonlyArray<string>): string =>
  names
    .slice(0, 5)
    .map((n) => `"${n}"`)
    .join(", ") + (names.length > 5 ? ` and ${names.length - 5} more` : "")

/** Every model must hold exactly the base's tensors, each of the same shape. */
const checkTensors = (base: ModelDir, model: ModelDir, label: string): void => {
  const missing = [...base.tensors.keys()].filter((n) => !model.tensors.has(n))
  if (missing.length > 0)
    throw new MergeError({
      reason: `${label} lacks ${missing.length} of the base's tensors: ${describe(missing)}`,
    })
  const extra = [...model.tensors.keys()].filter((n) => !base.tensors.has(n))
  if (extra.length > 0)
    throw new MergeError({
      reason: `${label} has ${extra.length} tensors the base lacks: ${describe(extra)}`,
    })
  const mismatched: string[] = []
  for (const [name, t] of base.tensors) {
    const other = model.tensors.get(name)?.info
    if (other === undefined) continue
    if (other.shape.join(",") !== t.info.shape.join(","))
      mismatched.push(`${name} [${other.shape.join(", ")}] vs the base's [${t.info.shape.join(", ")}]`)
    else if (isFloatDType(t.info.dtype) !== isFloatDType(other.dtype))
      mismatched.push(`${name} is ${other.dtype}, the base's is ${t.info.dtype}`)
  }
  if (mismatched.length > 0)
    throw new MergeError({
      reason: `${label}: ${mismatched.length} tensors differ in shape or kind: ${describe(mismatched)}`,
    })
}

/** The output folder: new or empty of checkpoints, and none of the inputs. */
const prepareOut = async (out: string, inputs: ReadonlyArray<string>): Promise<void> => {
  if (inputs.includes(out))
    throw new MergeError({ reason: `--out ${out} is one of the merged models: choose a new folder` })
  const info = await stat(out).catch(() => undefined)
  if (info !== undefined && !info.isDirectory())
    throw new MergeError({ reason: `--out ${out} exists and is not a folder` })
  if (info !== undefined) {
    const held = (await readdir(out)).filter((n) => n.endsWith(".safetensors") || n === shardIndexFile)
    if (held.length > 0)
      throw new MergeError({
        reason: `--out ${out} already holds a checkpoint (${describe(held)}): choose an empty folder`,
      })
  }
  try {
    await mkdir(out, { recursive: true })
  } catch (error) {
    throw new MergeError({
      reason: `--out ${out}: ${error instanceof Error ? error.message : String(error)}`,
    })
  }
}

/** The base's other files a checkpoint needs to be served (config, tokenizer), copied to the output. */
const copySideFiles = async (base: string, out: string): Promise<string[]> => {
  const copied: string[] = []
  for (const entry of await readdir(base, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name.endsWith(".safetensors") || entry.name === shardIndexFile) continue
    if (entry.name.endsWith(".partial")) continue
    await copyFile(path.join(base, entry.name), path.join(out, entry.name))
    copied.push(entry.name)
  }
  return copied
}

const run = async (options: MergeOptions): Promise<MergeSummary> => {
  const started = performance.now()
  const method = parseMethod(options.method)
  if (method instanceof MergeError) throw method
  const plan: MergePlan | MergeError = planMerge(method, options.models, options.params ?? {})
  if (plan instanceof MergeError) throw plan
  const out = path.resolve(options.out)
  const opened: ModelDir[] = []
  const writers: SafetensorsWriter[] = []
  try {
    const base = await openModelDir(options.base, "--base")
    opened.push(base)
    for (const [i, m] of plan.models.entries()) {
      const model = await openModelDir(m.dir, `--models entry ${i + 1} (${m.dir})`)
      opened.push(model)
      checkTensors(base, model, `model ${m.dir}`)
    }
    const models = opened.slice(1)
    const layers = layerCount(base.tensors.keys())
    let largest = 0
    let largestF32 = 0
    let bytesTotal = 0
    for (const [name, t] of base.tensors) {
      const bytes = t.info.end - t.info.begin
      largest = Math.max(largest, bytes)
      if (isFloatDType(t.info.dtype)) {
        const error = checkTensorWeights(plan, name, layers)
        if (error !== undefined) throw error
        largestF32 = Math.max(largestF32, (bytes / dtypeSize(t.info.dtype)) * 4)
      }
      bytesTotal += bytes * opened.length
    }
    await prepareOut(
      out,
      opened.map((m) => m.dir),
    )
    const outputDType = (dtype: DType): DType =>
      isFloatDType(dtype) && options.dtype !== undefined ? options.dtype : dtype
    // The working memory, allocated once for the largest tensor and reused for every tensor: one
    // buffer for stored bytes (read, then decoded), one float32 array per model (the base's also
    // takes the result), one for encoded output. That is the merge's whole footprint.
    let largestStored = 0
    let largestElements = 0
    let largestOutput = 0
    for (const model of opened)
      for (const t of model.tensors.values()) {
        const bytes = t.info.end - t.info.begin
        largestStored = Math.max(largestStored, bytes)
        if (isFloatDType(t.info.dtype)) {
          const elements = bytes / dtypeSize(t.info.dtype)
          largestElements = Math.max(largestElements, elements)
          largestOutput = Math.max(largestOutput, elements * dtypeSize(outputDType(t.info.dtype)))
        }
      }
    const stored = new Uint8Array(largestStored)
    const floats = opened.map(() => new Float32Array(largestElements))
    const encoded = new Uint8Array(largestOutput)
    const metadataOf = (meta: Readonly<Record<string, string>>): Record<string, string> => ({
      ...meta,
      rollout_merge: JSON.stringify({
        method: plan.method,
        weights: plan.models.map((m) => m.weight),
        params: options.params ?? {},
      }),
    })
    let tensorsDone = 0
    let bytesDone = 0
    let bytesWritten = 0
    let merged = 0
    let copied = 0
    const files: string[] = []
    for (const file of base.files) {
      const target = path.join(out, `${file.name}.partial`)
      const opening = await openSafetensorsWriter(
        target,
        file.layout.tensors.map((t) => ({ name: t.name, dtype: outputDType(t.dtype), shape: t.shape })),
        metadataOf(file.layout.metadata),
      )
      if (Result.isFailure(opening))
        throw new MergeError({ reason: `writing ${file.name}: ${opening.failure.message}` })
      const writer = opening.success
      writers.push(writer)
      bytesWritten += writer.plan.header.byteLength + writer.plan.dataLength
      for (const placed of writer.plan.tensors) {
        const baseTensor = base.tensors.get(placed.name)
        if (baseTensor === undefined)
          throw new MergeError({ reason: `internal: "${placed.name}" vanished from the base` })
        const baseBytes = await readModelTensor(base, baseTensor, stored)
        let output: Uint8Array
        if (isFloatDType(baseTensor.info.dtype) && isFloatDType(placed.dtype)) {
          const baseValues = decodeFloats(baseTensor.info.dtype, baseBytes, floats[0])
          const modelValues: Float32Array[] = []
          for (const [k, model] of models.entries()) {
            const t = model.tensors.get(placed.name)
            if (t === undefined || !isFloatDType(t.info.dtype))
              throw new MergeError({ reason: `internal: "${placed.name}" vanished from ${model.dir}` })
            modelValues.push(
              decodeFloats(t.info.dtype, await readModelTensor(model, t, stored), floats[k + 1]),
            )
          }
          // The result replaces the base's values (mergeTensor allows it), then is encoded.
          const result = mergeTensor(plan, placed.name, layers, baseValues, modelValues, baseValues)
          output = encodeFloats(placed.dtype, result, encoded)
          merged++
        } else {
          output = baseBytes
          copied++
        }
        const wrote = await writer.write(placed.name, output)
        if (Result.isFailure(wrote))
          throw new MergeError({ reason: `writing ${file.name}: ${wrote.failure.message}` })
        tensorsDone++
        bytesDone += (baseTensor.info.end - baseTensor.info.begin) * opened.length
        options.onProgress?.({
          tensorsDone,
          tensorsTotal: base.tensors.size,
          bytesDone,
          bytesTotal,
          tensor: placed.name,
        })
      }
      const closed = await writer.close()
      if (Result.isFailure(closed))
        throw new MergeError({ reason: `writing ${file.name}: ${closed.failure.message}` })
      files.push(file.name)
    }
    if (base.index !== undefined) {
      const weightMap = new Map<string, string>()
      for (const file of base.files) for (const t of file.layout.tensors) weightMap.set(t.name, file.name)
      const totalSize = writers.reduce((sum, w) => sum + w.plan.dataLength, 0)
      const text = renderShardIndex({ weightMap, totalSize, metadata: base.index.metadata })
      if (Result.isFailure(text))
        throw new MergeError({ reason: `writing ${shardIndexFile}: ${text.failure.message}` })
      await writeFile(path.join(out, `${shardIndexFile}.partial`), text.success)
    }
    const sideFiles = await copySideFiles(base.dir, out)
    for (const name of files) await rename(path.join(out, `${name}.partial`), path.join(out, name))
    if (base.index !== undefined)
      await rename(path.join(out, `${shardIndexFile}.partial`), path.join(out, shardIndexFile))
    return {
      method: plan.method,
      out,
      files: base.index === undefined ? files : [...files, shardIndexFile],
      tensors: base.tensors.size,
      merged,
      copied,
      layers,
      bytesRead: bytesTotal,
      bytesWritten,
      largestTensorBytes: largest,
      largestTensorF32Bytes: largestF32,
      sideFiles,
      seconds: (performance.now() - started) / 1000,
    }
  } catch (error) {
    for (const w of writers) await w.abort()
    await rm(path.join(out, `${shardIndexFile}.partial`), { force: true }).catch(() => undefined)
    throw error
  } finally {
    for (const m of opened) await m.close()
  }
}

/** Merge checkpoints as `options` says; the summary says what was written. */
export const mergeModels = (options: MergeOptions): Effect.Effect<MergeSummary, MergeError> =>
  Effect.tryPromise({
    try: () => run(options),
    catch: (error) =>
      error instanceof MergeError
        ? error
        : new MergeError({
            reason: `merge failed: ${error instanceof Error ? error.message : String(error)}`,
          }),
  })

export { MergeError, singleFile }
