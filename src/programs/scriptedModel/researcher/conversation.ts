/**
 * Reading the request: the question (the task message with `taskPrompt`'s wrapping removed), what
 * the model did so far and what came back (its searches and reads, paired with their results by
 * tool call id), the sample tag its first tool call id carries, the tools offered, and whether the
 * call is an auxiliary summarizer's rather than the agent's. Everything later turns know comes from
 * here: the script keeps no memory of an episode.
 */
import { type ChatMessage, type ChatRequest, messageText } from "../script.ts"
import { type Page, parsePage, parseSearchResults, type SearchHit } from "./toolResults.ts"

export type Step =
  | {
      readonly kind: "search"
      readonly query: string
      /** Undefined while unanswered or when the call failed. */
      readonly hits: ReadonlyArray<SearchHit> | undefined
    }
  | { readonly kind: "read"; readonly url: string; readonly page: Page | undefined }

export interface Conversation {
  readonly question: string
  readonly steps: ReadonlyArray<Step>
  /** The sample tag written in this script's first tool call id, if any. */
  readonly sampleTag: string | undefined
  /** How many assistant turns there were. */
  readonly turns: number
  /** The last message is the agent's nudge to answer now. */
  readonly mustAnswer: boolean
}

const TASK_PREFIX = /^[\s\S]*?\banswer the user's question:\s*/i

/** The question of a task message (`taskPrompt`'s wrapping removed). */
export const questionOf = (taskText: string): string => {
  const q = taskText.replace(TASK_PREFIX, "").trim()
  return q.replace(/([?!])\s*\.$/, "$1")
}

const argsOf = (raw: string | undefined): Record<string, unknown> => {
  if (raw === undefined) return {}
  try {
    const parsed: unknown = JSON.parse(raw)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}

const isToolError = (text: string): boolean => /^Error \(\w+\) calling /.test(text)

/** What the model did so far and what came back, read off the request alone. */
export const readConversation = (request: ChatRequest): Conversation => {
  const messages = request.messages
  const first = messages.findIndex((m) => m.role === "user")
  const question = first === -1 ? "" : questionOf(messageText(messages[first]!))
  const steps: Array<Step> = []
  const slot = new Map<string, number>()
  let sampleTag: string | undefined
  let turns = 0
  for (const message of messages.slice(first + 1)) {
    if (message.role === "assistant") {
      turns++
      for (const call of message.tool_calls ?? []) {
        const id = call.id ?? ""
        sampleTag ??= /^call_([A-Za-z0-9]+)_t\d+/.exec(id)?.[1]
        const args = argsOf(call.function?.arguments)
        if (typeof args.query === "string" || Array.isArray(args.query)) {
          const query = Array.isArray(args.query) ? args.query.join(" ") : (args.query as string)
          slot.set(id, steps.length)
          steps.push({ kind: "search", query, hits: undefined })
        } else if (typeof args.url === "string") {
          slot.set(id, steps.length)
          steps.push({ kind: "read", url: args.url, page: undefined })
        }
      }
    } else if (message.role === "tool") {
      const at = slot.get(message.tool_call_id ?? "")
      const step = at === undefined ? undefined : steps[at]
      if (step === undefined || at === undefined) continue
      const text = messageText(message)
      if (isToolError(text)) continue
      steps[at] =
        step.kind === "search"
          ? { ...step, hits: parseSearchResults(text) }
          : { ...step, page: parsePage(text, step.url) }
    }
  }
  const last = messages[messages.length - 1]
  const mustAnswer =
    last !== undefined &&
    last.role === "user" &&
    messages.indexOf(last) > first &&
    /<answer>/.test(messageText(last))
  return { question, steps, sampleTag, turns, mustAnswer }
}

/** The names of the tools the request offers (OpenAI's `function.name`, or a bare `name`). */
export const toolNames = (request: ChatRequest): ReadonlyArray<string> =>
  (request.tools ?? []).flatMap((tool) => {
    const t = tool as { name?: unknown; function?: { name?: unknown } }
    const name = t.function?.name ?? t.name
    return typeof name === "string" ? [name] : []
  })

/** The offered tool called `wanted`, by its own name or a namespaced one (`server__wanted`). */
export const toolNamed = (names: ReadonlyArray<string>, wanted: string): string | undefined =>
  names.find((n) => n === wanted) ?? names.find((n) => n.endsWith(`__${wanted}`))

/** An auxiliary call (context summary, page refinement): no tools, and a system prompt asking to summarize. */
export const isSummarizerCall = (request: ChatRequest): boolean => {
  const system = request.messages.find((m: ChatMessage) => m.role === "system")
  return (
    (request.tools === undefined || request.tools.length === 0) &&
    system !== undefined &&
    /\b(summari[sz]e|extract what)\b/i.test(messageText(system))
  )
}
