/**
 * safetensors in TypeScript: the float conversions (bf16 exhaustively and against a BigInt
 * reference, f16 exhaustively and against a nearest-value search), the writer's exact bytes and
 * layout, write → read round trips under fast-check, every malformed-file refusal naming its field,
 * fuzzing on arbitrary and mutated bytes (never a throw), and the file reader one tensor at a time.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import {
  bf16ToF32,
  type DType,
  dtypeSize,
  dtypes,
  f16ToF32,
  f32Bits,
  f32FromBits,
  f32ToBf16,
  f32ToF16,
  fromFloat32,
  toFloat32,
} from "../../src/events/tensors/dtypes.ts"
import {
  readSafetensors,
  type SafetensorsBuffer,
  type TensorInput,
  tensorBytes,
  writeSafetensors,
} from "../../src/events/tensors/safetensors.ts"
import { readSafetensorsHeader, readTensorFromFile } from "../../src/runtime/safetensorsFile.ts"

const ok = <A, E>(r: Result.Result<A, E>): A => {
  if (Result.isFailure(r)) throw new Error(`expected success, got ${String(r.failure)}`)
  return r.success
}

const refusal = (bytes: Uint8Array): { field: string; reason: string } => {
  const r = readSafetensors(bytes)
  if (Result.isSuccess(r)) throw new Error("expected a refusal")
  return { field: r.failure.field, reason: r.failure.reason }
}

/** A file with exactly this header text (unpadded) and this many data bytes. */
const rawFile = (header: string, dataBytes = 0): Uint8Array => {
  const json = new TextEncoder().encode(header)
  const out = new Uint8Array(8 + json.byteLength + dataBytes)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true)
  out.set(json, 8)
  return out
}

const headerText = (bytes: Uint8Array): string => {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  return new TextDecoder().decode(bytes.subarray(8, 8 + n))
}

describe("bf16", () => {
  it("every one of the 65,536 bit patterns goes to f32 and back to itself (NaNs to 0x7FC0)", () => {
    let nans = 0
    for (let h = 0; h < 0x10000; h++) {
      const f = bf16ToF32(h)
      // The value is the bf16 as the top half of an f32 (a NaN's payload is not kept by a JS number).
      if (!Number.isNaN(f)) expect(f32Bits(f)).toBe((h << 16) >>> 0)
      if (Number.isNaN(f)) {
        nans++
        expect(f32ToBf16(f)).toBe(0x7fc0)
      } else if (f32ToBf16(f) !== h)
        expect.fail(`bf16 0x${h.toString(16)} came back as 0x${f32ToBf16(f).toString(16)}`)
    }
    // 2 signs × 127 non-zero mantissas of the all-ones exponent.
    expect(nans).toBe(254)
  })

  it("f32 → bf16 rounds to nearest even, as a BigInt computation on the bits says", () => {
    const reference = (bits: number): number => {
      const view = new DataView(new ArrayBuffer(4))
      view.setUint32(0, bits, true)
      if (Number.isNaN(view.getFloat32(0, true))) return 0x7fc0
      const u = BigInt(bits)
      const low = u & 0xffffn
      let high = u >> 16n
      if (low > 0x8000n || (low === 0x8000n && (high & 1n) === 1n)) high += 1n
      return Number(high & 0xffffn)
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        expect(f32ToBf16(f32FromBits(bits))).toBe(reference(bits))
      }),
      { numRuns: 20_000 },
    )
    // The cases that matter by hand: ties to even both ways, a carry to inf, NaN.
    expect(f32ToBf16(f32FromBits(0x3f808000))).toBe(0x3f80)
    expect(f32ToBf16(f32FromBits(0x3f818000))).toBe(0x3f82)
    expect(f32ToBf16(f32FromBits(0x3f808001))).toBe(0x3f81)
    expect(f32ToBf16(f32FromBits(0x7f7fffff))).toBe(0x7f80)
    expect(f32ToBf16(Number.NaN)).toBe(0x7fc0)
  })
})

