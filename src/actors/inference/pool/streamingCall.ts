/**
 * One streamed attempt of a chat completion (`stream: true` with `stream_options.include_usage`)
 * through the official `openai` client: the `chat.completion.chunk` events are assembled — content,
 * reasoning (`reasoning_content` / `reasoning`), tool calls from their `index`ed deltas, usage,
 * finish reason, log-probs, vLLM's per-chunk `token_ids`, the `prompt_token_ids` of its first chunk
 * and any `weight_versions` — into the body a non-streaming answer
 * would have had, and read by the same `readCompletion`, so a streamed completion has exactly the
 * non-streamed shape. Each piece is also handed to the caller's `onDelta` as it arrives.
 *
 * A stream is complete when it delivered a finish reason. One that breaks mid-way (connection reset,
 * a truncated body), ends without a finish reason, or stays silent longer than `timeoutMs` is a
 * transient failure: the pool retries it, on another endpoint when it can.
 */
import * as Effect from "effect/Effect"
import type OpenAI from "openai"
import { APIError } from "openai"
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionTokenLogprob,
} from "openai/resources/chat/completions"
import type { Completion } from "../../../events/chat.ts"
import type { ModelConfig } from "../modelsConfig.ts"
import {
  type AttemptFailure,
  type CompletionDelta,
  type CompletionRequest,
  causeText,
  classify,
  readCompletion,
  requestBody,
  requestHeaders,
} from "./openAiCall.ts"

/** A delta without the attempt and endpoint it came from (the attempt adds those). */
export type DeltaPiece = Omit<CompletionDelta, "attempt" | "endpoint">

interface ToolCallSoFar {
  id: string
  name: string
  arguments: string
}

/** Accumulates the chunks of one stream (choice 0; a stream with `n` > 1 is not asked for). */
export class StreamAssembly {
  private content = ""
  private reasoning = ""
  private readonly toolCalls = new Map<number, ToolCallSoFar>()
  private finishReason: ChatCompletion.Choice["finish_reason"] | undefined
  private usage: ChatCompletion["usage"] | undefined
  private fingerprint: string | undefined
  private id = ""
  private model = ""
  private created = 0
  private logprobs: Array<ChatCompletionTokenLogprob> | undefined
  private tokenIds: Array<number> | undefined
  private promptTokenIds: unknown
  private weightVersions: unknown
  /** Chunks seen, for error messages. */
  chunks = 0

