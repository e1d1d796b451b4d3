/**
 * The one entry point of the reward room: a GRPO group of scored samples of one task, under the
 * configured profile, becomes per-sample decisions (kept with per-turn advantages, or dropped with a
 * reason) and counts per reason. Pure and total over valid input: the same samples, in any order,
 * give the same decision. Input that breaks the group's contract (no sample, a sample id or a turn
 * listed twice, a score outside [0, 1]) is refused with an error naming what and where.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { agentcpmGroup } from "./agentcpm.ts"
import { dapoGroup } from "./dapo.ts"
import type { GroupDecision } from "./groupDecision.ts"
import { type GroupSample, GroupSamples } from "./groupSamples.ts"
import { grpoGroup } from "./grpo.ts"
import type { RewardConfig } from "./rewardConfig.ts"

export class RewardGroupError extends Schema.TaggedError<RewardGroupError>()("RewardGroupError", {
  reason: Schema.String,
}) {}

const decodeGroup = Schema.decodeUnknownResult(GroupSamples, { onExcessProperty: "error" })

export const decideGroup = (
  config: RewardConfig,
  samples: ReadonlyArray<GroupSample>,
): Result.Result<GroupDecision, RewardGroupError> => {
  const decoded = decodeGroup(samples)
  if (Result.isFailure(decoded))
    return Result.fail(new RewardGroupError({ reason: `reward group: ${decoded.failure.message}` }))
  const group = decoded.success
  switch (config.profile) {
    case "agentcpm":
      return Result.succeed(agentcpmGroup(config, group))
    case "grpo":
      return Result.succeed(grpoGroup(config, group))
    case "dapo":
      return Result.succeed(dapoGroup(config, group))
  }
}
