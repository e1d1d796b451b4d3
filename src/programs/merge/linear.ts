/**
 * mergekit's linear merge of one tensor: Σ wᵢ θᵢ / Σ wᵢ (or Σ wᵢ θᵢ without normalising). Values are
 * float32; each element is summed in double precision and rounded once, so a model merged with
 * itself comes back bit for bit. A zero weight sum is the caller's to refuse (methods.ts). Pure.
 */

export const linearMerge = (
  tensors: ReadonlyArray<Float32Array>,
  weights: ReadonlyArray<number>,
  normalize: boolean,
  out: Float32Array,
): Float32Array => {
  let total = 0
  for (const w of weights) total += w
  const divisor = normalize ? total : 1
  const n = out.length
  if (tensors.length === 2) {
    // The common two-model blend, without the inner loop.
    const [a, b] = tensors as [Float32Array, Float32Array]
    const [wa, wb] = weights as [number, number]
    for (let i = 0; i < n; i++) out[i] = ((a[i] as number) * wa + (b[i] as number) * wb) / divisor
    return out
  }
  for (let i = 0; i < n; i++) {
    let sum = 0
    for (let m = 0; m < tensors.length; m++)
      sum += ((tensors[m] as Float32Array)[i] as number) * (weights[m] as number)
    out[i] = sum / divisor
  }
  return out
}