describe("f16", () => {
  // Every finite non-negative half, by value, for a nearest-value reference.
  const halves = Array.from({ length: 0x7c00 }, (_, h) => ({ h, v: f16ToF32(h) }))

  /** The half nearest to |x| (ties to the even bit pattern), with the sign put back: a search, not bit tricks. */
  const reference = (x: number): number => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
    const a = Math.abs(x)
    if (Number.isNaN(x)) return -1
    // Past 65504 + half an ulp (65520) everything rounds to infinity.
    if (a >= 65520) return sign | 0x7c00
    let lo = 0
    let hi = halves.length - 1
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1
      if ((halves[mid] as { v: number }).v <= a) lo = mid
      else hi = mid
    }
    const below = halves[lo] as { h: number; v: number }
    const above = halves[hi] as { h: number; v: number }
    if (a - below.v < above.v - a) return sign | below.h
    if (a - below.v > above.v - a) return sign | above.h
    return sign | (below.h % 2 === 0 ? below.h : above.h)
  }

  it("every one of the 65,536 bit patterns goes to f32 and back to itself (NaNs stay NaN)", () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = f16ToF32(h)
      if (Number.isNaN(f)) {
        expect(h & 0x7c00).toBe(0x7c00)
        expect(Number.isNaN(f16ToF32(f32ToF16(f)))).toBe(true)
      } else if (f32ToF16(f) !== h)
        expect.fail(`f16 0x${h.toString(16)} came back as 0x${f32ToF16(f).toString(16)}`)
    }
  })

  it("f32 → f16 is the nearest half, ties to even, subnormals and overflow included", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const x = f32FromBits(bits)
        if (Number.isNaN(x)) expect(Number.isNaN(f16ToF32(f32ToF16(x)))).toBe(true)
        else expect(f32ToF16(x)).toBe(reference(x))
      }),
      { numRuns: 20_000 },
    )
    // Around the small end, where random bits seldom land.
    fc.assert(
      fc.property(fc.float({ min: Math.fround(-1e-4), max: Math.fround(1e-4), noNaN: true }), (x) => {
        expect(f32ToF16(x)).toBe(reference(Math.fround(x)))
      }),
      { numRuns: 5_000 },
    )
    expect(f32ToF16(65504)).toBe(0x7bff)
    expect(f32ToF16(65519)).toBe(0x7bff)
    expect(f32ToF16(65520)).toBe(0x7c00)
    expect(f32ToF16(-Infinity)).toBe(0xfc00)
    expect(f32ToF16(2 ** -24)).toBe(0x0001)
    expect(f32ToF16(2 ** -25)).toBe(0x0000)
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001)
    expect(f32ToF16(-0)).toBe(0x8000)
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400)
  })

  it("float tensors encode and decode through every float dtype", () => {
    const values = [0, -1.5, 3.140625, 65504, 2 ** -24, -Infinity]
    for (const dtype of ["F32", "F16", "BF16", "F64"] as const) {
      const back = Array.from(toFloat32(dtype, fromFloat32(dtype, values)))
      expect(back.length).toBe(values.length)
      if (dtype !== "BF16") expect(back).toEqual(values)
    }
    expect(Array.from(toFloat32("BF16", fromFloat32("BF16", [1, -2, 3.140625])))).toEqual([1, -2, 3.140625])
  })
})

