/**
 * The safetensors byte format, pure: an 8-byte little-endian header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, padded
 * with spaces to a multiple of 8), then the tensors' data, contiguous and without holes, laid out as
 * the reference writer does (larger dtype alignment first, then name). Batches (issue 12) and
 * merged checkpoints (issue 14) are written and read through here. Reading validates everything and
 * answers a malformed file with a `SafetensorsError` naming the offending field — never a throw.
 * The header can be parsed on its own (`parseHeader`) so a file can be read one tensor at a time.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { type DType, dtypeRank, dtypeSize, dtypes, isDType, typedArrayName } from "./dtypes.ts"

/** What is wrong and where: `field` is `header_length`, `header`, `"name".dtype`, `__metadata__."key"`, `data`, … */
export class SafetensorsError extends Schema.TaggedError<SafetensorsError>()("SafetensorsError", {
  field: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `safetensors ${this.field}: ${this.reason}`
  }
}

/** One tensor of a parsed header: offsets are relative to the start of the data section. */
export interface TensorInfo {
  readonly name: string
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  readonly begin: number
  readonly end: number
}

/** A parsed header: where the data section starts in the file, the metadata, the tensors in data order. */
export interface SafetensorsLayout {
  readonly headerLength: number
  readonly dataStart: number
  readonly dataLength: number
  readonly metadata: Readonly<Record<string, string>>
  readonly tensors: ReadonlyArray<TensorInfo>
}

/** A whole file read from memory: its layout and its bytes (tensor data is read as views into them). */
export interface SafetensorsBuffer extends SafetensorsLayout {
  readonly bytes: Uint8Array
}

/** A tensor to write: its raw little-endian bytes, or the typed array its dtype maps to. */
export interface TensorInput {
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  readonly data: ArrayBufferView
}

/** The reference implementation's bound on the header, against a length field that asks for gigabytes. */
export const maxHeaderLength = 100_000_000

const fail = (field: string, reason: string) => Result.fail(new SafetensorsError({ field, reason }))
const tensorField = (name: string, key: string) => `${JSON.stringify(name)}.${key}`

// ---------------------------------------------------------------------------------------------
// A strict JSON reader for the header: JSON.parse keeps the last of duplicate keys silently, and a
// duplicated tensor name must be refused. Numbers keep whether they were written as integers.

type Json =
  | { readonly t: "object"; readonly entries: ReadonlyArray<readonly [string, Json]> }
  | { readonly t: "array"; readonly items: ReadonlyArray<Json> }
  | { readonly t: "string"; readonly value: string }
  | { readonly t: "number"; readonly value: number; readonly integer: boolean }
  | { readonly t: "literal"; readonly value: boolean | null }

class JsonSyntax {
  constructor(
    readonly at: number,
    readonly reason: string,
  ) {}
}

const maxDepth = 64

const parseJson = (text: string): Json | JsonSyntax => {
  let i = 0
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t"))
      i++
  }
  const str = (): string | JsonSyntax => {
    i++ // opening quote
    let out = ""
    for (;;) {
      if (i >= text.length) return new JsonSyntax(i, "unterminated string")
      const c = text.charCodeAt(i)
      if (c === 0x22) {
        i++
        return out
      }
      if (c < 0x20) return new JsonSyntax(i, "control character in string")
      if (c !== 0x5c) {
        out += text[i]
        i++
        continue
      }
      const e = text[i + 1]
      i += 2
      const simple: Record<string, string> = {
        '"': '"',
        "\\": "\\",
        "/": "/",
        b: "\b",
        f: "\f",
        n: "\n",
        r: "\r",
        t: "\t",
      }
      if (e !== undefined && Object.hasOwn(simple, e)) out += simple[e]
      else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i, i + 4))) {
        out += String.fromCharCode(Number.parseInt(text.slice(i, i + 4), 16))
        i += 4
      } else return new JsonSyntax(i - 1, "bad escape in string")
    }
  }
  const value = (depth: number): Json | JsonSyntax => {
    if (depth > maxDepth) return new JsonSyntax(i, `nested deeper than ${maxDepth}`)
    ws()
    const c = text[i]
    if (c === "{") {
      i++
      const entries: Array<readonly [string, Json]> = []
      const seen = new Set<string>()
      ws()
      if (text[i] === "}") {
        i++
        return { t: "object", entries }
      }
      for (;;) {
        ws()
        if (text[i] !== '"') return new JsonSyntax(i, "expected a key")
        const key = str()
        if (key instanceof JsonSyntax) return key
        if (seen.has(key)) return new JsonSyntax(i, `duplicate key ${JSON.stringify(key)}`)
        seen.add(key)
        ws()
        if (text[i] !== ":") return new JsonSyntax(i, "expected ':'")
        i++
        const v = value(depth + 1)
        if (v instanceof JsonSyntax) return v
        entries.push([key, v])
        ws()
        if (text[i] === ",") {
          i++
          continue
        }
        if (text[i] === "}") {
          i++
          return { t: "object", entries }
        }
        return new JsonSyntax(i, "expected ',' or '}'")
      }
    }
    if (c === "[") {
      i++
      const items: Json[] = []
      ws()
      if (text[i] === "]") {
        i++
        return { t: "array", items }
      }
      for (;;) {
        const v = value(depth + 1)
        if (v instanceof JsonSyntax) return v
        items.push(v)
        ws()
        if (text[i] === ",") {
          i++
          continue
        }
        if (text[i] === "]") {
          i++
          return { t: "array", items }
        }
        return new JsonSyntax(i, "expected ',' or ']'")
      }
    }
    if (c === '"') {
      const s = str()
      return s instanceof JsonSyntax ? s : { t: "string", value: s }
    }
    for (const [word, lit] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length
        return { t: "literal", value: lit }
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400))
    if (m === null || m[0].length === 0) return new JsonSyntax(i, "expected a value")
    i += m[0].length
    return { t: "number", value: Number(m[0]), integer: m[2] === undefined && m[3] === undefined }
  }
  const v = value(0)
  if (v instanceof JsonSyntax) return v
  ws()
  return i === text.length ? v : new JsonSyntax(i, "text after the JSON value")
}

