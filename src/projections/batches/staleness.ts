/**
 * The per-token staleness gate (issue 12, point 4): training step s may include a token sampled
 * under weight version v only if s − v ≤ η (`maxLag`, default 4). Given a sample as its sampled
 * tokens' version spans per turn (the shape of `Completion.weightVersions`), the gate keeps it,
 * drops it with the reason `stale` (policy `drop`, the default), or (policy `mask`) names the token
 * ranges whose loss is masked; a sample whose every token is stale is dropped, never emitted with an
 * all-zero mask. The batch-level gate adds up drops, masks and the histogram of version lags the
 * batch contains, and `lastTrainableStep` tells a sampler when waiting for a group stops paying.
 * Pure: the same input, with its spans in any order or split/merged any way, gives the same answer.
 *
 * Versions are the integer training steps that produced the weights. Events carry them as text (a
 * server's label); only a canonical non-negative decimal integer ("0", "7", "12" — not "07", "7.0",
 * "v7", "-1" or "1e3") is a version here, and anything else is refused with an error naming the
 * sample, turn and span, because guessing an order between free-form labels could train on tokens
 * of any age. A version newer than the step (v > s) cannot happen in a correct system and is refused
 * likewise rather than counted as a negative lag.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { WeightVersionSpan } from "../../events/chat.ts"
import { countReasons, type DropReason, type ReasonCounts } from "../rewards/dropReasons.ts"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** `drop`: a sample with any stale token is dropped. `mask`: only its stale tokens are masked. */
export const StalenessPolicy = Schema.Literals(["drop", "mask"])
export type StalenessPolicy = typeof StalenessPolicy.Type

/** The `staleness` section of the RL config; `{}` is complete (η = 4, policy `drop`). */
export const StalenessConfig = Schema.Struct({
  /** η: the largest s − v a trained token may have. */
  maxLag: Count.pipe(Schema.withDecodingDefault(Effect.succeed(4))),
  policy: StalenessPolicy.pipe(Schema.withDecodingDefault(Effect.succeed("drop" as const))),
})
export type StalenessConfig = typeof StalenessConfig.Type

export class StalenessError extends Schema.TaggedError<StalenessError>()("StalenessError", {
  reason: Schema.String,
}) {}

const decodeConfig = Schema.decodeUnknownResult(StalenessConfig, { onExcessProperty: "error" })

/** Decodes a `staleness` section; a failure names the key and what was wrong with it. */
export const decodeStalenessConfig = (data: unknown): Result.Result<StalenessConfig, StalenessError> => {
  const result = decodeConfig(data)
  return Result.isSuccess(result)
    ? Result.succeed(result.success)
    : Result.fail(new StalenessError({ reason: `staleness: ${result.failure.message}` }))
}

export const defaultStaleness: StalenessConfig = { maxLag: 4, policy: "drop" }

/** One sample as the gate sees it: its id and, per turn, the version spans over its sampled ids. */
export interface GateSample {
  readonly sample: string
  readonly turns: ReadonlyArray<ReadonlyArray<WeightVersionSpan>>
}

/** Sampled tokens `[start, end)` of one turn (indexes into that turn's sampled ids). */
export interface TokenRange {
  readonly turn: number
  readonly start: number
  readonly end: number
}

/** How many trained tokens were `lag` = s − v steps old; sorted by lag, no zero counts. */
export interface LagCount {
  readonly lag: number
  readonly tokens: number
}
export type LagHistogram = ReadonlyArray<LagCount>

/**
 * The gate's answer for one sample at one step. `lags` counts only the tokens that train (kept and
 * not masked), so every lag in it is ≤ η: the batch's histogram is its own proof of the bound.
 */
export type SampleGate =
  | { readonly verdict: "keep"; readonly lags: LagHistogram }
  | { readonly verdict: "drop"; readonly reason: DropReason & "stale"; readonly staleTokens: number }
  | { readonly verdict: "mask"; readonly masked: ReadonlyArray<TokenRange>; readonly lags: LagHistogram }

/** A run of one version over one turn's tokens, after sorting and merging. */
interface Run {
  readonly turn: number
  readonly version: number
  readonly start: number
  readonly end: number
}

const canonicalInteger = /^(0|[1-9][0-9]*)$/

/** The training step a version label names, or why it names none. */
export const versionStep = (label: string): number | undefined => {
  if (!canonicalInteger.test(label)) return undefined
  const step = Number(label)
  return Number.isSafeInteger(step) ? step : undefined
}

