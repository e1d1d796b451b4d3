/**
 * The episode's state and how events change it (`evolve`): the conversation so far, the turn, the
 * pending tool calls and refinements, repetition and idle counters, and the episode's policy with
 * AgentToLeaP's defaults. Pure; the decisions over this state live in `decider.ts`.
 */
import * as HashMap from "effect/HashMap"
import type { Envelope, EpisodePolicy, EventOf } from "../../events/schema.ts"
import { countRepeats } from "./answer.ts"
import {
  type ChatMessage,
  discardAllTools,
  estimateTokens,
  messageTokens,
  summarizeReset,
} from "./context.ts"
import { needsRefinement, purposeOf } from "./refinement.ts"

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

export const taskPrompt = (question: string): string =>
  `Your task is to answer the user's question: ${question}.`

export const idleNudge = (turns: number): string =>
  `You have not called a tool or given an answer for ${turns} turns. ` +
  "Call a tool to make progress, or give your final answer inside <answer></answer>."

export const finalAnswerNudge =
  "You have reached the maximum number of turns. Give your final answer now, inside <answer></answer>, " +
  "based on what you have found so far."

/** A tool call parsed out of an assistant message (any format). */
export interface ParsedCall {
  readonly callId: string
  readonly name: string
  readonly arguments: Readonly<Record<string, unknown>>
}

export interface ParsedTurn {
  readonly calls: ReadonlyArray<ParsedCall>
  /** Feedback for each call that could not be parsed; any makes the turn a FORMAT_ERROR. */
  readonly errors: ReadonlyArray<string>
}

/** The tool-call parser for the episode's format; pure, injected so this module stays small. */
export type ParseAssistant = (
  format: EpisodePolicy["toolCallFormat"],
  message: { readonly content: string; readonly toolCalls?: ReadonlyArray<RecordedCall> },
  turnId: string,
) => ParsedTurn

export type RecordedCall = NonNullable<EventOf<"ModelResponded">["toolCalls"]>[number]

export type Status = "new" | "ready" | "awaiting_model" | "awaiting_tools" | "finished"

export interface EpisodeState {
  readonly status: Status
  readonly episodeId: string
  readonly model: string
  readonly policy: EpisodePolicy
  /** Model calls requested so far; the turn in progress when awaiting the model. */
  readonly turn: number
  readonly requestId: string | undefined
  readonly messages: ReadonlyArray<ChatMessage>
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
}

export const initial: EpisodeState = {
  status: "new",
  episodeId: "",
  model: "",
  policy: defaultPolicy,
  turn: 0,
  requestId: undefined,
  messages: [],
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
      const messages: ReadonlyArray<ChatMessage> = [
        ...system,
        { role: "user", content: taskPrompt(e.question) },
      ]
      return {
        ...initial,
        status: "ready",
        episodeId: e.episodeId,
        model: e.model,
        policy: e.policy ?? { ...defaultPolicy, maxTurns: e.maxTurns },
        messages,
        contextTokens: estimateTokens(messages),
      }
    }
    case "ContextReset":
      return e.policy === "summarize"
        ? { ...withContext(state, summarizeReset(state.messages, e.summary ?? "")), summarizedAt: state.turn }
        : withContext(state, discardAllTools(state.messages))
    case "ModelNudged":
      return {
        ...withMessage(state, { role: "user", content: e.text }),
        ...(e.reason === "final_answer" ? { finalNudged: true } : { idleNudgedAt: state.idleTurns }),
      }
    case "ModelRequested":
      return { ...state, status: "awaiting_model", turn: e.turn, requestId: e.requestId }
    case "ModelResponded": {
      const calls = e.toolCalls?.map((c) => ({ callId: c.callId, tool: c.tool, arguments: c.arguments }))
      const message: ChatMessage =
        calls === undefined || calls.length === 0
          ? { role: "assistant", content: e.content }
          : { role: "assistant", content: e.content, toolCalls: calls }
      const { seen } = countRepeats(state.repeats, repeatText(e.content, e.toolCalls))
      // Provisionally idle; a tool call requested in the same turn resets it.
      return {
        ...withMessage(state, message),
        status: "ready",
        repeats: seen,
        idleTurns: state.idleTurns + 1,
      }
    }
    case "TurnAssessed":
      return e.feedback === undefined ? state : withMessage(state, { role: "user", content: e.feedback })
    case "ToolCallRequested": {
      const purpose = purposeOf(e.arguments)
      return {
        ...state,
        ...(purpose === undefined ? {} : { purposes: { ...state.purposes, [e.callId]: purpose } }),
        status: "awaiting_tools",
        pending: [...state.pending, e.callId],
        idleTurns: 0,
        idleNudgedAt: 0,
      }
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
      if (e.type === "ToolCallCompleted" && needsRefinement(state.policy, content, purpose)) {
        // Held back until refined: only the summaries enter the context.
        return {
          ...state,
          status: "awaiting_tools",
          pending,
          refining: [
            ...state.refining,
            { callId: e.callId, content, ...(purpose === undefined ? {} : { purpose }) },
          ],
        }
      }
      return {
        ...withMessage(state, { role: "tool", content, toolCallId: e.callId }),
        status: pending.length === 0 && state.refining.length === 0 ? "ready" : "awaiting_tools",
        pending,
        infrastructureFailure:
          state.infrastructureFailure || (e.type === "ToolCallFailed" && e.kind === "infrastructure"),
      }
    }
    case "ToolResultRefined": {
      if (!state.refining.some((r) => r.callId === e.callId)) return state
      const refining = state.refining.filter((r) => r.callId !== e.callId)
      return {
        ...withMessage(state, { role: "tool", content: e.content, toolCallId: e.callId }),
        status: state.pending.length === 0 && refining.length === 0 ? "ready" : "awaiting_tools",
        refining,
      }
    }
    case "EpisodeFinished":
      return { ...state, status: "finished", outcome: e.outcome, answer: e.answer }
    default:
      return state
  }
}

const withMessage = (state: EpisodeState, message: ChatMessage): EpisodeState => ({
  ...state,
  messages: [...state.messages, message],
  contextTokens: state.contextTokens + messageTokens(message),
})

const withContext = (state: EpisodeState, messages: ReadonlyArray<ChatMessage>): EpisodeState => ({
  ...state,
  messages,
  contextTokens: estimateTokens(messages),
})

const ownPurpose = (state: EpisodeState, callId: string): string | undefined =>
  Object.hasOwn(state.purposes, callId) ? state.purposes[callId] : undefined

export const repeatText = (content: string, calls: ReadonlyArray<RecordedCall> | undefined): string =>
  calls === undefined || calls.length === 0 ? content : `${content}\n${JSON.stringify(calls)}`
