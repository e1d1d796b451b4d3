/**
 * Token-exact sequences, pure (issue 12, point 5): folds one episode's events into its turns as the
 * server saw and produced them (prompt ids, sampled ids, log-probs, temperature, weight-version
 * spans) with the places where the sequence must split (`DriftDetected`, `ContextReset`), and lays
 * the kept samples of a planned step out as the batch of docs/training.md (`rollout.batch.v1`):
 * prefix-merged turns, a new sequence with its whole prompt at a drift, a context reset, or a
 * turn sampled at another temperature; loss mask 1 only on sampled tokens of kept turns not masked
 * as stale; each turn's advantage on its trained tokens; versions −1 and log-probs 0 where the
 * policy did not sample. Nothing is re-tokenized: every id is one the events recorded.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { WeightVersionSpan } from "../../events/chat.ts"
import type { Envelope } from "../../events/schema.ts"
import { ownValue } from "../projection.ts"
import { dropReasons, type ReasonCounts } from "../rewards/dropReasons.ts"
import type { PlannedSample, PlannedStep } from "./batchPlan.ts"
import { type LagHistogram, versionStep } from "./staleness.ts"

/** One model turn as recorded; a field the server did not give is null. */
export interface TurnRecord {
  readonly turn: number
  readonly prompt: ReadonlyArray<number> | null
  readonly sampled: ReadonlyArray<number> | null
  readonly logprobs: ReadonlyArray<number> | null
  readonly temperature: number | null
  readonly spans: ReadonlyArray<WeightVersionSpan> | null
}

/** One episode's token-exact record. */
export interface EpisodeTokens {
  readonly episodeId: string
  /** turn → its record. */
  readonly turns: Readonly<Record<string, TurnRecord>>
  /** Turns whose prompt did not extend the ids reached (`DriftDetected.turn`). */
  readonly drifts: ReadonlyArray<number>
  /** `ContextReset.turn`: the turns completed when the context was cut; the next turn starts over. */
  readonly resets: ReadonlyArray<number>
}

export const emptyEpisodeTokens = (episodeId: string): EpisodeTokens => ({
  episodeId,
  turns: {},
  drifts: [],
  resets: [],
})

const withNumber = (list: ReadonlyArray<number>, n: number): ReadonlyArray<number> =>
  list.includes(n) ? list : [...list, n].sort((a, b) => a - b)

/** Folds one event of the episode (others are ignored); a redelivered event changes nothing. */
export const applyEpisodeTokens = (state: EpisodeTokens, { event }: Envelope): EpisodeTokens => {
  if (!("episodeId" in event) || event.episodeId !== state.episodeId) return state
  switch (event.type) {
    case "ModelResponded":
      return {
        ...state,
        turns: {
          ...state.turns,
          [String(event.turn)]: {
            turn: event.turn,
            prompt: event.promptTokenIds ?? null,
            sampled: event.tokenIds ?? null,
            logprobs: event.logprobs ?? null,
            temperature: event.temperature ?? null,
            spans: event.weightVersions ?? null,
          },
        },
      }
    case "DriftDetected":
      return { ...state, drifts: withNumber(state.drifts, event.turn) }
    case "ContextReset":
      return { ...state, resets: withNumber(state.resets, event.turn) }
    default:
      return state
  }
}

export type SplitReason = "start" | "drift" | "context_reset" | "temperature"

/** The JSON header's description of one sequence (docs/training.md, `sequences`). */
export interface SequenceInfo {
  readonly episode: string
  readonly group: string
  readonly task: string
  readonly sample: number
  /** The first and last model turns it covers. */
  readonly turns: readonly [number, number]
  readonly score: number
  readonly advantage: number
  readonly split: SplitReason
}

/** A training batch: the tensors of `rollout.batch.v1` and its header, in memory. */
export interface Batch {
  readonly run: string
  readonly step: number
  readonly tokenIds: Int32Array
  readonly lossMask: Uint8Array
  readonly logprobs: Float32Array
  readonly advantages: Float32Array
  readonly versions: Int32Array
  /** `S + 1` offsets, from 0 to T. */
  readonly seqOffsets: ReadonlyArray<number>
  readonly temperature: Float32Array
  readonly sequences: ReadonlyArray<SequenceInfo>
  readonly lags: LagHistogram
  /** Reasons with a non-zero count, in the closed set's order. */
  readonly drops: Readonly<Record<string, number>>
}

