/**
 * What a merge is asked to do, checked before any tensor is read: the method (one of mergekit's,
 * by its mergekit name), the models with their weights, and the method's parameters, each a number
 * or a list over the layers (layerParams.ts). It reads the command line's text forms —
 * `dir[:weight]` and `key=value` — and refuses anything wrong with a message naming the flag, the
 * value and what would be right (an unknown method or parameter gets the closest names). Then
 * `mergeTensor` merges one tensor, already decoded to float32, with the method's formula. Pure.
 */
import * as Schema from "effect/Schema"
import { depthOf, type LayerValue, valueAt, valuesOf } from "./layerParams.ts"
import { linearMerge } from "./linear.ts"
import { slerpMerge } from "./slerp.ts"
import { type Rescale, rescales } from "./sparsify.ts"
import { type TaskVectorSettings, taskVectorMerge } from "./taskArithmetic.ts"

/** A merge that cannot be done as asked; the message says what, where, and what would do. */
export class MergeError extends Schema.TaggedError<MergeError>()("MergeError", {
  reason: Schema.String,
}) {
  override get message(): string {
    return this.reason
  }
}

export const methodNames = ["linear", "slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties"] as const
export type MethodName = (typeof methodNames)[number]

/** One merged model: its directory and its weight (absent: 1). */
export interface ModelEntry {
  readonly dir: string
  readonly weight?: LayerValue
}

/** A parameter as given: a number, a list over layers, or a word (rescale, normalize). */
export type ParamValue = LayerValue | string | boolean

type ParamKind = "layer" | "boolean" | "rescale" | "seed"

/** Which parameters each method takes, of what kind, and what they mean. */
const paramKinds: Record<string, { readonly kind: ParamKind; readonly methods: ReadonlyArray<MethodName> }> =
  {
    base_weight: { kind: "layer", methods: ["linear"] },
    t: { kind: "layer", methods: ["slerp"] },
    normalize: {
      kind: "boolean",
      methods: ["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"],
    },
    lambda: { kind: "layer", methods: ["task_arithmetic", "ties", "dare_linear", "dare_ties"] },
    density: { kind: "layer", methods: ["ties", "dare_linear", "dare_ties"] },
    rescale: { kind: "rescale", methods: ["dare_linear", "dare_ties"] },
    seed: { kind: "seed", methods: ["dare_linear", "dare_ties"] },
  }

/** The parameters a method accepts, for messages and help. */
export const paramsOf = (method: MethodName): ReadonlyArray<string> =>
  Object.entries(paramKinds)
    .filter(([, p]) => p.methods.includes(method))
    .map(([name]) => name)

/** A merge, validated: every value checked, defaults filled in (mergekit's defaults). */
export interface MergePlan {
  readonly method: MethodName
  readonly models: ReadonlyArray<{ readonly dir: string; readonly weight: LayerValue }>
  readonly baseWeight: LayerValue
  readonly t: LayerValue
  readonly normalize: boolean
  readonly lambda: LayerValue
  readonly density: LayerValue
  readonly rescale: Rescale
  readonly seed: number
}

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++)
      current.push(
        Math.min(
          (previous[j] as number) + 1,
          (current[j - 1] as number) + 1,
          (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
        ),
      )
    previous = current
  }
  return previous[b.length] as number
}

/** The known names closest to a wrong one: those it starts, or within a few edits. */
export const closestNames = (name: string, known: ReadonlyArray<string>): ReadonlyArray<string> => {
  const lower = name.toLowerCase().replaceAll("-", "_")
  const prefixed = known.filter((k) => lower.length > 0 && (k.startsWith(lower) || lower.startsWith(k)))
  if (prefixed.length > 0) return prefixed
  const scored = known.map((k) => ({ k, d: editDistance(lower, k) })).filter((s) => s.d <= 3)
  scored.sort((a, b) => a.d - b.d)
  return scored.map((s) => s.k)
}

const suggestion = (name: string, known: ReadonlyArray<string>): string => {
  const close = closestNames(name, known)
  return close.length === 0 ? "" : ` (did you mean ${close.map((c) => `"${c}"`).join(" or ")}?)`
}

/** A method name, or an error listing the methods with the closest first. */
export const parseMethod = (name: string): MethodName | MergeError =>
  (methodNames as ReadonlyArray<string>).includes(name)
    ? (name as MethodName)
    : new MergeError({
        reason: `--method: unknown method "${name}"${suggestion(name, methodNames)}; the methods are ${methodNames.join(", ")}`,
      })

const numberPattern = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/

