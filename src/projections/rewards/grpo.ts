/**
 * The `grpo` profile: plain GRPO. After the exclusions every profile makes (infrastructure,
 * judge_failed, cancelled, timeout), every sample is kept and A = (score − mean) / (std + epsilon)
 * over the kept samples, std the sample (n − 1) standard deviation. A truncated or repeating
 * trajectory counts as a 0, like any wrong answer. There is no variance filter: a group whose
 * scores are all equal is kept with advantages of 0, as GRPO has it. Per turn, as in every profile:
 * FAILED turns never train and FORMAT_ERROR / REPEAT turns are capped at A ≤ 0 (dropped when that
 * takes them to 0); other turns at 0 stay.
 */
import { dropped, type GroupDecision, groupDecision, type SampleDecision } from "./groupDecision.ts"
import { canonicalOrder, effectiveScore, exclusionOf, type GroupSample } from "./groupSamples.ts"
import { mean, sampleStd, withoutResidue } from "./groupStatistics.ts"
import type { GrpoRewards } from "./rewardConfig.ts"
import { spreadOverTurns } from "./turnAdvantages.ts"

export const grpoGroup = (config: GrpoRewards, group: ReadonlyArray<GroupSample>): GroupDecision => {
  const samples = canonicalOrder(group)
  const pool = samples.filter((sample) => exclusionOf(sample) === undefined)
  const scores = pool.map(effectiveScore)
  const m = mean(scores)
  const std = sampleStd(scores)
  const decisions: SampleDecision[] = samples.map((sample) => {
    const reason = exclusionOf(sample)
    if (reason !== undefined) return dropped(sample.sampleId, reason)
    const score = effectiveScore(sample)
    const advantage = withoutResidue(score - m) / (std + config.epsilon)
    return spreadOverTurns(sample, score, advantage, { dropZero: false })
  })
  const baseline = pool.length === 0 ? null : { members: pool.map((sample) => sample.sampleId), mean: m, std }
  return groupDecision("grpo", null, baseline, decisions)
}
