/**
 * The `dapo` profile: DAPO's data-side rules on top of GRPO's advantage. After the exclusions
 * every profile makes (infrastructure, judge_failed, cancelled, timeout):
 *
 * - Overlong filtering: a truncated sample (turns or context limit) is masked — it is dropped as
 *   `truncated` and carries no advantage, so a trajectory that ran out of room is never pushed down
 *   as if it had answered wrong. DAPO masks its loss only; by default (`overlongInStatistics`) it
 *   still counts as a 0 in the group's mean and std, as in DAPO, where the group statistics are
 *   taken over every response. With `overlongInStatistics: false` it is as if it was never drawn.
 * - Dynamic sampling: a group whose baseline scores (the kept samples, plus the masked ones when
 *   they count) differ by at most `zeroVarianceTolerance` gives no signal and is dropped whole
 *   (`zero_variance_group`, masked samples included); refilling the batch is the sampler's job.
 *
 * A = (score − mean) / (std + epsilon), std the sample (n − 1) standard deviation. Per turn, as in
 * every profile: FAILED turns never train, FORMAT_ERROR / REPEAT turns are capped at A ≤ 0.
 */
import { dropped, type GroupDecision, groupDecision, type SampleDecision } from "./groupDecision.ts"
import { canonicalOrder, effectiveScore, exclusionOf, type GroupSample, isTruncated } from "./groupSamples.ts"
import { mean, sampleStd, spread, withoutResidue } from "./groupStatistics.ts"
import type { DapoRewards } from "./rewardConfig.ts"
import { spreadOverTurns } from "./turnAdvantages.ts"

export const dapoGroup = (config: DapoRewards, group: ReadonlyArray<GroupSample>): GroupDecision => {
  const samples = canonicalOrder(group)
  const pool = samples.filter((sample) => exclusionOf(sample) === undefined)
  const members = config.overlongInStatistics ? pool : pool.filter((sample) => !isTruncated(sample))
  const scores = members.map(effectiveScore)
  // Compared without residue, so a spread that is the tolerance in decimal counts as within it.
  const zeroVariance =
    members.length < 2 || withoutResidue(spread(scores) - config.zeroVarianceTolerance) <= 0
  const m = mean(scores)
  const std = sampleStd(scores)
  const decisions: SampleDecision[] = samples.map((sample) => {
    const reason = exclusionOf(sample)
    if (reason !== undefined) return dropped(sample.sampleId, reason)
    if (zeroVariance) return dropped(sample.sampleId, "zero_variance_group")
    if (isTruncated(sample)) return dropped(sample.sampleId, "truncated")
    const score = effectiveScore(sample)
    const advantage = withoutResidue(score - m) / (std + config.epsilon)
    return spreadOverTurns(sample, score, advantage, { dropZero: false })
  })
  if (zeroVariance)
    return groupDecision("dapo", pool.length > 0 ? "zero_variance_group" : null, null, decisions)
  return groupDecision(
    "dapo",
    null,
    { members: members.map((sample) => sample.sampleId), mean: m, std },
    decisions,
  )
}
