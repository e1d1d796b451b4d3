/**
 * `config/rl.yaml`: what an RL run samples and how its data becomes training batches — the task set
 * (read by the evaluation loaders), the RL model group, GRPO's group size, the episodes in flight,
 * the recorded shuffle seed, the reward profile, the staleness bound η, the batch size per training
 * step, the trainer back-pressure, the scorer and the episode policy. Decoded by Effect Schema
 * through yamlFile.ts, so an error names file:line:column and the path, and an unknown key is
 * refused with a suggestion. This is the sampler actor's room; the actor itself (decider and
 * shell) comes next and reads this config.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import { EpisodePolicy } from "../../events/schema.ts"
import { StalenessConfig } from "../../projections/batches/staleness.ts"
import { RewardConfig } from "../../projections/rewards/rewardConfig.ts"
import {
  ConfigError,
  decodeConfigData,
  decodeYamlFile,
  parseYaml,
  readYamlFile,
} from "../../runtime/yamlFile.ts"
import { defaultPolicy } from "../agent/episodeState.ts"
import { BENCHMARK_NAMES, parseCustomMapping } from "../evaluator/datasets/benchmarks.ts"
import { TABLE_FORMATS } from "../evaluator/datasets/tableFiles.ts"
import { SCORER_NAMES } from "../evaluator/scoring/scorers.ts"

const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefault(Effect.succeed(value)))
const atLeast = (minimum: number) => Schema.Int.check(Schema.isGreaterThanOrEqualTo(minimum))

/** A custom benchmark's column mapping, written as `rollout eval --map` takes it. */
const Mapping = Schema.String.check(
  Schema.makeFilter((text: string) => {
    const parsed = parseCustomMapping(text)
    return typeof parsed === "string"
      ? `${parsed}; write it as question=<column>,answer=<column>[,id=<column>,…]`
      : undefined
  }),
)

/** The training task set: the same benchmark flags `rollout eval` takes, read by the same loaders. */
export const RlTasks = Schema.Struct({
  /** The benchmark whose file layout (and default scorer) the data file has. */
  bench: Schema.Literals(BENCHMARK_NAMES),
  /** The benchmark file (CSV, TSV, JSON, JSONL, xlsx or parquet), relative to the working directory. */
  data: Schema.NonEmptyString,
  /** `custom` only: question=<column>,answer=<column>[,id=…,level=…,category=…]. */
  map: Schema.optionalKey(Mapping),
  /** Read the file as this format instead of guessing from its name. */
  format: Schema.optionalKey(Schema.Literals(TABLE_FORMATS)),
  /** A file of task ids: only these tasks are trained on (the split; required for gaia-text). */
  ids: Schema.optionalKey(Schema.NonEmptyString),
  /** Only the first n tasks (after `ids`). */
  limit: Schema.optionalKey(atLeast(1)),
  /** The file of an encrypted benchmark is already decrypted. */
  plaintext: withDefault(Schema.Boolean, false),
}).check(
  Schema.makeFilter((tasks) =>
    tasks.map !== undefined && tasks.bench !== "custom"
      ? { path: ["map"], issue: `map applies to the custom benchmark only, not ${tasks.bench}` }
      : undefined,
  ),
)
export type RlTasks = typeof RlTasks.Type

/** How many samples make one training step: whole groups, or a token budget (filled by whole groups). */
export const RlBatchSize = Schema.Unknown.check(
  Schema.makeFilter((data: unknown) =>
    data !== null && typeof data === "object" && "groups" in data && "tokens" in data
      ? "give groups or tokens, not both"
      : undefined,
  ),
).pipe(
  Schema.decodeTo(
    Schema.Union([Schema.Struct({ groups: atLeast(1) }), Schema.Struct({ tokens: atLeast(1) })]),
  ),
)
export type RlBatchSize = typeof RlBatchSize.Type

const rewardProfiles: ReadonlyArray<string> = RewardConfig.members.map(
  (member) => member.fields.profile.literal,
)

/**
 * The `rewards` section: rewardConfig.ts's schema, behind a check of `profile` first, so an unknown
 * profile is named with the known ones instead of as a failed match of every member.
 */
