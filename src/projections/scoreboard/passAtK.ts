/**
 * Unbiased pass@k (Chen et al. 2021), computed exactly: for a task with n samples of which c are
 * correct, pass@k = 1 − C(n−c, k) / C(n, k). Binomials are BigInts (C(64, 32) already exceeds
 * 2^53), sums over tasks are exact fractions, and a float appears only once, at the very end, by
 * a scaled BigInt division. Also the naive pass@k ("any of the first k samples correct").
 */

/** The binomial coefficient C(n, k) as an exact BigInt (0 when k > n). */
export const binomial = (n: number, k: number): bigint => {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 0 || k < 0)
    throw new RangeError(`binomial(${n}, ${k}): n and k must be non-negative integers`)
  if (k > n) return 0n
  const m = Math.min(k, n - k)
  let result = 1n
  // Each partial product is itself a binomial, so the division is exact.
  for (let i = 1; i <= m; i++) result = (result * BigInt(n - m + i)) / BigInt(i)
  return result
}

/** An exact non-negative fraction. */
export interface Fraction {
  readonly numerator: bigint
  readonly denominator: bigint
}

const gcd = (a: bigint, b: bigint): bigint => {
  let x = a < 0n ? -a : a
  let y = b < 0n ? -b : b
  while (y !== 0n) [x, y] = [y, x % y]
  return x
}

const reduce = (f: Fraction): Fraction => {
  const g = gcd(f.numerator, f.denominator)
  return g <= 1n ? f : { numerator: f.numerator / g, denominator: f.denominator / g }
}

const bitLength = (x: bigint): number => (x === 0n ? 0 : x.toString(2).length)

/**
 * The nearest double to a non-negative fraction: a quotient with about 118 significant bits (plus a
 * sticky bit for the remainder) rounded once by `Number`, then scaled by powers of two.
 */
export const fractionToNumber = (f: Fraction): number => {
  if (f.denominator <= 0n) throw new RangeError("fractionToNumber: the denominator must be positive")
  if (f.numerator === 0n) return 0
  const shift = Math.max(0, bitLength(f.denominator) - bitLength(f.numerator) + 118)
  const scaled = f.numerator << BigInt(shift)
  let quotient = scaled / f.denominator
  // A sticky bit far below the 53 kept: a non-zero remainder can never look like an exact tie.
  if (scaled % f.denominator !== 0n) quotient |= 1n
  // Number() of a BigInt rounds to the nearest double.
  let value = Number(quotient)
  let rest = shift
  while (rest > 0) {
    const step = Math.min(rest, 1000)
    value /= 2 ** step
    rest -= step
  }
  return value
}

const checkCounts = (n: number, c: number, k: number): void => {
  if (![n, c, k].every(Number.isInteger) || n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw new RangeError(`pass@k needs integers 0 ≤ c ≤ n and 1 ≤ k ≤ n; got n=${n}, c=${c}, k=${k}`)
}

/** pass@k of one task as an exact fraction. */
export const passAtKFraction = (n: number, c: number, k: number): Fraction => {
  checkCounts(n, c, k)
  const all = binomial(n, k)
  return reduce({ numerator: all - binomial(n - c, k), denominator: all })
}

/** pass@k of one task (n samples, c correct). */
export const passAtK = (n: number, c: number, k: number): number => fractionToNumber(passAtKFraction(n, c, k))

/** The mean pass@k over tasks, summed exactly; NaN for no tasks. */
export const meanPassAtK = (
  tasks: ReadonlyArray<{ readonly n: number; readonly c: number }>,
  k: number,
): number => {
  if (tasks.length === 0) return Number.NaN
  let sum: Fraction = { numerator: 0n, denominator: 1n }
  for (const { n, c } of tasks) {
    const f = passAtKFraction(n, c, k)
    sum = reduce({
      numerator: sum.numerator * f.denominator + f.numerator * sum.denominator,
      denominator: sum.denominator * f.denominator,
    })
  }
  return fractionToNumber({ numerator: sum.numerator, denominator: sum.denominator * BigInt(tasks.length) })
}

/** Naive pass@k of one task: 1 when any of its first k samples is correct (samples in order). */
export const naivePassAtK = (correctBySample: ReadonlyArray<boolean>, k: number): number =>
  correctBySample.slice(0, k).some((c) => c) ? 1 : 0
