/**
 * The `agentcpm` profile: AgentRL's filtering and advantages (REFERENCE §3) without its bugs. In
 * the order applied, on one group:
 *
 * 1. Exclusions (every profile's): infrastructure, judge_failed, cancelled, timeout. An excluded
 *    sample's score enters nothing below (AgentRL let an infrastructure failure's 0 into the
 *    variance test and the baseline, so a broken tool made the others look good).
 * 2. Variance filter on the rest, the pool: max − min < `varianceThreshold` (or no spread at all,
 *    whatever the threshold) drops the group (`zero_variance_group`).
 * 3. Quality, which AgentRL skipped in balanced mode (its early return): (a) is step 1; (b) a
 *    correct answer (score > 0) in ≤ `minTurns` turns is dropped (`too_few_turns`: a guess or a
 *    leak); (c) truncated trajectories (turns or context limit) are dropped (`truncated`) except the
 *    `reserveContextErrorCount` shortest, kept as negatives (score 0). AgentRL picked them at random
 *    and stopped dropping them at all when efficient rewarding was on; here neither.
 * 4. Balanced mode (default on). `min` is AgentRL's `min_len`: the smaller of the number of wrong
 *    samples (score exactly 0, as AgentRL's query `score == 0`) and of right samples (score ≠ 0)
 *    among those still in. The shortest `min + 1` wrong and the shortest `min + 2` right stay, the
 *    rest go (`balanced_trim`): at most one more wrong than right and two more right than wrong.
 *    "Shortest" is by tokens, then turns, then id. AgentRL sorted by trajectory length and then
 *    shuffled the lists at random before cutting, so its "shortest" was never applied.
 * 5. The variance filter again, on what is left: a baseline needs two samples whose scores differ,
 *    so no zero-variance group is ever emitted even when step 3 or 4 removed the difference.
 * 6. Efficient rewarding (optional, off by default): within the wrong (score ≤ 0.5) and the right
 *    samples separately, the score moves by the sample's centred rank by turn count (ties share
 *    their average rank) times `efficientSpread / (n − 1)`: shorter is better when right, longer
 *    when wrong; each class's shifts sum to 0. AgentRL wrote these shaped scores where the
 *    advantage never read them; here the baseline below is taken over them.
 * 7. Advantage: leave-one-out over the samples left after step 5 (the baseline's members):
 *    A = score − mean(the other members' scores), no std — so the members' advantages sum to 0
 *    before clipping. Excluded, trimmed and truncated samples are not members; a sample dropped
 *    below (steps 8–9) stays one, since the baseline was already taken.
 * 8. Sign clip by outcome: score ≤ 0.5 (the unshaped score) → A ≤ 0, else A ≥ 0. A = 0 before
 *    the clip drops the sample as `zero_advantage`, a clip to 0 as `sign_clip`. Then × `advScaling`.
 * 9. Per turn (`turnAdvantages.ts`): FAILED turns never train, FORMAT_ERROR and REPEAT turns are
 *    capped at A ≤ 0, turns at 0 are dropped.
 */

import type { DropReason } from "./dropReasons.ts"
import { dropped, type GroupDecision, groupDecision, type SampleDecision } from "./groupDecision.ts"
import {
  canonicalOrder,
  effectiveScore,
  exclusionOf,
  type GroupSample,
  isTruncated,
  shortestFirst,
} from "./groupSamples.ts"
import { spread, withoutResidue } from "./groupStatistics.ts"
import type { AgentCpmRewards } from "./rewardConfig.ts"
import { spreadOverTurns } from "./turnAdvantages.ts"

/** Two samples at least, whose scores differ, by at least the threshold. */
const hasVariance = (samples: ReadonlyArray<GroupSample>, threshold: number): boolean => {
  if (samples.length < 2) return false
  const range = spread(samples.map(effectiveScore))
  // Compared without residue: 1 − 0.95 is 0.05000000000000004 in binary, and meets a 0.05 threshold.
  return withoutResidue(range) > 0 && withoutResidue(range - threshold) >= 0
}

/** Above this score a sample is on the right side of the sign clip and of efficient rewarding. */
const isPositive = (score: number): boolean => score > 0.5

/** Each rank's centred value (rank − mean rank), ranks by turn count, ties sharing their average. */
const centredRanks = (samples: ReadonlyArray<GroupSample>): Map<string, number> => {
  const sorted = [...samples].sort((a, b) => a.turns.length - b.turns.length)
  const ranks = new Map<string, number>()
  let start = 0
  while (start < sorted.length) {
    let end = start
    while (end < sorted.length && sorted[end]!.turns.length === sorted[start]!.turns.length) end++
    // Positions start..end−1 share their average, (start + end − 1) / 2.
    for (let i = start; i < end; i++) ranks.set(sorted[i]!.sampleId, (start + end - 1) / 2)
    start = end
  }
  const middle = (sorted.length - 1) / 2
  return new Map([...ranks].map(([id, rank]) => [id, rank - middle]))
}