  /** Adds one chunk; returns the pieces it delivered, in order (reasoning, content, tool calls). */
  add(chunk: ChatCompletionChunk): Array<DeltaPiece> {
    this.chunks++
    const pieces: Array<DeltaPiece> = []
    if (typeof chunk.id === "string" && this.id === "") this.id = chunk.id
    if (typeof chunk.model === "string" && this.model === "") this.model = chunk.model
    if (typeof chunk.created === "number" && this.created === 0) this.created = chunk.created
    if (typeof chunk.system_fingerprint === "string") this.fingerprint = chunk.system_fingerprint
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = chunk.usage
    // vLLM sends the prompt's ids once, on the first chunk; read as they are, checked by the reader.
    const extra = chunk as unknown as { prompt_token_ids?: unknown; weight_versions?: unknown }
    if (extra.prompt_token_ids !== undefined && extra.prompt_token_ids !== null)
      this.promptTokenIds ??= extra.prompt_token_ids
    if (extra.weight_versions !== undefined && extra.weight_versions !== null)
      this.weightVersions = extra.weight_versions
    for (const choice of chunk.choices ?? []) {
      if (choice.index !== 0) continue
      const delta = (choice.delta ?? {}) as ChatCompletionChunk.Choice.Delta & Record<string, unknown>
      // SGLang and older vLLM send `reasoning_content`; newer vLLM sends `reasoning`.
      const reasoning = delta.reasoning_content ?? delta.reasoning
      if (typeof reasoning === "string" && reasoning !== "") {
        this.reasoning += reasoning
        pieces.push({ reasoning })
      }
      if (typeof delta.content === "string" && delta.content !== "") {
        this.content += delta.content
        pieces.push({ content: delta.content })
      }
      for (const call of delta.tool_calls ?? []) {
        const index = typeof call.index === "number" ? call.index : this.toolCalls.size
        const soFar = this.toolCalls.get(index) ?? { id: "", name: "", arguments: "" }
        this.toolCalls.set(index, soFar)
        // The id and name come once, with the call's first delta; the arguments come in pieces.
        if (typeof call.id === "string" && call.id !== "" && soFar.id === "") soFar.id = call.id
        const name = call.function?.name
        if (typeof name === "string" && name !== "" && soFar.name === "") soFar.name = name
        const args = call.function?.arguments
        if (typeof args === "string") soFar.arguments += args
        pieces.push({
          toolCall: {
            index,
            ...(typeof call.id === "string" && call.id !== "" ? { id: call.id } : {}),
            ...(typeof name === "string" && name !== "" ? { name } : {}),
            ...(typeof args === "string" && args !== "" ? { arguments: args } : {}),
          },
        })
      }
      const entries = choice.logprobs?.content
      if (Array.isArray(entries)) this.logprobs = [...(this.logprobs ?? []), ...entries]
      const ids = (choice as unknown as { token_ids?: unknown }).token_ids
      if (Array.isArray(ids) && ids.every((id) => typeof id === "number"))
        this.tokenIds = [...(this.tokenIds ?? []), ...(ids as Array<number>)]
      // Spans over the whole output: the last list sent is the one that counts.
      const versions = (choice as unknown as { weight_versions?: unknown }).weight_versions
      if (versions !== undefined && versions !== null) this.weightVersions = versions
      if (choice.finish_reason !== null && choice.finish_reason !== undefined)
        this.finishReason = choice.finish_reason
    }
    return pieces
  }

  /** True once a finish reason arrived: the generation ended (a usage chunk may still follow). */
  get finished(): boolean {
    return this.finishReason !== undefined
  }

  /** True once the usage chunk arrived (sent last, after the finish reason, when asked for). */
  get hasUsage(): boolean {
    return this.usage !== undefined
  }

  /**
   * The non-streaming body these chunks amount to (call only when `finished`). With
   * `logprobsRequested`, a stream that carried no log-probs (no token generated) has an empty list,
   * as the non-streamed body would.
   */
  toBody(logprobsRequested = false): ChatCompletion {
    const logprobs = this.logprobs ?? (logprobsRequested ? [] : undefined)
    const toolCalls = [...this.toolCalls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, call]) => ({
        id: call.id,
        type: "function" as const,
        function: { name: call.name, arguments: call.arguments },
      }))
    const message: Record<string, unknown> = {
      role: "assistant",
      content: this.content,
      refusal: null,
      ...(this.reasoning === "" ? {} : { reasoning_content: this.reasoning }),
      ...(toolCalls.length === 0 ? {} : { tool_calls: toolCalls }),
    }
    const choice: Record<string, unknown> = {
      index: 0,
      message,
      finish_reason: this.finishReason ?? null,
      logprobs: logprobs === undefined ? null : { content: logprobs, refusal: null },
      ...(this.tokenIds === undefined ? {} : { token_ids: this.tokenIds }),
      ...(this.weightVersions === undefined ? {} : { weight_versions: this.weightVersions }),
    }
    return {
      id: this.id,
      object: "chat.completion",
      created: this.created,
      model: this.model,
      choices: [choice],
      ...(this.usage === undefined ? {} : { usage: this.usage }),
      ...(this.fingerprint === undefined ? {} : { system_fingerprint: this.fingerprint }),
      ...(this.promptTokenIds === undefined ? {} : { prompt_token_ids: this.promptTokenIds }),
    } as unknown as ChatCompletion
  }
}

