/**
 * The shared vocabulary of tool-call parsing: what a parsed assistant turn looks like, how a call
 * that cannot be read is reported (a `FormatError` the agent turns into a FORMAT_ERROR turn with
 * feedback to the model, never an exception), how reasoning is separated from the visible text,
 * and how a decoded JSON call object (`{"name", "arguments"}`) becomes a call. Every format parser
 * builds its result through these helpers so ids, indices and excerpts mean the same everywhere.
 */
import type { Json, JsonObject } from "effect/Schema"
import type { ToolCall } from "../../../events/chat.ts"

export type ToolCallFormat = "openai" | "hermes" | "minicpm" | "deepseek"
/** The formats whose calls are written in the message text (as opposed to native `tool_calls`). */
export type TextToolCallFormat = Exclude<ToolCallFormat, "openai">

export type ToolArguments = JsonObject

/**
 * A call read out of an assistant turn, as `ToolCallRequested` records it and the tools receive
 * it: the shared `ToolCall` with its arguments read into an object. `callId` is the server's id
 * for native calls; `${turnId}:${index}` otherwise, so a replay gets the same id.
 */
export interface ParsedToolCall extends ToolCall {
  readonly arguments: ToolArguments
}

export interface FormatError {
  readonly format: ToolCallFormat
  /** Position of the failed call among all calls attempted in the turn (shared with callIds). */
  readonly index: number
  /** What was wrong, phrased so it can be shown to the model as is. */
  readonly reason: string
  /** The offending markup, at most 200 characters. */
  readonly excerpt: string
}

export interface ParsedTurn {
  /** The visible text with tool-call markup removed and reasoning taken out, trimmed. */
  readonly content: string
  readonly reasoning?: string
  readonly calls: ReadonlyArray<ParsedToolCall>
  readonly errors: ReadonlyArray<FormatError>
}

const EXCERPT_LIMIT = 200

/** At most 200 characters of `text`, never cutting a surrogate pair in half. */
export const excerptOf = (text: string): string => {
  const trimmed = text.trim()
  if (trimmed.length <= EXCERPT_LIMIT) return trimmed
  let cut = EXCERPT_LIMIT - 1
  const code = trimmed.charCodeAt(cut - 1)
  if (code >= 0xd800 && code <= 0xdbff) cut--
  return trimmed.slice(0, cut) + "…"
}

/**
 * Accumulates the calls and errors of one turn in markup order. The index counts every attempted
 * call, failed or not, so a call keeps the same id whether or not its neighbours parse.
 */
export interface TurnCollector {
  readonly accept: (name: string, args: ToolArguments, nativeId?: string) => void
  readonly reject: (reason: string, excerpt: string, format?: ToolCallFormat) => void
  readonly calls: ReadonlyArray<ParsedToolCall>
  readonly errors: ReadonlyArray<FormatError>
}

export const makeCollector = (format: ToolCallFormat, turnId: string): TurnCollector => {
  const calls: ParsedToolCall[] = []
  const errors: FormatError[] = []
  let index = 0
  return {
    accept: (name, args, nativeId) => {
      calls.push({ callId: nativeId ?? `${turnId}:${index}`, tool: name, arguments: args })
      index++
    },
    reject: (reason, excerpt, errorFormat) => {
      errors.push({ format: errorFormat ?? format, index, reason, excerpt: excerptOf(excerpt) })
      index++
    },
    calls,
    errors,
  }
}

// Qwen3/DeepSeek write `<think>…</think>`; MiniCPM3 writes `<|thought_start|>…<|thought_end|>`.
const THINK_OPEN = ["<think>", "<|thought_start|>"] as const
const THINK_CLOSE = ["</think>", "<|thought_end|>"] as const

export interface ThinkingSplit {
  readonly reasoning: string | undefined
  readonly visible: string
}

