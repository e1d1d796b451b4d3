/**
 * Replay of an episode from its recorded events, without calling any model or tool: `verify`
 * re-drives the decider over the recorded inputs (model responses and failures, tool results) and
 * reports the first event where the re-driven decision differs from what was recorded, with the
 * fields that differ; `toChat` renders the trajectory as OpenAI chat messages; `describeEvent` is
 * the terminal view's line per event. An entry of the episode that cannot be decoded is a `Gap`,
 * shown where it is; `check` tells damage (a gap) from a divergence (a decision made otherwise).
 * Pure.
 */
import * as Result from "effect/Result"
import type { ChatMessage } from "../../events/chat.ts"
import type { DomainEvent, Envelope } from "../../events/schema.ts"
import {
  decide,
  type EpisodeState,
  evolve,
  type Input,
  initial,
  nextIntent,
  type ParseAssistant,
  recordedInput,
} from "./decider.ts"

/** One field where the recorded and the re-driven event disagree (undefined: the side lacks it). */
export interface Difference {
  /** Where in the event, e.g. `answer` or `toolCalls[0].arguments.query`; empty for the whole event. */
  readonly path: string
  readonly recorded: unknown
  readonly redriven: unknown
}

export interface Divergence {
  /** Position of the first recorded event that re-driving does not reproduce (or after which it wants more). */
  readonly position: number
  readonly recorded: DomainEvent | undefined
  readonly redriven: DomainEvent | undefined
  readonly reason: string
  /** The fields that differ (the whole event when one side has none), in path order. */
  readonly differences: ReadonlyArray<Difference>
}

export type Verification =
  | { readonly ok: true; readonly events: number; readonly decisions: number }
  | { readonly ok: false; readonly divergence: Divergence }

/** JSON with object keys sorted: decoding orders fields by schema, deciding by construction. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )

const same = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b)

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * The fields where two events (or any JSON values) differ, down to the leaves, so a divergence
 * shows the one changed answer instead of two whole events to compare by eye. Values that are
 * equal as canonical JSON have no differences.
 */
export const eventDifferences = (
  recorded: unknown,
  redriven: unknown,
  at = "",
): ReadonlyArray<Difference> => {
  if (same(recorded, redriven)) return []
  if (isRecord(recorded) && isRecord(redriven)) {
    const keys = [...new Set([...Object.keys(recorded), ...Object.keys(redriven)])].sort()
    return keys.flatMap((key) =>
      eventDifferences(recorded[key], redriven[key], at === "" ? key : `${at}.${key}`),
    )
  }
  if (Array.isArray(recorded) && Array.isArray(redriven)) {
    const length = Math.max(recorded.length, redriven.length)
    return Array.from({ length }, (_, i) => eventDifferences(recorded[i], redriven[i], `${at}[${i}]`)).flat()
  }
  return [{ path: at, recorded, redriven }]
}

/**
 * Walks the recorded events; wherever the decider made a decision, makes it again from the state
 * folded so far and compares. Tool results are recorded inputs and are folded as they are.
 */
export const verify = (envelopes: ReadonlyArray<Envelope>, parse: ParseAssistant): Verification => {
  let state: EpisodeState = initial
  let i = 0
  let decisions = 0
  const diverge = (reason: string, redriven?: DomainEvent): Verification => ({
    ok: false,
    divergence: {
      position: envelopes[i]?.position ?? (envelopes.at(-1)?.position ?? 0) + 1,
      recorded: envelopes[i]?.event,
      redriven,
      reason,
      differences: redriven === undefined ? [] : eventDifferences(envelopes[i]?.event, redriven),
    },
  })
  while (i < envelopes.length) {
    const current = envelopes[i]!.event
    let input: Input | undefined
    if (
      current.type === "EpisodeFinished" &&
      (current.outcome === "cancelled" || current.outcome === "timeout")
    ) {
      // Stopped from outside the loop: the stop itself is the recorded input.
      input = { kind: "stop", outcome: current.outcome }
    } else if (state.status === "new") {
      if (current.type !== "EpisodeStarted") return diverge("the stream does not begin with EpisodeStarted")
      input = recordedInput(current)
    } else if (state.status === "ready") {
      // A context summary is a recorded input: it is in the ContextReset it produced.
      input =
        nextIntent(state).kind === "summarize_context"
          ? {
              kind: "context_summarized",
              summary: current.type === "ContextReset" ? current.summary : undefined,
            }
          : { kind: "prepare" }
    } else if (state.status === "awaiting_model") {
      input = recordedInput(current)
      if (input === undefined) return diverge(`expected the model's response, found ${current.type}`)
    } else if (state.status === "finished") return diverge("events after EpisodeFinished")
    if (input === undefined) {
      // Awaiting tools: results and their refinements are recorded inputs.
      if (
        current.type !== "ToolCallCompleted" &&
        current.type !== "ToolCallFailed" &&
        current.type !== "ToolResultRefined"
      ) {
        return diverge(`expected a tool result, found ${current.type}`)
      }
      state = evolve(state, envelopes[i]!)
      i++
      continue
    }
    const decided = decide(state, input, parse)
    if (Result.isFailure(decided)) return diverge(`the decider refuses: ${decided.failure.reason}`)
    decisions++
    for (const expected of decided.success) {
      const recorded = envelopes[i]
      if (recorded === undefined) return diverge("the log ends before this decision's events", expected)
      if (!same(recorded.event, expected)) return diverge("the re-driven event differs", expected)
      state = evolve(state, recorded)
      i++
    }
  }
  return { ok: true, events: envelopes.length, decisions }
}

