/**
 * The episode's state and how events change it (`evolve`): the conversation so far, the turn, the
 * pending tool calls and refinements, repetition and idle counters, and the episode's policy with
 * AgentToLeaP's defaults. Pure; the decisions over this state live in `decider.ts`.
 */
import * as HashMap from "effect/HashMap"
import type { ChatMessage, Completion, ToolCall } from "../../events/chat.ts"
import type { Envelope, EpisodePolicy, EventOf } from "../../events/schema.ts"
import { countRepeats } from "./answer.ts"
import { discardAllTools, estimateTokens, messageTokens, summarizeReset } from "./context.ts"
import { MessageList } from "./messageList.ts"
import { needsRefinement, purposeOf } from "./refinement.ts"
import type { ReachedTokens } from "./tokenDrift.ts"
import type { ParsedToolCall } from "./toolCalls/parsedTurn.ts"

/** AgentToLeaP's evaluation defaults. */
export const defaultPolicy: EpisodePolicy = {
  maxTurns: 200,
  maxResponseTokens: 8192,
  contextBudget: 128_000,
  contextReserve: 1024,
  contextReset: "discard_all_tools",
  repetitionLimit: 4,
  nudgeAfter: 20,
  answerStyle: "answer_tag",
  toolCallFormat: "openai",
}

/**
 * The first user message, in AgentToLeaP's words. Their template closes the sentence with a period
 * even after a question mark ("…capital of France?."); a question that already ends in a sentence
 * mark keeps its own.
 */
export const taskPrompt = (question: string): string => {
  const q = question.trimEnd()
  return `Your task is to answer the user's question: ${q}${/[.?!。？！…]$/u.test(q) ? "" : "."}`
}

export const idleNudge = (turns: number): string =>
  `You have not called a tool or given an answer for ${turns} turns. ` +
  "Call a tool to make progress, or give your final answer inside <answer></answer>."

export const finalAnswerNudge =
  "You have reached the maximum number of turns. Give your final answer now, inside <answer></answer>, " +
  "based on what you have found so far."

/** What the decider needs of a parsed turn: the calls to run, and feedback on those it could not read. */
export interface TurnCalls {
  readonly calls: ReadonlyArray<ParsedToolCall>
  /** Feedback for the calls that could not be parsed; any makes the turn a FORMAT_ERROR. */
  readonly errors: ReadonlyArray<string>
}

/** The tool-call parser for the episode's format; pure, injected so this module stays small. */
export type ParseAssistant = (
  format: EpisodePolicy["toolCallFormat"],
  reply: Pick<Completion, "content" | "reasoning" | "toolCalls">,
  turnId: string,
) => TurnCalls

export type Status = "new" | "ready" | "awaiting_model" | "awaiting_tools" | "finished"

export interface EpisodeState {
  readonly status: Status
  readonly episodeId: string
  readonly model: string
  readonly policy: EpisodePolicy
  /** Model calls requested so far; the turn in progress when awaiting the model. */
  readonly turn: number
  readonly requestId: string | undefined
  readonly messages: MessageList
  /** `estimateTokens(messages)`, kept as messages come and go so a turn does not re-count the context. */
  readonly contextTokens: number
  readonly pending: ReadonlyArray<string>
  /** Consecutive turns without a tool call or an answer. */
  readonly idleTurns: number
  readonly idleNudgedAt: number
  readonly finalNudged: boolean
  readonly repeats: HashMap.HashMap<string, number>
  readonly infrastructureFailure: boolean
  /** The turn at which the context was last summarized (a second summary in one turn would loop). */
  readonly summarizedAt: number
  /** The purpose of each requested call, for refining its result. */
  readonly purposes: Readonly<Record<string, string>>
  /** Long results waiting for refinement before they enter the context. */
  readonly refining: ReadonlyArray<{
    readonly callId: string
    readonly content: string
    readonly purpose?: string
  }>
  readonly outcome: EventOf<"EpisodeFinished">["outcome"] | undefined
  readonly answer: string | undefined
  /**
   * A token-exact turn's prompt and sampled ids, which the next turn's prompt must extend (the drift
   * guard); undefined before the first such turn, after a turn without ids and after a context reset
   * (a reset starts a new sequence on purpose).
   */
  readonly reached: ReachedTokens | undefined
}

export const initial: EpisodeState = {
  status: "new",
  episodeId: "",
  model: "",
  policy: defaultPolicy,
  turn: 0,
  requestId: undefined,
  messages: MessageList.empty,
  contextTokens: 0,
  pending: [],
  idleTurns: 0,
  idleNudgedAt: 0,
  finalNudged: false,
  repeats: HashMap.empty(),
  infrastructureFailure: false,
  summarizedAt: -1,
  purposes: {},
  refining: [],
  outcome: undefined,
  answer: undefined,
  reached: undefined,
}

export const requestIdFor = (episodeId: string, turn: number): string => `${episodeId}/model/${turn}`

const toolContent = (content: unknown): string =>
  typeof content === "string" ? content : JSON.stringify(content)