/** A number or a `[a, b, …]` list of numbers, or a reason why not. */
export const parseLayerValue = (text: string): LayerValue | string => {
  const trimmed = text.trim()
  if (trimmed.startsWith("[")) {
    if (!trimmed.endsWith("]")) return `"${text}" opens a list with [ but does not close it with ]`
    const items = trimmed.slice(1, -1).split(",")
    const values: number[] = []
    for (const item of items) {
      if (!numberPattern.test(item.trim())) return `"${item.trim()}" in the list "${text}" is not a number`
      values.push(Number(item.trim()))
    }
    if (!values.every(Number.isFinite)) return `the list "${text}" holds a number too large`
    return values
  }
  if (!numberPattern.test(trimmed)) return `"${text}" is not a number or a [a, b, …] list of numbers`
  const n = Number(trimmed)
  return Number.isFinite(n) ? n : `"${text}" is too large`
}

/** Split on commas outside square brackets: `a:[0.2,0.8],b` → `a:[0.2,0.8]`, `b`. */
const splitTopLevel = (text: string): string[] => {
  const parts: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "[") depth++
    else if (text[i] === "]") depth = Math.max(0, depth - 1)
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/**
 * `--models dir[:weight],…`: the weight is what follows the last `:` when that reads as a number
 * or a list, so a directory whose name holds a colon still works without a weight.
 */
