/**
 * The MiniCPM format: `<|tool_call_start|>` … `<|tool_call_end|>` around Python call syntax,
 * either a list `[f(a=1), g(b="x")]` or calls one per line, optionally in a ```python fence
 * (MiniCPM3 writes the fence, LFM2 the list). A block holding JSON call objects instead (the
 * alternative LFM2 payload) is read like a Hermes call. The call syntax itself lives in
 * `pythonCall.ts`.
 */
import type { Json } from "effect/Schema"
import { parseLenientJson, stripCodeFence } from "./lenientJson.ts"
import { callFromJson, type ParsedToolCall, type TurnCollector } from "./parsedTurn.ts"
import { parsePythonCalls, renderPythonCall } from "./pythonCall.ts"

export const MINICPM_START = "<|tool_call_start|>"
export const MINICPM_END = "<|tool_call_end|>"

const readJsonBlock = (body: string, raw: string, collector: TurnCollector): void => {
  const parsed = parseLenientJson(body)
  if (!parsed.ok) {
    collector.reject(`the JSON inside ${MINICPM_START} could not be read: ${parsed.reason}`, raw)
    return
  }
  const items: ReadonlyArray<Json> = Array.isArray(parsed.value) ? parsed.value : [parsed.value]
  for (const item of items) {
    const call = callFromJson(item, parseLenientJson)
    if (call.ok) collector.accept(call.name, call.arguments)
    else collector.reject(call.reason, raw)
  }
}

const readBlock = (body: string, raw: string, collector: TurnCollector): void => {
  const source = stripCodeFence(body)
  if (source.length === 0) {
    collector.reject(`the ${MINICPM_START} block is empty`, raw)
    return
  }
  if (/^\[?\s*\{/.test(source)) {
    readJsonBlock(source, raw, collector)
    return
  }
  const outcomes = parsePythonCalls(source)
  if (outcomes.length === 0) collector.reject(`the ${MINICPM_START} block holds no call`, raw)
  for (const outcome of outcomes) {
    if (outcome.ok) collector.accept(outcome.name, outcome.arguments)
    else collector.reject(outcome.reason, outcome.excerpt)
  }
}

/** Reads every tool-call block of the visible text; returns the text without them. */
export const parseMiniCpm = (visible: string, collector: TurnCollector): string => {
  let content = ""
  let pos = 0
  for (;;) {
    const start = visible.indexOf(MINICPM_START, pos)
    if (start === -1) break
    content += visible.slice(pos, start)
    const bodyStart = start + MINICPM_START.length
    // An unclosed block ends at the next block or at the end of the text.
    const ends = [visible.indexOf(MINICPM_END, bodyStart), visible.indexOf(MINICPM_START, bodyStart)].filter(
      (i) => i !== -1,
    )
    const end = ends.length === 0 ? visible.length : Math.min(...ends)
    const next = visible.startsWith(MINICPM_END, end) ? end + MINICPM_END.length : end
    readBlock(visible.slice(bodyStart, end), visible.slice(start, next), collector)
    pos = next
  }
  content += visible.slice(pos)
  return content.split(MINICPM_END).join("").trim()
}

export const renderMiniCpm = (calls: ReadonlyArray<ParsedToolCall>): string =>
  `${MINICPM_START}[${calls.map((call) => renderPythonCall(call.tool, call.arguments)).join(", ")}]${MINICPM_END}`
