/**
 * The agent's decider bound to the real tool-call parsers: `parseForEpisode` reads a reply with
 * the parser of the episode's format and gives the decider what it needs (the calls, each with a
 * distinct id, and one feedback text per turn when any call could not be read).
 */
import type { ParseAssistant } from "./decider.ts"
import { formatFeedback, parseAssistantMessage } from "./toolCalls.ts"

export const parseForEpisode: ParseAssistant = (format, message, turnId) => {
  const parsed = parseAssistantMessage(format, message, turnId)
  // Servers may repeat an id within one message; the episode needs every call of a turn distinct.
  const seen = new Map<string, number>()
  const calls = parsed.calls.map((call) => {
    const n = seen.get(call.callId) ?? 0
    seen.set(call.callId, n + 1)
    return n === 0 ? call : { ...call, callId: `${call.callId}#${n}` }
  })
  return {
    calls,
    errors: parsed.errors.length === 0 ? [] : [formatFeedback(parsed.errors)],
  }
}
