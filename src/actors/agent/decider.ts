/**
 * The episode decider: AgentRL/AgentToLeaP's agent loop as a pure state machine over an
 * episode's events. `nextIntent` says what the shell must do next (prepare a turn, call the
 * model, run tool calls, or nothing); `decide` turns each recorded input (a model response or
 * failure) into the events that follow it. Every ending is an explicit outcome: answered,
 * turns_limit, context_limit, repetition, model_error, tool_infrastructure_error, and — stopped
 * from outside the loop — cancelled and timeout. A token-exact response whose prompt ids do not
 * extend the previous turn's prompt and sampled ids is followed by `DriftDetected` (`tokenDrift.ts`).
 * Replaying the recorded inputs through `decide` must reproduce the recorded events exactly, so
 * nothing here reads a clock, a random source or the outside world.
 */
import * as Result from "effect/Result"
import type { ChatMessage, Completion } from "../../events/chat.ts"
import { type DomainEvent, type EpisodeStart, EpisodeStarted, type EventOf } from "../../events/schema.ts"
import { countRepeats, extractAnswer } from "./answer.ts"
import { contextSummaryRequest, discardAllTools, estimateTokens, summarizeReset } from "./context.ts"
import {
  defaultPolicy,
  type EpisodeState,
  finalAnswerNudge,
  idleNudge,
  type ParseAssistant,
  repeatText,
  requestIdFor,
  type TurnCalls,
} from "./episodeState.ts"
import { tokenDrift } from "./tokenDrift.ts"

export {
  defaultPolicy,
  type EpisodeState,
  evolve,
  finalAnswerNudge,
  idleNudge,
  initial,
  type ParseAssistant,
  requestIdFor,
  type Status,
  type TurnCalls,
  taskPrompt,
} from "./episodeState.ts"
export type Intent =
  | { readonly kind: "prepare" }
  | {
      readonly kind: "summarize_context"
      readonly requestId: string
      readonly messages: ReadonlyArray<ChatMessage>
    }
  | {
      readonly kind: "call_model"
      readonly requestId: string
      readonly turn: number
      readonly messages: ReadonlyArray<ChatMessage>
    }
  | { readonly kind: "call_tools"; readonly pending: ReadonlyArray<string> }
  | { readonly kind: "refine"; readonly items: EpisodeState["refining"] }
  | { readonly kind: "finished" }
  | { readonly kind: "not_started" }

export const nextIntent = (state: EpisodeState): Intent => {
  switch (state.status) {
    case "new":
      return { kind: "not_started" }
    case "ready":
      return wantsSummary(state)
        ? {
            kind: "summarize_context",
            requestId: `${state.episodeId}/summary/${state.turn}`,
            messages: contextSummaryRequest(state.messages.toArray()),
          }
        : { kind: "prepare" }
    case "awaiting_model":
      return {
        kind: "call_model",
        requestId: state.requestId!,
        turn: state.turn,
        messages: state.messages.toArray(),
      }
    case "awaiting_tools":
      return state.pending.length > 0
        ? { kind: "call_tools", pending: state.pending }
        : { kind: "refine", items: state.refining }
    case "finished":
      return { kind: "finished" }
  }
}

/** Starts the episode: the start fields `EpisodeStarted` records (`EpisodeStart` in the schema). */
export interface StartEpisode extends EpisodeStart {
  readonly kind: "start"
}

export type Input =
  | StartEpisode
  | { readonly kind: "prepare" }
  /** Ends a running episode from outside the loop: a cancel command, or its deadline passing. */
  | { readonly kind: "stop"; readonly outcome: "cancelled" | "timeout" }
  /** The summarizer's answer for a `summarize_context` intent; no summary when it failed. */
  | { readonly kind: "context_summarized"; readonly summary: string | undefined }
  | { readonly kind: "model_responded"; readonly response: Completion }
  | {
      readonly kind: "model_failed"
      readonly code: string
      readonly message: string
      readonly endpoint?: string
    }

export interface Rejection {
  readonly reason: string
}

const finish = (
  state: EpisodeState,
  outcome: EventOf<"EpisodeFinished">["outcome"],
  turns: number,
  answer?: string,
): EventOf<"EpisodeFinished"> => ({
  type: "EpisodeFinished",
  episodeId: state.episodeId,
  outcome,
  turns,
  ...(answer === undefined ? {} : { answer }),
})

/**
 * The decider input a recorded event answered: a start, a model response or a model failure
 * (undefined for events that are not recorded inputs). Replay, fork and crash repair all re-drive
 * decisions from these.
 */
