/**
 * Tool-call parsing for the agent: turns an assistant reply (a completion's content, reasoning and
 * native tool calls) into the calls to run, in the format the model speaks (OpenAI native tool
 * calls, Qwen/Hermes `<tool_call>` JSON, MiniCPM Python-call blocks, DeepSeek V3.1 special
 * tokens). Reasoning is split off first and never searched for calls. A call that cannot be read
 * becomes a `FormatError` (the agent records a FORMAT_ERROR turn and sends `formatFeedback` to the
 * model), never an exception. The renderers are the exact inverse, used by tests. Pure: no I/O, no
 * clock.
 */

import type { Completion, ToolCall } from "../../events/chat.ts"
import { parseDeepSeek, renderDeepSeek } from "./toolCalls/deepseek.ts"
import { HERMES_OPEN, parseHermes, renderHermes } from "./toolCalls/hermes.ts"
import { MINICPM_START, parseMiniCpm, renderMiniCpm } from "./toolCalls/minicpm.ts"
import { readNativeToolCalls, renderNativeToolCall } from "./toolCalls/openai.ts"
import {
  type FormatError,
  makeCollector,
  type ParsedToolCall,
  type ParsedTurn,
  splitThinking,
  type TextToolCallFormat,
  type ToolCallFormat,
  type TurnCollector,
} from "./toolCalls/parsedTurn.ts"

export type { LenientJsonResult } from "./toolCalls/lenientJson.ts"
export { parseLenientJson } from "./toolCalls/lenientJson.ts"
export type {
  FormatError,
  ParsedToolCall,
  ParsedTurn,
  TextToolCallFormat,
  ToolArguments,
  ToolCallFormat,
} from "./toolCalls/parsedTurn.ts"

/** What the parser reads of a completion: the text, the server's reasoning and its native calls. */
export type AssistantReply = Pick<Completion, "content" | "reasoning" | "toolCalls">

export const TOOL_CALL_FORMATS: ReadonlyArray<ToolCallFormat> = ["openai", "hermes", "minicpm", "deepseek"]

const textParsers: Readonly<
  Record<TextToolCallFormat, (visible: string, collector: TurnCollector) => string>
> = {
  hermes: parseHermes,
  minicpm: parseMiniCpm,
  deepseek: parseDeepSeek,
}

const textRenderers: Readonly<Record<TextToolCallFormat, (calls: ReadonlyArray<ParsedToolCall>) => string>> =
  {
    hermes: renderHermes,
    minicpm: renderMiniCpm,
    deepseek: renderDeepSeek,
  }

const joinReasoning = (...parts: ReadonlyArray<string | null | undefined>): string | undefined => {
  const present = parts
    .filter((p): p is string => typeof p === "string" && p.trim().length > 0)
    .map((p) => p.trim())
  return present.length > 0 ? present.join("\n\n") : undefined
}

/**
 * Parses one assistant reply (or its bare text). `turnId` makes the ids of text-format calls
 * deterministic (`${turnId}:${index}`), so re-driving a recorded turn yields the same ids. Native
 * tool calls are read in every format (a server that parses calls itself strips the markup from
 * the text), and come first; for a text format the markup in `content` is read after them.
 */
export const parseAssistantMessage = (
  format: ToolCallFormat,
  message: AssistantReply | string,
  turnId: string,
): ParsedTurn => {
  const reply: AssistantReply = typeof message === "string" ? { content: message } : message
  const collector = makeCollector(format, turnId)
  if (reply.toolCalls !== undefined) readNativeToolCalls(reply.toolCalls, collector)
  const split = splitThinking(reply.content)
  const content = format === "openai" ? split.visible.trim() : textParsers[format](split.visible, collector)
  const reasoning = joinReasoning(reply.reasoning, split.reasoning)
  const turn = { content, calls: collector.calls, errors: collector.errors }
  return reasoning === undefined ? turn : { ...turn, reasoning }
}

const MARKERS: ReadonlyArray<readonly [string, TextToolCallFormat]> = [
  [HERMES_OPEN, "hermes"],
  [MINICPM_START, "minicpm"],
  ["<｜tool▁calls▁begin｜>", "deepseek"],
  ["<｜tool▁call▁begin｜>", "deepseek"],
]

/**
 * Which tool-call markup the text uses, looking only where calls count (after the reasoning);
 * the earliest marker wins. `undefined` when there is none.
 */
