/**
 * Telling the samples of one task apart, and the seeded draws every choice is made from. The k
 * samples of a task send byte-identical first requests, so the first turn gives each a sample tag
 * (the body's `seed`, else the episode the request names, else the arrival order — see the script's
 * module comment) and every choice after that is a hash of (seed, episode key, tag, what is chosen).
 */
import { createHash } from "node:crypto"
import type { ChatRequest } from "../script.ts"

/** A seeded number in [0, 1) for a label naming what is chosen: one sample's source of variety. */
export type Draw = (label: string) => number

/** A number in [0, 1) from the parts: the script's only source of variety. */
export const seededUnit = (...parts: ReadonlyArray<string | number>): number =>
  Number.parseInt(createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 12), 16) / 2 ** 48

/** One of `items`, each as likely as its weight, chosen by `u` in [0, 1). */
export const pickWeighted = <A>(
  items: ReadonlyArray<A>,
  weights: ReadonlyArray<number>,
  u: number,
): A | undefined => {
  const total = items.reduce((sum, _, i) => sum + (weights[i] ?? 0), 0)
  let at = u * total
  for (const [i, item] of items.entries()) {
    at -= weights[i] ?? 0
    if (at < 0) return item
  }
  return items[items.length - 1]
}

/** Sample tags given by arrival order are remembered for this many episode keys (oldest forgotten). */
const MAX_TRACKED_EPISODES = 100_000

/**
 * The sample tag of an episode id: `n<k>` for the evaluator's `<run>/<task>/<k>` (the sample index,
 * independent of the run, so runs repeat), else `e` and a hash of the whole id (a fork, a
 * hand-named episode). Letters and digits only: the tag must survive inside a tool call id.
 */
export const sampleTagOfEpisode = (episodeId: string): string => {
  const sample = /\/(\d{1,15})$/.exec(episodeId)?.[1]
  if (sample !== undefined) return `n${Number(sample)}`
  return `e${createHash("sha256").update(episodeId).digest("hex").slice(0, 16)}`
}

/**
 * How many first turns of each episode key one script instance has seen: the fallback tag's
 * counter, the only state a researcher script keeps.
 */
export type Arrivals = Map<string, number>

/**
 * The sample of a first turn: the body's `seed` when given, else the episode the request names,
 * else the arrival order of first requests of this episode key (counted in `arrivals`). A later
 * turn without one of this script's call ids (another model began the conversation) gets its
 * episode's tag or a fixed one, so it stays a function of the request.
 */
export const sampleTagOf = (
  arrivals: Arrivals,
  request: ChatRequest,
  key: string,
  turns: number,
  episodeId: string | undefined,
): string => {
  const requested = request.seed
  if (typeof requested === "number" && Number.isFinite(requested))
    return `s${Math.abs(Math.trunc(requested)).toString(36)}`
  if (episodeId !== undefined) return sampleTagOfEpisode(episodeId)
  if (turns > 0) return "x"
  const n = arrivals.get(key) ?? 0
  arrivals.delete(key)
  arrivals.set(key, n + 1)
  if (arrivals.size > MAX_TRACKED_EPISODES) arrivals.delete(arrivals.keys().next().value!)
  return `n${n}`
}