export const recordedInput = (e: DomainEvent): Input | undefined => {
  switch (e.type) {
    case "EpisodeStarted": {
      const { type: _type, maxTurns: _maxTurns, ...start } = e
      return { kind: "start", ...start }
    }
    case "ModelResponded": {
      const { type: _type, episodeId: _e, turn: _t, requestId: _r, ...response } = e
      return { kind: "model_responded", response }
    }
    case "ModelCallFailed":
      return {
        kind: "model_failed",
        code: e.code,
        message: e.message,
        ...(e.endpoint === undefined ? {} : { endpoint: e.endpoint }),
      }
    default:
      return undefined
  }
}

/**
 * `event` with the fields of `fields` only, in their order, leaving out absent ones: what it
 * records then does not depend on how the caller put its input together (nor on extra keys it had).
 */
const inSchemaOrder = <E extends DomainEvent>(fields: object, event: E): E => {
  const given = event as unknown as Readonly<Record<string, unknown>>
  const ordered: Record<string, unknown> = {}
  for (const key of Object.keys(fields)) if (given[key] !== undefined) ordered[key] = given[key]
  return ordered as unknown as E
}

/** Decides the events that follow `input` in `state`; a rejection means the input does not fit now. */
export const decide = (
  state: EpisodeState,
  input: Input,
  parse: ParseAssistant,
): Result.Result<ReadonlyArray<DomainEvent>, Rejection> => {
  if (input.kind === "start") {
    if (state.status !== "new") return Result.fail({ reason: `episode ${input.episodeId} already started` })
    const { kind: _kind, ...start } = input
    const policy = input.policy ?? defaultPolicy
    return Result.succeed([
      inSchemaOrder(EpisodeStarted.fields, {
        type: "EpisodeStarted",
        ...start,
        maxTurns: policy.maxTurns,
        policy,
      }),
    ])
  }
  if (state.status === "finished")
    return Result.fail({ reason: `episode ${state.episodeId} already finished` })
  if (input.kind === "stop") {
    if (state.status === "new") return Result.fail({ reason: "the episode has not started" })
    return Result.succeed([finish(state, input.outcome, state.turn)])
  }
  if (input.kind === "context_summarized") {
    if (state.status !== "ready" || !wantsSummary(state)) {
      return Result.fail({ reason: "no context summary was asked for" })
    }
    if (input.summary === undefined) return Result.succeed([finish(state, "context_limit", state.turn)])
    const reduced = summarizeReset(state.messages.toArray(), input.summary)
    return Result.succeed([
      {
        type: "ContextReset",
        episodeId: state.episodeId,
        turn: state.turn,
        policy: "summarize",
        estimatedTokens: state.contextTokens,
        keptMessages: reduced.length,
        droppedMessages: state.messages.length - reduced.length + 1,
        summary: input.summary,
      },
    ])
  }
  if (input.kind === "prepare") {
    if (state.status !== "ready")
      return Result.fail({ reason: `cannot prepare a turn while ${state.status}` })
    return Result.succeed(prepare(state))
  }
  if (state.status !== "awaiting_model") {
    return Result.fail({ reason: `no model call is awaited (episode is ${state.status})` })
  }
  if (input.kind === "model_failed") {
    return Result.succeed([
      {
        type: "ModelCallFailed",
        episodeId: state.episodeId,
        turn: state.turn,
        requestId: state.requestId!,
        ...(input.endpoint === undefined ? {} : { endpoint: input.endpoint }),
        code: input.code,
        message: input.message,
        retryable: false,
      },
      finish(state, "model_error", state.turn),
    ])
  }
  return Result.succeed(afterResponse(state, input.response, parse))
}

/** Over budget under the `summarize` policy, with turns left and no summary made this turn yet. */
const wantsSummary = (state: EpisodeState): boolean =>
  state.policy.contextReset === "summarize" &&
  !state.infrastructureFailure &&
  state.turn < state.policy.maxTurns &&
  state.summarizedAt !== state.turn &&
  state.contextTokens > state.policy.contextBudget - state.policy.contextReserve

