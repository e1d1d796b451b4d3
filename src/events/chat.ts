/**
 * The chat vocabulary that the agent, the inference pool and the events recording a model call
 * share: a tool call, a chat message, a tool as offered to a model, token usage and a completion.
 * They are Effect Schemas because events carry them (`ModelResponded` is a completion with its
 * turn and request, `ToolCallRequested` a tool call with its turn), and they live here, below both
 * actors, so that neither the agent nor the pool has to import the other to speak of a message.
 * The OpenAI wire shapes stay at the wire: the pool translates to and from them.
 */
import * as Schema from "effect/Schema"

const Id = Schema.NonEmptyString
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Millis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/** Token usage of one model call, as the server reported it. */
export const Usage = Schema.Struct({
  promptTokens: Count,
  completionTokens: Count,
})
export type Usage = typeof Usage.Type

/**
 * A tool call: its id, the tool's name and the arguments. In a completion the arguments are what
 * the server sent, decoded once: the JSON object, or the text as sent when it is not one (the
 * agent's parser reads that text leniently and owns the feedback when it cannot). A call the agent
 * accepted (`ToolCallRequested`, what the tools receive) always has an object.
 */
export const ToolCall = Schema.Struct({
  callId: Id,
  tool: Id,
  arguments: Schema.Json,
})
export type ToolCall = typeof ToolCall.Type

/** One message of a conversation; a tool message names the call it answers. */
export const ChatMessage = Schema.Struct({
  role: Schema.Literals(["system", "user", "assistant", "tool"]),
  content: Schema.String,
  toolCalls: Schema.optionalKey(Schema.Array(ToolCall)),
  toolCallId: Schema.optionalKey(Schema.String),
  /**
   * An assistant message's thinking as the server split it off. A token-exact model group sends it
   * back (`reasoning_content`) so the chat template renders the turn as it was sampled; other groups
   * never send it (some APIs refuse it).
   */
  reasoning: Schema.optionalKey(Schema.String),
})
export type ChatMessage = typeof ChatMessage.Type

/** A tool as the model sees it: name, description and the JSON Schema of its arguments. */
export const ToolSpec = Schema.Struct({
  name: Id,
  description: Schema.optionalKey(Schema.String),
  parameters: Schema.Record(Schema.String, Schema.Unknown),
})
export type ToolSpec = typeof ToolSpec.Type

/**
 * A run of sampled tokens produced under one weight version: `tokenIds[start, end)`. A server that
 * reports versions per token (vLLM's `weight_versions`) may give several spans when an update landed
 * mid-request; otherwise the one version read with the response spans them all.
 */
export const WeightVersionSpan = Schema.Struct({
  version: Id,
  start: Count,
  end: Count,
})
export type WeightVersionSpan = typeof WeightVersionSpan.Type

/** A model's answer to one call, as the pool returns it and `ModelResponded` records it. */
export const Completion = Schema.Struct({
  /** The endpoint's base URL (never with credentials). */
  endpoint: Schema.String,
  latencyMs: Millis,
  finishReason: Schema.String,
  content: Schema.String,
  /** Thinking the server split off (`reasoning_content` / `reasoning`). */
  reasoning: Schema.optionalKey(Schema.String),
  toolCalls: Schema.optionalKey(Schema.Array(ToolCall)),
  usage: Usage,
  /** From the policy-version response header, else (when configured) `system_fingerprint`. */
  policyVersion: Schema.optionalKey(Schema.String),
  /** The generated tokens, token-exact, when the server returns them (for training batches). */
  tokenIds: Schema.optionalKey(Schema.Array(Schema.Int)),
  /** The behaviour policy's log-prob of each generated token, when the server returns them. */
  logprobs: Schema.optionalKey(Schema.Array(Schema.Finite)),
  /**
   * A token-exact model group's (`tokens: exact`): the prompt as the server tokenized it (its chat
   * template rendered), so turn t+1's prompt can be checked to extend turn t's prompt and sampled
   * ids. Never re-tokenized on this side.
   */
  promptTokenIds: Schema.optionalKey(Schema.Array(Schema.Int)),
  /** The sampling temperature sent (token-exact groups always send one; log-probs depend on it). */
  temperature: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** Which weight version sampled which of `tokenIds`, in order (token-exact groups). */
  weightVersions: Schema.optionalKey(Schema.Array(WeightVersionSpan)),
})
export type Completion = typeof Completion.Type
