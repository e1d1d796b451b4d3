/**
 * Turns a script's reply into what an OpenAI-compatible server sends: a `chat.completion` body, the
 * `chat.completion.chunk` server-sent events of a stream, or a `text_completion` body for a
 * token-id prompt, with usage, log-probs and vLLM-style token ids. All come from one `Generation`
 * (the turn sampled as the chat template writes it), so a streamed answer reassembles to exactly
 * the non-streamed one and a token-id prompt samples the same ids as the chat it renders. Every
 * body carries the test-double fingerprint.
 *
 * Token ids follow vLLM's `return_token_ids` extension: when the request sets it, the body has a
 * top-level `prompt_token_ids` and `choices[0].token_ids`; a stream puts `prompt_token_ids` on its
 * first chunk and, on every chunk's choice, the `token_ids` of the tokens that chunk delivers. A
 * script's `weightVersions` go out as vLLM's `weight_versions` spans on the choice.
 */
import { createHash } from "node:crypto"
import {
  assistantTokens,
  type ChatTemplateName,
  promptTokenCount,
  promptTokens,
  SPECIAL,
  type TurnPart,
} from "./chatTemplate.ts"
import { tokenLogprob, type Vocabulary } from "./pseudoTokens.ts"
import {
  assistantTurns,
  type ChatRequest,
  type FinishReason,
  type ScriptContext,
  type ScriptedReply,
} from "./script.ts"

/** The `system_fingerprint` of every completion: says in each body that no model produced it. */
export const SYSTEM_FINGERPRINT = "rollout-scripted-test-double"

/** One sampled pseudo-token with its id, log-prob and the part of the turn it belongs to. */
export interface Piece {
  readonly text: string
  readonly id: number
  readonly logprob: number
  readonly part: TurnPart
}

export interface GeneratedToolCall {
  readonly id: string
  readonly name: string
  /** The arguments exactly as sent (JSON text, or a script's verbatim string). */
  readonly arguments: string
}

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

/** vLLM's per-token weight versions: `version` sampled tokens `[start, end)`. */
export interface WeightVersionSpan {
  readonly version: string
  readonly start: number
  readonly end: number
}

/**
 * A decided completion. `pieces` are every sampled token as the chat template writes the turn
 * (`chatTemplate.ts`: reasoning in `<think>`, content, each tool call in `<tool_call>`, then
 * `<|im_end|>` when the turn stopped by itself); log-probs and `token_ids` cover all of them (as
 * vLLM's do), and `completion_tokens` counts them unless the script overrides usage.
 */
export interface Generation {
  /** "" for none. */
  readonly reasoning: string
  /** Null for a turn with tool calls and no content (as OpenAI sends it). */
  readonly content: string | null
  readonly toolCalls: ReadonlyArray<GeneratedToolCall>
  readonly pieces: ReadonlyArray<Piece>
  readonly finishReason: FinishReason
  readonly usage: Usage
  /** undefined: no log-probs; otherwise how many alternatives per token (`top_logprobs`). */
  readonly topLogprobs: number | undefined
  /** Set when the request asked for `return_token_ids`. */
  readonly promptTokenIds: ReadonlyArray<number> | undefined
  /** Set when the script gave them. */
  readonly weightVersions: ReadonlyArray<WeightVersionSpan> | undefined
}

