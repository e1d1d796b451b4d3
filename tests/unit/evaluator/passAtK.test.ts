/**
 * pass@k against exact values: an independent exact product formula in BigInt rationals
 * (1 − ∏_{i=n−c+1}^{n} (i − k)/i), REFERENCE's example (n = 8, c = 2), n = 64 where the binomials
 * pass 2^53, n up to 1000, and the float result checked to be the correctly rounded double of the
 * exact fraction.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  binomial,
  fractionToNumber,
  meanPassAtK,
  naivePassAtK,
  passAtK,
  passAtKFraction,
} from "../../../src/projections/scoreboard/passAtK.ts"

/** 1 − ∏_{i=n−c+1}^{n} (i − k)/i as numerator/denominator, computed independently. */
const exactByProduct = (n: number, c: number, k: number): { num: bigint; den: bigint } => {
  let num = 1n
  let den = 1n
  for (let i = n - c + 1; i <= n; i++) {
    num *= BigInt(i - k)
    den *= BigInt(i)
  }
  if (num < 0n) num = 0n // a zero factor (i = k) is always among the negative ones
  return { num: den - num, den }
}

const sameFraction = (a: { numerator: bigint; denominator: bigint }, b: { num: bigint; den: bigint }) =>
  a.numerator * b.den === b.num * a.denominator

/** A finite double as an exact fraction. */
const doubleAsFraction = (x: number): { num: bigint; den: bigint } => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const bits = view.getBigUint64(0)
  const exponent = Number((bits >> 52n) & 0x7ffn)
  const fraction = bits & ((1n << 52n) - 1n)
  const mantissa = exponent === 0 ? fraction : fraction | (1n << 52n)
  const power = (exponent === 0 ? 1 : exponent) - 1075
  return power >= 0
    ? { num: mantissa << BigInt(power), den: 1n }
    : { num: mantissa, den: 1n << BigInt(-power) }
}

const neighbour = (x: number, step: 1 | -1): number => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  view.setBigUint64(0, view.getBigUint64(0) + BigInt(step))
  return view.getFloat64(0)
}

/** |a − p/q| compared as exact fractions: negative when a is closer than b. */
const closer = (a: number, b: number, p: bigint, q: bigint): boolean => {
  const distance = (x: number) => {
    const f = doubleAsFraction(x)
    const d = f.num * q - p * f.den
    return { num: d < 0n ? -d : d, den: f.den * q }
  }
  const da = distance(a)
  const db = distance(b)
  return da.num * db.den <= db.num * da.den
}

const isCorrectlyRounded = (x: number, p: bigint, q: bigint): boolean =>
  (x === 0 || closer(x, neighbour(x, -1), p, q)) && (x === 1 || closer(x, neighbour(x, 1), p, q))

describe("binomial", () => {
  it("is exact beyond 2^53", () => {
    expect(binomial(64, 32)).toBe(1832624140942590534n)
    expect(binomial(64, 32) > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true)
    expect(binomial(8, 2)).toBe(28n)
    expect(binomial(5, 0)).toBe(1n)
    expect(binomial(5, 6)).toBe(0n)
    expect(binomial(1000, 1)).toBe(1000n)
    expect(binomial(100, 50)).toBe(100891344545564193334812497256n)
    expect(binomial(1000, 500) % 1000000007n).toBe(159835829n)
  })
})

describe("pass@k", () => {
  it("matches REFERENCE's example: n = 8, c = 2", () => {
    expect(passAtK(8, 2, 1)).toBe(0.25)
    expect(passAtKFraction(8, 2, 2)).toEqual({ numerator: 13n, denominator: 28n })
    expect(passAtK(8, 2, 2)).toBeCloseTo(0.4643, 4)
    expect(passAtKFraction(8, 2, 4)).toEqual({ numerator: 11n, denominator: 14n })
    expect(passAtK(8, 2, 4)).toBeCloseTo(0.7857, 4)
    expect(passAtK(8, 2, 8)).toBe(1)
    expect(passAtK(8, 0, 8)).toBe(0)
  })

  it("is exact for every c and k at n = 64", () => {
    for (let c = 0; c <= 64; c++)
      for (let k = 1; k <= 64; k++) {
        const exact = exactByProduct(64, c, k)
        const fraction = passAtKFraction(64, c, k)
        expect(sameFraction(fraction, exact), `n=64 c=${c} k=${k}`).toBe(true)
        expect(isCorrectlyRounded(passAtK(64, c, k), exact.num, exact.den), `n=64 c=${c} k=${k}`).toBe(true)
      }
    // Values a float computation of the binomials gets wrong: C(64, 32) − 1 is not a double.
    expect(passAtKFraction(64, 32, 32)).toEqual({
      numerator: 1832624140942590533n,
      denominator: 1832624140942590534n,
    })
    expect(passAtK(64, 1, 32)).toBe(0.5)
  })

  it("works up to n = 1000", () => {
    expect(passAtK(1000, 1, 1)).toBe(0.001)
    expect(passAtK(1000, 1, 999)).toBe(0.999)
    expect(passAtK(1000, 500, 500)).toBe(1)
    expect(passAtK(1000, 0, 500)).toBe(0)
    const exact = exactByProduct(1000, 3, 10)
    expect(sameFraction(passAtKFraction(1000, 3, 10), exact)).toBe(true)
    expect(isCorrectlyRounded(passAtK(1000, 3, 10), exact.num, exact.den)).toBe(true)
  })

  test.prop(
    [
      fc
        .integer({ min: 1, max: 200 })
        .chain((n) =>
          fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n }), fc.integer({ min: 1, max: n })),
        ),
    ],
    {
      numRuns: 300,
    },
  )("equals the product formula and is correctly rounded", ([n, c, k]) => {
    const exact = exactByProduct(n, c, k)
    expect(sameFraction(passAtKFraction(n, c, k), exact)).toBe(true)
    expect(isCorrectlyRounded(passAtK(n, c, k), exact.num, exact.den)).toBe(true)
  })

  it("rejects counts that make no sense", () => {
    expect(() => passAtK(8, 9, 1)).toThrow(RangeError)
    expect(() => passAtK(8, 2, 9)).toThrow(/1 ≤ k ≤ n/)
    expect(() => passAtK(8, 2, 0)).toThrow(RangeError)
    expect(() => passAtK(8.5, 2, 1)).toThrow(RangeError)
  })

  it("averages over tasks exactly", () => {
    // (13/28 + 0 + 1) / 3 = 41/84
    expect(
      meanPassAtK(
        [
          { n: 8, c: 2 },
          { n: 8, c: 0 },
          { n: 8, c: 8 },
        ],
        2,
      ),
    ).toBe(fractionToNumber({ numerator: 41n, denominator: 84n }))
    expect(meanPassAtK([], 1)).toBeNaN()
  })

  it("rounds fractions to the nearest double, tiny ones included", () => {
    expect(fractionToNumber({ numerator: 1n, denominator: 3n })).toBe(1 / 3)
    expect(fractionToNumber({ numerator: 2n, denominator: 3n })).toBe(2 / 3)
    expect(fractionToNumber({ numerator: 1n, denominator: binomial(1000, 500) })).toBeGreaterThan(0)
    expect(fractionToNumber({ numerator: 0n, denominator: 5n })).toBe(0)
  })
})

describe("naive pass@k", () => {
  it("is 1 when any of the first k samples is correct", () => {
    expect(naivePassAtK([false, false, true, false], 2)).toBe(0)
    expect(naivePassAtK([false, false, true, false], 3)).toBe(1)
    expect(naivePassAtK([], 1)).toBe(0)
  })
})
