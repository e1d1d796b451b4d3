/**
 * What a reward profile decides about one group: for every sample, kept (with its sample-level
 * advantage and the advantage of each turn that trains) or dropped with one reason; the turns a
 * kept sample loses, each with its reason; which samples formed the baseline; and counts per
 * reason. Samples are listed in canonical order, so equal inputs give equal decisions.
 */
import { countReasons, type DropReason, type ReasonCounts } from "./dropReasons.ts"
import type { RewardProfileName } from "./rewardConfig.ts"

export interface TurnAdvantage {
  readonly turn: number
  readonly advantage: number
}

export interface DroppedTurn {
  readonly turn: number
  readonly reason: DropReason
}

export interface KeptSample {
  readonly sampleId: string
  readonly kept: true
  /** The score the sample stands for (`effectiveScore`), before any shaping. */
  readonly score: number
  /** The sample's advantage, after the profile's sign clip and scaling, before per-turn caps. */
  readonly advantage: number
  /** The turns that train, in turn order; never empty. */
  readonly turns: ReadonlyArray<TurnAdvantage>
  readonly droppedTurns: ReadonlyArray<DroppedTurn>
}

export interface DroppedSample {
  readonly sampleId: string
  readonly kept: false
  readonly reason: DropReason
}

export type SampleDecision = KeptSample | DroppedSample

/** The baseline: which samples entered it (by id, canonical order) and what it came to. */
export interface Baseline {
  readonly members: ReadonlyArray<string>
  readonly mean: number
  /** GRPO and DAPO: the sample standard deviation divided by; agentcpm: none (leave-one-out, no std). */
  readonly std: number | null
}

export interface GroupDecision {
  readonly profile: RewardProfileName
  /** Set when a group rule dropped every sample that was not excluded on its own account. */
  readonly groupDropped: DropReason | null
  /** Null when the group was dropped before a baseline was taken. */
  readonly baseline: Baseline | null
  readonly samples: ReadonlyArray<SampleDecision>
  readonly kept: number
  readonly keptTurns: number
  /** Dropped samples by reason. */
  readonly droppedSamples: ReasonCounts
  /** Dropped turns of kept samples by reason (a dropped sample's turns are not counted again). */
  readonly droppedTurns: ReasonCounts
}

/** Assembles a decision, counting from the samples themselves so counts and samples always agree. */
export const groupDecision = (
  profile: RewardProfileName,
  groupDropped: DropReason | null,
  baseline: Baseline | null,
  samples: ReadonlyArray<SampleDecision>,
): GroupDecision => {
  const kept = samples.filter((sample): sample is KeptSample => sample.kept)
  return {
    profile,
    groupDropped,
    baseline,
    samples,
    kept: kept.length,
    keptTurns: kept.reduce((sum, sample) => sum + sample.turns.length, 0),
    droppedSamples: countReasons(samples.flatMap((sample) => (sample.kept ? [] : [sample.reason]))),
    droppedTurns: countReasons(kept.flatMap((sample) => sample.droppedTurns.map((turn) => turn.reason))),
  }
}

export const dropped = (sampleId: string, reason: DropReason): DroppedSample => ({
  sampleId,
  kept: false,
  reason,
})