/**
 * An entry of an episode's stream that replay cannot use, where it is: an entry that does not
 * decode (`type` absent), or one whose event this build does not know or that breaks its schema
 * (`type` as recorded). `subjectKnown: false`: a broken line whose subject could not be read, lying
 * among the episode's positions, so it may be one of its events.
 */
export interface Gap {
  readonly position: number
  readonly type?: string
  readonly reason: string
  readonly subjectKnown: boolean
}

/** A verification's verdict when the stream may have gaps: damage is not a divergence. */
export type Checked =
  | { readonly verdict: "verified"; readonly verification: Verification & { ok: true } }
  | { readonly verdict: "diverged"; readonly verification: Verification & { ok: false } }
  | {
      readonly verdict: "damaged"
      /** The gaps before the first divergence (or all of them when the rest verifies). */
      readonly gaps: ReadonlyArray<Gap>
      /** What re-driving without the gaps did: it verifies, or diverges after the damage. */
      readonly verification: Verification
    }

/**
 * Verifies the decodable events and judges the result with the gaps in view: a divergence before
 * the first gap is the decider's (`diverged`); one at or after a gap may be the missing event's
 * doing, and a stream with a gap cannot be fully verified even when the rest re-drives cleanly, so
 * both are `damaged`. A gap of unknown subject counts only when a divergence follows it.
 */
export const check = (
  envelopes: ReadonlyArray<Envelope>,
  gaps: ReadonlyArray<Gap>,
  parse: ParseAssistant,
): Checked => {
  const verification = verify(envelopes, parse)
  const upTo = verification.ok ? Number.POSITIVE_INFINITY : verification.divergence.position
  const before = gaps.filter((g) => g.position <= upTo && (g.subjectKnown || !verification.ok))
  if (before.length > 0) return { verdict: "damaged", gaps: before, verification }
  return verification.ok ? { verdict: "verified", verification } : { verdict: "diverged", verification }
}

/**
 * The whole trajectory as OpenAI-style chat messages: every message the episode ever added,
 * including those a context reset later dropped from the live context.
 */
export const toChat = (envelopes: ReadonlyArray<Envelope>): ReadonlyArray<ChatMessage> =>
  envelopes
    .filter((e) => e.event.type !== "ContextReset")
    .reduce(evolve, initial)
    .messages.toArray()

/**
 * A duration for people: whole milliseconds from 10 ms up (latencies are measured with
 * sub-millisecond noise that means nothing to a reader), one decimal below, seconds from 10 s.
 */
export const formatMs = (ms: number): string => {
  if (!Number.isFinite(ms)) return `${ms} ms`
  if (ms < 9.95) return `${ms.toFixed(1)} ms`
  const whole = Math.round(ms)
  return whole < 10_000 ? `${whole} ms` : `${(ms / 1000).toFixed(1)} s`
}

/** A short text line per event, for the terminal view. */
export const describeEvent = (e: DomainEvent): string => {
  const clip = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…` : s).replace(/\s+/g, " ")
  switch (e.type) {
    case "EpisodeStarted":
      return `started ${e.episodeId} task ${e.taskId}#${e.sampleIndex} model ${e.model}: ${clip(e.question)}`
    case "ModelRequested":
      return `turn ${e.turn}: model requested (${e.messageCount} messages)`
    case "ModelResponded":
      return `turn ${e.turn}: ${e.finishReason} from ${e.endpoint} in ${formatMs(e.latencyMs)}, ${e.usage.promptTokens}+${e.usage.completionTokens} tokens: ${clip(e.content)}`
    case "ModelCallFailed":
      return `turn ${e.turn}: model failed [${e.code}] ${clip(e.message)}`
    case "DriftDetected":
      return `turn ${e.turn}: prompt ids drift from turn ${e.previousTurn}'s at token ${e.index} of ${e.expectedTokens} (${e.kind})`
    case "ToolCallRequested":
      return `turn ${e.turn}: call ${e.tool}(${clip(JSON.stringify(e.arguments), 120)}) [${e.callId}]`
    case "ToolCallCompleted":
      return `  ${e.tool} → ${clip(typeof e.content === "string" ? e.content : JSON.stringify(e.content))}${e.truncated ? " [truncated]" : ""}`
    case "ToolCallFailed":
      return `  ${e.tool} ✗ ${e.kind}: ${clip(e.message)}`
    case "TurnAssessed":
      return `turn ${e.turn}: flagged ${e.flags.join(", ")}`
    case "ModelNudged":
      return `turn ${e.turn}: nudged (${e.reason})`
    case "ContextReset":
      return `turn ${e.turn}: context reset (${e.policy}), kept ${e.keptMessages}, dropped ${e.droppedMessages}`
    case "ToolResultRefined":
      return `  refined ${e.callId}: ${e.rawTokens} tokens in ${e.pages} page(s) by ${e.model} (${e.method})`
    case "EpisodeFinished":
      return `finished: ${e.outcome} after ${e.turns} turns${e.answer === undefined ? "" : `, answer: ${clip(e.answer)}`}`
    default:
      return e.type
  }
}

/** A message in OpenAI's chat format, as `rollout replay --format openai` prints it. */
export const openAiMessage = (m: ChatMessage): Record<string, unknown> =>
  m.role === "tool"
    ? { role: "tool", tool_call_id: m.toolCallId, content: m.content }
    : m.toolCalls === undefined
      ? { role: m.role, content: m.content }
      : {
          role: m.role,
          content: m.content,
          tool_calls: m.toolCalls.map((c) => ({
            id: c.callId,
            type: "function",
            function: { name: c.tool, arguments: JSON.stringify(c.arguments) },
          })),
        }
