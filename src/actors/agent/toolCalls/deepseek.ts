/**
 * The DeepSeek V3.1 format, as its chat template writes it (fullwidth bars `｜` and `▁` are part
 * of the special tokens):
 * `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{json}<｜tool▁call▁end｜>…<｜tool▁calls▁end｜>`.
 * The older V3 shape `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>`
 * is read too, as are calls whose section or call end token is missing (output cut short).
 */
import { parseLenientJson } from "./lenientJson.ts"
import {
  describeJson,
  isJsonObject,
  markupSafeJson,
  type ParsedToolCall,
  type TurnCollector,
} from "./parsedTurn.ts"

export const DEEPSEEK_CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
export const DEEPSEEK_CALLS_END = "<｜tool▁calls▁end｜>"
export const DEEPSEEK_CALL_BEGIN = "<｜tool▁call▁begin｜>"
export const DEEPSEEK_CALL_END = "<｜tool▁call▁end｜>"
export const DEEPSEEK_SEP = "<｜tool▁sep｜>"

const readCall = (body: string, raw: string, collector: TurnCollector): void => {
  const sep = body.indexOf(DEEPSEEK_SEP)
  if (sep === -1) {
    collector.reject(`missing ${DEEPSEEK_SEP} between the tool name and its JSON arguments`, raw)
    return
  }
  let name = body.slice(0, sep).trim()
  let argsText = body.slice(sep + DEEPSEEK_SEP.length)
  const v3 = /^[ \t]*([^\n{]+?)[ \t]*\r?\n([\s\S]*)$/.exec(argsText)
  if (name === "function" && v3 !== null) {
    name = v3[1]!.trim()
    argsText = v3[2]!
  }
  if (name.length === 0) {
    collector.reject(`the tool name before ${DEEPSEEK_SEP} is empty`, raw)
    return
  }
  if (argsText.trim().length === 0) {
    collector.accept(name, {})
    return
  }
  const parsed = parseLenientJson(argsText)
  if (!parsed.ok) collector.reject(`the arguments of ${name} are not valid JSON: ${parsed.reason}`, raw)
  else if (!isJsonObject(parsed.value)) {
    collector.reject(`the arguments of ${name} must be a JSON object, got ${describeJson(parsed.value)}`, raw)
  } else collector.accept(name, parsed.value)
}

const readSection = (section: string, collector: TurnCollector): void => {
  const pieces = section.split(DEEPSEEK_CALL_BEGIN)
  if (pieces.length === 1) {
    collector.reject(`the tool-calls section has no ${DEEPSEEK_CALL_BEGIN}`, section)
    return
  }
  // Text between calls (and before the first) is not part of any call.
  for (const piece of pieces.slice(1)) {
    const end = piece.indexOf(DEEPSEEK_CALL_END)
    const body = end === -1 ? piece : piece.slice(0, end)
    readCall(body, DEEPSEEK_CALL_BEGIN + body + (end === -1 ? "" : DEEPSEEK_CALL_END), collector)
  }
}

/** Reads every tool-calls section of the visible text; returns the text without them. */
export const parseDeepSeek = (visible: string, collector: TurnCollector): string => {
  let content = ""
  let pos = 0
  for (;;) {
    const starts = [
      visible.indexOf(DEEPSEEK_CALLS_BEGIN, pos),
      visible.indexOf(DEEPSEEK_CALL_BEGIN, pos),
    ].filter((i) => i !== -1)
    if (starts.length === 0) break
    const begin = Math.min(...starts)
    content += visible.slice(pos, begin)
    const end = visible.indexOf(DEEPSEEK_CALLS_END, begin)
    readSection(visible.slice(begin, end === -1 ? visible.length : end), collector)
    pos = end === -1 ? visible.length : end + DEEPSEEK_CALLS_END.length
  }
  content += visible.slice(pos)
  return content.split(DEEPSEEK_CALLS_END).join("").trim()
}

export const renderDeepSeek = (calls: ReadonlyArray<ParsedToolCall>): string =>
  DEEPSEEK_CALLS_BEGIN +
  calls
    .map(
      (call) =>
        `${DEEPSEEK_CALL_BEGIN}${call.tool}${DEEPSEEK_SEP}${markupSafeJson(call.arguments)}${DEEPSEEK_CALL_END}`,
    )
    .join("") +
  DEEPSEEK_CALLS_END