export class BatchBuildError extends Schema.TaggedError<BatchBuildError>()("BatchBuildError", {
  reason: Schema.String,
}) {
  override get message(): string {
    return this.reason
  }
}

/** Growing tensors of a batch. */
interface Columns {
  tokenIds: number[]
  lossMask: number[]
  logprobs: number[]
  advantages: number[]
  versions: number[]
}

/** A sequence being laid out: where it starts in the columns and the ids it holds so far. */
interface OpenSequence {
  readonly start: number
  readonly ids: number[]
  readonly first: number
  last: number
  temperature: number | null
  readonly split: SplitReason
}

const extendsIds = (prompt: ReadonlyArray<number>, ids: ReadonlyArray<number>): boolean => {
  if (prompt.length < ids.length) return false
  for (let i = 0; i < ids.length; i++) if (prompt[i] !== ids[i]) return false
  return true
}

/** The version of each sampled token (−1 where the spans do not name a version the run knows). */
const tokenVersions = (record: TurnRecord, n: number): number[] => {
  const versions = new Array<number>(n).fill(-1)
  for (const span of record.spans ?? []) {
    const version = versionStep(span.version)
    if (version === undefined) continue
    for (let j = Math.max(0, span.start); j < Math.min(n, span.end); j++) versions[j] = version
  }
  return versions
}

/** A token id the batch's I32 tensor holds as it is (a vocabulary index is never negative). */
const isTokenId = (id: number): boolean => Number.isInteger(id) && id >= 0 && id <= 0x7fffffff

const fail = (reason: string) => Result.fail(new BatchBuildError({ reason }))

/**
 * Lays out one kept sample as its sequences, appending to `columns`. Every turn with prompt and
 * sampled ids is laid out (a dropped turn's tokens are context, with loss mask 0); a turn without
 * them cannot be, so the next turn's prompt will not extend and starts a new sequence.
 */
const layOutSample = (
  sample: PlannedSample,
  episode: EpisodeTokens,
  step: number,
  columns: Columns,
  sequences: Array<{ info: SequenceInfo; start: number; temperature: number }>,
): Result.Result<void, BatchBuildError> => {
  const where = `batch step ${step}: episode "${sample.episode}"`
  const kept = new Map(sample.turns.map((turn) => [turn.turn, turn.advantage]))
  const records = Object.values(episode.turns)
    .filter((record) => record.prompt !== null && record.sampled !== null)
    .sort((a, b) => a.turn - b.turn)
  for (const turn of kept.keys()) {
    const record = ownValue(episode.turns, String(turn))
    if (record === undefined || record.prompt === null || record.sampled === null)
      return fail(`${where} turn ${turn} trains but its prompt or sampled ids were not recorded`)
    if (record.logprobs === null || record.logprobs.length !== record.sampled.length)
      return fail(`${where} turn ${turn} trains but has no log-prob for each of its sampled ids`)
    if (record.temperature === null) return fail(`${where} turn ${turn} trains but has no temperature`)
  }
  let open: OpenSequence | undefined
  let previous: number | undefined
  const close = () => {
    if (open === undefined) return
    sequences.push({
      info: {
        episode: sample.episode,
        group: sample.group,
        task: sample.task,
        sample: sample.sample,
        turns: [open.first, open.last],
        score: sample.score,
        advantage: sample.advantage,
        split: open.split,
      },
      start: open.start,
      temperature: open.temperature ?? 1,
    })
    open = undefined
  }
  for (const record of records) {
    const prompt = record.prompt as ReadonlyArray<number>
    const sampled = record.sampled as ReadonlyArray<number>
    const bad = [...prompt, ...sampled].find((id) => !isTokenId(id))
    if (bad !== undefined)
      return fail(
        `${where} turn ${record.turn} has token id ${bad}, which is not an I32 token id (0 … 2^31−1)`,
      )
    const reset =
      previous !== undefined && episode.resets.some((turn) => turn >= previous! && turn < record.turn)
    const split: SplitReason | undefined =
      open === undefined
        ? "start"
        : reset
          ? "context_reset"
          : episode.drifts.includes(record.turn) || !extendsIds(prompt, open.ids)
            ? "drift"
            : record.temperature !== null &&
                open.temperature !== null &&
                record.temperature !== open.temperature
              ? "temperature"
              : undefined
    if (split !== undefined) {
      close()
      open = {
        start: columns.tokenIds.length,
        ids: [],
        first: record.turn,
        last: record.turn,
        temperature: null,
        split,
      }
    }
    const sequence = open as OpenSequence
    sequence.last = record.turn
    if (sequence.temperature === null) sequence.temperature = record.temperature
    for (let i = sequence.ids.length; i < prompt.length; i++) {
      columns.tokenIds.push(prompt[i] as number)
      columns.lossMask.push(0)
      columns.logprobs.push(0)
      columns.advantages.push(0)
      columns.versions.push(-1)
      sequence.ids.push(prompt[i] as number)
    }
    const advantage = kept.get(record.turn)
    const versions = tokenVersions(record, sampled.length)
    const masked = sample.masked.filter((range) => range.turn === record.turn)
    for (let j = 0; j < sampled.length; j++) {
      const version = versions[j] as number
      const trains =
        advantage !== undefined && version >= 0 && !masked.some((range) => j >= range.start && j < range.end)
      if (trains && version > step)
        return fail(
          `${where} turn ${record.turn} token ${j} was sampled under version ${version}, newer than the step`,
        )
      if (advantage !== undefined && version < 0)
        return fail(`${where} turn ${record.turn} trains but token ${j} has no weight version`)
      columns.tokenIds.push(sampled[j] as number)
      columns.lossMask.push(trains ? 1 : 0)
      columns.logprobs.push(version >= 0 ? (record.logprobs?.[j] ?? 0) : 0)
      columns.advantages.push(trains ? (advantage as number) : 0)
      columns.versions.push(version)
      sequence.ids.push(sampled[j] as number)
    }
    previous = record.turn
  }
  close()
  return Result.succeed(undefined)
}

