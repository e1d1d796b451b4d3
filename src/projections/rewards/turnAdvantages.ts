/**
 * How a sample's advantage reaches its turns, the same in every profile: a FAILED turn (cut by
 * finish_reason length or content_filter) never trains; a FORMAT_ERROR or REPEAT turn is capped at
 * A ≤ 0, so a positive advantage becomes 0 there and the turn is dropped (a turn that carries
 * nothing is not sent); turns at exactly 0 are dropped too where the profile says so (agentcpm).
 * A sample left with no turn is dropped, with the reason that took most of its turns.
 */
import { type DropReason, dropReasons } from "./dropReasons.ts"
import { type DroppedTurn, dropped, type SampleDecision, type TurnAdvantage } from "./groupDecision.ts"
import type { GroupSample } from "./groupSamples.ts"

/** −0 and 0 are one advantage; keeping −0 would make equal decisions compare unequal. */
const normalized = (value: number): number => (value === 0 ? 0 : value)

const dropOf = (
  flags: ReadonlyArray<string>,
  advantage: number,
  dropZero: boolean,
): DropReason | undefined => {
  if (flags.includes("FAILED")) return "failed_turn"
  if (advantage > 0 && flags.includes("FORMAT_ERROR")) return "format_error"
  if (advantage > 0 && flags.includes("REPEAT")) return "repeat"
  if (advantage === 0 && dropZero) return "zero_advantage"
  return undefined
}

/** The reason that dropped most turns; a tie goes to the reason listed first in `dropReasons`. */
const mostFrequent = (turns: ReadonlyArray<DroppedTurn>): DropReason => {
  let best: DropReason = "too_few_turns"
  let bestCount = 0
  for (const reason of dropReasons) {
    const count = turns.filter((turn) => turn.reason === reason).length
    if (count > bestCount) {
      best = reason
      bestCount = count
    }
  }
  return best
}

/**
 * The decision for a sample that survived the group's rules, with sample-level `advantage`: kept
 * with its trainable turns (in turn order), or dropped when none is left — `too_few_turns` when it
 * had no turn at all.
 */
export const spreadOverTurns = (
  sample: GroupSample,
  score: number,
  advantage: number,
  options: { readonly dropZero: boolean },
): SampleDecision => {
  const value = normalized(advantage)
  const kept: TurnAdvantage[] = []
  const lost: DroppedTurn[] = []
  for (const { turn, flags } of [...sample.turns].sort((a, b) => a.turn - b.turn)) {
    const reason = dropOf(flags, value, options.dropZero)
    if (reason === undefined) kept.push({ turn, advantage: value })
    else lost.push({ turn, reason })
  }
  if (kept.length === 0) return dropped(sample.sampleId, mostFrequent(lost))
  return { sampleId: sample.sampleId, kept: true, score, advantage: value, turns: kept, droppedTurns: lost }
}