describe("the writer", () => {
  it("writes the header and data as the reference writer lays them out", () => {
    const bytes = ok(
      writeSafetensors(
        {
          b: { dtype: "F32", shape: [2], data: new Float32Array([1, -2]) },
          a: { dtype: "U8", shape: [3], data: new Uint8Array([7, 8, 9]) },
          c: { dtype: "BF16", shape: [1, 1], data: new Uint16Array([0x3f80]) },
          "10": { dtype: "I64", shape: [], data: new BigInt64Array([-5n]) },
        },
        { format: "pt" },
      ),
    )
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"10":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"c":{"dtype":"BF16","shape":[1,1],"data_offsets":[16,18]},' +
      '"a":{"dtype":"U8","shape":[3],"data_offsets":[18,21]}}'
    const padded = Math.ceil(header.length / 8) * 8
    expect(headerText(bytes)).toBe(header.padEnd(padded, " "))
    expect(bytes.byteLength).toBe(8 + padded + 21)
    const data = bytes.subarray(8 + padded)
    expect(Array.from(data)).toEqual([
      0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x80, 0x3f, 7, 8, 9,
    ])
  })

  it("refuses tensors it cannot describe, naming them", () => {
    const refused = (tensors: Record<string, TensorInput>, metadata: Record<string, string> = {}) => {
      const r = writeSafetensors(tensors, metadata)
      return Result.isFailure(r) ? { field: r.failure.field, reason: r.failure.reason } : undefined
    }
    expect(refused({ w: { dtype: "F32", shape: [3], data: new Float32Array(2) } })?.field).toBe('"w".data')
    expect(refused({ w: { dtype: "F32", shape: [2], data: new Int32Array(2) } })?.reason).toContain(
      "Int32Array",
    )
    expect(refused({ w: { dtype: "F32", shape: [-1], data: new Float32Array(0) } })?.field).toBe('"w".shape')
    expect(refused({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array() } })?.field).toBe(
      '"__metadata__"',
    )
    expect(refused({ w: { dtype: "F4" as DType, shape: [0], data: new Uint8Array() } })?.field).toBe(
      '"w".dtype',
    )
    expect(refused({}, { n: 3 as unknown as string })?.field).toBe('__metadata__."n"')
  })
})

const dtypeArb = fc.constantFrom(...dtypes)
const tensorArb = fc
  .record({ dtype: dtypeArb, shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) =>
    fc
      .uint8Array({
        minLength: shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype),
        maxLength: shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype),
      })
      .map((data): TensorInput => ({ dtype, shape, data })),
  )
const fileArb = fc.record({
  tensors: fc.dictionary(fc.string({ unit: "binary", minLength: 1, maxLength: 8 }), tensorArb, {
    maxKeys: 6,
  }),
  metadata: fc.dictionary(
    fc.string({ unit: "binary", maxLength: 6 }),
    fc.string({ unit: "binary", maxLength: 10 }),
    {
      maxKeys: 4,
    },
  ),
})
const validFile = fileArb
  .filter(({ tensors }) => !Object.hasOwn(tensors, "__metadata__"))
  .map(({ tensors, metadata }) => ({ tensors, metadata, bytes: ok(writeSafetensors(tensors, metadata)) }))

describe("write then read", () => {
  it("gives back the same tensors and metadata; the header is 8-aligned and the data has no holes", () => {
    fc.assert(
      fc.property(validFile, ({ tensors, metadata, bytes }) => {
        const file = ok(readSafetensors(bytes))
        expect(file.headerLength % 8).toBe(0)
        expect(file.dataStart % 8).toBe(0)
        expect({ ...file.metadata }).toEqual({ ...metadata })
        expect(file.tensors.map((t) => t.name).sort()).toEqual(Object.keys(tensors).sort())
        let at = 0
        for (const t of file.tensors) {
          expect(t.begin).toBe(at)
          at = t.end
          const input = tensors[t.name] as TensorInput
          expect(t.dtype).toBe(input.dtype)
          expect(t.shape).toEqual(input.shape)
          expect(tensorBytes(file, t.name)).toEqual(input.data)
        }
        expect(8 + file.headerLength + at).toBe(bytes.byteLength)
      }),
      { numRuns: 300 },
    )
  })
})

