/**
 * Why a sample, or one turn of it, does not reach the trainer: one closed set of reasons shared by
 * the reward profiles (which decide most of them), the staleness and drift guards (which decide
 * `stale` and `drift` where the weight versions and token ids are known) and the batches projection
 * that counts them per training step. A reason is a string literal that is never renamed, so counts
 * read from old checkpoints and events keep their meaning.
 */
import * as Schema from "effect/Schema"

/**
 * Group rule: `zero_variance_group` (the scores that would form the baseline do not differ).
 * Decided elsewhere: `stale` (a token's weight version is too old), `drift` (the prompt ids did not
 * extend the previous turn's), `no_token_ids` (a kept turn lacks its token-exact record: prompt ids,
 * sampled ids, log-probs, temperature or weight versions — nothing is re-tokenized to make it up),
 * `bad_versions` (a kept turn's weight versions are not versions the run trained: not a canonical
 * integer, spans that do not tile its tokens, or newer than the step). Sample rules: `infrastructure` (the model server or the tools failed),
 * `judge_failed`, `cancelled`, `timeout` (the runtime's wall clock stopped the episode),
 * `truncated` (turns or context limit), `too_few_turns` (a correct answer in ≤ `minTurns` turns, or
 * no turn at all), `balanced_trim`, `zero_advantage`, `sign_clip` (the advantage had the sign its
 * outcome forbids). Turn rules: `format_error` and `repeat` (the cap A ≤ 0 took a positive
 * advantage to 0), `failed_turn` (finish_reason length or content_filter: never trained). A
 * sample whose every turn was dropped carries the reason that dropped most of its turns.
 */
export const DropReason = Schema.Literals([
  "zero_variance_group",
  "stale",
  "drift",
  "no_token_ids",
  "bad_versions",
  "infrastructure",
  "judge_failed",
  "cancelled",
  "timeout",
  "truncated",
  "too_few_turns",
  "balanced_trim",
  "zero_advantage",
  "sign_clip",
  "format_error",
  "repeat",
  "failed_turn",
])
export type DropReason = typeof DropReason.Type

/** Every reason, in the order above (which is also the order counts are printed and tie-broken in). */
export const dropReasons: ReadonlyArray<DropReason> = DropReason.literals

/** How many drops each reason made; every reason present, so two counts always have the same keys. */
export type ReasonCounts = Readonly<Record<DropReason, number>>

export const noDrops: ReasonCounts = Object.fromEntries(dropReasons.map((reason) => [reason, 0])) as Record<
  DropReason,
  number
>

/** Counts of a list of reasons. */
export const countReasons = (reasons: Iterable<DropReason>): ReasonCounts => {
  const counts: Record<DropReason, number> = { ...noDrops }
  for (const reason of reasons) counts[reason] += 1
  return counts
}

/** The sum of two counts (a training step adds up its groups'). */
export const addCounts = (a: ReasonCounts, b: ReasonCounts): ReasonCounts =>
  Object.fromEntries(dropReasons.map((reason) => [reason, a[reason] + b[reason]])) as Record<
    DropReason,
    number
  >