export const parseModels = (text: string): ReadonlyArray<ModelEntry> | MergeError => {
  const entries: ModelEntry[] = []
  for (const [i, part] of splitTopLevel(text).entries()) {
    const item = part.trim()
    if (item.length === 0)
      return new MergeError({
        reason: `--models: entry ${i + 1} of "${text}" is empty (expected dir[:weight])`,
      })
    const colon = item.lastIndexOf(":")
    const tail = colon < 0 ? undefined : item.slice(colon + 1)
    const weight = tail === undefined ? undefined : parseLayerValue(tail)
    if (weight !== undefined && typeof weight !== "string") {
      const dir = item.slice(0, colon)
      if (dir.length === 0)
        return new MergeError({ reason: `--models: "${item}" has a weight but no directory` })
      entries.push({ dir, weight })
    } else if (tail !== undefined && /^\s*[[+\-.\d]/.test(tail)) {
      return new MergeError({ reason: `--models: the weight of "${item}": ${weight}` })
    } else entries.push({ dir: item })
  }
  return entries
}

/** `--param key=value` (repeatable): each value checked against what the method's parameter takes. */
export const parseParams = (
  method: MethodName,
  texts: ReadonlyArray<string>,
): Readonly<Record<string, ParamValue>> | MergeError => {
  const known = paramsOf(method)
  const out: Record<string, ParamValue> = {}
  for (const text of texts) {
    const eq = text.indexOf("=")
    if (eq <= 0)
      return new MergeError({
        reason: `--param "${text}": expected key=value (${method} takes ${known.join(", ")})`,
      })
    const key = text.slice(0, eq).trim()
    const raw = text.slice(eq + 1).trim()
    const spec = Object.hasOwn(paramKinds, key) ? paramKinds[key] : undefined
    if (spec === undefined || !spec.methods.includes(method))
      return new MergeError({
        reason:
          `--param ${key}: ${spec === undefined ? "unknown parameter" : `not a parameter of ${method}`}` +
          `${suggestion(key, known)}; ${method} takes ${known.join(", ")}`,
      })
    if (Object.hasOwn(out, key)) return new MergeError({ reason: `--param ${key} is given twice` })
    let value: ParamValue
    switch (spec.kind) {
      case "layer": {
        const v = parseLayerValue(raw)
        if (typeof v === "string") return new MergeError({ reason: `--param ${key}: ${v}` })
        value = v
        break
      }
      case "boolean":
        if (raw !== "true" && raw !== "false")
          return new MergeError({ reason: `--param ${key}: expected true or false, got "${raw}"` })
        value = raw === "true"
        break
      case "rescale":
        if (!(rescales as ReadonlyArray<string>).includes(raw))
          return new MergeError({
            reason: `--param rescale: expected ${rescales.join(", ")} (l1: keep the delta's L1 norm, as mergekit; inverse: 1/density, as the DARE paper), got "${raw}"`,
          })
        value = raw
        break
      case "seed": {
        const n = Number(raw)
        if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n > 0xffffffff)
          return new MergeError({
            reason: `--param seed: expected an integer from 0 to 4294967295, got "${raw}"`,
          })
        value = n
        break
      }
    }
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return out
}

const inRange = (
  name: string,
  value: LayerValue,
  lo: number,
  hi: number,
  loOpen = false,
): MergeError | undefined => {
  const bad = valuesOf(value).find((v) => (loOpen ? v <= lo : v < lo) || v > hi)
  return bad === undefined
    ? undefined
    : new MergeError({
        reason: `--param ${name}: ${bad} is outside ${loOpen ? "(" : "["}${lo}, ${hi}] (${JSON.stringify(value)})`,
      })
}

/** A complete, checked merge from its method, models and parameters. */
export const planMerge = (
  method: MethodName,
  models: ReadonlyArray<ModelEntry>,
  params: Readonly<Record<string, ParamValue>>,
): MergePlan | MergeError => {
  if (models.length === 0) return new MergeError({ reason: "--models: no model to merge into the base" })
  const known = paramsOf(method)
  for (const key of Object.keys(params))
    if (!known.includes(key))
      return new MergeError({
        reason: `--param ${key}: not a parameter of ${method}; ${method} takes ${known.join(", ")}`,
      })
  const layer = (key: string, fallback: LayerValue | undefined): LayerValue | undefined => {
    const v = params[key]
    return typeof v === "number" || Array.isArray(v) ? (v as LayerValue) : fallback
  }
  let t: LayerValue = 0.5
  if (method === "slerp") {
    if (models.length !== 1)
      return new MergeError({
        reason: `slerp interpolates between the base and one model; --models names ${models.length}`,
      })
    const given = layer("t", models[0]?.weight)
    if (given === undefined)
      return new MergeError({
        reason: "slerp needs --param t=<0..1> (or a list over layers): 0 is the base, 1 the model",
      })
    if (params.t !== undefined && models[0]?.weight !== undefined)
      return new MergeError({ reason: "slerp: give t once, as --param t or as the model's weight, not both" })
    const bad = inRange("t", given, 0, 1)
    if (bad !== undefined) return bad
    t = given
  }
  const density = layer("density", undefined)
  if (method === "ties" || method === "dare_linear" || method === "dare_ties") {
    if (density === undefined)
      return new MergeError({
        reason: `${method} needs --param density=<0..1> (the fraction of each delta kept; a list over layers works too)`,
      })
    const bad =
      method === "ties" ? inRange("density", density, 0, 1) : inRange("density", density, 0, 1, true)
    if (bad !== undefined) return bad
  }
  const plan: MergePlan = {
    method,
    models: models.map((m) => ({ dir: m.dir, weight: m.weight ?? 1 })),
    baseWeight: layer("base_weight", 1) as LayerValue,
    t,
    normalize:
      typeof params.normalize === "boolean" ? params.normalize : method === "linear" || method === "ties",
    lambda: layer("lambda", 1) as LayerValue,
    density: density ?? 1,
    rescale: typeof params.rescale === "string" ? (params.rescale as Rescale) : "l1",
    seed: typeof params.seed === "number" ? params.seed : 0,
  }
  return plan
}

/** The weights of the merged tensors at a depth: for linear the base comes first. */
const weightsAt = (plan: MergePlan, depth: number): number[] => {
  const weights = plan.models.map((m) => valueAt(m.weight, depth))
  return plan.method === "linear" ? [valueAt(plan.baseWeight, depth), ...weights] : weights
}

/**
 * Whether a tensor can be merged as planned: its weights must not sum to zero where the method
 * divides by their sum (linear, task arithmetic with normalize). Checked for every tensor before
 * anything is written.
 */
export const checkTensorWeights = (
  plan: MergePlan,
  tensor: string,
  layers: number,
): MergeError | undefined => {
  const dividesBySum = plan.normalize && (plan.method === "linear" || plan.method === "task_arithmetic")
  if (!dividesBySum) return undefined
  const weights = weightsAt(plan, depthOf(tensor, layers))
  const sum = weights.reduce((a, b) => a + b, 0)
  return Math.abs(sum) < 1e-12
    ? new MergeError({
        reason: `the weights of tensor "${tensor}" sum to zero (${weights.join(" + ")}), and ${plan.method} divides by their sum`,
      })
    : undefined
}

const settingsFor = (plan: MergePlan, depth: number): TaskVectorSettings => ({
  sparsify:
    plan.method === "ties"
      ? "magnitude"
      : plan.method === "dare_linear" || plan.method === "dare_ties"
        ? "random"
        : "none",
  density: valueAt(plan.density, depth),
  rescale: plan.rescale,
  consensus: plan.method === "ties" || plan.method === "dare_ties",
  normalize: plan.normalize,
  lambda: valueAt(plan.lambda, depth),
  seed: plan.seed,
})

/**
 * Merge one tensor: the base's and the models' values (float32, same length) into `out`.
 * `layers` is the checkpoint's layer count, to place the tensor in depth for list parameters.
 * `out` may be `base` (every method reads an element before writing it); the models' arrays may be
 * overwritten (the task-vector methods keep their deltas there), so they must be distinct arrays.
 */
export const mergeTensor = (
  plan: MergePlan,
  tensor: string,
  layers: number,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  out: Float32Array,
): Float32Array => {
  const depth = depthOf(tensor, layers)
  switch (plan.method) {
    case "linear":
      return linearMerge([base, ...models], weightsAt(plan, depth), plan.normalize, out)
    case "slerp":
      slerpMerge(valueAt(plan.t, depth), base, models[0] as Float32Array, out)
      return out
    default:
      return taskVectorMerge(tensor, base, models, weightsAt(plan, depth), settingsFor(plan, depth), out)
  }
}