const refuse = (reason: string) => Result.fail(new StalenessError({ reason }))

const isStep = (n: number) => Number.isSafeInteger(n) && n >= 0

/**
 * A sample's spans as sorted runs, adjacent runs of one version merged. The spans of a turn, in any
 * order, must tile `[0, n)` (empty spans say nothing); a gap or an overlap leaves some token with no
 * version or two, so it is refused.
 */
const runsOf = (sample: GateSample): Result.Result<ReadonlyArray<Run>, StalenessError> => {
  const runs: Array<Run> = []
  for (const [turn, spans] of sample.turns.entries()) {
    const where = (i: number) => `staleness: sample "${sample.sample}" turn ${turn} span ${i}`
    const parsed: Array<Run> = []
    for (const [i, span] of spans.entries()) {
      if (!isStep(span.start) || !isStep(span.end) || span.end < span.start)
        return refuse(`${where(i)}: [${span.start}, ${span.end}) is not a range of token indexes`)
      const version = versionStep(span.version)
      if (version === undefined)
        return refuse(
          `${where(i)}: weight version "${span.version}" is not a training step (a non-negative integer written canonically, e.g. "7")`,
        )
      if (span.end > span.start) parsed.push({ turn, version, start: span.start, end: span.end })
    }
    parsed.sort((a, b) => a.start - b.start)
    let next = 0
    for (const run of parsed) {
      if (run.start !== next)
        return refuse(
          `staleness: sample "${sample.sample}" turn ${turn}: the spans ${run.start < next ? "overlap" : "leave a gap"} at token ${Math.min(run.start, next)}`,
        )
      const last = runs[runs.length - 1]
      if (last !== undefined && last.turn === turn && last.version === run.version && last.end === run.start)
        runs[runs.length - 1] = { ...last, end: run.end }
      else runs.push(run)
      next = run.end
    }
  }
  return Result.succeed(runs)
}

const histogramOf = (counts: ReadonlyMap<number, number>): LagHistogram =>
  [...counts.entries()]
    .filter(([, tokens]) => tokens > 0)
    .sort(([a], [b]) => a - b)
    .map(([lag, tokens]) => ({ lag, tokens }))

/** The sum of lag histograms (a batch adds up its samples'). */
export const mergeLagHistograms = (histograms: Iterable<LagHistogram>): LagHistogram => {
  const counts = new Map<number, number>()
  for (const histogram of histograms)
    for (const { lag, tokens } of histogram) counts.set(lag, (counts.get(lag) ?? 0) + tokens)
  return histogramOf(counts)
}

const checkStep = (step: number, config: StalenessConfig): Result.Result<void, StalenessError> => {
  if (!isStep(step)) return refuse(`staleness: step ${step} is not a non-negative integer`)
  if (!isStep(config.maxLag))
    return refuse(`staleness: maxLag ${config.maxLag} is not a non-negative integer`)
  return Result.succeed(undefined)
}

const gateRuns = (
  sample: GateSample,
  runs: ReadonlyArray<Run>,
  step: number,
  config: StalenessConfig,
): Result.Result<SampleGate, StalenessError> => {
  const fresh = new Map<number, number>()
  const masked: Array<TokenRange> = []
  let staleTokens = 0
  let freshTokens = 0
  for (const run of runs) {
    if (run.version > step)
      return refuse(
        `staleness: sample "${sample.sample}" turn ${run.turn} tokens [${run.start}, ${run.end}) were sampled under weight version ${run.version}, newer than training step ${step}; versions must come from steps already trained`,
      )
    const lag = step - run.version
    const tokens = run.end - run.start
    if (lag <= config.maxLag) {
      freshTokens += tokens
      fresh.set(lag, (fresh.get(lag) ?? 0) + tokens)
      continue
    }
    staleTokens += tokens
    // Runs are sorted, so a stale run right after another one of the same turn extends its range.
    const last = masked[masked.length - 1]
    if (last !== undefined && last.turn === run.turn && last.end === run.start)
      masked[masked.length - 1] = { ...last, end: run.end }
    else masked.push({ turn: run.turn, start: run.start, end: run.end })
  }
  if (staleTokens === 0) return Result.succeed({ verdict: "keep", lags: histogramOf(fresh) })
  if (config.policy === "drop" || freshTokens === 0)
    return Result.succeed({ verdict: "drop", reason: "stale", staleTokens })
  return Result.succeed({ verdict: "mask", masked, lags: histogramOf(fresh) })
}