/** Before a model call: end on limits, reset an over-budget context, nudge, then request. */
const prepare = (state: EpisodeState): DomainEvent[] => {
  const { policy, episodeId } = state
  const done = state.turn
  if (state.infrastructureFailure) return [finish(state, "tool_infrastructure_error", done)]
  if (done >= policy.maxTurns) return [finish(state, "turns_limit", done)]
  const events: DomainEvent[] = []
  const limit = policy.contextBudget - policy.contextReserve
  const estimated = state.contextTokens
  if (estimated > limit) {
    if (policy.contextReset !== "discard_all_tools") return [finish(state, "context_limit", done)]
    const reduced = discardAllTools(state.messages.toArray())
    if (estimateTokens(reduced) > limit) return [finish(state, "context_limit", done)]
    events.push({
      type: "ContextReset",
      episodeId,
      turn: done,
      policy: "discard_all_tools",
      estimatedTokens: estimated,
      keptMessages: reduced.length,
      droppedMessages: state.messages.length - reduced.length,
    })
  }
  const next = done + 1
  if (next === policy.maxTurns && !state.finalNudged) {
    events.push({
      type: "ModelNudged",
      episodeId,
      turn: next,
      reason: "final_answer",
      text: finalAnswerNudge,
    })
  } else if (
    policy.nudgeAfter > 0 &&
    state.idleTurns >= policy.nudgeAfter &&
    state.idleTurns % policy.nudgeAfter === 0 &&
    state.idleNudgedAt !== state.idleTurns
  ) {
    events.push({
      type: "ModelNudged",
      episodeId,
      turn: next,
      reason: "idle",
      text: idleNudge(state.idleTurns),
    })
  }
  events.push({
    type: "ModelRequested",
    episodeId,
    turn: next,
    requestId: requestIdFor(episodeId, next),
    model: state.model,
    messageCount: state.messages.length + events.filter((e) => e.type === "ModelNudged").length,
  })
  return events
}

const noCalls: TurnCalls = { calls: [], errors: [] }

/**
 * The drift guard: a token-exact turn's prompt must extend the previous turn's prompt and sampled
 * ids. Recorded, not refused: the episode goes on and a batch splits the sequence where it drifted.
 */
const driftOf = (state: EpisodeState, r: Completion): EventOf<"DriftDetected"> | undefined => {
  if (state.reached === undefined || r.promptTokenIds === undefined) return undefined
  const drift = tokenDrift(state.reached, r.promptTokenIds)
  if (drift === undefined) return undefined
  return {
    type: "DriftDetected",
    episodeId: state.episodeId,
    turn: state.turn,
    previousTurn: state.reached.turn,
    index: drift.index,
    expectedTokens: drift.expectedTokens,
    promptTokens: drift.promptTokens,
    kind: drift.kind,
    ...(drift.resume === undefined ? {} : { resume: drift.resume }),
  }
}

/** After a response: record it, flag the turn, then answer, end, or request the tool calls. */
const afterResponse = (state: EpisodeState, r: Completion, parse: ParseAssistant): DomainEvent[] => {
  const { episodeId, policy, turn } = state
  const events: DomainEvent[] = [
    {
      type: "ModelResponded",
      episodeId,
      turn,
      requestId: state.requestId!,
      endpoint: r.endpoint,
      latencyMs: r.latencyMs,
      finishReason: r.finishReason,
      content: r.content,
      ...(r.reasoning === undefined ? {} : { reasoning: r.reasoning }),
      ...(r.toolCalls === undefined ? {} : { toolCalls: r.toolCalls }),
      usage: r.usage,
      ...(r.policyVersion === undefined ? {} : { policyVersion: r.policyVersion }),
      ...(r.tokenIds === undefined ? {} : { tokenIds: r.tokenIds }),
      ...(r.logprobs === undefined ? {} : { logprobs: r.logprobs }),
      ...(r.promptTokenIds === undefined ? {} : { promptTokenIds: r.promptTokenIds }),
      ...(r.temperature === undefined ? {} : { temperature: r.temperature }),
      ...(r.weightVersions === undefined ? {} : { weightVersions: r.weightVersions }),
    },
  ]
  const drift = driftOf(state, r)
  if (drift !== undefined) events.push(drift)
  const flags: Array<EventOf<"TurnAssessed">["flags"][number]> = []
  if (r.finishReason === "length" || r.finishReason === "content_filter") flags.push("FAILED")
  const { count } = countRepeats(state.repeats, repeatText(r.content, r.toolCalls))
  if (count >= 2) flags.push("REPEAT")
  const answer = extractAnswer(r.content, policy.answerStyle)
  const parsed = answer === undefined ? parse(policy.toolCallFormat, r, `${episodeId}/t${turn}`) : noCalls
  if (parsed.errors.length > 0) flags.push("FORMAT_ERROR")
  if (flags.length > 0) {
    const feedback = parsed.errors.length > 0 ? parsed.errors.join("\n") : undefined
    events.push({
      type: "TurnAssessed",
      episodeId,
      turn,
      flags,
      ...(feedback === undefined ? {} : { feedback }),
    })
  }
  if (answer !== undefined) return [...events, finish(state, "answered", turn, answer)]
  if (count >= policy.repetitionLimit) return [...events, finish(state, "repetition", turn)]
  if (turn >= policy.maxTurns) return [...events, finish(state, "turns_limit", turn)]
  for (const call of parsed.calls) {
    events.push({
      type: "ToolCallRequested",
      episodeId,
      turn,
      callId: call.callId,
      tool: call.tool,
      arguments: call.arguments,
    })
  }
  return events
}
