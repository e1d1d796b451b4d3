/**
 * A whole tensor's stored bytes to float32 values and back, fast enough to stream a checkpoint:
 * the merge computes in float32 whatever the checkpoint stores (F32, F16, BF16, F64). The bit rules
 * are events/tensors/dtypes.ts's (bf16 rounding to nearest even as PyTorch, NaN → 0x7FC0; f16 by
 * f32ToF16); here they run over typed-array views instead of a DataView per element, which is
 * what makes a gigabyte take seconds. On a big-endian host it falls back to dtypes.ts's
 * element-wise codecs. Pure.
 */
import { type DType, f16ToF32, f32ToF16, fromFloat32, toFloat32 } from "../../events/tensors/dtypes.ts"

export const floatDTypes = ["F32", "F16", "BF16", "F64"] as const
export type FloatDType = (typeof floatDTypes)[number]

export const isFloatDType = (dtype: DType): dtype is FloatDType =>
  (floatDTypes as ReadonlyArray<string>).includes(dtype)

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

let f16Table: Float32Array | undefined
/** Every half's float32 value, built once (256 KB). */
const halfValues = (): Float32Array => {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h)
  }
  return f16Table
}

/** The bytes as an aligned copy when a typed-array view of `width`-byte elements cannot sit on them. */
const aligned = (bytes: Uint8Array, width: number): Uint8Array =>
  bytes.byteOffset % width === 0 ? bytes : bytes.slice()

/**
 * Decode a tensor's little-endian bytes into float32 values: into the start of `into` when given (a
 * buffer reused from tensor to tensor; the answer is a view of it), else into a new array — or, for
 * aligned F32 without `into`, a view of the bytes themselves.
 */
export const decodeFloats = (dtype: FloatDType, bytes: Uint8Array, into?: Float32Array): Float32Array => {
  const n = Math.floor(bytes.byteLength / (dtype === "F32" ? 4 : dtype === "F64" ? 8 : 2))
  if (into !== undefined && into.length < n) throw new RangeError(`${n} values do not fit ${into.length}`)
  const target = () => (into === undefined ? new Float32Array(n) : into.subarray(0, n))
  if (!littleEndian) {
    const values = toFloat32(dtype, bytes)
    if (into === undefined) return values
    const out = target()
    out.set(values)
    return out
  }
  switch (dtype) {
    case "F32": {
      const b = aligned(bytes, 4)
      const view = new Float32Array(b.buffer, b.byteOffset, n)
      if (into === undefined) return view
      const out = target()
      out.set(view)
      return out
    }
    case "BF16": {
      const b = aligned(bytes, 2)
      const halves = new Uint16Array(b.buffer, b.byteOffset, n)
      const out = target()
      const bits = new Uint32Array(out.buffer, out.byteOffset, n)
      for (let i = 0; i < n; i++) bits[i] = (halves[i] as number) << 16
      return out
    }
    case "F16": {
      const b = aligned(bytes, 2)
      const halves = new Uint16Array(b.buffer, b.byteOffset, n)
      const table = halfValues()
      const out = target()
      for (let i = 0; i < n; i++) out[i] = table[halves[i] as number] as number
      return out
    }
    case "F64": {
      const b = aligned(bytes, 8)
      const out = target()
      out.set(new Float64Array(b.buffer, b.byteOffset, n))
      return out
    }
  }
}

/**
 * Encode float32 values as a tensor's little-endian bytes of a float dtype: into the start of
 * `into` when given (reused from tensor to tensor), else into new bytes — F32 is a view of the
 * values themselves either way.
 */
export const encodeFloats = (dtype: FloatDType, values: Float32Array, into?: Uint8Array): Uint8Array => {
  if (!littleEndian) return fromFloat32(dtype, values)
  const size = values.length * (dtype === "F32" ? 4 : dtype === "F64" ? 8 : 2)
  if (into !== undefined && into.byteLength < size)
    throw new RangeError(`${size} bytes do not fit ${into.byteLength}`)
  const bytes = () => (into === undefined ? new Uint8Array(size) : into.subarray(0, size))
  const aligned16 = () => {
    const b = bytes()
    if (b.byteOffset % 2 !== 0) throw new RangeError("the output buffer is not 2-byte aligned")
    return new Uint16Array(b.buffer, b.byteOffset, values.length)
  }
  switch (dtype) {
    case "F32":
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
    case "BF16": {
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
      const out = aligned16()
      for (let i = 0; i < bits.length; i++) {
        const u = bits[i] as number
        // NaN (exponent all ones, mantissa not zero) → the quiet NaN, as PyTorch; the rest rounds
        // to nearest even: the sum stays below 2^32 for every non-NaN, so `>>> 16` is exact.
        out[i] = (u & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16
      }
      return new Uint8Array(out.buffer, out.byteOffset, size)
    }
    case "F16": {
      const out = aligned16()
      for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i] as number)
      return new Uint8Array(out.buffer, out.byteOffset, size)
    }
    case "F64": {
      const b = bytes()
      const view = new DataView(b.buffer, b.byteOffset, size)
      for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i] as number, true)
      return b
    }
  }
}
