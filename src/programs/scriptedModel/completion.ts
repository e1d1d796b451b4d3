/**
 * Turns a script's reply into what an OpenAI-compatible server sends: a `chat.completion` body, or
 * the `chat.completion.chunk` server-sent events of a stream, with usage, log-probs and vLLM-style
 * token ids. Both come from one `Generation` so a streamed answer reassembles to exactly the
 * non-streamed one. Every body carries the test-double fingerprint.
 *
 * Token ids follow vLLM's `return_token_ids` extension: when the request sets it, the body has a
 * top-level `prompt_token_ids` and `choices[0].token_ids`; a stream puts `prompt_token_ids` on its
 * first chunk and, on every chunk's choice, the `token_ids` of the tokens that chunk delivers.
 */
import { createHash } from "node:crypto"
import { promptTokenCount, promptTokenIds, tokenId, tokenize, tokenLogprob } from "./pseudoTokens.ts"
import {
  assistantTurns,
  type ChatRequest,
  type FinishReason,
  type ScriptContext,
  type ScriptedReply,
} from "./script.ts"

/** The `system_fingerprint` of every completion: says in each body that no model produced it. */
export const SYSTEM_FINGERPRINT = "rollout-scripted-test-double"

/** One generated pseudo-token with its id and log-prob. */
export interface Piece {
  readonly text: string
  readonly id: number
  readonly logprob: number
}

export interface GeneratedToolCall {
  readonly id: string
  readonly name: string
  /** The arguments exactly as sent (JSON text, or a script's verbatim string). */
  readonly arguments: string
  readonly pieces: ReadonlyArray<Piece>
}

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

/**
 * A decided completion. The generated tokens are, in order, the reasoning, the content and each
 * tool call's arguments; log-probs and `token_ids` cover all of them (as vLLM's do), and
 * `completion_tokens` counts them unless the script overrides usage.
 */
export interface Generation {
  readonly reasoning: ReadonlyArray<Piece>
  /** Null for a turn with tool calls and no content (as OpenAI sends it). */
  readonly content: ReadonlyArray<Piece> | null
  readonly toolCalls: ReadonlyArray<GeneratedToolCall>
  readonly finishReason: FinishReason
  readonly usage: Usage
  /** undefined: no log-probs; otherwise how many alternatives per token (`top_logprobs`). */
  readonly topLogprobs: number | undefined
  /** Set when the request asked for `return_token_ids`. */
  readonly promptTokenIds: ReadonlyArray<number> | undefined
}

export interface CompletionMeta {
  readonly id: string
  readonly created: number
  readonly model: string
}

// Deterministic from the conversation, so a replayed or re-sent request gets the same ids.
const defaultToolCallId = (context: ScriptContext, turn: number, index: number): string =>
  "call_" +
  createHash("sha256")
    .update(`${context.episodeKey ?? ""}\u0000${turn}\u0000${index}`)
    .digest("hex")
    .slice(0, 24)

export const planGeneration = (
  request: ChatRequest,
  reply: ScriptedReply,
  context: ScriptContext,
): Generation => {
  let position = 0
  const piecesOf = (text: string): Array<Piece> =>
    tokenize(text).map((token) => ({
      text: token,
      id: tokenId(token),
      logprob: tokenLogprob(token, position++),
    }))
  const reasoning = piecesOf(reply.reasoning ?? "")
  const calls = reply.toolCalls ?? []
  const content = reply.content === undefined && calls.length > 0 ? null : piecesOf(reply.content ?? "")
  const turn = assistantTurns(request)
  const toolCalls = calls.map((call, index): GeneratedToolCall => {
    const args = typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments)
    return {
      id: call.id ?? defaultToolCallId(context, turn, index),
      name: call.name,
      arguments: args,
      pieces: piecesOf(args),
    }
  })
  const promptTokens = reply.usage?.promptTokens ?? promptTokenCount(request)
  const completionTokens = reply.usage?.completionTokens ?? position
  const wantsLogprobs = reply.logprobs ?? request.logprobs === true
  return {
    reasoning,
    content,
    toolCalls,
    finishReason: reply.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
    topLogprobs: wantsLogprobs ? Math.max(0, Math.min(20, Math.trunc(request.top_logprobs ?? 0))) : undefined,
    promptTokenIds: request.return_token_ids === true ? promptTokenIds(request) : undefined,
  }
}

const utf8 = new TextEncoder()

const logprobEntry = (piece: Piece, top: number) => {
  const bytes = Array.from(utf8.encode(piece.text))
  const alternatives = []
  // The sampled token first, then made-up runners-up with strictly lower log-probs.
  for (let rank = 0; rank < top; rank++) {
    const text = rank === 0 ? piece.text : `${piece.text}~${rank}`
    alternatives.push({
      token: text,
      logprob: (Math.round(piece.logprob * 1000) - rank * 1000) / 1000,
      bytes: Array.from(utf8.encode(text)),
    })
  }
  return { token: piece.text, logprob: piece.logprob, bytes, top_logprobs: alternatives }
}

