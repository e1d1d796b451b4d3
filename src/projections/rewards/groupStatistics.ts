/**
 * The statistics a group's baseline is made of: the mean, the spread (max − min, what the
 * zero-variance rules test) and the sample standard deviation GRPO and DAPO divide by. Terms are
 * summed in the order given, which the profiles make canonical, so equal groups give bit-equal
 * results.
 */

export const mean = (values: ReadonlyArray<number>): number => {
  let sum = 0
  for (const value of values) sum += value
  return values.length === 0 ? 0 : sum / values.length
}

/** max − min; 0 for fewer than two values (one score has nothing to differ from). */
export const spread = (values: ReadonlyArray<number>): number =>
  values.length < 2 ? 0 : Math.max(...values) - Math.min(...values)

/**
 * The sample (n − 1) standard deviation, as GRPO's reference implementations take it (`torch.std`);
 * 0 for fewer than two values, where it is undefined and the advantage is then 0.
 */
export const sampleStd = (values: ReadonlyArray<number>): number => {
  if (values.length < 2) return 0
  const m = mean(values)
  let squares = 0
  for (const value of values) squares += (value - m) * (value - m)
  return Math.sqrt(squares / (values.length - 1))
}

/**
 * An advantage within 1e-12 of 0 is 0. Sums of decimal scores leave rounding residue where the
 * exact value is 0 (0.2 − (0.1 + 0.3) / 2 is not 0 in binary), and a residue would otherwise pass
 * for a signal: kept as a tiny advantage, or clipped for having the wrong sign.
 */
export const withoutResidue = (value: number): number => (Math.abs(value) < 1e-12 ? 0 : value)
