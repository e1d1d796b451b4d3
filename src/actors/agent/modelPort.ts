/**
 * The episode shell's model port on the inference pool: the pool's completion is the decider's
 * input as it is (one `Completion` for both, token ids and log-probs included when the server
 * returned them), and a pool failure after its retries becomes the port's typed failure, recorded
 * as `ModelCallFailed`.
 */
import * as Effect from "effect/Effect"
import type { InferencePool } from "../inference/pool.ts"
import type { ModelPort } from "./ports.ts"

export const poolModelPort = (
  pool: InferencePool,
  options: { readonly temperature?: number; readonly logprobs?: boolean } = {},
): ModelPort => ({
  complete: (request) =>
    pool
      .complete({
        model: request.model,
        requestId: request.requestId,
        affinityKey: request.affinityKey,
        episodeId: request.episodeId,
        messages: request.messages,
        maxTokens: request.maxTokens,
        ...(request.tools === undefined ? {} : { tools: request.tools }),
        ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
        ...(options.logprobs === undefined ? {} : { logprobs: options.logprobs }),
      })
      .pipe(
        Effect.mapError((e) => ({
          code: e.code,
          message: e.message,
          ...(e.endpoint === undefined ? {} : { endpoint: e.endpoint }),
        })),
      ),
})
