/**
 * How rewards become advantages: the reward profile and its parameters, decoded by Effect Schema
 * (the `rewards` section of the RL config). Every parameter has a default — `agentcpm`'s are
 * AgentRL's (`balance_sample` on, `min_turns` 1, `reserve_context_error_count` 0, `adv_scaling` 1,
 * `efficient_rewarding` off, the 0.1 variance threshold and the 0.2 rank spread) — so
 * `{ profile: agentcpm }` is a complete configuration. Unknown keys are errors.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefault(Effect.succeed(value)))

const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** AgentRL's rules (REFERENCE §3) without its bugs; see `agentcpm.ts` for each rule. */
export const AgentCpmRewards = Schema.Struct({
  profile: Schema.Literal("agentcpm"),
  /** A group whose scores differ by less than this (max − min) is dropped. */
  varianceThreshold: withDefault(NonNegative, 0.1),
  /** Balanced mode: keep the shortest min+1 wrong and min+2 right samples. */
  balanced: withDefault(Schema.Boolean, true),
  /** A correct answer in at most this many turns is dropped as a guess or a leak. */
  minTurns: withDefault(Count, 1),
  /** How many truncated trajectories (turns or context limit) stay in, as negatives. */
  reserveContextErrorCount: withDefault(Count, 0),
  /** Every advantage is multiplied by this. */
  advScaling: withDefault(Positive, 1),
  /** Rank shaping by turn count within wrong and right samples (AgentRL's no-op, made real). */
  efficientRewarding: withDefault(Schema.Boolean, false),
  /** The shaping's total range within a class: ±spread/2 at the extremes. */
  efficientSpread: withDefault(NonNegative, 0.2),
})
export type AgentCpmRewards = typeof AgentCpmRewards.Type

/** GRPO: (score − mean) / (std + epsilon) over the group. */
export const GrpoRewards = Schema.Struct({
  profile: Schema.Literal("grpo"),
  epsilon: withDefault(Positive, 1e-6),
})
export type GrpoRewards = typeof GrpoRewards.Type

/** DAPO's data side: dynamic sampling (zero-variance groups dropped) and overlong filtering. */
export const DapoRewards = Schema.Struct({
  profile: Schema.Literal("dapo"),
  epsilon: withDefault(Positive, 1e-6),
  /** A group whose scores differ by at most this (max − min) has zero variance and is dropped. */
  zeroVarianceTolerance: withDefault(NonNegative, 0),
  /**
   * Whether a truncated (overlong) sample, whose own loss is masked, still counts as a 0 in the
   * group's mean and std (DAPO masks the loss only; on by default). Off: as if it was never drawn.
   */
  overlongInStatistics: withDefault(Schema.Boolean, true),
})
export type DapoRewards = typeof DapoRewards.Type

export const RewardConfig = Schema.Union([AgentCpmRewards, GrpoRewards, DapoRewards])
export type RewardConfig = typeof RewardConfig.Type
export type RewardProfileName = RewardConfig["profile"]

export class RewardConfigError extends Schema.TaggedError<RewardConfigError>()("RewardConfigError", {
  reason: Schema.String,
}) {}

const decode = Schema.decodeUnknownResult(RewardConfig, { onExcessProperty: "error" })

/** Decodes a `rewards` section; a failure names the key and what was wrong with it. */
export const decodeRewardConfig = (data: unknown): Result.Result<RewardConfig, RewardConfigError> => {
  const result = decode(data)
  return Result.isSuccess(result)
    ? Result.succeed(result.success)
    : Result.fail(new RewardConfigError({ reason: `rewards: ${result.failure.message}` }))
}

/** `agentcpm` with AgentRL's defaults. */
export const defaultRewardConfig: RewardConfig = Result.getOrThrow(
  decodeRewardConfig({ profile: "agentcpm" }),
)