describe("the reader refuses malformed files, naming the field", () => {
  const entry = (dtype: string, shape: unknown, offsets: unknown) =>
    `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`
  const cases: Array<[string, Uint8Array, string, string]> = [
    ["fewer than 8 bytes", new Uint8Array(5), "header_length", "fewer than 8"],
    ["a header length past the file", rawFile("{}").subarray(0, 9), "header_length", "past the file"],
    [
      "a header of invalid UTF-8",
      (() => {
        const f = rawFile('{"a"}')
        f[9] = 0xff
        return f
      })(),
      "header",
      "UTF-8",
    ],
    ["JSON that is not an object", rawFile("[1,2]  "), "header", "start with '{'"],
    ["broken JSON", rawFile('{"a":'), "header", "not JSON"],
    ["an unknown dtype", rawFile(`{"w":${entry("F4", [2], [0, 1])}}`, 1), '"w".dtype', "not one of"],
    ["a negative dimension", rawFile(`{"w":${entry("U8", [-1], [0, 0])}}`), '"w".shape', "non-negative"],
    [
      "a fractional dimension",
      rawFile(`{"w":${entry("U8", [1.5], [0, 1])}}`, 1),
      '"w".shape',
      "non-negative",
    ],
    ["a shape that is not an array", rawFile(`{"w":${entry("U8", 3, [0, 3])}}`, 3), '"w".shape', "array"],
    [
      "offsets not matching the size",
      rawFile(`{"w":${entry("F32", [2], [0, 4])}}`, 4),
      '"w".data_offsets',
      "takes 8",
    ],
    [
      "offsets end before begin",
      rawFile(`{"w":${entry("U8", [0], [4, 0])}}`, 4),
      '"w".data_offsets',
      "before",
    ],
    ["three offsets", rawFile(`{"w":${entry("U8", [1], [0, 1, 2])}}`, 1), '"w".data_offsets', "2 entries"],
    [
      "a hole between tensors",
      rawFile(`{"a":${entry("U8", [1], [0, 1])},"b":${entry("U8", [1], [2, 3])}}`, 3),
      '"b".data_offsets',
      "hole",
    ],
    [
      "overlapping tensors",
      rawFile(`{"a":${entry("U8", [2], [0, 2])},"b":${entry("U8", [2], [1, 3])}}`, 3),
      '"b".data_offsets',
      "overlaps",
    ],
    [
      "data past the end",
      rawFile(`{"a":${entry("U8", [4], [0, 4])}}`, 2),
      '"a".data_offsets',
      "past the data",
    ],
    [
      "bytes after the last tensor",
      rawFile(`{"a":${entry("U8", [1], [0, 1])}}`, 3),
      "data",
      "after the last",
    ],
    ["a non-string metadata value", rawFile('{"__metadata__":{"k":1}}'), '__metadata__."k"', "string"],
    ["metadata that is not an object", rawFile('{"__metadata__":"x"}'), "__metadata__", "object"],
    [
      "a name given twice",
      rawFile(`{"a":${entry("U8", [0], [0, 0])},"a":${entry("U8", [0], [0, 0])}}`),
      "header",
      'duplicate key "a"',
    ],
    ["a missing dtype", rawFile('{"a":{"shape":[],"data_offsets":[0,1]}}', 1), '"a".dtype', "missing"],
    [
      "an unknown tensor field",
      rawFile(`{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1],"x":0}}`, 1),
      '"a".x',
      "not a tensor field",
    ],
    ["a tensor that is not an object", rawFile('{"a":[]}'), '"a"', "must be an object"],
  ]
  it.each(cases)("%s", (_what, bytes, field, reason) => {
    const r = refusal(bytes)
    expect(r.field).toBe(field)
    expect(r.reason).toContain(reason)
  })

  it("a header length over the limit is refused before anything is read", () => {
    const f = new Uint8Array(16)
    new DataView(f.buffer).setBigUint64(0, 2n ** 63n, true)
    expect(refusal(f).field).toBe("header_length")
  })
})

