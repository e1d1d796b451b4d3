/**
 * The vocabulary of the scripted model server (a test double for a GPU inference server): the chat
 * request it accepts, the reply a script decides, and the pure helpers scripts use to read a
 * conversation (its episode key, how many assistant turns it has, its last input). A script is a
 * deterministic function of the request, so tests, benchmarks and the offline demo get the same
 * answers on every run without a model.
 */
import { createHash } from "node:crypto"

/** One part of a multi-part message content (`[{ type: "text", text }]`); other parts are ignored. */
export interface ChatContentPart {
  readonly type: string
  readonly text?: string
  readonly [extra: string]: unknown
}

/** A tool call as an OpenAI-compatible client sends it back in an assistant message. */
export interface ChatToolCall {
  readonly id?: string
  readonly type?: string
  readonly function?: { readonly name?: string; readonly arguments?: string }
}

export interface ChatMessage {
  readonly role: string
  readonly content?: string | ReadonlyArray<ChatContentPart> | null
  readonly tool_calls?: ReadonlyArray<ChatToolCall>
  readonly tool_call_id?: string
  readonly name?: string
  readonly [extra: string]: unknown
}

/**
 * A validated `POST /v1/chat/completions` body. Only the fields the server acts on are typed; the
 * rest is kept as sent (scripts may read vendor fields such as `chat_template_kwargs`).
 */
export interface ChatRequest {
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly stream?: boolean
  readonly stream_options?: { readonly include_usage?: boolean } | null
  readonly tools?: ReadonlyArray<unknown>
  readonly logprobs?: boolean
  readonly top_logprobs?: number
  /** vLLM extension: return `prompt_token_ids` and per-choice `token_ids`. */
  readonly return_token_ids?: boolean
  readonly [extra: string]: unknown
}

export interface ScriptContext {
  /** 0-based count of valid chat completion requests this server received before this one. */
  readonly callIndex: number
  /**
   * A stable hash of the first user message (the task), or undefined when there is none: see
   * `episodeKeyOf`. The samples of one task share it.
   */
  readonly episodeKey: string | undefined
  /**
   * The episode the request belongs to, from its `x-rollout-episode` header (episodeHeader.ts);
   * absent when the client sent none (another client, a hand-made request). Unlike `episodeKey` it
   * tells the samples of one task apart, whatever order their requests arrive in and whichever
   * server instance answers.
   */
  readonly episodeId?: string
}

export type FinishReason = "stop" | "tool_calls" | "length" | "content_filter"

export interface ScriptedToolCall {
  readonly name: string
  /** An object is sent as its JSON; a string is sent verbatim (to simulate malformed arguments). */
  readonly arguments: object | string
  /** Default: a deterministic `call_<hex>` derived from the episode, the turn and the call's index. */
  readonly id?: string
}

/** An HTTP error instead of a completion, with an OpenAI-style body. */
export interface ScriptedError {
  readonly status: number
  readonly message: string
  /** The body's `error.type`; default by status (`rate_limit_error`, `server_error`, …). */
  readonly type?: string
  readonly code?: string
  /** Sent as a `retry-after` header (clients honour it when they retry). */
  readonly retryAfterSeconds?: number
}

export interface ScriptedReply {
  readonly content?: string
  /** Sent as `reasoning_content` (the DeepSeek / SGLang / vLLM reasoning-parser field). */
  readonly reasoning?: string
  readonly toolCalls?: ReadonlyArray<ScriptedToolCall>
  /** Default: `tool_calls` when there are tool calls, else `stop`. */
  readonly finishReason?: FinishReason
  /** Overrides the counted usage, e.g. to push an episode over its context budget. */
  readonly usage?: { readonly promptTokens?: number; readonly completionTokens?: number }
  /** Answer with this HTTP error instead of a completion. */
  readonly error?: ScriptedError
  /** Wait this long before answering (on top of `latencyMs`): past a client's timeout, it is one. */
  readonly hangMs?: number
  /** Force log-probs on or off; default: as the request asks (`logprobs: true`). */
  readonly logprobs?: boolean
  /**
   * Sent as vLLM's per-token `weight_versions` spans: consecutive runs of the sampled tokens, each
   * `tokens` long (the last one without `tokens` runs to the end), e.g. an update landing
   * mid-answer. Absent: no spans (the version header, when weights are served, still says one).
   */
  readonly weightVersions?: ReadonlyArray<{ readonly version: string; readonly tokens?: number }>
  /**
   * For a streamed answer: send only the first `afterEvents` server-sent events, then reset the
   * connection (`"reset"`, the default: a server crashing mid-answer), end the body cleanly without
   * the rest (`"end"`: a stream with no finish reason and no `[DONE]`), or send nothing more while
   * keeping the connection open until the client leaves or the server stops (`"stall"`: a wedged
   * server). Ignored when the request does not stream.
   */
  readonly cutStream?: { readonly afterEvents: number; readonly how?: "reset" | "end" | "stall" }
}

/** Decides the reply to one request. Keep it a function of the request (and its context). */
export type Script = (
  request: ChatRequest,
  context: ScriptContext,
) => ScriptedReply | PromiseLike<ScriptedReply>

/** The text of a message: its string content, or its text parts joined; "" when it has none. */
export const messageText = (message: ChatMessage): string => {
  const content = message.content
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  let text = ""
  for (const part of content as ReadonlyArray<ChatContentPart>) {
    if (typeof part?.text === "string") text += part.text
  }
  return text
}

/** How many assistant turns the conversation already has: the turn being asked for is this + 1. */
export const assistantTurns = (request: ChatRequest): number => {
  let turns = 0
  for (const message of request.messages) if (message.role === "assistant") turns++
  return turns
}

/** The last user or tool message: what the model is answering now. */
export const lastInput = (request: ChatRequest): ChatMessage | undefined => {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    const message = request.messages[i]
    if (message !== undefined && (message.role === "user" || message.role === "tool")) return message
  }
  return undefined
}

/**
 * Identifies the episode a request belongs to without any side channel: every request of an
 * agent's conversation repeats its first user message (the task), so its hash is stable across
 * turns and distinct between concurrent episodes with different tasks.
 */
export const episodeKeyOf = (request: ChatRequest): string | undefined => {
  const first = request.messages.find((message) => message.role === "user")
  if (first === undefined) return undefined
  return createHash("sha256").update(messageText(first)).digest("hex").slice(0, 16)
}
