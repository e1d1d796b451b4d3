/**
 * Context refinement, AgentCPM's "information refinement": a tool result longer than a token
 * threshold does not enter the agent's context raw. It is cut into pages, each page summarized
 * concurrently by an auxiliary model group (`summarizer`) with the call's purpose, and only the
 * joined summaries reach the agent. The raw result stays in the log; the refinement is its own
 * event. Pure: when to refine, how to page, what to ask, how to join.
 */
import type { ChatMessage } from "../../events/chat.ts"
import type { EpisodePolicy } from "../../events/schema.ts"

/** AgentCPM truncates a browse result to 60k tokens before paging it. */
export const MAX_REFINED_TOKENS = 60_000
const CHARS_PER_TOKEN = 4

const rawRequest =
  /\b(full|raw|entire|complete|verbatim|whole)\b[^.]*\b(content|text|page|html|source|document)\b/i

/** The `purpose` a tool call carries, when it has one (e.g. `fetch_url`'s). */
export const purposeOf = (args: unknown): string | undefined =>
  typeof args === "object" &&
  args !== null &&
  !Array.isArray(args) &&
  typeof (args as { purpose?: unknown }).purpose === "string"
    ? (args as { purpose: string }).purpose
    : undefined

/** True when the policy refines results this long and the purpose does not ask for the raw content. */
export const needsRefinement = (
  policy: EpisodePolicy,
  content: string,
  purpose: string | undefined,
): boolean =>
  policy.refineAboveTokens !== undefined &&
  Math.ceil(content.length / CHARS_PER_TOKEN) > policy.refineAboveTokens &&
  (purpose === undefined || !rawRequest.test(purpose))

/** Pages of at most `pageTokens` (estimated), after truncating to the refinement cap. */
export const pagesOf = (content: string, pageTokens: number): ReadonlyArray<string> => {
  const capped = content.slice(0, MAX_REFINED_TOKENS * CHARS_PER_TOKEN)
  const size = Math.max(1, pageTokens * CHARS_PER_TOKEN)
  const pages: string[] = []
  for (let at = 0; at < capped.length; at += size) pages.push(capped.slice(at, at + size))
  return pages
}

/** What the summarizer is asked for one page: three sections, numbers copied literally. */
export const summarizerMessages = (
  purpose: string | undefined,
  page: string,
  index: number,
  count: number,
): ReadonlyArray<ChatMessage> => [
  {
    role: "system",
    content:
      "You extract what a research agent needs from a page of a tool result. Answer in three sections:\n" +
      "## Rationale — which parts of this page matter for the purpose, and why.\n" +
      "## Evidence — the relevant passages copied verbatim (quote exactly; copy numbers, names and dates literally; do no arithmetic).\n" +
      "## Report — a concise summary of what this page says about the purpose. If nothing is relevant, say so.",
  },
  {
    role: "user",
    content: `Purpose: ${purpose ?? "(none given: keep what a researcher answering the task would need)"}\n\nPage ${index + 1} of ${count}:\n\n${page}`,
  },
]

/** The text that replaces the raw result in the agent's context. */
export const joinSummaries = (summaries: ReadonlyArray<string>, rawTokens: number): string =>
  `[Refined from a ${rawTokens}-token tool result in ${summaries.length} page(s); the raw result is kept in the log.]\n\n` +
  summaries.map((s, i) => (summaries.length === 1 ? s : `### Page ${i + 1}\n${s}`)).join("\n\n")

/** Used when the summarizer is unavailable: the beginning of the raw result, with an explicit marker. */
export const truncatedFallback = (content: string, tokens: number): string => {
  const keep = tokens * CHARS_PER_TOKEN
  return content.length <= keep
    ? content
    : `${content.slice(0, keep)}\n[… truncated: ${content.length - keep} more characters; the summarizer was unavailable]`
}
