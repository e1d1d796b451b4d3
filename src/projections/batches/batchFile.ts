/**
 * The batch file `rollout.batch.v1` (docs/training.md), pure: `encodeBatch` writes a batch as one
 * safetensors file — deterministic, so the same batch always gives the same bytes and so the same
 * hash, which is what `rollout rl batch <step> --verify` compares — and `decodeBatch` reads one
 * back, checking every rule of the format (tensors, dtypes, shapes, offsets, masks, versions, the
 * header's metadata, the lag histogram against the tensors) and answering a file that breaks one
 * with a `BatchFileError` naming the field, never a throw. The trainer reads the same file in
 * Python; this reader is the format's executable definition.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import {
  readSafetensors,
  type SafetensorsBuffer,
  tensorBytes,
  writeSafetensors,
} from "../../events/tensors/safetensors.ts"
import type { Batch, SequenceInfo, SplitReason } from "./sequences.ts"
import { lagsOf } from "./sequences.ts"

export const BATCH_FORMAT = "rollout.batch.v1"

/** What is wrong and where: `field` names a tensor (`loss_mask[12]`), a metadata key, or `file`. */
export class BatchFileError extends Schema.TaggedError<BatchFileError>()("BatchFileError", {
  field: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `batch file ${this.field}: ${this.reason}`
  }
}

const fail = (field: string, reason: string) => Result.fail(new BatchFileError({ field, reason }))

const metadataKeys = ["format", "run", "step", "sequences", "lags", "drops"] as const
const tensorNames = [
  "token_ids",
  "loss_mask",
  "logprobs",
  "advantages",
  "versions",
  "seq_offsets",
  "temperature",
] as const
const splitReasons: ReadonlyArray<SplitReason> = ["start", "drift", "context_reset", "temperature"]

/** The header's `sequences` entry of one sequence, with its keys in the documented order. */
const sequenceJson = (s: SequenceInfo) => ({
  episode: s.episode,
  group: s.group,
  task: s.task,
  sample: s.sample,
  turns: [s.turns[0], s.turns[1]],
  score: s.score,
  advantage: s.advantage,
  split: s.split,
})

/**
 * The file's bytes. A batch whose tensors disagree in length is a defect of whoever built it (the
 * layout in sequences.ts cannot make one), so it throws, naming the tensor.
 */
export const encodeBatch = (batch: Batch): Uint8Array => {
  const t = batch.tokenIds.length
  const s = batch.sequences.length
  for (const [name, length] of [
    ["loss_mask", batch.lossMask.length],
    ["logprobs", batch.logprobs.length],
    ["advantages", batch.advantages.length],
    ["versions", batch.versions.length],
  ] as const)
    if (length !== t) throw new Error(`batch ${name} has ${length} elements, token_ids ${t}`)
  if (batch.seqOffsets.length !== s + 1 || batch.temperature.length !== s)
    throw new Error(
      `batch of ${s} sequences has ${batch.seqOffsets.length} offsets and ${batch.temperature.length} temperatures`,
    )
  const written = writeSafetensors(
    {
      token_ids: { dtype: "I32", shape: [t], data: batch.tokenIds },
      loss_mask: { dtype: "U8", shape: [t], data: batch.lossMask },
      logprobs: { dtype: "F32", shape: [t], data: batch.logprobs },
      advantages: { dtype: "F32", shape: [t], data: batch.advantages },
      versions: { dtype: "I32", shape: [t], data: batch.versions },
      seq_offsets: {
        dtype: "I64",
        shape: [s + 1],
        data: BigInt64Array.from(batch.seqOffsets, (offset) => BigInt(offset)),
      },
      temperature: { dtype: "F32", shape: [s], data: batch.temperature },
    },
    {
      format: BATCH_FORMAT,
      run: batch.run,
      step: String(batch.step),
      sequences: JSON.stringify(batch.sequences.map(sequenceJson)),
      lags: JSON.stringify(batch.lags.map(({ lag, tokens }) => ({ lag, tokens }))),
      drops: JSON.stringify(batch.drops),
    },
  )
  if (Result.isFailure(written)) throw new Error(written.failure.message)
  return written.success
}

