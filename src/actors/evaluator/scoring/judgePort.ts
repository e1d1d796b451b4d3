/**
 * The judge port on the inference pool: a judge call is one chat completion of a model in
 * `models.yaml` (the pool retries and fails over); a pool failure becomes `JudgeCallError`.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import type { InferencePool } from "../../inference/pool.ts"
import { JudgeCallError, type JudgePort } from "./judge.ts"

export interface PoolJudgeOptions {
  /** Completion budget of one verdict; default 2048 tokens. */
  readonly maxTokens?: number
  /** A request id per call; default a random UUID. */
  readonly requestId?: () => string
}

export const poolJudgePort = (
  pool: InferencePool,
  model: string,
  options: PoolJudgeOptions = {},
): JudgePort => ({
  complete: (messages, { temperature }) =>
    pool
      .complete({
        model,
        requestId: options.requestId?.() ?? `judge-${randomUUID()}`,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        maxTokens: options.maxTokens ?? 2048,
        temperature,
      })
      .pipe(
        Effect.map((completion) => completion.content),
        Effect.mapError((error) => new JudgeCallError({ model, reason: error.message })),
      ),
})
