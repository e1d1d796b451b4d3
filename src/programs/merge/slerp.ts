/**
 * mergekit's spherical interpolation of one tensor between θ₀ (the base) and θ₁, the tensor read
 * as one flat vector: on unit-normalised copies, Ω = arccos(dot), θ = sin((1−t)Ω)/sin Ω · θ₀ +
 * sin(tΩ)/sin Ω · θ₁, applied to the original (unnormalised) tensors; when |dot| > 0.9995 the
 * vectors are nearly parallel, sin Ω is near zero, and it falls back to the linear (1−t)θ₀ + tθ₁.
 * A vector whose norm is at most 1e-8 has no direction to rotate: then it blends linearly too
 * (mergekit would slerp it unnormalised, which scales a near-zero tensor merged with itself). Pure.
 */

/** Above this |cosine| the two tensors count as parallel and are blended linearly. */
export const slerpDotThreshold = 0.9995
const normEpsilon = 1e-8

/** What the merge of one tensor did: the coefficients on θ₀ and θ₁, and whether it fell back. */
export interface SlerpStep {
  readonly linear: boolean
  readonly s0: number
  readonly s1: number
}

export const slerpCoefficients = (t: number, v0: Float32Array, v1: Float32Array): SlerpStep => {
  let n0 = 0
  let n1 = 0
  let dot = 0
  for (let i = 0; i < v0.length; i++) {
    const a = v0[i] as number
    const b = v1[i] as number
    n0 += a * a
    n1 += b * b
    dot += a * b
  }
  n0 = Math.sqrt(n0)
  n1 = Math.sqrt(n1)
  if (n0 <= normEpsilon || n1 <= normEpsilon) return { linear: true, s0: 1 - t, s1: t }
  const cosine = dot / n0 / n1
  if (Math.abs(cosine) > slerpDotThreshold) return { linear: true, s0: 1 - t, s1: t }
  const omega = Math.acos(cosine)
  const sinOmega = Math.sin(omega)
  return { linear: false, s0: Math.sin((1 - t) * omega) / sinOmega, s1: Math.sin(t * omega) / sinOmega }
}

export const slerpMerge = (t: number, v0: Float32Array, v1: Float32Array, out: Float32Array): SlerpStep => {
  const step = slerpCoefficients(t, v0, v1)
  for (let i = 0; i < out.length; i++) out[i] = step.s0 * (v0[i] as number) + step.s1 * (v1[i] as number)
  return step
}
