/**
 * Reading a judge's verdict from its raw response, robustly: real judges write `**Correct:** yes`,
 * quote their verdicts, think aloud in `<think>` blocks and reason about "incorrect" before they
 * conclude. The rules, for every format:
 *   1. Only text after the last `</think>` counts; markdown emphasis, code marks, quotes and
 *      brackets are removed, and list bullets, headings and block quotes at line starts.
 *   2. A verdict label (`correct:`, `GRADE:`, `结论:`, `Decision:` …) is looked for at the start of
 *      lines, case-insensitively; the last such line wins.
 *   3. Only when no line starts with one, the label is looked for anywhere, with a word boundary
 *      before it (so `incorrect: yes` is never read as `correct: yes`); again the last one wins.
 *   4. Some formats also accept a response that is nothing but the verdict (`CORRECT`, `no`).
 *   5. Values are matched as whole words, `incorrect` before `correct`, `不正确` before `正确`.
 * Nothing found → `unparseable` (the judge retries once, then records `judge_failed`).
 * Never throws, whatever the text.
 */
import type { VerdictFormat } from "./judgeTemplates.ts"

/** Bump when a parser's behaviour changes: it is recorded with every verdict. */
export const PARSER_VERSION = "verdict-parser/1"

export interface Verdict {
  readonly verdict: "correct" | "incorrect" | "unparseable"
  /** The answerer's stated confidence in percent (0–100), when the judge reported one. */
  readonly confidence?: number
  /** SimpleQA-style judges: the prediction did not attempt an answer (scored as incorrect). */
  readonly notAttempted?: true
}

type Decision = "correct" | "incorrect" | "not_attempted"

interface Rule {
  /** Label and value, matched at a line start; the value is capture group 1. */
  readonly label: string
  readonly values: string
  /** A whole response that is only a verdict. */
  readonly bare?: RegExp
  /** The colon after the label may be left out (`结论 正确`). */
  readonly colonOptional?: boolean
  /** Maps the captured value (lower-cased) to a decision. */
  readonly decide: (value: string) => Decision | undefined
}

// A value word must not run on into more letters ("correctly", "yesterday").
const WORD_END = "(?![\\p{L}\\p{N}_])"

const yesNo = (value: string): Decision | undefined => {
  if (["yes", "true", "correct", "是", "正确", "对"].includes(value)) return "correct"
  if (["no", "false", "incorrect", "否", "错误", "不正确", "错"].includes(value)) return "incorrect"
  return undefined
}

const RULES: { readonly [F in VerdictFormat]: Rule } = {
  "correct-yes-no": {
    label: "(?:correct|is[ _]correct|是否正确|正确与否)\\s*\\??",
    values: `((?:yes|no|true|false|incorrect|correct)${WORD_END}|不正确|正确|错误|是|否)`,
    bare: /^(yes|no|correct|incorrect)$/i,
    decide: yesNo,
  },
  "xbench-conclusion": {
    label: "(?:结论|conclusion)",
    values: `(不正确|正确|错误|(?:incorrect|correct)${WORD_END})`,
    bare: /^(正确|错误)$/,
    colonOptional: true,
    decide: yesNo,
  },
  "true-false": {
    label: "(?:final decision|decision|verdict|final answer|judgement|judgment)",
    values: `((?:true|false)${WORD_END})`,
    bare: /^(true|false)$/i,
    decide: (value) => (value === "true" ? "correct" : value === "false" ? "incorrect" : undefined),
  },
  grade: {
    label: "(?:final grade|grade)",
    values: `((?:incorrect|correct)${WORD_END})`,
    bare: /^(correct|incorrect)$/i,
    decide: yesNo,
  },
  "simpleqa-grade": {
    label: "(?:final grade|grade)",
    values: `((?:not[ _-]?attempted|incorrect|correct|a|b|c)${WORD_END})`,
    bare: /^(not[ _-]?attempted|incorrect|correct|a|b|c)$/i,
    decide: (value) => {
      const v = value.replace(/[ _-]/g, "")
      if (v === "correct" || v === "a") return "correct"
      if (v === "incorrect" || v === "b") return "incorrect"
      if (v === "notattempted" || v === "c") return "not_attempted"
      return undefined
    },
  },
}

