/**
 * Thinning a task vector (a model's delta from the base) before it is added back, as TIES and DARE
 * do. Magnitude (TIES): keep the ⌊density · n⌋ entries of largest magnitude, ties going to the
 * lower index (a stable descending sort would pick the same), zero the rest. Random (DARE): keep
 * each entry with probability `density` from the seeded stream (prng.ts), then rescale the kept
 * ones so the delta keeps its size — `l1`: by ‖δ‖₁ / ‖kept‖₁ (mergekit's), `inverse`: by
 * 1 / density (the DARE paper's), `none`: not at all. Both work in place on a float32 delta. Pure.
 */
import { streamKey, streamUniform } from "./prng.ts"

export const rescales = ["l1", "inverse", "none"] as const
export type Rescale = (typeof rescales)[number]

/**
 * TIES's magnitude pruning: keep the ⌊density · n⌋ largest |δ|, lower index first among equals.
 * The k-th largest magnitude is found by a two-pass radix select on the float bits (for
 * non-negative floats the bit patterns order as the values do): a histogram of the top 16 bits
 * finds the bucket, a histogram of the low 16 bits inside it the exact value. Three passes over
 * the tensor and no copy of it, where sorting would take n log n and a second tensor of memory.
 */
export const keepLargest = (delta: Float32Array, density: number): Float32Array => {
  if (density >= 1) return delta
  const n = delta.length
  const k = Math.floor(density * n)
  if (k <= 0) return delta.fill(0)
  const bits = new Uint32Array(delta.buffer, delta.byteOffset, n)
  const high = new Uint32Array(65536)
  for (let i = 0; i < n; i++) {
    const h = ((bits[i] as number) & 0x7fffffff) >>> 16
    high[h] = (high[h] as number) + 1
  }
  let above = 0
  let bucket = 65535
  while (above + (high[bucket] as number) < k) above += high[bucket--] as number
  const low = new Uint32Array(65536)
  for (let i = 0; i < n; i++) {
    const m = (bits[i] as number) & 0x7fffffff
    if (m >>> 16 === bucket) low[m & 0xffff] = (low[m & 0xffff] as number) + 1
  }
  let digit = 65535
  while (above + (low[digit] as number) < k) above += low[digit--] as number
  const threshold = ((bucket << 16) | digit) >>> 0
  let equalsKept = k - above
  for (let i = 0; i < n; i++) {
    const m = (bits[i] as number) & 0x7fffffff
    if (m > threshold) continue
    if (m === threshold && equalsKept > 0) {
      equalsKept--
      continue
    }
    delta[i] = 0
  }
  return delta
}

/** DARE's random drop: keep δᵢ when its draw is below `density`, then rescale as asked. */
export const dropRandomly = (
  delta: Float32Array,
  density: number,
  rescale: Rescale,
  stream: { readonly seed: number; readonly model: number; readonly tensor: string },
): Float32Array => {
  if (density >= 1) return delta
  const key = streamKey(stream.seed, stream.model, stream.tensor)
  let before = 0
  let after = 0
  for (let i = 0; i < delta.length; i++) {
    const v = delta[i] as number
    before += Math.abs(v)
    if (streamUniform(key, i) < density) after += Math.abs(v)
    else delta[i] = 0
  }
  const scale = rescale === "inverse" ? 1 / density : rescale === "l1" && after > 1e-12 ? before / after : 1
  if (scale !== 1 && density > 0)
    for (let i = 0; i < delta.length; i++) delta[i] = (delta[i] as number) * scale
  return delta
}