// ---------------------------------------------------------------------------------------------
// Reading

/** The header length from a file's first 8 bytes, checked against the file's size. */
export const readHeaderLength = (
  first8: Uint8Array,
  fileSize: number,
): Result.Result<number, SafetensorsError> => {
  if (first8.byteLength < 8 || fileSize < 8)
    return fail("header_length", `the file has ${Math.min(fileSize, first8.byteLength)} bytes, fewer than 8`)
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true)
  if (n > BigInt(maxHeaderLength))
    return fail("header_length", `${n} is over the limit of ${maxHeaderLength}`)
  if (n > BigInt(fileSize - 8))
    return fail("header_length", `${n} runs past the file's end (${fileSize - 8} bytes after it)`)
  return Result.succeed(Number(n))
}

const nonNegativeIntegers = (j: Json, what: string, length?: number): number[] | string => {
  if (j.t !== "array") return `${what} must be an array`
  if (length !== undefined && j.items.length !== length) return `${what} must have ${length} entries`
  const out: number[] = []
  for (const item of j.items) {
    if (item.t !== "number" || !item.integer || item.value < 0 || !Number.isSafeInteger(item.value))
      return `${what} must hold non-negative integers below 2^53`
    out.push(item.value)
  }
  return out
}

/** The element count of a shape, or undefined past 2^53. */
const elementsOf = (shape: ReadonlyArray<number>): number | undefined => {
  let n = 1
  for (const d of shape) {
    n *= d
    if (!Number.isSafeInteger(n)) return undefined
  }
  return n
}

/**
 * Parse and validate a header (the N bytes after the length) for a data section of `dataLength`
 * bytes: every entry well-formed, each tensor's size its dtype size × elements, the tensors
 * contiguous from 0 to exactly `dataLength`, no name twice, metadata strings only.
 */