/** Trained tokens by lag (`step − version` where the loss mask is 1), counted from the tensors. */
export const lagsOf = (
  step: number,
  lossMask: ArrayLike<number>,
  versions: ArrayLike<number>,
): LagHistogram => {
  const counts = new Map<number, number>()
  for (let i = 0; i < lossMask.length; i++) {
    if (lossMask[i] !== 1) continue
    const lag = step - (versions[i] as number)
    counts.set(lag, (counts.get(lag) ?? 0) + 1)
  }
  return [...counts.entries()].sort(([a], [b]) => a - b).map(([lag, tokens]) => ({ lag, tokens }))
}

/** The non-zero counts, in the closed set's order (what the header and `BatchPublished` carry). */
export const nonZeroDrops = (drops: ReasonCounts): Readonly<Record<string, number>> =>
  Object.fromEntries(
    dropReasons.filter((reason) => drops[reason] > 0).map((reason) => [reason, drops[reason]]),
  )

/**
 * The batch of a closed step: its kept samples in plan order (groups as they completed, samples in
 * canonical order), each laid out from its episode's tokens. Refused, naming the episode and turn,
 * when the tokens do not support the plan (a missing episode or record): the plan and the tokens
 * come from the same log, so this is damage, not a case to guess around.
 */
export const buildBatch = (
  step: PlannedStep,
  tokensByEpisode: ReadonlyMap<string, EpisodeTokens>,
): Result.Result<Batch, BatchBuildError> => {
  if (step.pruned)
    return fail(
      `batch step ${step.step} of run "${step.runId}": its samples were pruned (fold with keepConsumed)`,
    )
  const columns: Columns = { tokenIds: [], lossMask: [], logprobs: [], advantages: [], versions: [] }
  const sequences: Array<{ info: SequenceInfo; start: number; temperature: number }> = []
  for (const sample of step.samples) {
    const episode = tokensByEpisode.get(sample.episode)
    if (episode === undefined)
      return fail(`batch step ${step.step}: episode "${sample.episode}" has no token record in the log`)
    const laid = layOutSample(sample, episode, step.step, columns, sequences)
    if (Result.isFailure(laid)) return Result.fail(laid.failure)
  }
  const lossMask = Uint8Array.from(columns.lossMask)
  const versions = Int32Array.from(columns.versions)
  return Result.succeed({
    run: step.runId,
    step: step.step,
    tokenIds: Int32Array.from(columns.tokenIds),
    lossMask,
    logprobs: Float32Array.from(columns.logprobs),
    advantages: Float32Array.from(columns.advantages),
    versions,
    seqOffsets: [...sequences.map((s) => s.start), columns.tokenIds.length],
    temperature: Float32Array.from(sequences.map((s) => s.temperature)),
    sequences: sequences.map((s) => s.info),
    lags: lagsOf(step.step, lossMask, versions),
    drops: nonZeroDrops(step.drops),
  })
}
