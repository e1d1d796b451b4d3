/**
 * The scripted model server's chat template: how a conversation becomes the token ids a model
 * would see (`prompt_token_ids`, `/tokenize`), how an assistant turn is sampled as tokens, and how
 * a token-id prompt (`/v1/completions`) is read back into a conversation. ChatML-like, as Qwen3's:
 *
 *     [<tools> tools-JSON </tools>]
 *     per message: <|im_start|> role "\n" body <|im_end|>
 *     generation prompt: <|im_start|> assistant "\n"
 *
 * An assistant body is `[<think> reasoning </think>] content (<tool_call> {"name": N, "arguments":
 * A} </tool_call>)*`, exactly what a turn samples (then `<|im_end|>` when it stopped by itself), so
 * a turn sent back as it was answered (its content, reasoning and tool calls) renders to its
 * sampled ids verbatim, and the next prompt extends the last one — the way a real template does
 * when it keeps history. The `drop-past-reasoning` template rewrites history as Qwen3's does: the
 * reasoning of assistant turns before the last user message is not rendered (nor any `<think>`
 * block in their content), so a prompt after a new user message no longer extends the previous
 * one's ids: drift, for tests of the drift guard. Texts go through the pseudo-tokenizer; the
 * markers are single special tokens with Qwen3's ids.
 */
import { countTokens, FIRST_SPECIAL_ID, tokenId, tokenize } from "./pseudoTokens.ts"
import type { ChatMessage, ChatRequest } from "./script.ts"
import { messageText } from "./script.ts"

/** `keep-reasoning` (the default) renders every turn as sampled; `drop-past-reasoning` as Qwen3 does. */
export type ChatTemplateName = "keep-reasoning" | "drop-past-reasoning"

export const CHAT_TEMPLATES: ReadonlyArray<ChatTemplateName> = ["keep-reasoning", "drop-past-reasoning"]

/** The markers, each one token, with Qwen3's ids (`<tools>` has none there: the next free ones). */
export const SPECIAL = {
  imStart: { text: "<|im_start|>", id: 151_644 },
  imEnd: { text: "<|im_end|>", id: 151_645 },
  toolCallStart: { text: "<tool_call>", id: 151_657 },
  toolCallEnd: { text: "</tool_call>", id: 151_658 },
  thinkStart: { text: "<think>", id: 151_667 },
  thinkEnd: { text: "</think>", id: 151_668 },
  toolsStart: { text: "<tools>", id: 151_669 },
  toolsEnd: { text: "</tools>", id: 151_670 },
} as const

const specialById = new Map<number, string>(Object.values(SPECIAL).map(({ id, text }) => [id, text]))

/** The text of a special token id, if it is one. */
export const specialText = (id: number): string | undefined => specialById.get(id)

/** One token: its text and id. */
export interface TemplateToken {
  readonly text: string
  readonly id: number
}

/** Which part of an assistant turn a sampled token belongs to (a stream delivers them by part). */
export type TurnPart =
  | { readonly kind: "marker" }
  | { readonly kind: "reasoning" }
  | { readonly kind: "content" }
  | {
      readonly kind: "call"
      readonly index: number
      /** `open`: `<tool_call>`; `head`: up to the arguments; `close`: `}` and `</tool_call>`. */
      readonly field: "open" | "head" | "arguments" | "close"
    }

export interface TurnToken extends TemplateToken {
  readonly part: TurnPart
}

/** An assistant turn as text: what is sampled, and what a client sends back. */
export interface AssistantTurn {
  readonly reasoning: string
  readonly content: string
  readonly toolCalls: ReadonlyArray<{ readonly name: string; readonly arguments: string }>
}

const marker: TurnPart = { kind: "marker" }

const textTokens = (text: string, part: TurnPart, out: Array<TurnToken>): void => {
  for (const token of tokenize(text)) out.push({ text: token, id: tokenId(token), part })
}

/** What a tool call looks like up to its arguments, as Qwen's template writes it. */
const callHead = (name: string): string => `{"name": ${JSON.stringify(name)}, "arguments": `

/**
 * The tokens of an assistant turn, in order; with `ended` (the turn stopped by itself, or it is a
 * past turn rendered in a prompt) closed by `<|im_end|>`.
 */
