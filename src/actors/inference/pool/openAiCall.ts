/**
 * One attempt of a chat completion against one OpenAI-compatible endpoint through the official
 * `openai` client: the agent's messages and tools translated to the wire format, the answer
 * translated back (content, reasoning, parsed tool calls, usage, policy version, token ids and
 * log-probs when the server sends them; for a token-exact group all of `exactTokens.ts` or a
 * `bad_response`), and every failure classified once: transient (retry, anywhere), endpoint (this
 * endpoint is wrong; try another), or request (the call itself is bad; retrying cannot help). The client never retries on its own: the pool decides. The streamed
 * variant is `streamingCall.ts`; both produce the same `Completion`.
 */
import * as Effect from "effect/Effect"
import type { Json, JsonObject } from "effect/Schema"
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from "openai"
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from "openai/resources/chat/completions"
import type { ChatMessage, Completion, ToolCall, ToolSpec } from "../../../events/chat.ts"
import { EPISODE_HEADER, episodeHeaderValue } from "../episodeHeader.ts"
import type { ModelConfig } from "../modelsConfig.ts"
import { exactRequestFields, exactTemperature, readExactTokens } from "./exactTokens.ts"

/** The chat vocabulary is shared with the agent (`events/chat.ts`); re-exported for the pool's callers. */
export type { Completion, ToolSpec } from "../../../events/chat.ts"
/** The old name of a completion's tool call, still re-exported by `pool.ts`. */
export type CompletionToolCall = ToolCall

export interface CompletionRequest {
  /** The model name in `models.yaml`. */
  readonly model: string
  /** Unique per model call (the agent's `ModelRequested.requestId`); sent as `x-request-id`. */
  readonly requestId: string
  /** Calls with the same key go to the same endpoint while it is healthy and has room (KV-cache reuse). */
  readonly affinityKey?: string
  /**
   * The episode the call belongs to, sent as the `x-rollout-episode` header (episodeHeader.ts says
   * why a header); absent for calls outside an episode (a judge).
   */
  readonly episodeId?: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly tools?: ReadonlyArray<ToolSpec>
  readonly maxTokens?: number
  readonly temperature?: number
  /** Ask for per-token log-probs (and, where configured, token ids) for training. */
  readonly logprobs?: boolean
  /**
   * Progress of a streaming model group (`stream: true`): called with each piece as it arrives.
   * Pieces of a failed attempt may precede the retry's: `attempt` tells them apart (start over when
   * it changes). Never called for a non-streaming group; an exception it throws is ignored.
   */
  readonly onDelta?: (delta: CompletionDelta) => void
}

/** One piece of a streamed completion, as it arrives. */
export interface CompletionDelta {
  /** 1-based attempt of the call this piece belongs to. */
  readonly attempt: number
  readonly endpoint: string
  readonly content?: string
  readonly reasoning?: string
  /** A tool call's piece: `id` and `name` come with its first piece, `arguments` in pieces. */
  readonly toolCall?: {
    readonly index: number
    readonly id?: string
    readonly name?: string
    readonly arguments?: string
  }
}

/** How a failed attempt should be treated. */
export interface AttemptFailure {
  readonly kind: "transient" | "endpoint" | "request"
  /** A short machine-readable code: `http_429`, `timeout`, `connection`, `bad_response`, … */
  readonly code: string
  readonly message: string
  /** From a `retry-after` header, when the server sent one. */
  readonly retryAfterMs?: number
}

/** The API key sent when none is configured; vLLM and SGLang accept any key unless started with one. */
export const PLACEHOLDER_API_KEY = "EMPTY"

/** A client per endpoint; nothing from the environment (org, project) leaks to third-party servers. */
export const makeClient = (baseURL: string, apiKey: string, timeoutMs: number): OpenAI =>
  new OpenAI({
    baseURL,
    apiKey,
    organization: null,
    project: null,
    webhookSecret: null,
    maxRetries: 0,
    timeout: timeoutMs,
  })

/**
 * One message in the wire format. A token-exact group sends an assistant turn's reasoning back as
 * `reasoning_content`, so the server's template can render the turn as it was sampled (others never
 * do: some APIs refuse the field).
 */
