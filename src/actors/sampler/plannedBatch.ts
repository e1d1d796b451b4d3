/**
 * A closed step's batch from a folded plan and the token-exact records of its episodes: laid out,
 * encoded as `rollout.batch.v1`, hashed, and summarised as its `BatchPublished` says. One function
 * for the sampler (which holds both in memory while it runs) and for the derivation from the log
 * (`batchDerivation.ts`, behind `rollout rl batch --verify`), so the two cannot lay a step out
 * differently.
 */
import * as Result from "effect/Result"
import { sha256Hex } from "../../events/log/blobStore.ts"
import type { EventOf } from "../../events/schema.ts"
import { encodeBatch } from "../../projections/batches/batchFile.ts"
import type { BatchesState } from "../../projections/batches/batchPlan.ts"
import { closedStep } from "../../projections/batches/queries.ts"
import { type Batch, buildBatch, type EpisodeTokens } from "../../projections/batches/sequences.ts"

/** The media type batches are stored under in the blob store. */
export const BATCH_MEDIA_TYPE = "application/vnd.rollout.batch.v1+safetensors"

/** `BatchPublished` without its type and blob (the blob is the store's answer to putting `bytes`). */
export type BatchSummary = Omit<EventOf<"BatchPublished">, "type" | "blob">

export interface PlannedBatch {
  readonly bytes: Uint8Array
  /** SHA-256 of `bytes`, lower-case hex. */
  readonly hash: string
  readonly batch: Batch
  readonly summary: BatchSummary
  /** The episodes whose samples it holds. */
  readonly episodes: ReadonlyArray<string>
}

/** Why a step has no batch: not closed (or pruned), or its records do not lay out. */
export class PlannedBatchError extends Error {
  override readonly name = "PlannedBatchError"
  constructor(
    readonly runId: string,
    readonly step: number,
    readonly reason: string,
  ) {
    super(`batch of run "${runId}" step ${step}: ${reason}`)
  }
}

/** Step `step` of run `runId`, from the plan and the episodes' token records. */
export const derivePlanned = (
  plan: BatchesState,
  tokens: ReadonlyMap<string, EpisodeTokens>,
  runId: string,
  step: number,
): Result.Result<PlannedBatch, PlannedBatchError> => {
  const refuse = (reason: string) => Result.fail(new PlannedBatchError(runId, step, reason))
  if (!Object.hasOwn(plan.runs, runId))
    return refuse("the log has no RL run of that id (RunStarted with kind rl)")
  const planned = closedStep(plan, runId, step)
  if (planned === undefined) return refuse("the step is not closed (it is still filling, or later)")
  if (planned.pruned) return refuse("the plan no longer holds the step's samples (it was consumed)")
  const built = buildBatch(planned, tokens)
  if (Result.isFailure(built)) return refuse(built.failure.reason)
  const batch = built.success
  const bytes = encodeBatch(batch)
  const hash = sha256Hex(bytes)
  return Result.succeed({
    bytes,
    hash,
    batch,
    episodes: planned.samples.map((sample) => sample.episode),
    summary: {
      runId,
      step,
      hash,
      groups: [...planned.groups],
      samples: planned.samples.length,
      sequences: batch.sequences.length,
      tokens: batch.tokenIds.length,
      trainedTokens: batch.lossMask.reduce((sum, mask) => sum + mask, 0),
      lags: batch.lags,
      drops: batch.drops,
    },
  })
}