describe("fuzzing: any input gives a result, never a throw", () => {
  it("arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = readSafetensors(bytes)
        expect(Result.isSuccess(r) || r.failure.field.length > 0).toBe(true)
      }),
      { numRuns: 3000 },
    )
  })

  it("arbitrary text as a header", () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string({ unit: "binary" })), fc.nat(64), (text, extra) => {
        const r = readSafetensors(rawFile(text, extra))
        expect(Result.isSuccess(r) || r.failure.reason.length > 0).toBe(true)
      }),
      { numRuns: 2000 },
    )
  })

  it("valid files with bytes changed, cut or added: accepted only when still consistent", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({
        kind: fc.constant("append" as const),
        at: fc.nat(16),
        value: fc.integer({ min: 0, max: 255 }),
      }),
    )
    fc.assert(
      fc.property(validFile, fc.array(mutation, { minLength: 1, maxLength: 4 }), ({ bytes }, mutations) => {
        let b = Uint8Array.from(bytes)
        for (const m of mutations) {
          if (b.byteLength === 0) break
          if (m.kind === "set") b[m.at % b.byteLength] = m.value
          else if (m.kind === "cut") b = b.subarray(0, m.at % b.byteLength)
          else b = Uint8Array.from([...b, ...new Array<number>(m.at + 1).fill(m.value)])
        }
        const r = readSafetensors(b)
        if (Result.isSuccess(r)) {
          // Whatever it accepted is internally consistent: contiguous tensors filling the data exactly.
          let at = 0
          for (const t of r.success.tensors) {
            expect(t.begin).toBe(at)
            expect(t.end - t.begin).toBe(t.shape.reduce((x, y) => x * y, 1) * dtypeSize(t.dtype))
            at = t.end
          }
          expect(r.success.dataStart + at).toBe(b.byteLength)
        } else expect(r.failure.field.length).toBeGreaterThan(0)
      }),
      { numRuns: 1000 },
    )
  })
})

describe("reading from a file, one tensor at a time", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "safetensors-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("reads the header, then each tensor's bytes at its offsets", async () => {
    const weights = new Float32Array(1000).map((_, i) => Math.fround(Math.sin(i)))
    const bytes = ok(
      writeSafetensors(
        {
          "layers.0.weight": { dtype: "F32", shape: [10, 100], data: weights },
          "layers.0.bias": { dtype: "BF16", shape: [3], data: fromFloat32("BF16", [1, 2, 3]) },
          step: { dtype: "I64", shape: [1], data: new BigInt64Array([42n]) },
        },
        { step: "42" },
      ),
    )
    const file = path.join(dir, "model.safetensors")
    fs.writeFileSync(file, bytes)
    const handle = await fs.promises.open(file, "r")
    try {
      const layout = ok(await readSafetensorsHeader(handle))
      expect(layout.metadata).toEqual({ step: "42" })
      const inMemory = ok(readSafetensors(bytes)) as SafetensorsBuffer
      for (const t of layout.tensors) {
        const read = ok(await readTensorFromFile(handle, layout, t))
        expect(read).toEqual(tensorBytes(inMemory, t.name))
      }
      const w = layout.tensors.find((t) => t.name === "layers.0.weight")!
      expect(toFloat32("F32", ok(await readTensorFromFile(handle, layout, w)))).toEqual(weights)
    } finally {
      await handle.close()
    }
  })

  it("a truncated file is refused with the field named", async () => {
    const bytes = ok(writeSafetensors({ w: { dtype: "U8", shape: [64], data: new Uint8Array(64) } }))
    const file = path.join(dir, "short.safetensors")
    fs.writeFileSync(file, bytes.subarray(0, bytes.byteLength - 10))
    const handle = await fs.promises.open(file, "r")
    try {
      const r = await readSafetensorsHeader(handle)
      expect(Result.isFailure(r) && r.failure.field).toBe('"w".data_offsets')
    } finally {
      await handle.close()
    }
  })
})
