/**
 * The agent's context: the chat messages an episode has built up, a deterministic token estimate,
 * and the `discard_all_tools` reset of AgentToLeaP (drop tool results, then keep the last ≤ 15
 * messages, never fewer than 10, after the system prompt and the task). Pure.
 */
import type { ChatMessage } from "../../events/chat.ts"

/** The message shape is the shared chat vocabulary's; re-exported for readers of the context. */
export type { ChatMessage } from "../../events/chat.ts"

/**
 * A deterministic estimate (characters / 4, rounded up, plus a small per-message overhead): the
 * budget check must give the same answer on replay, so it cannot depend on a live tokenizer.
 */
export const estimateTokens = (messages: ReadonlyArray<ChatMessage>): number => {
  let total = 0
  for (const m of messages) total += messageTokens(m)
  return total
}

/** One message's share of `estimateTokens`, so a growing context can keep a running total. */
export const messageTokens = (m: ChatMessage): number => {
  let total = 4 + Math.ceil(m.content.length / 4)
  for (const c of m.toolCalls ?? [])
    total += 4 + Math.ceil((c.tool.length + JSON.stringify(c.arguments).length) / 4)
  return total
}

export const MAX_KEPT_AFTER_RESET = 15
export const MIN_KEPT_AFTER_RESET = 10

/**
 * Drops every tool message (and the tool-call markup that asked for them, so the chat stays valid
 * for OpenAI-style servers), then keeps the system prompt, the task and the most recent messages:
 * at most 15, and at least 10 when there are that many.
 */
export const discardAllTools = (messages: ReadonlyArray<ChatMessage>): ReadonlyArray<ChatMessage> => {
  // The head is the system prompt (when there is one) and the task: everything up to the first user message.
  const task = messages.findIndex((m) => m.role === "user")
  const head = messages.slice(0, task + 1)
  const rest = messages
    .slice(task + 1)
    .filter((m) => m.role !== "tool")
    .map((m) => (m.toolCalls === undefined ? m : { role: m.role, content: m.content }))
    .filter((m) => m.role !== "assistant" || m.content.trim().length > 0)
  const keep = Math.max(
    Math.min(MIN_KEPT_AFTER_RESET, rest.length),
    Math.min(MAX_KEPT_AFTER_RESET, rest.length),
  )
  return [...head, ...rest.slice(rest.length - keep)]
}

const taskEnd = (messages: ReadonlyArray<ChatMessage>): number =>
  messages.findIndex((m) => m.role === "user") + 1

/** The `summarize` reset: everything after the system prompt and the task becomes one summary message. */
export const summarizeReset = (
  messages: ReadonlyArray<ChatMessage>,
  summary: string,
): ReadonlyArray<ChatMessage> => [
  ...messages.slice(0, taskEnd(messages)),
  { role: "user", content: `Summary of your work on this task so far:\n\n${summary}\n\nContinue from here.` },
]

/** What the summarizer is asked when the context is over budget (AgentToLeaP's three headings). */
export const contextSummaryRequest = (messages: ReadonlyArray<ChatMessage>): ReadonlyArray<ChatMessage> => [
  {
    role: "system",
    content:
      "Summarize an agent's progress on its task so it can continue with a short context. Use three sections:\n" +
      "## Actions — what the agent did (searches, pages read, code run).\n" +
      "## Results — what it found, with facts, numbers, names and sources copied literally.\n" +
      "## Current Status — what is settled, what is still open, and the next step.",
  },
  {
    role: "user",
    content: messages
      .map(
        (m) =>
          `[${m.role}${m.toolCalls === undefined ? "" : ` calls ${m.toolCalls.map((c) => c.tool).join(", ")}`}]\n${m.content}`,
      )
      .join("\n\n"),
  },
]