const RewardsSection = Schema.Unknown.check(
  Schema.makeFilter((data: unknown) => {
    if (data === null || typeof data !== "object" || Array.isArray(data)) return undefined
    const profile = (data as { readonly profile?: unknown }).profile
    if (profile === undefined) return `needs profile: one of ${rewardProfiles.join(", ")}`
    return rewardProfiles.includes(String(profile))
      ? undefined
      : `unknown profile ${JSON.stringify(profile)} (known profiles: ${rewardProfiles.join(", ")})`
  }),
).pipe(Schema.decodeTo(RewardConfig))

/** Overrides of the evaluation's episode policy (AgentToLeaP's defaults); unset keys keep them. */
export const RlPolicy = EpisodePolicy.mapFields(Struct.map(Schema.optionalKey))

export const RlFile = Schema.Struct({
  tasks: RlTasks,
  /** The RL model group: a model in models.yaml (its endpoints get the weight updates). */
  model: Schema.NonEmptyString,
  /** n, the samples per task in one GRPO group (advantages compare them); at least 2. */
  groupSize: withDefault(atLeast(2), 8),
  /** Passes over the task set: each task is sampled as one group per epoch, in a new seeded order. */
  epochs: withDefault(atLeast(1), 1),
  /** Stop once this many training steps are planned (optional; default: when the epochs are done). */
  steps: Schema.optionalKey(atLeast(1)),
  /** Target number of episodes in flight at once. */
  concurrency: withDefault(atLeast(1), 16),
  /** Seed of the task shuffle; recorded with the run, so a resumed run draws the same order. */
  seed: withDefault(Schema.Int, 0),
  /** Reward profile and parameters: agentcpm (default), grpo or dapo; see rewardConfig.ts. */
  rewards: withDefault(RewardsSection, { profile: "agentcpm" }),
  /** η, the largest (training step − weight version) a trained token may have, and drop or mask. */
  staleness: withDefault(StalenessConfig, {}),
  /** Samples per training step: `{groups: n}` or `{tokens: n}`. */
  batch: withDefault(RlBatchSize, { groups: 4 }),
  /** Back-pressure: no new groups start while this many published batches are unconsumed. */
  maxUnconsumedBatches: withDefault(atLeast(1), 2),
  /** Override of the benchmark's scorer: gaia (exact match) or a judge profile, as `eval --scorer`. */
  scorer: Schema.optionalKey(Schema.Literals(SCORER_NAMES)),
  /** The judge model for judged scorers: a model in models.yaml, as `eval --judge-model`. */
  judgeModel: Schema.optionalKey(Schema.NonEmptyString),
  /** The episode policy (maxTurns, context budget, …) over the evaluation's defaults. */
  policy: withDefault(RlPolicy, {}),
})
export type RlFile = typeof RlFile.Type

/** A decoded RL config: the file's values with the episode policy completed. */
export interface RlConfig extends Omit<RlFile, "policy"> {
  /** Where it came from (a file path, or "(in code)"). */
  readonly source: string
  readonly policy: EpisodePolicy
}

export const RL_FILE = "config/rl.yaml"

const complete = (file: RlFile, source: string): RlConfig => ({
  ...file,
  source,
  policy: { ...defaultPolicy, ...file.policy },
})

/** Reads and decodes an RL config file; a missing file is an error (an RL run needs one). */
export const loadRlConfig = (path: string = RL_FILE): Effect.Effect<RlConfig, ConfigError> =>
  Effect.gen(function* () {
    const yaml = yield* readYamlFile(path)
    if (yaml === undefined)
      return yield* new ConfigError({
        source: path,
        path: "",
        reason: "no such file (an RL run needs its config)",
      })
    return complete(yield* decodeYamlFile(yaml, RlFile), path)
  })

/** Decodes RL config text that came from `path` (what `loadRlConfig` does after reading). */
export const decodeRlYaml = (path: string, text: string): Effect.Effect<RlConfig, ConfigError> =>
  Effect.gen(function* () {
    const yaml = yield* parseYaml(path, text)
    return complete(yield* decodeYamlFile(yaml, RlFile), path)
  })

/** Builds a config in code (tests, benchmarks) with the file's defaults and checks. */
export const rlConfigFrom = (data: unknown, source = "(in code)"): Result.Result<RlConfig, ConfigError> =>
  Result.map(decodeConfigData(RlFile, data, source), (file) => complete(file, source))
