/**
 * Derives the batch of one training step from the log alone (issue 12, point 5): folds the
 * training plan from position 0 (consumed steps' details kept), reads the token-exact records of
 * the step's episodes in a second pass, lays them out and encodes the batch file, and returns its
 * bytes, its SHA-256 and the summary fields of `BatchPublished`. The sampler puts the bytes in the
 * blob store and appends `BatchPublished`; `rollout rl batch <step> --verify` derives it again and
 * compares the hash, which only works because every step of this is a function of the log.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import { type BatchesState, initialBatches, makeApplyBatchPlan } from "../../projections/batches/batchPlan.ts"
import { closedStep } from "../../projections/batches/queries.ts"
import {
  applyEpisodeTokens,
  type Batch,
  type EpisodeTokens,
  emptyEpisodeTokens,
} from "../../projections/batches/sequences.ts"

import { type BatchSummary, derivePlanned } from "./plannedBatch.ts"

export { publishableSteps } from "../../projections/batches/queries.ts"

/** The step cannot be derived: not closed (yet), or the log does not support its plan. */
export class BatchDerivationError extends Schema.TaggedError<BatchDerivationError>()("BatchDerivationError", {
  runId: Schema.String,
  step: Schema.Number,
  reason: Schema.String,
}) {
  override get message(): string {
    return `batch of run "${this.runId}" step ${this.step}: ${this.reason}`
  }
}

export type { BatchSummary } from "./plannedBatch.ts"

export interface DerivedBatch {
  readonly bytes: Uint8Array
  /** SHA-256 of `bytes`, lower-case hex. */
  readonly hash: string
  readonly batch: Batch
  readonly summary: BatchSummary
  /** Log entries that did not decode during the reads (a derivation over a damaged log may differ). */
  readonly undecodable: number
}

const foldPlan = makeApplyBatchPlan({ keepConsumed: true })

/** The plan of every RL run in the log, consumed steps' details kept. */
export const readPlan = (
  log: EventLogShape,
): Effect.Effect<{ readonly state: BatchesState; readonly undecodable: number }, LogUnavailable> =>
  Effect.map(foldEvents(log, {}, initialBatches, foldPlan), (folded) => ({
    state: folded.state,
    undecodable: folded.undecodable.length,
  }))

/** Derives step `step` of run `runId` from the log. */
export const deriveBatch = (
  log: EventLogShape,
  runId: string,
  step: number,
): Effect.Effect<DerivedBatch, LogUnavailable | BatchDerivationError> =>
  Effect.gen(function* () {
    const refuse = (reason: string) => new BatchDerivationError({ runId, step, reason })
    const plan = yield* readPlan(log)
    if (!Object.hasOwn(plan.state.runs, runId))
      return yield* refuse("the log has no RL run of that id (RunStarted with kind rl)")
    const planned = closedStep(plan.state, runId, step)
    if (planned === undefined) return yield* refuse("the step is not closed (it is still filling, or later)")
    const episodes = new Set(planned.samples.map((sample) => sample.episode))
    const tokens = yield* foldEvents(log, {}, new Map<string, EpisodeTokens>(), (acc, envelope) => {
      const event = envelope.event
      if (!("episodeId" in event) || !episodes.has(event.episodeId)) return acc
      acc.set(
        event.episodeId,
        applyEpisodeTokens(acc.get(event.episodeId) ?? emptyEpisodeTokens(event.episodeId), envelope),
      )
      return acc
    })
    // The same layout, encoding and summary as the sampler's live publication.
    const derived = derivePlanned(plan.state, tokens.state, runId, step)
    if (Result.isFailure(derived)) return yield* refuse(derived.failure.reason)
    const { bytes, hash, batch, summary } = derived.success
    return { bytes, hash, batch, summary, undecodable: plan.undecodable + tokens.undecodable.length }
  })