const allPieces = (generation: Generation): Array<Piece> => [
  ...generation.reasoning,
  ...(generation.content ?? []),
  ...generation.toolCalls.flatMap((call) => call.pieces),
]

const logprobsOf = (generation: Generation, pieces: ReadonlyArray<Piece>) =>
  generation.topLogprobs === undefined
    ? null
    : { content: pieces.map((piece) => logprobEntry(piece, generation.topLogprobs ?? 0)), refusal: null }

const joined = (pieces: ReadonlyArray<Piece> | null): string | null =>
  pieces === null ? null : pieces.map((piece) => piece.text).join("")

/** The non-streaming `chat.completion` body. */
export const completionBody = (generation: Generation, meta: CompletionMeta): Record<string, unknown> => {
  const pieces = allPieces(generation)
  const message: Record<string, unknown> = {
    role: "assistant",
    content: joined(generation.content),
    refusal: null,
  }
  if (generation.reasoning.length > 0) message.reasoning_content = joined(generation.reasoning)
  if (generation.toolCalls.length > 0) {
    message.tool_calls = generation.toolCalls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }))
  }
  const choice: Record<string, unknown> = {
    index: 0,
    message,
    logprobs: logprobsOf(generation, pieces),
    finish_reason: generation.finishReason,
  }
  const body: Record<string, unknown> = {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [choice],
    usage: generation.usage,
  }
  if (generation.promptTokenIds !== undefined) {
    choice.token_ids = pieces.map((piece) => piece.id)
    body.prompt_token_ids = generation.promptTokenIds
  }
  return body
}

/**
 * The server-sent events of a stream, one string (`data: …\n\n`) each: a role chunk, one chunk per
 * generated token (reasoning, content, then per tool call a header chunk with id and name followed
 * by its arguments token by token, in OpenAI's `tool_calls[].index` delta format), a finish chunk,
 * the usage chunk when `stream_options.include_usage` is set, and `data: [DONE]`. A script's
 * `cutStream` sends only the first of them.
 */
export const completionStreamEvents = (
  generation: Generation,
  meta: CompletionMeta,
  includeUsage: boolean,
): Array<string> => {
  const withIds = generation.promptTokenIds !== undefined
  const events: Array<string> = []
  const emit = (choices: ReadonlyArray<Record<string, unknown>>, extra?: Record<string, unknown>): void => {
    const chunk: Record<string, unknown> = {
      id: meta.id,
      object: "chat.completion.chunk",
      created: meta.created,
      model: meta.model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices,
      ...extra,
    }
    if (includeUsage && !("usage" in chunk)) chunk.usage = null
    events.push(`data: ${JSON.stringify(chunk)}\n\n`)
  }
  const emitDelta = (delta: Record<string, unknown>, pieces: ReadonlyArray<Piece>): void => {
    const choice: Record<string, unknown> = {
      index: 0,
      delta,
      logprobs: pieces.length > 0 ? logprobsOf(generation, pieces) : null,
      finish_reason: null,
    }
    if (withIds) choice.token_ids = pieces.map((piece) => piece.id)
    emit([choice])
  }

  const first = { role: "assistant", content: generation.content === null ? null : "" }
  const choice0: Record<string, unknown> = { index: 0, delta: first, logprobs: null, finish_reason: null }
  if (withIds) choice0.token_ids = []
  emit([choice0], withIds ? { prompt_token_ids: generation.promptTokenIds } : undefined)

  for (const piece of generation.reasoning) emitDelta({ reasoning_content: piece.text }, [piece])
  for (const piece of generation.content ?? []) emitDelta({ content: piece.text }, [piece])
  generation.toolCalls.forEach((call, index) => {
    emitDelta(
      {
        tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }],
      },
      [],
    )
    for (const piece of call.pieces) {
      emitDelta({ tool_calls: [{ index, function: { arguments: piece.text } }] }, [piece])
    }
  })
  const finish: Record<string, unknown> = {
    index: 0,
    delta: {},
    logprobs: null,
    finish_reason: generation.finishReason,
  }
  if (withIds) finish.token_ids = []
  emit([finish])
  if (includeUsage) emit([], { usage: generation.usage })
  events.push("data: [DONE]\n\n")
  return events
}

/** The whole server-sent-event body of a stream (see `completionStreamEvents`). */
export const completionStream = (
  generation: Generation,
  meta: CompletionMeta,
  includeUsage: boolean,
): string => completionStreamEvents(generation, meta, includeUsage).join("")
