/**
 * The agent's ports: what the episode shell asks of the outside world — a model completion, a tool
 * call, the tool catalog shown to the model — so the shell can run on the inference pool and the
 * tool sandboxes in production and on in-process stand-ins in tests and benchmarks.
 */
import type * as Effect from "effect/Effect"
import type { ChatMessage, Completion, ToolCall, ToolSpec } from "../../events/chat.ts"
import type { EventOf } from "../../events/schema.ts"
import type { Clock } from "../../runtime/clock.ts"
import type { ParseAssistant } from "./decider.ts"

/** A tool as the model sees it is the shared chat vocabulary's; re-exported for the tool ports. */
export type { ToolSpec } from "../../events/chat.ts"

/** What the shell asks of a model: one completion, or a failure after the pool's own retries. */
export interface ModelPort {
  readonly complete: (request: {
    readonly model: string
    readonly requestId: string
    readonly affinityKey: string
    /** The episode asking; the pool names it to the server (`x-rollout-episode`). */
    readonly episodeId: string
    readonly messages: ReadonlyArray<ChatMessage>
    readonly maxTokens: number
    /** The tool catalog offered to the model (the agent's calls; not the summarizer's). */
    readonly tools?: ReadonlyArray<ToolSpec>
  }) => Effect.Effect<
    Completion,
    { readonly code: string; readonly message: string; readonly endpoint?: string }
  >
}

export type ToolOutcome =
  | {
      readonly ok: true
      readonly content: EventOf<"ToolCallCompleted">["content"]
      readonly truncated: boolean
    }
  | { readonly ok: false; readonly kind: EventOf<"ToolCallFailed">["kind"]; readonly message: string }

/** What the shell asks of the tools: run one call (as `ToolCallRequested` recorded it) of an episode. */
export interface ToolPort {
  readonly call: (
    call: ToolCall & {
      readonly episodeId: string
      /**
       * Unique per call across the log (episode, turn and call id: servers reuse call ids), so a call
       * made again after a crash is answered from the record instead of running twice.
       */
      readonly idempotencyKey?: string
    },
  ) => Effect.Effect<ToolOutcome>
}

export interface EpisodePorts {
  readonly model: ModelPort
  readonly tools: ToolPort
  /** The catalog sent with every agent turn; empty when the tools are described in the prompt. */
  readonly toolSpecs?: ReadonlyArray<ToolSpec>
  readonly parse: ParseAssistant
  /** Tool calls of one turn run at most this many at a time. */
  readonly toolConcurrency?: number
  /**
   * When events are recorded (their `recordedAt`), the episode's deadline (`policy.timeoutMs`,
   * wall clock) and a tool call's latency (monotonic); default the system clock. Tests pass
   * `manualClock`.
   */
  readonly clock?: Clock
}