/** The scores after efficient rewarding's rank shaping (step 6). */
const shapedScores = (samples: ReadonlyArray<GroupSample>, totalSpread: number): Map<string, number> => {
  const scores = new Map(samples.map((sample) => [sample.sampleId, effectiveScore(sample)]))
  for (const right of [false, true]) {
    const cls = samples.filter((sample) => isPositive(effectiveScore(sample)) === right)
    if (cls.length < 2) continue
    const step = totalSpread / (cls.length - 1)
    for (const [id, centred] of centredRanks(cls)) {
      // Right: fewer turns is better (a negative centred rank raises the score); wrong: more is.
      const shift = (right ? -centred : centred) * step
      scores.set(id, scores.get(id)! + shift)
    }
  }
  return scores
}

export const agentcpmGroup = (config: AgentCpmRewards, group: ReadonlyArray<GroupSample>): GroupDecision => {
  const samples = canonicalOrder(group)
  const decisions = new Map<string, SampleDecision>()
  const drop = (sample: GroupSample, reason: DropReason) =>
    decisions.set(sample.sampleId, dropped(sample.sampleId, reason))
  const finish = (groupDropped: "zero_variance_group" | null, baseline: GroupDecision["baseline"]) =>
    groupDecision(
      "agentcpm",
      groupDropped,
      baseline,
      samples.map((sample) => decisions.get(sample.sampleId)!),
    )

  // 1. Exclusions.
  const pool: GroupSample[] = []
  for (const sample of samples) {
    const reason = exclusionOf(sample)
    if (reason === undefined) pool.push(sample)
    else drop(sample, reason)
  }
  if (pool.length === 0) return finish(null, null)

  // 2. Variance filter.
  if (!hasVariance(pool, config.varianceThreshold)) {
    for (const sample of pool) drop(sample, "zero_variance_group")
    return finish("zero_variance_group", null)
  }

  // 3. Quality: truncated (all but the reserved shortest), then correct answers in too few turns.
  const reserved = new Set(
    pool
      .filter(isTruncated)
      .sort(shortestFirst)
      .slice(0, config.reserveContextErrorCount)
      .map((sample) => sample.sampleId),
  )
  let members: GroupSample[] = []
  for (const sample of pool) {
    if (isTruncated(sample) && !reserved.has(sample.sampleId)) drop(sample, "truncated")
    else if (effectiveScore(sample) > 0 && sample.turns.length <= config.minTurns)
      drop(sample, "too_few_turns")
    else members.push(sample)
  }

  // 4. Balanced mode.
  if (config.balanced) {
    const wrong = members.filter((sample) => effectiveScore(sample) === 0).sort(shortestFirst)
    const right = members.filter((sample) => effectiveScore(sample) !== 0).sort(shortestFirst)
    const min = Math.min(wrong.length, right.length)
    const keep = new Set([...wrong.slice(0, min + 1), ...right.slice(0, min + 2)].map((s) => s.sampleId))
    for (const sample of members) if (!keep.has(sample.sampleId)) drop(sample, "balanced_trim")
    members = members.filter((sample) => keep.has(sample.sampleId))
  }

  // 5. The variance filter again, on what is left.
  if (!hasVariance(members, config.varianceThreshold)) {
    for (const sample of members) drop(sample, "zero_variance_group")
    return finish(members.length > 0 ? "zero_variance_group" : null, null)
  }

  // 6–7. Scores (shaped or not) and the leave-one-out baseline over the members.
  const scores = config.efficientRewarding
    ? shapedScores(members, config.efficientSpread)
    : new Map(members.map((sample) => [sample.sampleId, effectiveScore(sample)]))
  let total = 0
  for (const sample of members) total += scores.get(sample.sampleId)!
  const others = members.length - 1
  for (const sample of members) {
    const own = scores.get(sample.sampleId)!
    const advantage = withoutResidue(own - (total - own) / others)
    // 8. Sign clip by outcome, then scaling; 9. per turn.
    const score = effectiveScore(sample)
    const clipped = isPositive(score) ? Math.max(advantage, 0) : Math.min(advantage, 0)
    if (advantage === 0) drop(sample, "zero_advantage")
    else if (clipped === 0) drop(sample, "sign_clip")
    else
      decisions.set(
        sample.sampleId,
        spreadOverTurns(sample, score, clipped * config.advScaling, { dropZero: true }),
      )
  }
  return finish(null, {
    members: members.map((sample) => sample.sampleId),
    mean: total / members.length,
    std: null,
  })
}
