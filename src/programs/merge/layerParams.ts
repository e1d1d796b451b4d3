/**
 * Merge parameters that vary over depth, as mergekit's gradients do: a weight or density is either
 * one number or a list of numbers spread evenly from the first layer to the last and interpolated
 * linearly in between. A tensor's place in depth comes from its name (`model.layers.<i>.…`,
 * `transformer.h.<i>.…`, `blocks.<i>.…`): layer i of n sits at t = i / (n − 1). Tensors outside
 * the layers sit at an end, as mergekit places them: embeddings before the layers (t = 0),
 * everything else (final norm, output head) after them (t = 1). Pure.
 */

/** A parameter value: a number, or a list of at least one number interpolated over the layers. */
export type LayerValue = number | ReadonlyArray<number>

const layerPattern = /(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)/
const embeddingPattern = /(?:^|[._])(?:embed|embeddings|embed_tokens|wte|wpe|tok_embeddings)(?:[._]|$)/

/** The layer index in a tensor's name, or undefined when it names no layer. */
export const layerIndexOf = (name: string): number | undefined => {
  const m = layerPattern.exec(name)
  if (m === null) return undefined
  const i = Number(m[1])
  return Number.isSafeInteger(i) ? i : undefined
}

/** How many layers the checkpoint has: one more than the largest layer index among its tensor names. */
export const layerCount = (names: Iterable<string>): number => {
  let n = 0
  for (const name of names) {
    const i = layerIndexOf(name)
    if (i !== undefined && i + 1 > n) n = i + 1
  }
  return n
}

/** Where a tensor sits in depth, in [0, 1]. */
export const depthOf = (name: string, layers: number): number => {
  const i = layerIndexOf(name)
  if (i === undefined) return embeddingPattern.test(name) ? 0 : 1
  return layers <= 1 ? 0 : Math.min(1, i / (layers - 1))
}

/** A value at depth t: the number itself, or the list read as evenly spaced points on [0, 1]. */
export const valueAt = (value: LayerValue, t: number): number => {
  if (typeof value === "number") return value
  const n = value.length
  if (n === 1) return value[0] as number
  const position = Math.min(Math.max(t, 0), 1) * (n - 1)
  const i = Math.min(Math.floor(position), n - 2)
  const a = value[i] as number
  const b = value[i + 1] as number
  return a + (b - a) * (position - i)
}

/** Every value a parameter can take (the list's points are its extremes). */
export const valuesOf = (value: LayerValue): ReadonlyArray<number> =>
  typeof value === "number" ? [value] : value
