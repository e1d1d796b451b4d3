/**
 * Tensor element types as safetensors names them, their sizes and the order the reference writer
 * lays them out in, and the float conversions a checkpoint needs: f32 ↔ f16 (round to nearest
 * even, subnormals, infinities, NaN) and f32 ↔ bf16 (round to nearest even exactly as PyTorch does,
 * NaN → 0x7FC0). Pure: bits are read through a little-endian DataView, never through the host's
 * byte order.
 */

/**
 * The byte-sized dtypes, ordered as the reference writer ranks them (its enum order: alignment,
 * smaller first). Sub-byte formats (F4, F6_*) are not supported and are refused by name.
 */
export const dtypes = [
  "BOOL",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "F64",
  "I64",
  "U64",
] as const

export type DType = (typeof dtypes)[number]

const sizes: Record<DType, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
}

export const isDType = (name: unknown): name is DType =>
  typeof name === "string" && Object.hasOwn(sizes, name)

/** Bytes per element. */
export const dtypeSize = (dtype: DType): number => sizes[dtype]

/** The writer's layout rank: a larger rank goes first in the data section (larger alignment first). */
export const dtypeRank = (dtype: DType): number => dtypes.indexOf(dtype)

/**
 * The typed array a tensor of this dtype is handed over as (its raw bits for F16 and BF16, bytes for
 * BOOL and the 8-bit floats). A Uint8Array of the raw bytes is accepted for any dtype.
 */
export const typedArrayName = (dtype: DType): string => {
  switch (dtype) {
    case "F32":
      return "Float32Array"
    case "F64":
      return "Float64Array"
    case "F16":
    case "BF16":
    case "U16":
      return "Uint16Array"
    case "I16":
      return "Int16Array"
    case "I32":
      return "Int32Array"
    case "U32":
      return "Uint32Array"
    case "I64":
      return "BigInt64Array"
    case "U64":
      return "BigUint64Array"
    case "I8":
      return "Int8Array"
    default:
      return "Uint8Array"
  }
}

// One scratch cell to move a float32 to its bits and back; DataView fixes the byte order.
const cell = new DataView(new ArrayBuffer(4))

/** The IEEE-754 binary32 bits of a number rounded to float32. */
export const f32Bits = (x: number): number => {
  cell.setFloat32(0, x, true)
  return cell.getUint32(0, true)
}

/** The float32 whose bits these are (as a JS number; NaN payloads are not kept). */
export const f32FromBits = (bits: number): number => {
  cell.setUint32(0, bits >>> 0, true)
  return cell.getFloat32(0, true)
}

/** bf16 bits → f32 value: the bf16 is the top half of the f32. */
export const bf16ToF32 = (bits: number): number => f32FromBits(((bits & 0xffff) << 16) >>> 0)

/**
 * f32 → bf16 bits, rounding to nearest even as PyTorch does: add 0x7FFF plus the lowest kept bit,
 * keep the top half. Any NaN becomes the quiet NaN 0x7FC0. Finite values near the top round to ±inf.
 */
export const f32ToBf16 = (x: number): number => {
  if (Number.isNaN(x)) return 0x7fc0
  const u = f32Bits(x)
  // u ≤ 0xFF800000 for every non-NaN, so the sum stays below 2^32 and `>>> 16` is exact.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
}

/** f16 bits → f32 value (every half is exactly a float32). */
export const f16ToF32 = (bits: number): number => {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >>> 10) & 0x1f
  const mantissa = bits & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN
  return sign * (1024 + mantissa) * 2 ** (exponent - 25)
}

/**
 * f32 → f16 bits, round to nearest even. The value is first rounded to float32 (this converts
 * float32s). Overflow goes to ±inf, tiny values to subnormals or ±0, NaN stays a quiet NaN.
 */
export const f32ToF16 = (x: number): number => {
  const u = f32Bits(x)
  const sign = (u >>> 16) & 0x8000
  const exponent = (u >>> 23) & 0xff
  const mantissa = u & 0x7fffff
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13))
  const e = exponent - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // Below the smallest normal half: a subnormal (unit 2^-24), or zero when under half of it.
    if (e < -10) return sign
    const full = mantissa | 0x800000
    const shift = 14 - e
    const kept = full >>> shift
    const rest = full & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    // A carry out of the subnormal range lands exactly on the smallest normal, which is right.
    return sign | (rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept)
  }
  const kept = (e << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  // A carry into the exponent is the next binade (or inf past 65504), which is right too.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? kept + 1 : kept)
}

/** Decode a tensor's little-endian bytes of a float dtype (F32, F16, BF16, F64) into float32 values. */
export const toFloat32 = (dtype: "F32" | "F16" | "BF16" | "F64", bytes: Uint8Array): Float32Array => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = Math.floor(bytes.byteLength / sizes[dtype])
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "F32":
        out[i] = view.getFloat32(i * 4, true)
        break
      case "F64":
        out[i] = view.getFloat64(i * 8, true)
        break
      case "F16":
        out[i] = f16ToF32(view.getUint16(i * 2, true))
        break
      case "BF16":
        out[i] = bf16ToF32(view.getUint16(i * 2, true))
        break
    }
  }
  return out
}

/** Encode float32 values as little-endian bytes of a float dtype (F32, F16, BF16, F64). */
export const fromFloat32 = (dtype: "F32" | "F16" | "BF16" | "F64", values: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(values.length * sizes[dtype])
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    switch (dtype) {
      case "F32":
        view.setFloat32(i * 4, v, true)
        break
      case "F64":
        view.setFloat64(i * 8, v, true)
        break
      case "F16":
        view.setUint16(i * 2, f32ToF16(v), true)
        break
      case "BF16":
        view.setUint16(i * 2, f32ToBf16(v), true)
        break
    }
  }
  return out
}