export const parseHeader = (
  headerBytes: Uint8Array,
  dataLength: number,
): Result.Result<SafetensorsLayout, SafetensorsError> => {
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes)
  } catch {
    return fail("header", "is not valid UTF-8")
  }
  if (!text.startsWith("{")) return fail("header", "must start with '{'")
  const json = parseJson(text)
  if (json instanceof JsonSyntax) return fail("header", `is not JSON: ${json.reason} at byte ${json.at}`)
  if (json.t !== "object") return fail("header", "is not a JSON object")
  let metadata: Record<string, string> = {}
  const tensors: TensorInfo[] = []
  for (const [name, entry] of json.entries) {
    if (name === "__metadata__") {
      if (entry.t !== "object") return fail("__metadata__", "must be an object of strings")
      metadata = {}
      for (const [key, value] of entry.entries) {
        if (value.t !== "string") return fail(`__metadata__.${JSON.stringify(key)}`, "must be a string")
        // defineProperty, so a key named "__proto__" is kept as a key.
        Object.defineProperty(metadata, key, {
          value: value.value,
          enumerable: true,
          writable: true,
          configurable: true,
        })
      }
      continue
    }
    if (entry.t !== "object")
      return fail(JSON.stringify(name), "must be an object {dtype, shape, data_offsets}")
    const fields = new Map(entry.entries)
    for (const key of fields.keys())
      if (key !== "dtype" && key !== "shape" && key !== "data_offsets")
        return fail(tensorField(name, key), "is not a tensor field (dtype, shape, data_offsets)")
    const dtype = fields.get("dtype")
    if (dtype === undefined) return fail(tensorField(name, "dtype"), "is missing")
    if (dtype.t !== "string" || !isDType(dtype.value))
      return fail(
        tensorField(name, "dtype"),
        `${dtype.t === "string" ? JSON.stringify(dtype.value) : "a non-string"} is not one of ${dtypes.join(", ")}`,
      )
    const shapeJson = fields.get("shape")
    if (shapeJson === undefined) return fail(tensorField(name, "shape"), "is missing")
    const shape = nonNegativeIntegers(shapeJson, "the shape")
    if (typeof shape === "string") return fail(tensorField(name, "shape"), shape)
    const offsetsJson = fields.get("data_offsets")
    if (offsetsJson === undefined) return fail(tensorField(name, "data_offsets"), "is missing")
    const offsets = nonNegativeIntegers(offsetsJson, "data_offsets", 2)
    if (typeof offsets === "string") return fail(tensorField(name, "data_offsets"), offsets)
    const [begin, end] = offsets as [number, number]
    if (end < begin) return fail(tensorField(name, "data_offsets"), `end ${end} is before begin ${begin}`)
    const elements = elementsOf(shape)
    const size = elements === undefined ? undefined : elements * dtypeSize(dtype.value)
    if (size === undefined || !Number.isSafeInteger(size))
      return fail(tensorField(name, "shape"), "has more elements than 2^53")
    if (end - begin !== size)
      return fail(
        tensorField(name, "data_offsets"),
        `span ${end - begin} bytes, but ${dtype.value} [${shape.join(", ")}] takes ${size}`,
      )
    tensors.push({ name, dtype: dtype.value, shape, begin, end })
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end)
  let at = 0
  for (const t of tensors) {
    if (t.begin > at)
      return fail(tensorField(t.name, "data_offsets"), `starts at ${t.begin}: a hole after ${at}`)
    if (t.begin < at)
      return fail(tensorField(t.name, "data_offsets"), `starts at ${t.begin}: overlaps up to ${at}`)
    if (t.end > dataLength)
      return fail(
        tensorField(t.name, "data_offsets"),
        `ends at ${t.end}, past the data's end at ${dataLength}`,
      )
    at = t.end
  }
  if (at !== dataLength) return fail("data", `${dataLength - at} bytes after the last tensor (at ${at})`)
  return Result.succeed({
    headerLength: headerBytes.byteLength,
    dataStart: 8 + headerBytes.byteLength,
    dataLength,
    metadata,
    tensors,
  })
}

/** Parse and validate a whole safetensors file held in memory. */
export const readSafetensors = (bytes: Uint8Array): Result.Result<SafetensorsBuffer, SafetensorsError> => {
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength)
  if (Result.isFailure(n)) return Result.fail(n.failure)
  const layout = parseHeader(bytes.subarray(8, 8 + n.success), bytes.byteLength - 8 - n.success)
  if (Result.isFailure(layout)) return Result.fail(layout.failure)
  return Result.succeed({ ...layout.success, bytes })
}

/** A tensor's entry by name. */
export const tensorInfo = (layout: SafetensorsLayout, name: string): TensorInfo | undefined =>
  layout.tensors.find((t) => t.name === name)

/** A tensor's bytes as a view into the file's buffer (no copy), or undefined for an unknown name. */
export const tensorBytes = (file: SafetensorsBuffer, name: string): Uint8Array | undefined => {
  const t = tensorInfo(file, name)
  return t === undefined ? undefined : file.bytes.subarray(file.dataStart + t.begin, file.dataStart + t.end)
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Where each tensor goes and the header bytes (length prefix included) that describe it. */
export interface SafetensorsPlan {
  readonly header: Uint8Array
  readonly tensors: ReadonlyArray<TensorInfo>
  readonly dataLength: number
}

const utf8 = new TextEncoder()

/** Name order as the reference writer (Rust) compares strings: by their UTF-8 bytes. */
const compareUtf8 = (a: string, b: string): number => {
  const x = utf8.encode(a)
  const y = utf8.encode(b)
  for (let i = 0; i < Math.min(x.length, y.length); i++)
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number)
  return x.length - y.length
}