// ---------------------------------------------------------------------------------------------
// Reading

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const parseJson = (field: string, text: string): Result.Result<unknown, BatchFileError> => {
  try {
    return Result.succeed(JSON.parse(text) as unknown)
  } catch (error) {
    return fail(field, `is not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
}

/** A tensor's elements as numbers, once its dtype and shape are checked. */
const readTensor = (
  file: SafetensorsBuffer,
  name: (typeof tensorNames)[number],
  dtype: "I32" | "U8" | "F32" | "I64",
  length: number | undefined,
): Result.Result<ReadonlyArray<number>, BatchFileError> => {
  const info = file.tensors.find((tensor) => tensor.name === name)
  if (info === undefined) return fail(name, "is missing")
  if (info.dtype !== dtype) return fail(`${name}.dtype`, `is ${info.dtype}, must be ${dtype}`)
  if (info.shape.length !== 1)
    return fail(`${name}.shape`, `is [${info.shape.join(", ")}], must have one dimension`)
  const n = info.shape[0] as number
  if (length !== undefined && n !== length)
    return fail(`${name}.shape`, `is [${n}], must be [${length}] (as the other tensors say)`)
  const bytes = tensorBytes(file, name) as Uint8Array
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "U8":
        out[i] = view.getUint8(i)
        break
      case "I32":
        out[i] = view.getInt32(4 * i, true)
        break
      case "F32":
        out[i] = view.getFloat32(4 * i, true)
        break
      case "I64": {
        const big = view.getBigInt64(8 * i, true)
        if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER))
          return fail(`${name}[${i}]`, `${big} is past 2^53`)
        out[i] = Number(big)
        break
      }
    }
  }
  return Result.succeed(out)
}

/** One `sequences` entry, checked. */
const readSequence = (value: unknown, i: number): Result.Result<SequenceInfo, BatchFileError> => {
  const field = (key: string) => `__metadata__.sequences[${i}]${key === "" ? "" : `.${key}`}`
  if (!isRecord(value)) return fail(field(""), "must be an object")
  const known = ["episode", "group", "task", "sample", "turns", "score", "advantage", "split"]
  const unknown = Object.keys(value).find((key) => !known.includes(key))
  if (unknown !== undefined) return fail(field(unknown), "is not a field of a sequence")
  for (const key of ["episode", "group"])
    if (typeof value[key] !== "string" || value[key] === "")
      return fail(field(key), "must be a non-empty string")
  if (typeof value.task !== "string") return fail(field("task"), "must be a string")
  if (!isCount(value.sample)) return fail(field("sample"), "must be a non-negative integer")
  const turns = value.turns
  if (
    !Array.isArray(turns) ||
    turns.length !== 2 ||
    !isCount(turns[0]) ||
    !isCount(turns[1]) ||
    turns[0] > turns[1]
  )
    return fail(field("turns"), "must be [first, last], two turn numbers with first ≤ last")
  for (const key of ["score", "advantage"])
    if (typeof value[key] !== "number" || !Number.isFinite(value[key]))
      return fail(field(key), "must be a finite number")
  if (!splitReasons.includes(value.split as SplitReason))
    return fail(field("split"), `must be one of ${splitReasons.join(", ")}`)
  return Result.succeed({
    episode: value.episode as string,
    group: value.group as string,
    task: value.task,
    sample: value.sample,
    turns: [turns[0], turns[1]],
    score: value.score as number,
    advantage: value.advantage as number,
    split: value.split as SplitReason,
  })
}

/** Checks the per-token rules; every failure names the tensor and the index. */
const checkTokens = (
  step: number,
  tokenIds: ReadonlyArray<number>,
  lossMask: ReadonlyArray<number>,
  logprobs: ReadonlyArray<number>,
  advantages: ReadonlyArray<number>,
  versions: ReadonlyArray<number>,
): Result.Result<void, BatchFileError> => {
  for (let i = 0; i < tokenIds.length; i++) {
    const mask = lossMask[i] as number
    const version = versions[i] as number
    if ((tokenIds[i] as number) < 0) return fail(`token_ids[${i}]`, `${tokenIds[i]} is not a token id`)
    if (mask !== 0 && mask !== 1) return fail(`loss_mask[${i}]`, `is ${mask}, must be 0 or 1`)
    if (version < -1) return fail(`versions[${i}]`, `is ${version}, must be a version or -1`)
    if (version > step) return fail(`versions[${i}]`, `is ${version}, newer than step ${step}`)
    if (mask === 1 && version < 0)
      return fail(`loss_mask[${i}]`, "is 1 on a token the policy did not sample (version -1)")
    if (!Number.isFinite(logprobs[i])) return fail(`logprobs[${i}]`, "is not finite")
    if (version < 0 && logprobs[i] !== 0)
      return fail(`logprobs[${i}]`, "must be 0 on a token the policy did not sample")
    if (!Number.isFinite(advantages[i])) return fail(`advantages[${i}]`, "is not finite")
    if (mask === 0 && advantages[i] !== 0) return fail(`advantages[${i}]`, "must be 0 where loss_mask is 0")
  }
  return Result.succeed(undefined)
}

const checkOffsets = (offsets: ReadonlyArray<number>, t: number): Result.Result<void, BatchFileError> => {
  if (offsets[0] !== 0) return fail("seq_offsets[0]", `is ${offsets[0]}, must be 0`)
  for (let i = 1; i < offsets.length; i++)
    if ((offsets[i] as number) < (offsets[i - 1] as number))
      return fail(`seq_offsets[${i}]`, `${offsets[i]} is below seq_offsets[${i - 1}] = ${offsets[i - 1]}`)
  const last = offsets.length - 1
  if (offsets[last] !== t) return fail(`seq_offsets[${last}]`, `is ${offsets[last]}, must be T = ${t}`)
  return Result.succeed(undefined)
}

const readLags = (text: string, expected: ReturnType<typeof lagsOf>) => {
  const field = "__metadata__.lags"
  const parsed = parseJson(field, text)
  if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
  const lags = parsed.success
  if (!Array.isArray(lags)) return fail(field, "must be a JSON array of {lag, tokens}")
  for (const [i, entry] of lags.entries())
    if (!isRecord(entry) || Object.keys(entry).length !== 2 || !isCount(entry.lag) || !isCount(entry.tokens))
      return fail(`${field}[${i}]`, "must be {lag, tokens} with non-negative integers")
  const written = lags as ReadonlyArray<{ lag: number; tokens: number }>
  const same =
    written.length === expected.length &&
    written.every((entry, i) => entry.lag === expected[i]?.lag && entry.tokens === expected[i]?.tokens)
  if (!same)
    return fail(
      field,
      `${JSON.stringify(written)} is not the recount of the trained tokens by step − version: ${JSON.stringify(expected)}`,
    )
  return Result.succeed(expected)
}

const readDrops = (text: string): Result.Result<Readonly<Record<string, number>>, BatchFileError> => {
  const field = "__metadata__.drops"
  const parsed = parseJson(field, text)
  if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
  const drops = parsed.success
  if (!isRecord(drops)) return fail(field, "must be a JSON object of reason → count")
  for (const [reason, count] of Object.entries(drops))
    if (!isCount(count)) return fail(`${field}.${JSON.stringify(reason)}`, "must be a non-negative integer")
  return Result.succeed(drops as Record<string, number>)
}

/** Reads and checks a batch file; never throws. */
export const decodeBatch = (bytes: Uint8Array): Result.Result<Batch, BatchFileError> => {
  const read = readSafetensors(bytes)
  if (Result.isFailure(read)) return fail(read.failure.field, read.failure.reason)
  const file = read.success
  const extra = file.tensors.find((tensor) => !(tensorNames as ReadonlyArray<string>).includes(tensor.name))
  if (extra !== undefined) return fail(extra.name, `is not a tensor of ${BATCH_FORMAT}`)
  const meta = file.metadata
  for (const key of metadataKeys)
    if (!Object.hasOwn(meta, key)) return fail(`__metadata__.${key}`, "is missing")
  const extraKey = Object.keys(meta).find((key) => !(metadataKeys as ReadonlyArray<string>).includes(key))
  if (extraKey !== undefined)
    return fail(`__metadata__.${JSON.stringify(extraKey)}`, `is not a key of ${BATCH_FORMAT}`)
  if (meta.format !== BATCH_FORMAT)
    return fail("__metadata__.format", `is ${JSON.stringify(meta.format)}, must be ${BATCH_FORMAT}`)
  const run = meta.run as string
  if (run === "") return fail("__metadata__.run", "must name the run")
  const stepText = meta.step as string
  if (!/^(0|[1-9][0-9]*)$/.test(stepText) || !Number.isSafeInteger(Number(stepText)))
    return fail(
      "__metadata__.step",
      `${JSON.stringify(stepText)} is not a step (a non-negative decimal integer)`,
    )
  const step = Number(stepText)

  const tokenIds = readTensor(file, "token_ids", "I32", undefined)
  if (Result.isFailure(tokenIds)) return Result.fail(tokenIds.failure)
  const t = tokenIds.success.length
  const lossMask = readTensor(file, "loss_mask", "U8", t)
  if (Result.isFailure(lossMask)) return Result.fail(lossMask.failure)
  const logprobs = readTensor(file, "logprobs", "F32", t)
  if (Result.isFailure(logprobs)) return Result.fail(logprobs.failure)
  const advantages = readTensor(file, "advantages", "F32", t)
  if (Result.isFailure(advantages)) return Result.fail(advantages.failure)
  const versions = readTensor(file, "versions", "I32", t)
  if (Result.isFailure(versions)) return Result.fail(versions.failure)
  const offsets = readTensor(file, "seq_offsets", "I64", undefined)
  if (Result.isFailure(offsets)) return Result.fail(offsets.failure)
  if (offsets.success.length === 0) return fail("seq_offsets.shape", "is [0], must be [S + 1]")
  const s = offsets.success.length - 1
  const temperature = readTensor(file, "temperature", "F32", s)
  if (Result.isFailure(temperature)) return Result.fail(temperature.failure)

  const tokens = checkTokens(
    step,
    tokenIds.success,
    lossMask.success,
    logprobs.success,
    advantages.success,
    versions.success,
  )
  if (Result.isFailure(tokens)) return Result.fail(tokens.failure)
  const checkedOffsets = checkOffsets(offsets.success, t)
  if (Result.isFailure(checkedOffsets)) return Result.fail(checkedOffsets.failure)
  for (const [i, temp] of temperature.success.entries())
    if (!Number.isFinite(temp) || temp < 0)
      return fail(`temperature[${i}]`, `is ${temp}, must be finite and ≥ 0`)

  const sequencesJson = parseJson("__metadata__.sequences", meta.sequences as string)
  if (Result.isFailure(sequencesJson)) return Result.fail(sequencesJson.failure)
  if (!Array.isArray(sequencesJson.success)) return fail("__metadata__.sequences", "must be a JSON array")
  if (sequencesJson.success.length !== s)
    return fail(
      "__metadata__.sequences",
      `describes ${sequencesJson.success.length} sequences, seq_offsets ${s}`,
    )
  const sequences: SequenceInfo[] = []
  for (const [i, entry] of sequencesJson.success.entries()) {
    const sequence = readSequence(entry, i)
    if (Result.isFailure(sequence)) return Result.fail(sequence.failure)
    sequences.push(sequence.success)
  }
  const lags = readLags(meta.lags as string, lagsOf(step, lossMask.success, versions.success))
  if (Result.isFailure(lags)) return Result.fail(lags.failure)
  const drops = readDrops(meta.drops as string)
  if (Result.isFailure(drops)) return Result.fail(drops.failure)

  return Result.succeed({
    run,
    step,
    tokenIds: Int32Array.from(tokenIds.success),
    lossMask: Uint8Array.from(lossMask.success),
    logprobs: Float32Array.from(logprobs.success),
    advantages: Float32Array.from(advantages.success),
    versions: Int32Array.from(versions.success),
    seqOffsets: offsets.success,
    temperature: Float32Array.from(temperature.success),
    sequences,
    lags: lags.success,
    drops: drops.success,
  })
}