/** How a generation's prompt is tokenized, and where the ids it makes are remembered. */
export interface TokenOptions {
  /** Default `keep-reasoning`. */
  readonly template?: ChatTemplateName
  /** Learns every token of the prompt and of the turn, so a token-id prompt can be read back later. */
  readonly vocabulary?: Vocabulary
  /** The prompt as ids, when it came as ids (`/v1/completions`): used as it is, never re-rendered. */
  readonly prompt?: ReadonlyArray<number>
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

/** A script's spans (`tokens` long each, the last to the end) over `count` sampled tokens. */
const spansOf = (
  spec: NonNullable<ScriptedReply["weightVersions"]>,
  count: number,
): Array<WeightVersionSpan> => {
  const spans: Array<WeightVersionSpan> = []
  let start = 0
  for (const { version, tokens } of spec) {
    const end = tokens === undefined ? count : Math.min(count, start + Math.max(0, Math.trunc(tokens)))
    if (end > start) spans.push({ version, start, end })
    start = end
  }
  return spans
}

export const planGeneration = (
  request: ChatRequest,
  reply: ScriptedReply,
  context: ScriptContext,
  tokens: TokenOptions = {},
): Generation => {
  const calls = reply.toolCalls ?? []
  const content = reply.content === undefined && calls.length > 0 ? null : (reply.content ?? "")
  const turn = assistantTurns(request)
  const toolCalls = calls.map(
    (call, index): GeneratedToolCall => ({
      id: call.id ?? defaultToolCallId(context, turn, index),
      name: call.name,
      arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments),
    }),
  )
  const finishReason = reply.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop")
  const reasoning = reply.reasoning ?? ""
  // The turn's end token is sampled only when the model stopped by itself.
  const ended = finishReason === "stop" || finishReason === "tool_calls"
  const sampled = assistantTokens({ reasoning, content: content ?? "", toolCalls }, ended)
  const pieces = sampled.map(
    (token, position): Piece => ({ ...token, logprob: tokenLogprob(token.text, position) }),
  )
  const template = tokens.template ?? "keep-reasoning"
  const vocabulary = tokens.vocabulary
  let promptTokenIds: ReadonlyArray<number> | undefined
  if (request.return_token_ids === true) {
    if (tokens.prompt !== undefined) promptTokenIds = tokens.prompt
    else {
      const rendered = promptTokens(request, template)
      for (const token of rendered) vocabulary?.learn(token.text, token.id)
      promptTokenIds = rendered.map((token) => token.id)
    }
  }
  for (const piece of pieces) vocabulary?.learn(piece.text, piece.id)
  const promptCount =
    reply.usage?.promptTokens ?? tokens.prompt?.length ?? promptTokenCount(request, template)
  const completionTokens = reply.usage?.completionTokens ?? pieces.length
  const wantsLogprobs = reply.logprobs ?? request.logprobs === true
  return {
    reasoning,
    content,
    toolCalls,
    pieces,
    finishReason,
    usage: {
      prompt_tokens: promptCount,
      completion_tokens: completionTokens,
      total_tokens: promptCount + completionTokens,
    },
    topLogprobs: wantsLogprobs ? Math.max(0, Math.min(20, Math.trunc(request.top_logprobs ?? 0))) : undefined,
    promptTokenIds,
    weightVersions:
      reply.weightVersions === undefined ? undefined : spansOf(reply.weightVersions, pieces.length),
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

const logprobsOf = (generation: Generation, pieces: ReadonlyArray<Piece>) =>
  generation.topLogprobs === undefined
    ? null
    : { content: pieces.map((piece) => logprobEntry(piece, generation.topLogprobs ?? 0)), refusal: null }

/** The non-streaming `chat.completion` body. */
export const completionBody = (generation: Generation, meta: CompletionMeta): Record<string, unknown> => {
  const { pieces } = generation
  const message: Record<string, unknown> = {
    role: "assistant",
    content: generation.content,
    refusal: null,
  }
  if (generation.reasoning !== "") message.reasoning_content = generation.reasoning
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
  if (generation.weightVersions !== undefined) choice.weight_versions = generation.weightVersions
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
 * What a sampled token adds to a stream's delta: reasoning and content their text, a tool call's
 * `<tool_call>` its header (id, name) and its arguments their text, in OpenAI's `tool_calls[].index`
 * delta format; a marker or the rest of a call's JSON nothing (the token still comes, with its id
 * and log-prob, as vLLM sends a token a parser swallowed).
 */
const deltaOf = (generation: Generation, piece: Piece): Record<string, unknown> => {
  const part = piece.part
  if (part.kind === "reasoning") return { reasoning_content: piece.text }
  if (part.kind === "content") return { content: piece.text }
  if (part.kind !== "call") return {}
  const call = generation.toolCalls[part.index]!
  if (part.field === "open")
    return {
      tool_calls: [
        { index: part.index, id: call.id, type: "function", function: { name: call.name, arguments: "" } },
      ],
    }
  if (part.field === "arguments")
    return { tool_calls: [{ index: part.index, function: { arguments: piece.text } }] }
  return {}
}

/**
 * The server-sent events of a stream, one string (`data: …\n\n`) each: a role chunk (with
 * `prompt_token_ids` when asked), one chunk per sampled token (see `deltaOf`), a finish chunk (with
 * any `weight_versions`), the usage chunk when `stream_options.include_usage` is set, and `data:
 * [DONE]`. A script's `cutStream` sends only the first of them.
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

  const first = { role: "assistant", content: generation.content === null ? null : "" }
  const choice0: Record<string, unknown> = { index: 0, delta: first, logprobs: null, finish_reason: null }
  if (withIds) choice0.token_ids = []
  emit([choice0], withIds ? { prompt_token_ids: generation.promptTokenIds } : undefined)

  for (const piece of generation.pieces) {
    const choice: Record<string, unknown> = {
      index: 0,
      delta: deltaOf(generation, piece),
      logprobs: logprobsOf(generation, [piece]),
      finish_reason: null,
    }
    if (withIds) choice.token_ids = [piece.id]
    emit([choice])
  }
  const finish: Record<string, unknown> = {
    index: 0,
    delta: {},
    logprobs: null,
    finish_reason: generation.finishReason,
  }
  if (withIds) finish.token_ids = []
  if (generation.weightVersions !== undefined) finish.weight_versions = generation.weightVersions
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

/**
 * The `text_completion` body of `/v1/completions` (vLLM's shape): the turn's text (every sampled
 * token but the end token, which is special), legacy log-probs (`tokens`, `token_logprobs`,
 * `top_logprobs`, `text_offset`), and with `return_token_ids` the prompt's and the sampled ids on
 * the choice.
 */
export const textCompletionBody = (generation: Generation, meta: CompletionMeta): Record<string, unknown> => {
  const { pieces } = generation
  const shown = pieces.filter((piece) => piece.id !== SPECIAL.imEnd.id)
  const offsets: Array<number> = []
  let offset = 0
  for (const piece of pieces) {
    offsets.push(offset)
    if (piece.id !== SPECIAL.imEnd.id) offset += piece.text.length
  }
  const top = generation.topLogprobs
  const choice: Record<string, unknown> = {
    index: 0,
    text: shown.map((piece) => piece.text).join(""),
    logprobs:
      top === undefined
        ? null
        : {
            tokens: pieces.map((piece) => piece.text),
            token_logprobs: pieces.map((piece) => piece.logprob),
            top_logprobs: pieces.map((piece) =>
              Object.fromEntries(
                logprobEntry(piece, top).top_logprobs.map((alt) => [alt.token, alt.logprob]),
              ),
            ),
            text_offset: offsets,
          },
    finish_reason: generation.finishReason,
    stop_reason: null,
  }
  if (generation.weightVersions !== undefined) choice.weight_versions = generation.weightVersions
  if (generation.promptTokenIds !== undefined) {
    choice.prompt_token_ids = generation.promptTokenIds
    choice.token_ids = pieces.map((piece) => piece.id)
  }
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [choice],
    usage: generation.usage,
  }
}