const toWire = (message: ChatMessage, exact: boolean): ChatCompletionMessageParam => {
  if (exact && message.role === "assistant" && message.reasoning !== undefined && message.reasoning !== "")
    return Object.assign(toWire(message, false), { reasoning_content: message.reasoning })
  switch (message.role) {
    case "system":
      return { role: "system", content: message.content }
    case "user":
      return { role: "user", content: message.content }
    case "tool":
      return { role: "tool", content: message.content, tool_call_id: message.toolCallId ?? "" }
    case "assistant": {
      const calls = message.toolCalls ?? []
      if (calls.length === 0) return { role: "assistant", content: message.content }
      return {
        role: "assistant",
        content: message.content,
        tool_calls: calls.map((call) => ({
          id: call.callId,
          type: "function" as const,
          function: {
            name: call.tool,
            arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments),
          },
        })),
      }
    }
  }
}

/**
 * The request body; vendor fields (`return_token_ids`, `extraBody`) ride along untyped. A
 * token-exact group always asks for ids and log-probs and always sends its temperature.
 */
export const requestBody = (
  config: ModelConfig,
  request: CompletionRequest,
): ChatCompletionCreateParamsNonStreaming => {
  const body: Record<string, unknown> = {
    ...(config.extraBody ?? {}),
    model: config.served,
    messages: request.messages.map((message) => toWire(message, config.tokens === "exact")),
  }
  if (request.tools !== undefined && request.tools.length > 0) {
    body.tools = request.tools.map(
      (tool): ChatCompletionTool => ({
        type: "function",
        function: {
          name: tool.name,
          ...(tool.description === undefined ? {} : { description: tool.description }),
          parameters: tool.parameters as Record<string, unknown>,
        },
      }),
    )
  }
  // `max_tokens` rather than `max_completion_tokens`: every open-source server reads it.
  if (request.maxTokens !== undefined) body.max_tokens = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.logprobs === true) body.logprobs = true
  if (config.returnTokenIds) body.return_token_ids = true
  if (config.tokens === "exact") Object.assign(body, exactRequestFields(config, request.temperature))
  return body as unknown as ChatCompletionCreateParamsNonStreaming
}

/**
 * A tool call's arguments as the wire sent them, decoded once: the JSON object, or the text as
 * sent when it is not one (the agent reads that leniently, and tells the model when it cannot).
 */
const parseArguments = (raw: string): JsonObject | string => {
  try {
    const parsed = JSON.parse(raw) as Json
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as JsonObject)
      : raw
  } catch {
    return raw
  }
}

const isNumberArray = (value: unknown): value is ReadonlyArray<number> =>
  Array.isArray(value) && value.every((item) => typeof item === "number")

/** Reads one answer; a body without a choice is the endpoint's fault (`bad_response`). */
export const readCompletion = (
  config: ModelConfig,
  request: CompletionRequest,
  data: ChatCompletion,
  headers: Headers,
  endpoint: string,
  latencyMs: number,
): Completion | AttemptFailure => {
  const choice = data.choices?.[0]
  if (choice === undefined || choice.message === undefined)
    return { kind: "endpoint", code: "bad_response", message: "the response has no choices[0].message" }
  const message = choice.message as unknown as Record<string, unknown>
  // SGLang and older vLLM send `reasoning_content`; newer vLLM sends `reasoning`.
  const reasoning = message.reasoning_content ?? message.reasoning
  const toolCalls: Array<ToolCall> = []
  const calls: unknown = choice.message.tool_calls ?? []
  if (!Array.isArray(calls))
    return { kind: "endpoint", code: "bad_response", message: "choices[0].message.tool_calls is not a list" }
  for (const [index, call] of (calls as ReadonlyArray<Record<string, unknown> | null>).entries()) {
    if (call === null || typeof call !== "object" || call.type !== "function") continue
    // A server's tool parser, not the model, builds these: a call without a name is the endpoint's fault.
    const fn = call.function as { name?: unknown; arguments?: unknown } | null | undefined
    if (fn === null || typeof fn !== "object" || typeof fn.name !== "string" || fn.name === "")
      return {
        kind: "endpoint",
        code: "bad_response",
        message: `choices[0].message.tool_calls[${index}] has no function.name`,
      }
    const id = call.id
    toolCalls.push({
      callId: typeof id === "string" && id !== "" ? id : `${request.requestId}-${index}`,
      tool: fn.name,
      arguments:
        typeof fn.arguments === "string"
          ? parseArguments(fn.arguments)
          : fn.arguments !== null && typeof fn.arguments === "object" && !Array.isArray(fn.arguments)
            ? (fn.arguments as JsonObject)
            : parseArguments(""),
    })
  }
  const header = headers.get(config.policyVersionHeader)
  const policyVersion =
    header !== null && header !== ""
      ? header
      : config.fingerprintAsPolicyVersion && typeof data.system_fingerprint === "string"
        ? data.system_fingerprint
        : undefined
  const tokenIds = (choice as unknown as { token_ids?: unknown }).token_ids
  const logprobs = choice.logprobs?.content?.map((entry) => entry.logprob)
  const exact =
    config.tokens === "exact"
      ? readExactTokens(
          data as unknown as Record<string, unknown>,
          choice as unknown as Record<string, unknown>,
          logprobs,
          exactTemperature(config, request.temperature),
          policyVersion,
        )
      : undefined
  if (exact !== undefined && "problem" in exact)
    return { kind: "endpoint", code: "bad_response", message: exact.problem }
  return {
    endpoint,
    latencyMs,
    finishReason: choice.finish_reason ?? "unknown",
    content: typeof choice.message.content === "string" ? choice.message.content : "",
    ...(typeof reasoning === "string" && reasoning !== "" ? { reasoning } : {}),
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
    usage: {
      promptTokens: data.usage?.prompt_tokens ?? 0,
      completionTokens: data.usage?.completion_tokens ?? 0,
    },
    ...(policyVersion === undefined ? {} : { policyVersion }),
    ...(isNumberArray(tokenIds) ? { tokenIds } : {}),
    ...(logprobs === undefined ? {} : { logprobs }),
    ...exact,
  }
}