/**
 * The gate for one sample at training step `step`. A sample with no sampled token has nothing
 * stale and is kept (other rules, not this one, judge empty samples).
 */
export const gateSample = (
  sample: GateSample,
  step: number,
  config: StalenessConfig = defaultStaleness,
): Result.Result<SampleGate, StalenessError> => {
  const checked = checkStep(step, config)
  if (Result.isFailure(checked)) return Result.fail(checked.failure)
  const runs = runsOf(sample)
  if (Result.isFailure(runs)) return Result.fail(runs.failure)
  return gateRuns(sample, runs.success, step, config)
}

/** A masked range, named by its sample. */
export interface SampleRange extends TokenRange {
  readonly sample: string
}

/** The gate's answer for a batch: what trains, what was dropped and why, what is masked, the lags. */
export interface BatchGate {
  readonly step: number
  /** Ids of the samples that train (wholly or with masks), in input order. */
  readonly kept: ReadonlyArray<string>
  readonly dropped: ReadonlyArray<{ readonly sample: string; readonly reason: DropReason }>
  readonly masked: ReadonlyArray<SampleRange>
  /** Lags of every token that trains, once each. */
  readonly lags: LagHistogram
  readonly drops: ReasonCounts
}

/** The gate over a batch's samples at `step`; a sample id listed twice is refused. */
export const gateBatch = (
  samples: ReadonlyArray<GateSample>,
  step: number,
  config: StalenessConfig = defaultStaleness,
): Result.Result<BatchGate, StalenessError> => {
  const checked = checkStep(step, config)
  if (Result.isFailure(checked)) return Result.fail(checked.failure)
  const seen = new Set<string>()
  const kept: Array<string> = []
  const dropped: Array<{ sample: string; reason: DropReason }> = []
  const masked: Array<SampleRange> = []
  const histograms: Array<LagHistogram> = []
  for (const sample of samples) {
    if (seen.has(sample.sample))
      return refuse(`staleness: sample "${sample.sample}" is listed twice in the batch`)
    seen.add(sample.sample)
    const gate = gateSample(sample, step, config)
    if (Result.isFailure(gate)) return Result.fail(gate.failure)
    const decision = gate.success
    if (decision.verdict === "drop") {
      dropped.push({ sample: sample.sample, reason: decision.reason })
      continue
    }
    kept.push(sample.sample)
    histograms.push(decision.lags)
    if (decision.verdict === "mask")
      for (const range of decision.masked) masked.push({ sample: sample.sample, ...range })
  }
  return Result.succeed({
    step,
    kept,
    dropped,
    masked,
    lags: mergeLagHistograms(histograms),
    drops: countReasons(dropped.map(({ reason }) => reason)),
  })
}

/**
 * The last training step at which a group can be trained with every sample in it, or `undefined`
 * when it has no sampled token yet (no bound). Policy `drop`: its oldest token's version + η; since
 * versions only grow, tokens sampled later cannot move it, so a sampler past it can stop waiting.
 * Policy `mask`: a sample is lost only when all its tokens are stale, so the bound is the smallest
 * over samples of their newest token's version + η; a sample still being generated may yet push it
 * later with newer tokens, so it is final only for finished samples.
 */
export const lastTrainableStep = (
  samples: ReadonlyArray<GateSample>,
  config: StalenessConfig = defaultStaleness,
): Result.Result<number | undefined, StalenessError> => {
  let bound: number | undefined
  for (const sample of samples) {
    const runs = runsOf(sample)
    if (Result.isFailure(runs)) return Result.fail(runs.failure)
    if (runs.success.length === 0) continue
    const pick = config.policy === "drop" ? Math.min : Math.max
    const limit =
      runs.success.reduce((acc, run) => pick(acc, run.version), runs.success[0]?.version ?? 0) + config.maxLag
    bound = bound === undefined ? limit : Math.min(bound, limit)
  }
  return Result.succeed(bound)
}

/** Whether the group can still be trained whole at `step` (see `lastTrainableStep`). */
export const trainableAt = (
  samples: ReadonlyArray<GateSample>,
  step: number,
  config: StalenessConfig = defaultStaleness,
): Result.Result<boolean, StalenessError> => {
  const checked = checkStep(step, config)
  if (Result.isFailure(checked)) return Result.fail(checked.failure)
  const bound = lastTrainableStep(samples, config)
  if (Result.isFailure(bound)) return Result.fail(bound.failure)
  return Result.succeed(bound.success === undefined || step <= bound.success)
}