export const assistantTokens = (turn: AssistantTurn, ended: boolean): Array<TurnToken> => {
  const out: Array<TurnToken> = []
  if (turn.reasoning !== "") {
    out.push({ ...SPECIAL.thinkStart, part: marker })
    textTokens(turn.reasoning, { kind: "reasoning" }, out)
    out.push({ ...SPECIAL.thinkEnd, part: marker })
  }
  textTokens(turn.content, { kind: "content" }, out)
  for (const [index, call] of turn.toolCalls.entries()) {
    out.push({ ...SPECIAL.toolCallStart, part: { kind: "call", index, field: "open" } })
    textTokens(callHead(call.name), { kind: "call", index, field: "head" }, out)
    textTokens(call.arguments, { kind: "call", index, field: "arguments" }, out)
    const close: TurnPart = { kind: "call", index, field: "close" }
    textTokens("}", close, out)
    out.push({ ...SPECIAL.toolCallEnd, part: close })
  }
  if (ended) out.push({ ...SPECIAL.imEnd, part: marker })
  return out
}

/** The reasoning a client sent back with an assistant message (`reasoning_content`, or `reasoning`). */
const echoedReasoning = (message: ChatMessage): string => {
  const reasoning = message.reasoning_content ?? message.reasoning
  return typeof reasoning === "string" ? reasoning : ""
}

/** An assistant message as the template sees it; `dropReasoning` is Qwen3's rule for past turns. */
const turnOf = (message: ChatMessage, dropReasoning: boolean): AssistantTurn => {
  const content = messageText(message)
  const toolCalls = (message.tool_calls ?? []).map((call) => ({
    name: call.function?.name ?? "",
    arguments: call.function?.arguments ?? "",
  }))
  if (!dropReasoning) return { reasoning: echoedReasoning(message), content, toolCalls }
  // Qwen3: only what follows the last `</think>` of the content, without its leading newlines.
  const end = content.lastIndexOf(SPECIAL.thinkEnd.text)
  const kept = end < 0 ? content : content.slice(end + SPECIAL.thinkEnd.text.length).replace(/^\n+/, "")
  return { reasoning: "", content: kept, toolCalls }
}

/** A stretch of a rendered prompt: a token as it is (a marker, a sampled token), or text to tokenize. */
type Segment = TemplateToken | { readonly text: string; readonly id?: undefined }

/** The conversation as template segments, with the generation prompt when asked (the default). */
const segments = (
  request: Pick<ChatRequest, "messages" | "tools">,
  template: ChatTemplateName,
  addGenerationPrompt: boolean,
): Array<Segment> => {
  const out: Array<Segment> = []
  if (request.tools !== undefined && request.tools !== null && request.tools.length > 0)
    out.push(SPECIAL.toolsStart, { text: JSON.stringify(request.tools) }, SPECIAL.toolsEnd)
  const lastUser = request.messages.findLastIndex((message) => message.role === "user")
  for (const [index, message] of request.messages.entries()) {
    out.push(SPECIAL.imStart, { text: `${message.role}\n` })
    if (message.role === "assistant") {
      const dropReasoning = template === "drop-past-reasoning" && index < lastUser
      out.push(...assistantTokens(turnOf(message, dropReasoning), true))
    } else out.push({ text: messageText(message) }, SPECIAL.imEnd)
  }
  if (addGenerationPrompt) out.push(SPECIAL.imStart, { text: "assistant\n" })
  return out
}

/**
 * Every token of the rendered prompt, in order. An assistant turn's tokens are the same ones its
 * sampling produced (each text part is tokenized on its own, as sampled), so history kept as
 * answered renders to the sampled ids.
 */
export const promptTokens = (
  request: Pick<ChatRequest, "messages" | "tools">,
  template: ChatTemplateName = "keep-reasoning",
  addGenerationPrompt = true,
): Array<TemplateToken> => {
  const out: Array<TemplateToken> = []
  for (const segment of segments(request, template, addGenerationPrompt)) {
    if (segment.id !== undefined) out.push({ text: segment.text, id: segment.id })
    else for (const token of tokenize(segment.text)) out.push({ text: token, id: tokenId(token) })
  }
  return out
}

/** How many tokens `promptTokens` gives, without building them. */
export const promptTokenCount = (
  request: Pick<ChatRequest, "messages" | "tools">,
  template: ChatTemplateName = "keep-reasoning",
): number => {
  let count = 0
  for (const segment of segments(request, template, true))
    count += segment.id !== undefined ? 1 : countTokens(segment.text)
  return count
}

/** A token-id prompt read back: the conversation, or what is wrong with it and where. */
export type ParsedPrompt =
  | {
      readonly ok: true
      readonly messages: ReadonlyArray<ChatMessage>
      readonly tools?: ReadonlyArray<unknown>
    }
  | { readonly ok: false; readonly problem: string }

const CALL = /^\{"name": ("(?:[^"\\]|\\.)*"), "arguments": ([\s\S]*)\}$/