const SEPARATOR = "\\s*[:：=]\\s*"
const OPTIONAL_SEPARATOR = "\\s*[:：=]?\\s*"
const LINE_PREFIX = /^[\s>#•{,;|-]*(?:[+]\s+)?(?:\d{1,2}[.)]\s+)?/

/** Rule 1: the part of the response that counts, cleaned of markup, as lines. */
const cleanLines = (text: string): ReadonlyArray<string> => {
  let body = text.replace(/\r\n?/g, "\n")
  const think = body.lastIndexOf("</think>")
  if (think >= 0) body = body.slice(think + "</think>".length)
  body = body
    .replace(/\*\*|__|~~|`+/g, "")
    .replace(/\*/g, "")
    .replace(/[“”"'‘’「」『』【】[\]()（）]/g, "")
  return body.split("\n").map((line) => line.replace(LINE_PREFIX, "").trim())
}

const lastMatch = (regex: RegExp, text: string): RegExpExecArray | undefined => {
  let last: RegExpExecArray | undefined
  for (const match of text.matchAll(regex)) last = match
  return last
}

/** Rules 2 and 3 for one label/value pair: the captured value of the winning occurrence. */
const findLabelled = (lines: ReadonlyArray<string>, rule: Rule): string | undefined => {
  const { label, values } = rule
  const separator = rule.colonOptional === true ? OPTIONAL_SEPARATOR : SEPARATOR
  const atStart = new RegExp(`^${label}${separator}${values}`, "iu")
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = atStart.exec(lines[i]!)
    if (match !== null) return match[1]
  }
  const anywhere = new RegExp(`(?<![\\p{L}\\p{N}_])${label}${separator}${values}`, "giu")
  return lastMatch(anywhere, lines.join("\n"))?.[1]
}

const CONFIDENCE_LABEL = "(?:confidence|置信度)"
const CONFIDENCE_VALUE = "(\\d{1,3}(?:\\.\\d+)?)\\s*(%|％)?"

const findConfidence = (lines: ReadonlyArray<string>): number | undefined => {
  const atStart = new RegExp(`^${CONFIDENCE_LABEL}${SEPARATOR}${CONFIDENCE_VALUE}`, "iu")
  let match: RegExpExecArray | undefined
  for (let i = lines.length - 1; i >= 0 && match === undefined; i--)
    match = atStart.exec(lines[i]!) ?? undefined
  match ??= lastMatch(
    new RegExp(`(?<![\\p{L}\\p{N}_])${CONFIDENCE_LABEL}${SEPARATOR}${CONFIDENCE_VALUE}`, "giu"),
    lines.join("\n"),
  )
  if (match === undefined) return undefined
  let value = Number(match[1])
  // "confidence: 0.85" is a fraction.
  if (match[2] === undefined && match[1]!.includes(".") && value <= 1) value *= 100
  return Number.isFinite(value) && value >= 0 && value <= 100 ? value : undefined
}

/** Parses a judge's raw response in the given verdict format. */
export const parseVerdict = (format: VerdictFormat, response: string): Verdict => {
  try {
    const rule = RULES[format]
    const lines = cleanLines(response)
    let value = findLabelled(lines, rule)
    if (value === undefined && rule.bare !== undefined) {
      const whole = lines
        .join(" ")
        .trim()
        .replace(/[.!。！]+$/u, "")
      value = rule.bare.exec(whole)?.[1]
    }
    const decision = value === undefined ? undefined : rule.decide(value.toLowerCase())
    const confidence = findConfidence(lines)
    const extra = confidence === undefined ? {} : { confidence }
    if (decision === undefined) return { verdict: "unparseable", ...extra }
    if (decision === "not_attempted") return { verdict: "incorrect", notAttempted: true, ...extra }
    return { verdict: decision, ...extra }
  } catch {
    return { verdict: "unparseable" }
  }
}
