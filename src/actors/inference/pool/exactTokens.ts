/**
 * What a token-exact model group (`tokens: exact` in models.yaml, an RL group) asks of a server
 * and reads back from every answer: the prompt ids as its chat template rendered them, the sampled
 * ids, one log-prob per sampled id, the temperature that was sent and the weight version of each
 * sampled token. vLLM returns the ids with `return_token_ids` (top-level `prompt_token_ids`, per
 * choice `token_ids`) and per-token versions as `weight_versions: [{version, start, end}]` where it
 * has them; without those, the version the response was stamped with covers every token. An answer
 * missing any of it is refused here rather than recorded half-exact: a training batch must never
 * re-tokenize text to fill a gap.
 */
import type { WeightVersionSpan } from "../../../events/chat.ts"
import type { ModelConfig } from "../modelsConfig.ts"

/** The temperature a token-exact call samples at when neither the call nor `extraBody` sets one. */
export const DEFAULT_EXACT_TEMPERATURE = 1

/**
 * The temperature a token-exact call sends (and records): the call's, else `extraBody`'s, else 1.
 * Always sent, so the server's own default (a model's generation config) never decides it unseen.
 */
export const exactTemperature = (config: ModelConfig, requested: number | undefined): number => {
  if (requested !== undefined) return requested
  const configured = config.extraBody?.temperature
  return typeof configured === "number" ? configured : DEFAULT_EXACT_TEMPERATURE
}

/** The request fields a token-exact call adds: ids back, one log-prob per sampled token, no alternatives. */
export const exactRequestFields = (config: ModelConfig, requested: number | undefined) => ({
  return_token_ids: true,
  logprobs: true,
  top_logprobs: 0,
  temperature: exactTemperature(config, requested),
})

/** The token-exact part of a completion. */
export interface ExactTokens {
  readonly promptTokenIds: ReadonlyArray<number>
  readonly tokenIds: ReadonlyArray<number>
  readonly logprobs: ReadonlyArray<number>
  readonly temperature: number
  readonly weightVersions?: ReadonlyArray<WeightVersionSpan>
}

/** What an answer lacks for a token-exact group, in words for the endpoint's error. */
export interface ExactProblem {
  readonly problem: string
}

const isIdList = (value: unknown): value is ReadonlyArray<number> =>
  Array.isArray(value) && value.every((id) => Number.isSafeInteger(id) && id >= 0)

/**
 * Reads `weight_versions` spans over `count` sampled tokens: in order, each `start < end` (an
 * empty span says nothing), together covering `[0, count)` without a gap or an overlap. A version
 * may come as a number; it is recorded as text, like the version header.
 */
export const readWeightVersions = (
  raw: unknown,
  count: number,
): ReadonlyArray<WeightVersionSpan> | ExactProblem => {
  if (!Array.isArray(raw)) return { problem: "weight_versions is not a list" }
  const spans: Array<WeightVersionSpan> = []
  let next = 0
  for (const [i, span] of raw.entries()) {
    const { version, start, end } = (span ?? {}) as Record<string, unknown>
    const label = typeof version === "number" && Number.isFinite(version) ? String(version) : version
    if (typeof label !== "string" || label === "") return { problem: `weight_versions[${i}] has no version` }
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end))
      return { problem: `weight_versions[${i}] needs integer start and end` }
    if (start !== next || (end as number) <= (start as number) || (end as number) > count)
      return {
        problem: `weight_versions[${i}] spans [${String(start)}, ${String(end)}) where [${next}, …] up to ${count} tokens was expected`,
      }
    spans.push({ version: label, start: start as number, end: end as number })
    next = end as number
  }
  if (next !== count) return { problem: `weight_versions cover ${next} of ${count} sampled tokens` }
  return spans
}

/**
 * The token-exact fields of one answer: `promptTokenIds` (top level, or on the choice as in
 * `/v1/completions`), the choice's `token_ids`, its log-probs (one per id), and the versions from
 * `weight_versions` (on the choice or at the top level), else `policyVersion` over every token.
 */
export const readExactTokens = (
  body: Readonly<Record<string, unknown>>,
  choice: Readonly<Record<string, unknown>>,
  logprobs: ReadonlyArray<number> | undefined,
  temperature: number,
  policyVersion: string | undefined,
): ExactTokens | ExactProblem => {
  const prompt = body.prompt_token_ids ?? choice.prompt_token_ids
  if (!isIdList(prompt))
    return {
      problem:
        "the answer has no prompt_token_ids (a token-exact group needs a server that returns them, e.g. vLLM ≥ 0.10.2 with return_token_ids)",
    }
  const sampled = choice.token_ids
  if (!isIdList(sampled)) return { problem: "choices[0] has no token_ids" }
  if (logprobs === undefined || logprobs.length !== sampled.length)
    return {
      problem: `choices[0] has ${logprobs?.length ?? "no"} log-probs for ${sampled.length} sampled tokens`,
    }
  const rawVersions = choice.weight_versions ?? body.weight_versions
  const weightVersions =
    rawVersions !== undefined && rawVersions !== null
      ? readWeightVersions(rawVersions, sampled.length)
      : policyVersion === undefined
        ? undefined
        : sampled.length === 0
          ? []
          : [{ version: policyVersion, start: 0, end: sampled.length }]
  if (weightVersions !== undefined && "problem" in weightVersions) return weightVersions
  return {
    promptTokenIds: prompt,
    tokenIds: sampled,
    logprobs,
    temperature,
    ...(weightVersions === undefined ? {} : { weightVersions }),
  }
}