/**
 * Separates reasoning from the text the model meant to act on. Everything up to the LAST closing
 * tag is reasoning (thinking templates often put the opening tag in the prompt, so only the close
 * is reliable); an opening tag that is never closed (output cut mid-thought) makes the rest
 * reasoning too, so a tool call drafted inside unfinished thinking is never run.
 */
export const splitThinking = (text: string): ThinkingSplit => {
  let reasoning = ""
  let visible = text
  let closeAt = -1
  let closeLength = 0
  for (const tag of THINK_CLOSE) {
    const at = text.lastIndexOf(tag)
    if (at > closeAt) {
      closeAt = at
      closeLength = tag.length
    }
  }
  if (closeAt !== -1) {
    reasoning = text.slice(0, closeAt)
    visible = text.slice(closeAt + closeLength)
  }
  let openAt = -1
  let openLength = 0
  for (const tag of THINK_OPEN) {
    const at = visible.indexOf(tag)
    if (at !== -1 && (openAt === -1 || at < openAt)) {
      openAt = at
      openLength = tag.length
    }
  }
  if (openAt !== -1) {
    reasoning = reasoning + "\n" + visible.slice(openAt + openLength)
    visible = visible.slice(0, openAt)
  }
  for (const tag of [...THINK_OPEN, ...THINK_CLOSE]) reasoning = reasoning.split(tag).join("")
  const trimmed = reasoning.trim()
  return { reasoning: trimmed.length > 0 ? trimmed : undefined, visible }
}

export const isJsonObject = (value: Json | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Names the JSON type of a value the way the model would understand it in feedback. */
export const describeJson = (value: Json | undefined): string => {
  if (value === undefined) return "nothing"
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  return typeof value === "object" ? "an object" : `a ${typeof value}`
}

export type CallFromJson =
  | { readonly ok: true; readonly name: string; readonly arguments: ToolArguments }
  | { readonly ok: false; readonly reason: string }

/**
 * Reads `{"name", "arguments"}`, tolerating the shapes models drift into: `parameters` for
 * `arguments`, an OpenAI-style `{"function": {...}}` wrapper, arguments given as a JSON string
 * (decoded with `decodeString`), and no arguments at all for a call that takes none.
 */
export const callFromJson = (
  value: Json,
  decodeString: (
    text: string,
  ) => { readonly ok: true; readonly value: Json } | { readonly ok: false; readonly reason: string },
): CallFromJson => {
  if (!isJsonObject(value)) {
    return {
      ok: false,
      reason: `a tool call must be a JSON object with "name" and "arguments", got ${describeJson(value)}`,
    }
  }
  const inner = isJsonObject(value.function) ? value.function : value
  const name = inner.name ?? (typeof value.function === "string" ? value.function : undefined)
  if (typeof name !== "string" || name.trim().length === 0) {
    return { ok: false, reason: `the tool call has no "name" string (got ${describeJson(name)})` }
  }
  const raw = inner.arguments !== undefined ? inner.arguments : inner.parameters
  if (raw === undefined || raw === null) return { ok: true, name: name.trim(), arguments: {} }
  let args: Json = raw
  if (typeof raw === "string") {
    if (raw.trim().length === 0) return { ok: true, name: name.trim(), arguments: {} }
    const decoded = decodeString(raw)
    if (!decoded.ok)
      return { ok: false, reason: `"arguments" is a string that is not valid JSON: ${decoded.reason}` }
    args = decoded.value
  }
  if (!isJsonObject(args)) {
    return { ok: false, reason: `"arguments" must be a JSON object, got ${describeJson(args)}` }
  }
  return { ok: true, name: name.trim(), arguments: args }
}

/**
 * JSON text that is safe to embed in markup: `<` only occurs inside JSON strings, so escaping it
 * as `\u003c` means rendered arguments can never contain `</tool_call>`, `</think>` or a DeepSeek
 * special token, and the parser always finds the markup the renderer wrote.
 */
export const markupSafeJson = (value: Json): string => JSON.stringify(value).replace(/</g, "\\u003c")