export const evolve = (state: EpisodeState, envelope: Envelope): EpisodeState => {
  const e = envelope.event
  switch (e.type) {
    case "EpisodeStarted": {
      const system: ChatMessage[] =
        e.systemPrompt === undefined ? [] : [{ role: "system", content: e.systemPrompt }]
      const d = draft(initial)
      d.status = "ready"
      d.episodeId = e.episodeId
      d.model = e.model
      d.policy = e.policy ?? { ...defaultPolicy, maxTurns: e.maxTurns }
      setContext(d, [...system, { role: "user", content: taskPrompt(e.question) }])
      return d
    }
    case "ContextReset": {
      const d = draft(state)
      if (e.policy === "summarize") {
        setContext(d, summarizeReset(state.messages.toArray(), e.summary ?? ""))
        d.summarizedAt = state.turn
      } else setContext(d, discardAllTools(state.messages.toArray()))
      d.reached = undefined
      return d
    }
    case "ModelNudged": {
      const d = draft(state)
      addMessage(d, { role: "user", content: e.text })
      if (e.reason === "final_answer") d.finalNudged = true
      else d.idleNudgedAt = state.idleTurns
      return d
    }
    case "ModelRequested": {
      const d = draft(state)
      d.status = "awaiting_model"
      d.turn = e.turn
      d.requestId = e.requestId
      return d
    }
    case "ModelResponded": {
      const calls = e.toolCalls?.map((c) => ({ callId: c.callId, tool: c.tool, arguments: c.arguments }))
      const d = draft(state)
      addMessage(d, {
        role: "assistant",
        content: e.content,
        ...(calls === undefined || calls.length === 0 ? {} : { toolCalls: calls }),
        // Kept so a token-exact group can send it back for the template to render the turn as sampled.
        ...(e.reasoning === undefined || e.reasoning === "" ? {} : { reasoning: e.reasoning }),
      })
      d.reached =
        e.promptTokenIds === undefined || e.tokenIds === undefined
          ? undefined
          : { turn: e.turn, prompt: e.promptTokenIds, sampled: e.tokenIds }
      d.status = "ready"
      d.repeats = countRepeats(state.repeats, repeatText(e.content, e.toolCalls)).seen
      // Provisionally idle; a tool call requested in the same turn resets it.
      d.idleTurns = state.idleTurns + 1
      return d
    }
    case "TurnAssessed": {
      if (e.feedback === undefined) return state
      const d = draft(state)
      addMessage(d, { role: "user", content: e.feedback })
      return d
    }
    case "ToolCallRequested": {
      const purpose = purposeOf(e.arguments)
      const d = draft(state)
      if (purpose !== undefined) d.purposes = { ...state.purposes, [e.callId]: purpose }
      d.status = "awaiting_tools"
      d.pending = [...state.pending, e.callId]
      d.idleTurns = 0
      d.idleNudgedAt = 0
      return d
    }
    case "ToolCallCompleted":
    case "ToolCallFailed": {
      if (!state.pending.includes(e.callId)) return state
      const pending = state.pending.filter((id) => id !== e.callId)
      const content =
        e.type === "ToolCallCompleted"
          ? toolContent(e.content)
          : `Error (${e.kind}) calling ${e.tool}: ${e.message}`
      const purpose = ownPurpose(state, e.callId)
      const d = draft(state)
      d.pending = pending
      if (e.type === "ToolCallCompleted" && needsRefinement(state.policy, content, purpose)) {
        // Held back until refined: only the summaries enter the context.
        d.status = "awaiting_tools"
        d.refining = [
          ...state.refining,
          { callId: e.callId, content, ...(purpose === undefined ? {} : { purpose }) },
        ]
        return d
      }
      addMessage(d, { role: "tool", content, toolCallId: e.callId })
      d.status = pending.length === 0 && state.refining.length === 0 ? "ready" : "awaiting_tools"
      if (e.type === "ToolCallFailed" && e.kind === "infrastructure") d.infrastructureFailure = true
      return d
    }
    case "ToolResultRefined": {
      if (!state.refining.some((r) => r.callId === e.callId)) return state
      const d = draft(state)
      d.refining = state.refining.filter((r) => r.callId !== e.callId)
      addMessage(d, { role: "tool", content: e.content, toolCallId: e.callId })
      d.status = state.pending.length === 0 && d.refining.length === 0 ? "ready" : "awaiting_tools"
      return d
    }
    case "EpisodeFinished": {
      const d = draft(state)
      d.status = "finished"
      d.outcome = e.outcome
      d.answer = e.answer
      return d
    }
    default:
      return state
  }
}

type Draft = { -readonly [K in keyof EpisodeState]: EpisodeState[K] }

/**
 * A copy of `s` for `evolve` to change before returning it: every event makes a new state and no
 * state changes once returned. Listing every field in one order gives all states one shape; object
 * spreads of differently shaped literals did not, and were most of `evolve`'s time.
 */
const draft = (s: EpisodeState): Draft => ({
  status: s.status,
  episodeId: s.episodeId,
  model: s.model,
  policy: s.policy,
  turn: s.turn,
  requestId: s.requestId,
  messages: s.messages,
  contextTokens: s.contextTokens,
  pending: s.pending,
  idleTurns: s.idleTurns,
  idleNudgedAt: s.idleNudgedAt,
  finalNudged: s.finalNudged,
  repeats: s.repeats,
  infrastructureFailure: s.infrastructureFailure,
  summarizedAt: s.summarizedAt,
  purposes: s.purposes,
  refining: s.refining,
  outcome: s.outcome,
  answer: s.answer,
  reached: s.reached,
})

const addMessage = (d: Draft, message: ChatMessage): void => {
  d.messages = d.messages.append(message)
  d.contextTokens += messageTokens(message)
}

const setContext = (d: Draft, messages: ReadonlyArray<ChatMessage>): void => {
  d.messages = MessageList.from(messages)
  d.contextTokens = estimateTokens(messages)
}

const ownPurpose = (state: EpisodeState, callId: string): string | undefined =>
  Object.hasOwn(state.purposes, callId) ? state.purposes[callId] : undefined

export const repeatText = (content: string, calls: ReadonlyArray<ToolCall> | undefined): string =>
  calls === undefined || calls.length === 0 ? content : `${content}\n${JSON.stringify(calls)}`
