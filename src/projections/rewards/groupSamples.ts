/**
 * What the reward profiles read about one GRPO group: the n scored samples of one task, each as
 * plain data a projection can fold from events — the episode's end state (`EpisodeFinished.outcome`),
 * the scorer's verdict and score (`SampleScored`), the per-turn flags (`TurnAssessed.flags`, keyed
 * by the turn number) and the trajectory's length in tokens. Also what every profile agrees on: which
 * end states exclude a sample outright, the score a sample stands for, and one canonical order so
 * that no result depends on the order in which samples arrived.
 */
import * as Schema from "effect/Schema"
import { EpisodeOutcome, SampleScored, TurnFlag } from "../../events/schema.ts"
import type { DropReason } from "./dropReasons.ts"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** One model turn of a sample: its number in the episode and the flags the agent gave it. */
export const SampleTurn = Schema.Struct({
  turn: Count,
  flags: Schema.Array(TurnFlag),
})
export type SampleTurn = typeof SampleTurn.Type

export const GroupSample = Schema.Struct({
  /** Unique within the group (the episode id serves); the canonical order sorts on it. */
  sampleId: Schema.NonEmptyString,
  outcome: EpisodeOutcome,
  verdict: SampleScored.fields.verdict,
  /** The scorer's score in [0, 1]; read only for `answered` samples (see `effectiveScore`). */
  score: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })),
  /** The model turns, in any order, each number once. Their count is the sample's turn count. */
  turns: Schema.Array(SampleTurn).check(
    Schema.makeFilter((turns: ReadonlyArray<SampleTurn>) => {
      const seen = new Set<number>()
      for (const { turn } of turns) {
        if (seen.has(turn)) return `turn ${turn} is listed twice`
        seen.add(turn)
      }
      return true
    }),
  ),
  /** The trajectory's length in tokens (what the balanced trim ranks by: what training pays for). */
  tokens: Count,
})
export type GroupSample = typeof GroupSample.Type

/** A group as the profiles take it: at least one sample, sample ids unique. */
export const GroupSamples = Schema.Array(GroupSample).check(
  Schema.makeFilter((samples: ReadonlyArray<GroupSample>) => {
    if (samples.length === 0) return "a group has at least one sample"
    const seen = new Set<string>()
    for (const { sampleId } of samples) {
      if (seen.has(sampleId)) return `sample ${JSON.stringify(sampleId)} is listed twice`
      seen.add(sampleId)
    }
    return true
  }),
)

/**
 * The reasons a sample is excluded in every profile, before any statistic is taken: its score says
 * nothing about the policy. An infrastructure failure (the model server or the tools), a judge that
 * gave no verdict, a cancelled run, and a wall-clock timeout — whose cause, a slow policy or slow
 * infrastructure, cannot be told apart. An excluded sample never enters a mean and never carries
 * an advantage, whatever score it was given.
 */
export const exclusionOf = (sample: GroupSample): DropReason | undefined => {
  switch (sample.outcome) {
    case "model_error":
    case "tool_infrastructure_error":
      return "infrastructure"
    case "cancelled":
      return "cancelled"
    case "timeout":
      return "timeout"
  }
  if (sample.verdict === "judge_failed") return "judge_failed"
  return undefined
}

/** A trajectory cut by the turn or the context limit: no answer, and DAPO's "overlong". */
export const isTruncated = (sample: GroupSample): boolean =>
  sample.outcome === "turns_limit" || sample.outcome === "context_limit"

/**
 * The score a sample stands for: its score when it answered, else 0 — a trajectory cut by a limit
 * or ended by repetition has no answer, so whatever a scorer made of it, it counts as wrong (the end
 * state is explicit; AgentRL sent sentinel strings to the judge instead).
 */
export const effectiveScore = (sample: GroupSample): number =>
  sample.outcome === "answered" ? sample.score : 0

/** Code-unit order of sample ids: independent of locale, total on distinct ids. */
const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * The canonical order every profile computes in. Floating-point sums depend on the order of their
 * terms, so sorting first is what makes a result independent of the order samples arrived in.
 */
export const canonicalOrder = (samples: ReadonlyArray<GroupSample>): ReadonlyArray<GroupSample> =>
  [...samples].sort((a, b) => compareIds(a.sampleId, b.sampleId))

/** Shortest first: by tokens, then by turn count, then by id (so ties never depend on arrival). */
export const shortestFirst = (a: GroupSample, b: GroupSample): number =>
  a.tokens - b.tokens || a.turns.length - b.turns.length || compareIds(a.sampleId, b.sampleId)