export const detectFormat = (text: string): TextToolCallFormat | undefined => {
  const { visible } = splitThinking(text)
  let best: { readonly at: number; readonly format: TextToolCallFormat } | undefined
  for (const [marker, format] of MARKERS) {
    const at = visible.indexOf(marker)
    if (at !== -1 && (best === undefined || at < best.at)) best = { at, format }
  }
  return best?.format
}

/** The markup for several calls of one turn, in a text format. */
export const renderToolCalls = (format: TextToolCallFormat, calls: ReadonlyArray<ParsedToolCall>): string =>
  calls.length === 0 ? "" : textRenderers[format](calls)

/** One call as the model would write it: markup for text formats, a native call for `openai`. */
export function renderToolCall(format: "openai", call: ParsedToolCall): ToolCall
export function renderToolCall(format: TextToolCallFormat, call: ParsedToolCall): string
export function renderToolCall(format: ToolCallFormat, call: ParsedToolCall): string | ToolCall
export function renderToolCall(format: ToolCallFormat, call: ParsedToolCall): string | ToolCall {
  return format === "openai" ? renderNativeToolCall(call) : renderToolCalls(format, [call])
}

export interface TurnToRender {
  readonly content?: string
  readonly reasoning?: string
  readonly calls: ReadonlyArray<ParsedToolCall>
}

/**
 * A whole assistant reply as the pool would hand it over for a model speaking `format`: reasoning
 * in a `<think>` block and calls as markup for text formats; the server's reasoning and native
 * calls for `openai`. `parseAssistantMessage` of the result gives the turn back.
 */
export const renderAssistantMessage = (format: ToolCallFormat, turn: TurnToRender): AssistantReply => {
  const content = turn.content ?? ""
  if (format === "openai") {
    const base: AssistantReply =
      turn.reasoning === undefined ? { content } : { content, reasoning: turn.reasoning }
    return turn.calls.length === 0 ? base : { ...base, toolCalls: turn.calls.map(renderNativeToolCall) }
  }
  const thinking = turn.reasoning === undefined ? "" : `<think>\n${turn.reasoning}\n</think>\n\n`
  const calls = renderToolCalls(format, turn.calls)
  return { content: thinking + content + (calls.length > 0 && content.length > 0 ? "\n" : "") + calls }
}

const EXAMPLE_CALL: ParsedToolCall = {
  callId: "example",
  tool: "tool_name",
  arguments: { argument: "value", count: 3 },
}

const expectedShape = (format: ToolCallFormat): string => {
  switch (format) {
    case "openai":
      return (
        "Call tools through the function-calling interface: each call needs a function name and its " +
        `arguments as a JSON object, e.g. ${JSON.stringify(EXAMPLE_CALL.arguments)}.`
      )
    case "hermes":
      return (
        "Write each tool call after your reasoning, as a JSON object with a name and an arguments object:\n" +
        renderToolCalls("hermes", [EXAMPLE_CALL]) +
        "\nFor a tool that runs code, put the code in a <code>…</code> block inside the <tool_call>, after the JSON."
      )
    case "minicpm":
      return (
        "Write tool calls as Python calls with every argument passed by name and literal values:\n" +
        renderToolCalls("minicpm", [EXAMPLE_CALL])
      )
    case "deepseek":
      return `Write tool calls with the tool-call tokens and JSON object arguments:\n${renderToolCalls("deepseek", [EXAMPLE_CALL])}`
  }
}

/**
 * The message sent back to the model after a FORMAT_ERROR turn: what was wrong with each call
 * that could not be read, and the shape expected, with an example in the model's own format.
 * Empty when there are no errors.
 */
export const formatFeedback = (errors: ReadonlyArray<FormatError>): string => {
  if (errors.length === 0) return ""
  const lines = [
    errors.length === 1
      ? "One tool call in your last message could not be read, so it was not run:"
      : `${errors.length} tool calls in your last message could not be read, so they were not run:`,
  ]
  for (const error of errors) {
    lines.push(`- tool call ${error.index + 1}: ${error.reason}`)
    if (error.excerpt.length > 0) lines.push(`  near: ${error.excerpt}`)
  }
  const formats = [...new Set(errors.map((e) => e.format))]
  for (const format of formats) lines.push("", expectedShape(format))
  lines.push("", "Please issue the call again in that form.")
  return lines.join("\n")
}
