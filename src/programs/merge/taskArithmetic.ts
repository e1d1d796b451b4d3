/**
 * mergekit's family of task-vector merges for one tensor: task arithmetic, TIES and DARE are one
 * formula with different switches. Each model's delta δᵢ = θᵢ − θ_base (float32) is thinned
 * (sparsify.ts: none, by magnitude, or at random) and weighted; with sign consensus (TIES,
 * dare_ties) a sign is elected per parameter from the summed weighted mass (≥ 0 counts as +) and
 * only the entries that agree with it are kept; the kept weighted deltas are summed, divided by
 * the kept weights when normalising (a parameter whose kept weights sum below 1e-8 is divided by 1), scaled by λ and
 * added to the base. To hold no more than the tensors themselves, the models' arrays are
 * overwritten with their weighted deltas, and `out` may be the base's own array (each element of
 * the base is read before it is written). Pure apart from those arrays.
 */
import { dropRandomly, keepLargest, type Rescale } from "./sparsify.ts"

export interface TaskVectorSettings {
  readonly sparsify: "none" | "magnitude" | "random"
  readonly density: number
  readonly rescale: Rescale
  readonly consensus: boolean
  readonly normalize: boolean
  readonly lambda: number
  readonly seed: number
}

export const taskVectorMerge = (
  tensor: string,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  weights: ReadonlyArray<number>,
  settings: TaskVectorSettings,
  out: Float32Array,
): Float32Array => {
  const n = base.length
  const weighted = models.map((model, m) => {
    // The model's own array becomes its weighted delta: no second copy of each model in memory.
    const delta = model
    for (let i = 0; i < n; i++) delta[i] = (model[i] as number) - (base[i] as number)
    if (settings.sparsify === "magnitude") keepLargest(delta, settings.density)
    else if (settings.sparsify === "random")
      dropRandomly(delta, settings.density, settings.rescale, { seed: settings.seed, model: m, tensor })
    const w = weights[m] as number
    for (let i = 0; i < n; i++) delta[i] = (delta[i] as number) * w
    return delta
  })
  for (let i = 0; i < n; i++) {
    let elected = 1
    if (settings.consensus) {
      let mass = 0
      for (const d of weighted) mass += d[i] as number
      elected = mass >= 0 ? 1 : -1
    }
    let sum = 0
    let divisor = 0
    for (let m = 0; m < weighted.length; m++) {
      const d = (weighted[m] as Float32Array)[i] as number
      if (settings.consensus && Math.sign(d) !== elected) continue
      sum += d
      divisor += weights[m] as number
    }
    if (settings.normalize) sum /= Math.abs(divisor) < 1e-8 ? 1 : divisor
    out[i] = (base[i] as number) + settings.lambda * sum
  }
  return out
}
