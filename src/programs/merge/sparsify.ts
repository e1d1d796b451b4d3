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

/** The k-th largest (1-based) of these values, by quickselect in place (the order is lost). */
const kthLargest = (a: Float32Array, k: number): number => {
  let lo = 0
  let hi = a.length - 1
  const target = k - 1 // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1] as number
    let i = lo
    let j = hi
    while (i <= j) {
      while ((a[i] as number) > pivot) i++
      while ((a[j] as number) < pivot) j--
      if (i <= j) {
        const x = a[i] as number
        a[i] = a[j] as number
        a[j] = x
        i++
        j--
      }
    }
    if (target <= j) hi = j
    else if (target >= i) lo = i
    else return a[target] as number
  }
  return a[target] as number
}

/** TIES's magnitude pruning: keep the ⌊density · n⌋ largest |δ|, lower index first among equals. */
export const keepLargest = (delta: Float32Array, density: number): Float32Array => {
  if (density >= 1) return delta
  const n = delta.length
  const k = Math.floor(density * n)
  if (k <= 0) return delta.fill(0)
  // One scratch array of magnitudes, scrambled by the selection; |δᵢ| is read again from δ after.
  const magnitude = new Float32Array(n)
  for (let i = 0; i < n; i++) magnitude[i] = Math.abs(delta[i] as number)
  const threshold = kthLargest(magnitude, k)
  let above = 0
  for (let i = 0; i < n; i++) if (Math.abs(delta[i] as number) > threshold) above++
  let equalsKept = k - above
  for (let i = 0; i < n; i++) {
    const m = Math.abs(delta[i] as number)
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