/**
 * Lay out tensors (larger dtype alignment first, then name) and render the header: the JSON with
 * `__metadata__` first (left out when empty), padded with spaces so the data starts at a multiple of 8.
 */
export const planSafetensors = (
  tensors: ReadonlyArray<{
    readonly name: string
    readonly dtype: DType
    readonly shape: ReadonlyArray<number>
  }>,
  metadata: Readonly<Record<string, string>> = {},
): Result.Result<SafetensorsPlan, SafetensorsError> => {
  const names = new Set<string>()
  for (const t of tensors) {
    if (t.name === "__metadata__") return fail(JSON.stringify(t.name), "is reserved for the metadata")
    if (names.has(t.name)) return fail(JSON.stringify(t.name), "is named twice")
    names.add(t.name)
    if (!isDType(t.dtype))
      return fail(tensorField(t.name, "dtype"), `${String(t.dtype)} is not one of ${dtypes.join(", ")}`)
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      return fail(tensorField(t.name, "shape"), "must hold non-negative integers")
    const elements = elementsOf(t.shape)
    if (elements === undefined || !Number.isSafeInteger(elements * dtypeSize(t.dtype)))
      return fail(tensorField(t.name, "shape"), "has more elements than 2^53")
  }
  for (const [key, value] of Object.entries(metadata))
    if (typeof value !== "string") return fail(`__metadata__.${JSON.stringify(key)}`, "must be a string")
  const ordered = [...tensors].sort(
    (a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || compareUtf8(a.name, b.name),
  )
  let at = 0
  const placed: TensorInfo[] = ordered.map((t) => {
    const size = (elementsOf(t.shape) as number) * dtypeSize(t.dtype)
    const info = { name: t.name, dtype: t.dtype, shape: [...t.shape], begin: at, end: at + size }
    at += size
    return info
  })
  // Built as text, not as an object: JSON.stringify would put integer-like names ("0", "1") first.
  const entries: string[] = []
  if (Object.keys(metadata).length > 0) entries.push(`"__metadata__":${JSON.stringify({ ...metadata })}`)
  for (const t of placed)
    entries.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${t.begin},${t.end}]}`,
    )
  const json = utf8.encode(`{${entries.join(",")}}`)
  const padded = Math.ceil(json.byteLength / 8) * 8
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength)
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true)
  out.set(json, 8)
  return Result.succeed({ header: out, tensors: placed, dataLength: at })
}

// Typed arrays hold host byte order; safetensors is little-endian.
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** A tensor's data as little-endian bytes, checked against its dtype and size. */
export const tensorInputBytes = (
  name: string,
  tensor: TensorInput,
  size: number,
): Result.Result<Uint8Array, SafetensorsError> => {
  const kind = tensor.data.constructor.name
  if (kind !== "Uint8Array" && kind !== typedArrayName(tensor.dtype))
    return fail(
      tensorField(name, "data"),
      `a ${kind} for ${tensor.dtype} (give a ${typedArrayName(tensor.dtype)} or raw bytes)`,
    )
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)
  if (bytes.byteLength !== size)
    return fail(
      tensorField(name, "data"),
      `${bytes.byteLength} bytes, but ${tensor.dtype} [${tensor.shape.join(", ")}] takes ${size}`,
    )
  const width = kind === "Uint8Array" ? 1 : dtypeSize(tensor.dtype)
  if (hostIsLittleEndian || width === 1) return Result.succeed(bytes)
  const swapped = new Uint8Array(bytes.byteLength)
  for (let i = 0; i < bytes.byteLength; i += width)
    for (let k = 0; k < width; k++) swapped[i + k] = bytes[i + width - 1 - k] as number
  return Result.succeed(swapped)
}

/** The bytes of a safetensors file holding these tensors and metadata. */
export const writeSafetensors = (
  tensors: Readonly<Record<string, TensorInput>>,
  metadata: Readonly<Record<string, string>> = {},
): Result.Result<Uint8Array, SafetensorsError> => {
  const plan = planSafetensors(
    Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  )
  if (Result.isFailure(plan)) return Result.fail(plan.failure)
  const { header, dataLength } = plan.success
  const out = new Uint8Array(header.byteLength + dataLength)
  out.set(header, 0)
  for (const t of plan.success.tensors) {
    const bytes = tensorInputBytes(t.name, tensors[t.name] as TensorInput, t.end - t.begin)
    if (Result.isFailure(bytes)) return Result.fail(bytes.failure)
    out.set(bytes.success, header.byteLength + t.begin)
  }
  return Result.succeed(out)
}
