/**
 * The scripted model server's token-in routes, as vLLM serves them, so a client that never
 * re-tokenizes can be tested over HTTP: `POST /tokenize` renders a conversation with the chat
 * template (or tokenizes a text) and answers `{count, max_model_len, tokens}`; `POST
 * /v1/completions` takes a prompt of token ids, reads it back into the conversation it renders
 * (through the ids this server has produced: its `Vocabulary`), lets the script answer that as a
 * chat turn, and answers a `text_completion` sampling exactly the ids the chat would have. A prompt
 * the template did not render, or an id this server never produced, is a 400 that says which.
 */
import { modelProblem, type RequestProblem } from "./chatRequest.ts"
import { type ChatTemplateName, parsePrompt, promptTokens, specialText } from "./chatTemplate.ts"
import { tokenId, tokenize, type Vocabulary } from "./pseudoTokens.ts"
import type { ChatMessage, ChatRequest } from "./script.ts"

/** vLLM's route for rendering and tokenizing (outside `/v1`, as vLLM serves it). */
export const TOKENIZE_ROUTE = "POST /tokenize"

/** The context length `/tokenize` reports. */
export const MAX_MODEL_LEN = 131_072

export interface TokenRouteOptions {
  readonly models: ReadonlyArray<string> | undefined
  readonly template: ChatTemplateName
  readonly vocabulary: Vocabulary
}

/** An answer: its HTTP status and JSON body (an OpenAI-style error body for a refusal). */
export interface TokenAnswer {
  readonly status: number
  readonly body: unknown
}

const refusal = (message: string, code: string, param: string | null = null): TokenAnswer => ({
  status: 400,
  body: { error: { message, type: "invalid_request_error", param, code } },
})

const objectOf = (text: string): Record<string, unknown> | string => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    return `the request body is not valid JSON: ${(cause as Error).message}`
  }
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : "the request body must be a JSON object"
}

const isMessageList = (value: unknown): value is ReadonlyArray<ChatMessage> =>
  Array.isArray(value) &&
  value.length > 0 &&
  value.every(
    (m: unknown) => typeof m === "object" && m !== null && typeof (m as ChatMessage).role === "string",
  )

/**
 * `POST /tokenize`: `{messages, tools?, add_generation_prompt?}` through the chat template (the
 * generation prompt added unless `add_generation_prompt: false`), or `{prompt}` through the
 * pseudo-tokenizer alone; `return_token_strs` adds each token's text. Every token is learned.
 */
export const tokenizeAnswer = (text: string, options: TokenRouteOptions): TokenAnswer => {
  const body = objectOf(text)
  if (typeof body === "string") return refusal(body, "invalid_json")
  const badModel = modelProblem(body.model, options.models)
  if (badModel !== undefined) return refusal(badModel.message, badModel.code, badModel.param)
  let tokens: ReadonlyArray<{ readonly text: string; readonly id: number }>
  if (typeof body.prompt === "string") {
    tokens = tokenize(body.prompt).map((token) => ({ text: token, id: tokenId(token) }))
  } else if (isMessageList(body.messages)) {
    if (body.tools !== undefined && body.tools !== null && !Array.isArray(body.tools))
      return refusal("'tools' must be an array", "invalid_tools", "tools")
    const tools = (body.tools ?? undefined) as ReadonlyArray<unknown> | undefined
    tokens = promptTokens(
      { messages: body.messages, ...(tools === undefined ? {} : { tools }) },
      options.template,
      body.add_generation_prompt !== false,
    )
  } else
    return refusal(
      "give 'messages' (a non-empty array of messages with a string 'role') or 'prompt' (a string)",
      "missing_messages",
      "messages",
    )
  for (const token of tokens) options.vocabulary.learn(token.text, token.id)
  return {
    status: 200,
    body: {
      count: tokens.length,
      max_model_len: MAX_MODEL_LEN,
      tokens: tokens.map((token) => token.id),
      token_strs: body.return_token_strs === true ? tokens.map((token) => token.text) : null,
    },
  }
}

/** A `/v1/completions` body read: the conversation its prompt renders, and the prompt as given. */
export type ParsedTextCompletion =
  | { readonly ok: true; readonly request: ChatRequest; readonly prompt: ReadonlyArray<number> }
  | { readonly ok: false; readonly problem: RequestProblem }

const problem = (message: string, code: string, param: string | null = null): ParsedTextCompletion => ({
  ok: false,
  problem: { message, code, param },
})

/**
 * Reads a `/v1/completions` body with a token-id `prompt` into the chat request its ids render:
 * `logprobs: k` asks for log-probs with `k` alternatives, `return_token_ids` for the ids back; a
 * text prompt, a stream or `n` > 1 is refused (this test double answers token-id prompts only).
 */
export const parseTextCompletion = (text: string, options: TokenRouteOptions): ParsedTextCompletion => {
  const body = objectOf(text)
  if (typeof body === "string") return problem(body, "invalid_json")
  const badModel = modelProblem(body.model, options.models)
  if (badModel !== undefined) return { ok: false, problem: badModel }
  const prompt = body.prompt
  if (typeof prompt === "string")
    return problem(
      "the scripted test double completes token-id prompts only (render the chat with /tokenize first)",
      "unsupported_prompt",
      "prompt",
    )
  if (
    !Array.isArray(prompt) ||
    prompt.length === 0 ||
    !prompt.every((id) => Number.isSafeInteger(id) && id >= 0)
  )
    return problem("'prompt' must be a non-empty array of token ids", "invalid_prompt", "prompt")
  if (body.stream === true)
    return problem("the scripted test double streams chat completions only", "unsupported_stream", "stream")
  if (body.n !== undefined && body.n !== null && body.n !== 1)
    return problem("the scripted test double answers n = 1 only", "unsupported_n", "n")
  const logprobs = body.logprobs
  if (
    logprobs !== undefined &&
    logprobs !== null &&
    !(Number.isInteger(logprobs) && (logprobs as number) >= 0)
  )
    return problem("'logprobs' must be a non-negative integer or null", "invalid_logprobs", "logprobs")
  const tokens: Array<{ text: string; id: number }> = []
  for (const [index, id] of (prompt as ReadonlyArray<number>).entries()) {
    const known = specialText(id) ?? options.vocabulary.text(id)
    if (typeof known !== "string")
      return problem(`prompt[${index}]: ${known.problem}`, "unknown_token", "prompt")
    tokens.push({ text: known, id })
  }
  const parsed = parsePrompt(tokens)
  if (!parsed.ok)
    return problem(
      `the prompt is not a chat this server's template renders: ${parsed.problem}`,
      "invalid_prompt",
      "prompt",
    )
  const model = (body.model as string | undefined) ?? options.models?.[0] ?? "scripted"
  const request: ChatRequest = {
    model,
    messages: parsed.messages,
    ...(parsed.tools === undefined ? {} : { tools: parsed.tools }),
    ...(logprobs === undefined || logprobs === null
      ? {}
      : { logprobs: true, top_logprobs: logprobs as number }),
    ...(body.return_token_ids === true ? { return_token_ids: true } : {}),
  }
  return { ok: true, request, prompt: prompt as ReadonlyArray<number> }
}