/** Classifies what went wrong while reading a stream whose headers had arrived. */
export const classifyStreamError = (error: unknown, timeoutMs: number): AttemptFailure => {
  // An `error` event inside the stream: the server said what went wrong, with a status or not.
  if (error instanceof APIError && typeof error.status === "number") return classify(error, timeoutMs)
  if (error instanceof APIError)
    return { kind: "transient", code: "stream_error", message: `the stream reported: ${error.message}` }
  // A chunk that is not JSON: the endpoint misbehaved.
  if (error instanceof SyntaxError)
    return { kind: "endpoint", code: "bad_response", message: `a stream chunk is not JSON: ${error.message}` }
  // A reset connection, a truncated chunked body, …: the server went away mid-answer.
  return { kind: "transient", code: "stream_broken", message: causeText(error) }
}

class StreamIdle extends Error {}
class StreamFailed extends Error {
  constructor(readonly failure: AttemptFailure) {
    super(failure.message)
  }
}

/**
 * Runs one streamed attempt; interruption aborts the HTTP request. `onDelta` gets each piece as it
 * arrives (an exception it throws is ignored: progress reporting never fails a call).
 */
export const attemptStreaming = (
  client: OpenAI,
  config: ModelConfig,
  request: CompletionRequest,
  endpoint: string,
  now: () => number,
  attemptNumber: number,
): Effect.Effect<Completion, AttemptFailure> =>
  Effect.suspend(() => {
    const started = now()
    const body = {
      ...requestBody(config, request),
      stream: true,
      stream_options: { include_usage: true },
    } as ChatCompletionCreateParamsStreaming
    const onDelta = request.onDelta
    const deliver = (piece: DeltaPiece) => {
      if (onDelta === undefined) return
      try {
        onDelta({ attempt: attemptNumber, endpoint, ...piece })
      } catch {
        // Progress reporting must never fail the call.
      }
    }
    return Effect.tryPromise({
      try: async (signal) => {
        // Until the headers arrive, the client's own `timeout` applies.
        const { data: stream, response } = await client.chat.completions
          .create(body, { signal, headers: requestHeaders(request) })
          .withResponse()
        const assembly = new StreamAssembly()
        // From then on: at most `timeoutMs` of silence between two chunks.
        let idle = false
        let timer: NodeJS.Timeout | undefined
        const arm = () => {
          clearTimeout(timer)
          timer = setTimeout(() => {
            idle = true
            stream.controller.abort()
          }, config.timeoutMs)
        }
        arm()
        try {
          for await (const chunk of stream) {
            arm()
            for (const piece of assembly.add(chunk)) deliver(piece)
          }
        } catch (error) {
          if (idle) throw new StreamIdle()
          // Everything up to the usage (the last chunk before `[DONE]`) arrived: only the ending broke.
          if (!(assembly.finished && assembly.hasUsage))
            throw new StreamFailed(classifyStreamError(error, config.timeoutMs))
        } finally {
          clearTimeout(timer)
        }
        // An aborted stream ends its iteration quietly: tell the silence apart from a real end.
        if (idle) throw new StreamIdle()
        if (!assembly.finished)
          throw new StreamFailed({
            kind: "transient",
            code: "stream_incomplete",
            message: `the stream ended after ${assembly.chunks} chunk(s) without a finish reason`,
          })
        return { assembly, headers: response.headers }
      },
      catch: (error): AttemptFailure => {
        if (error instanceof StreamFailed) return error.failure
        if (error instanceof StreamIdle)
          return {
            kind: "transient",
            code: "timeout",
            message: `the stream was silent for ${config.timeoutMs} ms`,
          }
        return classify(error, config.timeoutMs)
      },
    }).pipe(
      Effect.flatMap(({ assembly, headers }) => {
        const body = assembly.toBody(request.logprobs === true || config.tokens === "exact")
        const read = readCompletion(config, request, body, headers, endpoint, now() - started)
        return "kind" in read ? Effect.fail(read) : Effect.succeed(read)
      }),
    )
  })
