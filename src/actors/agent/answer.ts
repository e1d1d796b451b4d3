/**
 * Answer extraction and the end-of-episode signals read off the model's text, with AgentToLeaP's
 * semantics: the final answer is the content of the LAST `<answer>…</answer>` (or of the last
 * `\boxed{…}` when the task asks for it, or the final plain message when configured); an episode
 * that never produced one ends with an explicit outcome instead — a sentinel string is never an
 * answer. Pure functions over strings.
 */
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import { splitThinking } from "./toolCalls/parsedTurn.ts"

export type AnswerStyle = "answer_tag" | "boxed" | "plain"

/**
 * The text the model meant as its reply: after the last closing thinking tag, and never inside an
 * unclosed one (the same rule the tool-call parser uses), so a drafted answer in reasoning is not
 * taken as the final one.
 */
export const afterThinking = (text: string): string => splitThinking(text).visible

/** The content of the last complete `<answer>…</answer>`, trimmed; undefined when there is none. */
export const lastAnswerTag = (text: string): string | undefined => {
  const visible = afterThinking(text)
  const close = visible.lastIndexOf("</answer>")
  if (close === -1) return undefined
  const open = visible.lastIndexOf("<answer>", close)
  if (open === -1) return undefined
  return visible.slice(open + "<answer>".length, close).trim()
}

/** The content of the last `\boxed{…}`, with nested braces balanced; undefined when none closes. */
export const lastBoxed = (text: string): string | undefined => {
  const visible = afterThinking(text)
  let from = visible.length
  for (;;) {
    const start = visible.lastIndexOf("\\boxed{", from)
    if (start === -1) return undefined
    let depth = 0
    for (let i = start + "\\boxed".length; i < visible.length; i++) {
      const ch = visible[i]
      if (ch === "{") depth++
      else if (ch === "}") {
        depth--
        if (depth === 0) return visible.slice(start + "\\boxed{".length, i).trim()
      }
    }
    // An unclosed box (truncated output): look for an earlier complete one.
    from = start - 1
    if (from < 0) return undefined
  }
}

/**
 * The answer in `text` under `style`, looking in order of precedence: an `<answer>` tag always
 * counts; `boxed` also accepts `\boxed{}`; `plain` takes the whole visible text when it is not
 * empty (for models told to reply with the answer alone).
 */
export const extractAnswer = (text: string, style: AnswerStyle): string | undefined => {
  const tagged = lastAnswerTag(text)
  if (tagged !== undefined) return tagged
  if (style === "boxed") return lastBoxed(text)
  if (style === "plain") {
    const visible = afterThinking(text).trim()
    return visible.length > 0 ? visible : undefined
  }
  return undefined
}

/** Normalizes assistant content for repetition counting: whitespace runs collapse, case kept. */
export const repetitionKey = (content: string): string => content.replace(/\s+/g, " ").trim()

/**
 * How many times each normalized assistant content has been seen; AgentToLeaP ends an episode when
 * the same content comes `limit` times (4) and flags a turn REPEAT from the second time.
 */
export const countRepeats = (
  seen: HashMap.HashMap<string, number>,
  content: string,
): { readonly seen: HashMap.HashMap<string, number>; readonly count: number } => {
  const key = repetitionKey(content)
  if (key.length === 0) return { seen, count: 0 }
  const count = Option.getOrElse(HashMap.get(seen, key), () => 0) + 1
  // A persistent map: the state of every turn keeps its own counts without copying the others'.
  return { seen: HashMap.set(seen, key, count), count }
}