/** An assistant body's tokens back into a message (the inverse of `assistantTokens`). */
const assistantMessage = (tokens: ReadonlyArray<TemplateToken>): ChatMessage | string => {
  let i = 0
  let reasoning = ""
  if (tokens[0]?.id === SPECIAL.thinkStart.id) {
    const end = tokens.findIndex((t) => t.id === SPECIAL.thinkEnd.id)
    if (end < 0) return "a <think> block without </think>"
    reasoning = tokens
      .slice(1, end)
      .map((t) => t.text)
      .join("")
    i = end + 1
  }
  let content = ""
  for (; i < tokens.length && tokens[i]!.id !== SPECIAL.toolCallStart.id; i++) content += tokens[i]!.text
  const calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> = []
  while (i < tokens.length) {
    if (tokens[i]!.id !== SPECIAL.toolCallStart.id)
      return `text after a tool call: ${JSON.stringify(tokens[i]!.text)}`
    const end = tokens.findIndex((t, k) => k > i && t.id === SPECIAL.toolCallEnd.id)
    if (end < 0) return "a <tool_call> without </tool_call>"
    const body = tokens
      .slice(i + 1, end)
      .map((t) => t.text)
      .join("")
    const match = CALL.exec(body)
    if (match === null) return `a tool call that is not {"name": …, "arguments": …}: ${JSON.stringify(body)}`
    calls.push({
      id: `call_${calls.length}`,
      type: "function",
      function: { name: JSON.parse(match[1]!) as string, arguments: match[2]! },
    })
    i = end + 1
  }
  return {
    role: "assistant",
    content,
    ...(reasoning === "" ? {} : { reasoning_content: reasoning }),
    ...(calls.length === 0 ? {} : { tool_calls: calls }),
  }
}

/**
 * Reads a prompt this template rendered back into its conversation: the tool catalog, the messages
 * (tool-call ids are not rendered: they come back as `call_<n>`), and the generation prompt it must
 * end with. Anything else says what it found where.
 */
export const parsePrompt = (tokens: ReadonlyArray<TemplateToken>): ParsedPrompt => {
  const fail = (problem: string, at: number): ParsedPrompt => ({
    ok: false,
    problem: `${problem} at token ${at}`,
  })
  let i = 0
  let tools: ReadonlyArray<unknown> | undefined
  if (tokens[0]?.id === SPECIAL.toolsStart.id) {
    const end = tokens.findIndex((t) => t.id === SPECIAL.toolsEnd.id)
    if (end < 0) return fail("a <tools> block without </tools>", 0)
    try {
      const parsed = JSON.parse(
        tokens
          .slice(1, end)
          .map((t) => t.text)
          .join(""),
      ) as unknown
      if (!Array.isArray(parsed)) return fail("the <tools> block is not a JSON list", 1)
      tools = parsed
    } catch {
      return fail("the <tools> block is not JSON", 1)
    }
    i = end + 1
  }
  const messages: Array<ChatMessage> = []
  for (;;) {
    if (i >= tokens.length) return fail("the prompt does not end with the assistant's generation prompt", i)
    if (tokens[i]!.id !== SPECIAL.imStart.id)
      return fail(`expected <|im_start|>, found ${JSON.stringify(tokens[i]!.text)}`, i)
    const open = i
    let role = ""
    for (i++; i < tokens.length && !tokens[i]!.text.endsWith("\n"); i++) role += tokens[i]!.text
    if (i >= tokens.length) return fail("a message without its role line", open)
    role += tokens[i]!.text.slice(0, -1)
    i++
    const end = tokens.findIndex((t, k) => k >= i && t.id === SPECIAL.imEnd.id)
    if (end < 0) {
      // The generation prompt: an assistant turn opened and nothing in it yet.
      if (role === "assistant" && i === tokens.length) break
      return fail(`a ${role} message without <|im_end|>`, open)
    }
    const body = tokens.slice(i, end)
    if (role === "assistant") {
      const message = assistantMessage(body)
      if (typeof message === "string") return fail(message, i)
      messages.push(message)
    } else {
      const special = body.findIndex((t) => t.id >= FIRST_SPECIAL_ID)
      if (special >= 0)
        return fail(`${JSON.stringify(body[special]!.text)} in a ${role} message`, i + special)
      messages.push({ role, content: body.map((t) => t.text).join("") })
    }
    i = end + 1
  }
  if (messages.length === 0) return fail("no message before the generation prompt", i)
  return { ok: true, messages, ...(tools === undefined ? {} : { tools }) }
}
