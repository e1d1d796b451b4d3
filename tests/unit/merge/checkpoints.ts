/**
 * Small checkpoints on disk for the merge tests: a model folder with one `model.safetensors` or
 * with shards and a `model.safetensors.index.json`, written from float32 values (stored as F32, F16
 * or BF16) through the package's own writer, and read back as float32 per tensor. Random values
 * come from a seeded generator so a failing case can be rerun.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Result from "effect/Result"
import { type DType, dtypeSize } from "../../../src/events/tensors/dtypes.ts"
import {
  readSafetensors,
  type TensorInput,
  tensorBytes,
  writeSafetensors as writeSafetensorsOf,
} from "../../../src/events/tensors/safetensors.ts"
import {
  parseShardIndex,
  renderShardIndex,
  shardFileName,
  shardIndexFile,
} from "../../../src/events/tensors/shardIndex.ts"
import {
  decodeFloats,
  encodeFloats,
  type FloatDType,
  isFloatDType,
} from "../../../src/programs/merge/tensorCodec.ts"

export interface TensorSpec {
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  /** float32 values for float dtypes; raw bytes otherwise. */
  readonly values: Float32Array | Uint8Array
}

export type Model = Readonly<Record<string, TensorSpec>>

const elements = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)

/** Write a model folder: one file, or `shards` files split by tensor order. */
export const writeModel = (
  dir: string,
  model: Model,
  shards = 1,
  metadata: Record<string, string> = { format: "pt" },
) => {
  fs.mkdirSync(dir, { recursive: true })
  const names = Object.keys(model).sort()
  const groups: string[][] = Array.from({ length: shards }, () => [])
  for (const [i, name] of names.entries()) groups[Math.floor((i * shards) / names.length)]?.push(name)
  const weightMap = new Map<string, string>()
  let total = 0
  groups.forEach((group, i) => {
    const tensors: Record<string, TensorInput> = {}
    for (const name of group) {
      const t = model[name] as TensorSpec
      const data = isFloatDType(t.dtype)
        ? encodeFloats(t.dtype as FloatDType, Float32Array.from(t.values as Float32Array))
        : t.values
      tensors[name] = { dtype: t.dtype, shape: t.shape, data: Uint8Array.from(data) }
      total += elements(t.shape) * dtypeSize(t.dtype)
    }
    const bytes = Result.getOrThrow(
      Result.mapError(writeSafetensorsOf(tensors, metadata), (e) => new Error(e.message)),
    )
    const file = shards === 1 ? "model.safetensors" : shardFileName(i, shards)
    fs.writeFileSync(path.join(dir, file), bytes)
    for (const name of group) weightMap.set(name, file)
  })
  if (shards > 1)
    fs.writeFileSync(
      path.join(dir, shardIndexFile),
      Result.getOrThrow(
        Result.mapError(renderShardIndex({ weightMap, totalSize: total }), (e) => new Error(e.message)),
      ),
    )
}

/** Every tensor of a model folder (single or sharded): dtype, shape, float32 values or raw bytes. */
export const readModel = (dir: string): Record<string, TensorSpec & { readonly raw: Uint8Array }> => {
  const indexPath = path.join(dir, shardIndexFile)
  const files = fs.existsSync(indexPath)
    ? Result.getOrThrow(
        Result.mapError(parseShardIndex(fs.readFileSync(indexPath, "utf8")), (e) => new Error(e.message)),
      ).shards
    : ["model.safetensors"]
  const out: Record<string, TensorSpec & { readonly raw: Uint8Array }> = {}
  for (const file of files) {
    const st = Result.getOrThrow(
      Result.mapError(
        readSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, file)))),
        (e) => new Error(e.message),
      ),
    )
    for (const t of st.tensors) {
      const raw = Uint8Array.from(tensorBytes(st, t.name) as Uint8Array)
      out[t.name] = {
        dtype: t.dtype,
        shape: t.shape,
        raw,
        values: isFloatDType(t.dtype) ? Float32Array.from(decodeFloats(t.dtype as FloatDType, raw)) : raw,
      }
    }
  }
  return out
}

/** A seeded generator of standard normal draws (xorshift32 + Box–Muller), for reproducible tensors. */
export const normals = (seed: number) => {
  let s = seed >>> 0 || 1
  const next = () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return (s + 0.5) / 4294967296
  }
  return (n: number, scale = 1): Float32Array => {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++)
      out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next())
    return out
  }
}

/** A small transformer-shaped model: embeddings, `layers` blocks, final norm and head, plus an integer buffer. */
export const randomModel = (
  seed: number,
  options: {
    readonly layers?: number
    readonly dtype?: DType
    readonly width?: number
    readonly near?: Model
    readonly spread?: number
  } = {},
): Model => {
  const draw = normals(seed)
  const d = options.width ?? 8
  const dtype = options.dtype ?? "F32"
  const shapes: Record<string, number[]> = {
    "model.embed_tokens.weight": [16, d],
    "model.norm.weight": [d],
    "lm_head.weight": [16, d],
  }
  for (let i = 0; i < (options.layers ?? 3); i++) {
    shapes[`model.layers.${i}.self_attn.q_proj.weight`] = [d, d]
    shapes[`model.layers.${i}.mlp.up_proj.weight`] = [2 * d, d]
    shapes[`model.layers.${i}.input_layernorm.weight`] = [d]
  }
  const model: Record<string, TensorSpec> = {}
  for (const [name, shape] of Object.entries(shapes)) {
    const noise = draw(elements(shape), options.spread ?? 1)
    const near = options.near?.[name]?.values
    const values =
      near instanceof Float32Array ? Float32Array.from(near, (v, i) => v + (noise[i] as number)) : noise
    model[name] = { dtype, shape, values: Float32Array.from(encodeDecode(dtype, values)) }
  }
  model["model.rotary.positions"] = {
    dtype: "I64",
    shape: [4],
    values: new Uint8Array(new BigInt64Array([0n, 1n, 2n, 3n]).buffer),
  }
  return model
}

/** Values as a dtype would store them (rounded to bf16/f16 when that is the dtype). */
const encodeDecode = (dtype: DType, values: Float32Array): Float32Array =>
  isFloatDType(dtype)
    ? decodeFloats(dtype as FloatDType, Uint8Array.from(encodeFloats(dtype as FloatDType, values)))
    : values
