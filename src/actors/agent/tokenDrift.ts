/**
 * The drift guard of token-exact episodes, pure: does a turn's prompt (as the server tokenized it)
 * extend the ids the episode had reached — the previous turn's prompt followed by its sampled ids?
 * Sampled ids are never re-tokenized here; they are compared as recorded. When the prompt does not
 * extend them, says where they first differ and whether the difference is a local realignment (the
 * rest of the expected ids reappears after a few tokens) or a fork (the history was rewritten), as
 * `DriftDetected` records it.
 */

/** The ids an episode had reached after a turn: its prompt, then what was sampled. */
export interface ReachedTokens {
  readonly turn: number
  readonly prompt: ReadonlyArray<number>
  readonly sampled: ReadonlyArray<number>
}

/** At most this many tokens on each side may be skipped for a difference to count as a realignment. */
export const REALIGN_WINDOW = 8

export interface Drift {
  /** The first index where the prompt differs from the expected ids (the prompt's length if shorter). */
  readonly index: number
  readonly expectedTokens: number
  readonly promptTokens: number
  readonly kind: "realign" | "fork"
  /** For a realignment: where the expected ids' rest starts, in the expected ids and in the prompt. */
  readonly resume?: { readonly expected: number; readonly prompt: number }
}

/** The k-th expected id: the prompt's, then the sampled ids', without building their concatenation. */
const expectedAt = (reached: ReachedTokens, k: number): number | undefined =>
  k < reached.prompt.length ? reached.prompt[k] : reached.sampled[k - reached.prompt.length]

/** Whether expected[from, n) equals prompt[at, at + n - from). */
const tailReappears = (
  reached: ReachedTokens,
  n: number,
  from: number,
  prompt: ReadonlyArray<number>,
  at: number,
): boolean => {
  if (at + (n - from) > prompt.length) return false
  // From the end first: a rewritten history usually differs there too, so a mismatch shows early.
  for (let k = n - 1; k >= from; k--) if (expectedAt(reached, k) !== prompt[at + k - from]) return false
  return true
}

/**
 * Checks that `prompt` extends `reached` (its prompt, then its sampled ids). Undefined when it does;
 * otherwise the first differing index and the kind. A realignment is the smallest skip `a + b`
 * (fewer expected tokens skipped first), `a, b ≤ REALIGN_WINDOW`, such that the expected ids from
 * `index + a` to their end — at least one of them — reappear verbatim in the prompt from
 * `index + b`. When none does but the difference lies within the last `REALIGN_WINDOW` expected
 * ids, those are what changed: a realignment resuming at the expected ids' end and at `index` in
 * the prompt. Anything else is a fork.
 */
export const tokenDrift = (reached: ReachedTokens, prompt: ReadonlyArray<number>): Drift | undefined => {
  const n = reached.prompt.length + reached.sampled.length
  const limit = Math.min(n, prompt.length)
  let index = 0
  while (index < limit && expectedAt(reached, index) === prompt[index]) index++
  if (index === n) return undefined
  const base = { index, expectedTokens: n, promptTokens: prompt.length }
  for (let skip = 1; skip <= 2 * REALIGN_WINDOW; skip++) {
    for (let a = Math.max(0, skip - REALIGN_WINDOW); a <= Math.min(skip, REALIGN_WINDOW); a++) {
      const b = skip - a
      if (index + a >= n) break
      if (tailReappears(reached, n, index + a, prompt, index + b))
        return { ...base, kind: "realign", resume: { expected: index + a, prompt: index + b } }
    }
  }
  if (n - index <= REALIGN_WINDOW) return { ...base, kind: "realign", resume: { expected: n, prompt: index } }
  return { ...base, kind: "fork" }
}