export const causeText = (error: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code
    parts.push(code === undefined ? current.message : `${current.message} (${code})`)
    current = (current as { cause?: unknown }).cause
  }
  return parts.join(": ")
}

/**
 * How long the server asked us to wait: `retry-after-ms` (OpenAI), else `retry-after` in seconds or
 * as an HTTP date (measured against `now`, wall-clock ms).
 */
export const retryAfterOf = (
  headers: Headers | undefined,
  now: () => number = Date.now,
): number | undefined => {
  const millis = headers?.get("retry-after-ms")
  if (millis !== null && millis !== undefined && millis.trim() !== "") {
    const ms = Number(millis)
    if (Number.isFinite(ms) && ms >= 0) return ms
  }
  const raw = headers?.get("retry-after")
  if (raw === null || raw === undefined || raw.trim() === "") return undefined
  const seconds = Number(raw)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const date = Date.parse(raw)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now())
}

/** Classifies whatever the client threw; `now` (wall-clock ms) reads a `retry-after` date. */
export const classify = (error: unknown, timeoutMs: number, now: () => number = Date.now): AttemptFailure => {
  if (error instanceof APIConnectionTimeoutError)
    return { kind: "transient", code: "timeout", message: `no answer within ${timeoutMs} ms` }
  if (error instanceof APIConnectionError)
    return { kind: "transient", code: "connection", message: causeText(error) }
  if (error instanceof APIError && typeof error.status === "number") {
    const status = error.status
    const message = error.message
    const retryAfterMs = retryAfterOf(error.headers, now)
    const base = { code: `http_${status}`, message, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }
    if (status === 408 || status === 409 || status === 429 || status >= 500)
      return { kind: "transient", ...base }
    // A wrong key, a forbidden or missing model: this endpoint is misconfigured, another may do.
    if (status === 401 || status === 403 || status === 404) return { kind: "endpoint", ...base }
    return { kind: "request", ...base }
  }
  // A body that is not JSON, a proxy's HTML page, …: the endpoint misbehaved.
  return { kind: "endpoint", code: "bad_response", message: causeText(error) }
}

/**
 * The headers of every attempt of a call: its request id, and its episode when it has one. Both
 * carry dataset task ids, which may hold any character, while a header value must be visible
 * ASCII (Node refuses anything above U+00FF): both go percent-encoded the same way.
 */
export const requestHeaders = (request: CompletionRequest): Record<string, string> => ({
  "x-request-id": episodeHeaderValue(request.requestId),
  ...(request.episodeId === undefined || request.episodeId === ""
    ? {}
    : { [EPISODE_HEADER]: episodeHeaderValue(request.episodeId) }),
})

/** Runs one attempt; interruption aborts the HTTP request. */
export const attempt = (
  client: OpenAI,
  config: ModelConfig,
  request: CompletionRequest,
  endpoint: string,
  now: () => number,
): Effect.Effect<Completion, AttemptFailure> =>
  Effect.suspend(() => {
    const started = now()
    const body = requestBody(config, request)
    return Effect.tryPromise({
      try: (signal) =>
        client.chat.completions.create(body, { signal, headers: requestHeaders(request) }).withResponse(),
      catch: (error) => classify(error, config.timeoutMs),
    }).pipe(
      Effect.flatMap(({ data, response }) => {
        const read = readCompletion(config, request, data, response.headers, endpoint, now() - started)
        return "kind" in read ? Effect.fail(read) : Effect.succeed(read)
      }),
    )
  })
