/**
 * The Qwen/Hermes format, which AgentCPM-Explore (Qwen3-based) writes: one or more
 * `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks in the visible text (reasoning is
 * split off before this runs). The JSON is read leniently, and a `<code>…</code>` block inside the
 * tool call becomes `arguments.code`: that is how AgentCPM's PythonInterpreter receives code
 * without the model having to escape it into a JSON string.
 */
import type { Json } from "effect/Schema"
import { parseLenientJson, stripCodeFence } from "./lenientJson.ts"
import {
  callFromJson,
  markupSafeJson,
  type ParsedToolCall,
  type ToolArguments,
  type TurnCollector,
} from "./parsedTurn.ts"

export const HERMES_OPEN = "<tool_call>"
export const HERMES_CLOSE = "</tool_call>"
const CODE_OPEN = "<code>"
const CODE_CLOSE = "</code>"

/**
 * Where the tool call opened just before `from` ends: at its `</tool_call>`, or at the next
 * `<tool_call>` or the end of the text when the model forgot to close it. A `</tool_call>` inside
 * a `<code>` block is code, not markup.
 */
const bodyEnd = (text: string, from: number): number => {
  let searchFrom = from
  const code = text.indexOf(CODE_OPEN, from)
  const close = text.indexOf(HERMES_CLOSE, from)
  const reopen = text.indexOf(HERMES_OPEN, from)
  if (code !== -1 && (close === -1 || code < close) && (reopen === -1 || code < reopen)) {
    const codeEnd = text.indexOf(CODE_CLOSE, code)
    searchFrom = codeEnd === -1 ? text.length : codeEnd + CODE_CLOSE.length
  }
  const ends = [text.indexOf(HERMES_CLOSE, searchFrom), text.indexOf(HERMES_OPEN, searchFrom)].filter(
    (i) => i !== -1,
  )
  return ends.length === 0 ? text.length : Math.min(...ends)
}

/** The code as written: blank first line, trailing whitespace and a Markdown fence removed. */
const cleanCode = (code: string): string => {
  const unfenced = code.trim().startsWith("```") ? stripCodeFence(code) : code
  return unfenced.replace(/^[ \t]*\r?\n/, "").trimEnd()
}

const readCall = (body: string, raw: string, collector: TurnCollector): void => {
  let json = body
  let code: string | undefined
  const codeAt = body.indexOf(CODE_OPEN)
  if (codeAt !== -1) {
    const codeEnd = body.indexOf(CODE_CLOSE, codeAt + CODE_OPEN.length)
    code = cleanCode(body.slice(codeAt + CODE_OPEN.length, codeEnd === -1 ? body.length : codeEnd))
    json = body.slice(0, codeAt) + (codeEnd === -1 ? "" : body.slice(codeEnd + CODE_CLOSE.length))
  }
  if (json.trim().length === 0) {
    const reason =
      code === undefined
        ? "the <tool_call> is empty"
        : 'the <tool_call> has a <code> block but no JSON {"name": …, "arguments": {…}} saying which tool runs it'
    collector.reject(reason, raw)
    return
  }
  const parsed = parseLenientJson(json)
  if (!parsed.ok) {
    collector.reject(`the JSON inside <tool_call> could not be read: ${parsed.reason}`, raw)
    return
  }
  // Some models put a list of calls in one block; each is its own call.
  const items: ReadonlyArray<Json> = Array.isArray(parsed.value) ? parsed.value : [parsed.value]
  if (items.length === 0) collector.reject("the <tool_call> contains an empty list", raw)
  items.forEach((item, i) => {
    const call = callFromJson(item, parseLenientJson)
    if (!call.ok) {
      collector.reject(call.reason, raw)
      return
    }
    // The code block belongs to the call it follows (the last one when a list shares a block).
    const args: ToolArguments =
      code !== undefined && i === items.length - 1 ? { ...call.arguments, code } : call.arguments
    collector.accept(call.name, args)
  })
}

/** Reads every `<tool_call>` block of the visible text; returns the text without them. */
export const parseHermes = (visible: string, collector: TurnCollector): string => {
  let content = ""
  let pos = 0
  for (;;) {
    const open = visible.indexOf(HERMES_OPEN, pos)
    if (open === -1) break
    content += visible.slice(pos, open)
    const start = open + HERMES_OPEN.length
    const end = bodyEnd(visible, start)
    const next = visible.startsWith(HERMES_CLOSE, end) ? end + HERMES_CLOSE.length : end
    readCall(visible.slice(start, end), visible.slice(open, next), collector)
    pos = next
  }
  content += visible.slice(pos)
  return content.split(HERMES_CLOSE).join("").trim()
}

export const renderHermes = (calls: ReadonlyArray<ParsedToolCall>): string =>
  calls
    .map(
      (call) =>
        `${HERMES_OPEN}\n${markupSafeJson({ name: call.tool, arguments: call.arguments })}\n${HERMES_CLOSE}`,
    )
    .join("\n")
