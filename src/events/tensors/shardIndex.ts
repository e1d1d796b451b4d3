/**
 * The index of a sharded safetensors checkpoint, `model.safetensors.index.json`, pure: which shard
 * file holds each tensor (`weight_map`) and the checkpoint's total data size (`metadata.total_size`).
 * Reading validates it and answers a malformed index with a `ShardIndexError` naming the field —
 * never a throw; writing renders it as the Hugging Face writer does (keys sorted, two-space indent).
 * JSON objects are read with JSON.parse, so a key given twice keeps its last value, as every
 * Python reader of these files does.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/** The index's file name inside a model directory. */
export const shardIndexFile = "model.safetensors.index.json"

/** What is wrong and where: `field` is `index`, `weight_map`, `weight_map."name"`, `metadata.total_size`. */
export class ShardIndexError extends Schema.TaggedError<ShardIndexError>()("ShardIndexError", {
  field: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${shardIndexFile} ${this.field}: ${this.reason}`
  }
}

/** A validated index: tensor name → shard file name, the shards in first-seen order, the total size. */
export interface ShardIndex {
  readonly weightMap: ReadonlyMap<string, string>
  readonly shards: ReadonlyArray<string>
  readonly totalSize: number | undefined
  /** The other metadata entries, kept as they were so a rewrite does not lose them. */
  readonly metadata: Readonly<Record<string, unknown>>
}

const fail = (field: string, reason: string) => Result.fail(new ShardIndexError({ field, reason }))

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * A shard must be a plain file name next to the index: no folder part (it would let an index point
 * outside its model directory), ending in `.safetensors`.
 */
export const shardNameProblem = (file: string): string | undefined => {
  if (file.length === 0) return "is empty"
  if (file.includes("/") || file.includes("\\") || file.includes("\0"))
    return `${JSON.stringify(file)} is not a plain file name (no folders)`
  if (file === "." || file === "..") return `${JSON.stringify(file)} is not a file name`
  if (!file.endsWith(".safetensors")) return `${JSON.stringify(file)} does not end in .safetensors`
  return undefined
}

/** Parse and validate the text of a `model.safetensors.index.json`. */
export const parseShardIndex = (text: string): Result.Result<ShardIndex, ShardIndexError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return fail("index", `is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (!isObject(json)) return fail("index", "is not a JSON object")
  const map = json.weight_map
  if (map === undefined) return fail("weight_map", "is missing")
  if (!isObject(map)) return fail("weight_map", "must be an object of tensor name → shard file name")
  const weightMap = new Map<string, string>()
  const shards: string[] = []
  const seen = new Set<string>()
  for (const [name, file] of Object.entries(map)) {
    const field = `weight_map.${JSON.stringify(name)}`
    if (name === "__metadata__") return fail(field, "is reserved for safetensors metadata")
    if (typeof file !== "string") return fail(field, "must be a shard file name (a string)")
    const problem = shardNameProblem(file)
    if (problem !== undefined) return fail(field, problem)
    weightMap.set(name, file)
    if (!seen.has(file)) {
      seen.add(file)
      shards.push(file)
    }
  }
  if (weightMap.size === 0) return fail("weight_map", "names no tensor")
  const metadata = json.metadata ?? {}
  if (!isObject(metadata)) return fail("metadata", "must be an object")
  const total = metadata.total_size
  if (total !== undefined && (typeof total !== "number" || !Number.isSafeInteger(total) || total < 0))
    return fail("metadata.total_size", `must be a non-negative integer, got ${JSON.stringify(total)}`)
  const rest: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(metadata))
    if (key !== "total_size")
      Object.defineProperty(rest, key, { value, enumerable: true, writable: true, configurable: true })
  return Result.succeed({ weightMap, shards, totalSize: total, metadata: rest })
}

/** JSON with object keys sorted at every level, indented by two spaces (Python's `sort_keys=True, indent=2`). */
const sortedJson = (value: unknown, indent: string): string => {
  if (Array.isArray(value))
    return value.length === 0
      ? "[]"
      : `[\n${value.map((v) => `${indent}  ${sortedJson(v, `${indent}  `)}`).join(",\n")}\n${indent}]`
  if (isObject(value)) {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return keys.length === 0
      ? "{}"
      : `{\n${keys.map((k) => `${indent}  ${JSON.stringify(k)}: ${sortedJson(value[k], `${indent}  `)}`).join(",\n")}\n${indent}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** The text of an index for these tensors: refuses a bad shard name or an empty map, like the reader. */
export const renderShardIndex = (index: {
  readonly weightMap: ReadonlyMap<string, string>
  readonly totalSize: number
  readonly metadata?: Readonly<Record<string, unknown>>
}): Result.Result<string, ShardIndexError> => {
  if (index.weightMap.size === 0) return fail("weight_map", "names no tensor")
  const map: Record<string, string> = {}
  for (const [name, file] of index.weightMap) {
    const field = `weight_map.${JSON.stringify(name)}`
    if (name === "__metadata__") return fail(field, "is reserved for safetensors metadata")
    const problem = shardNameProblem(file)
    if (problem !== undefined) return fail(field, problem)
    Object.defineProperty(map, name, { value: file, enumerable: true, writable: true, configurable: true })
  }
  if (!Number.isSafeInteger(index.totalSize) || index.totalSize < 0)
    return fail("metadata.total_size", `must be a non-negative integer, got ${index.totalSize}`)
  const metadata: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(index.metadata ?? {}))
    Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true })
  metadata.total_size = index.totalSize
  return Result.succeed(`${sortedJson({ metadata, weight_map: map }, "")}\n`)
}

/** The Hugging Face shard file name: `model-00001-of-00003.safetensors` (1-based). */
export const shardFileName = (index: number, count: number): string =>
  `model-${String(index + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`
