/**
 * The episode shell: drives one episode to its end on the log. It folds the episode's stream,
 * asks the pure decider what comes next, performs that intent through its ports (the model, the
 * tools) and appends what happened. Every event id is derived from the episode, turn, request or
 * call it answers, so a worker that dies anywhere in the loop loses nothing: the next one folds
 * the stream, re-performs only intents whose results were not recorded, and any decision written
 * twice dedupes.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { AppendError, EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import type { DomainEvent, EventOf, NewEvent } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import {
  decide,
  type EpisodeState,
  evolve,
  type Input,
  initial,
  nextIntent,
  type ParseAssistant,
  recordedInput,
  type StartEpisode,
} from "./decider.ts"
import type { EpisodePorts } from "./ports.ts"
import { joinSummaries, pagesOf, summarizerMessages, truncatedFallback } from "./refinement.ts"

export type { EpisodePorts, ModelPort, ToolOutcome, ToolPort, ToolSpec } from "./ports.ts"

/** The episode's stream cannot be used or extended: a broken event, or a decision refused. */
export class EpisodeStuck extends Error {
  readonly _tag = "EpisodeStuck"
}

export type EpisodeError = LogUnavailable | AppendError | EpisodeStuck

/** The last decision in the stream: its key, the state before it and how many of its events landed. */
interface LastDecision {
  readonly key: string
  readonly before: EpisodeState
  readonly first: DomainEvent
  written: number
}

interface Folded {
  state: EpisodeState
  position: number
  /** When the episode started (its EpisodeStarted's recordedAt), for the deadline. */
  startedAt: number | undefined
  last: LastDecision | undefined
  /** Requested tool calls by id: the decider's state keeps only which are pending. */
  readonly requests: Map<string, EventOf<"ToolCallRequested">>
}

const remember = (folded: Folded, event: DomainEvent, recordedAt: string) => {
  if (event.type === "EpisodeStarted") folded.startedAt = Date.parse(recordedAt)
  if (event.type === "ToolCallRequested") folded.requests.set(event.callId, event)
}

/** The input that produced a recorded decision, from its key and first event; undefined for tool results. */
const redoInput = (last: LastDecision): Input | undefined =>
  last.key.endsWith("/prepare") ? { kind: "prepare" } : recordedInput(last.first)

const load = (log: EventLogShape, subject: string): Effect.Effect<Folded, LogUnavailable | EpisodeStuck> =>
  Effect.gen(function* () {
    const folded: Folded = {
      startedAt: undefined,
      state: initial,
      position: 0,
      last: undefined,
      requests: new Map(),
    }
    const entries = yield* Stream.runCollect(log.read({ filter: subject }))
    for (const entry of entries) {
      const decoded = entry instanceof UndecodableEvent ? Result.fail(entry) : decodeEvent(entry)
      if (Result.isFailure(decoded)) return yield* Effect.fail(new EpisodeStuck(decoded.failure.message))
      // Events of one decision share their causation (the decision's key).
      const key = decoded.success.causationId
      if (folded.last?.key === key) folded.last.written++
      else folded.last = { key, before: folded.state, first: decoded.success.event, written: 1 }
      folded.state = evolve(folded.state, decoded.success)
      folded.position = decoded.success.position
      remember(folded, decoded.success.event, decoded.success.recordedAt)
    }
    return folded
  })

/** Runs (or resumes) an episode until it finishes; returns its final state. */
export const runEpisode = (
  log: EventLogShape,
  ports: EpisodePorts,
  episodeId: string,
  start?: StartEpisode,
): Effect.Effect<EpisodeState, EpisodeError> =>
  Effect.gen(function* () {
    const subject = entitySubject(log.namespace, "episode", episodeId)
    const folded = yield* load(log, subject)
    /**
     * The key of a call's events: call ids come from servers (`call_0` in every response, or the same
     * id in two episodes), while event ids must be unique across the whole log.
     */
    const callKey = (callId: string) =>
      `${episodeId}/t${folded.requests.get(callId)?.turn ?? 0}/call/${callId}`
    // One writer per episode: tool results finishing together are appended one at a time.
    const lock = yield* Semaphore.make(1)

    /** Appends decided events with ids derived from `key`, folding them into the local state. */
    const record = (key: string, events: ReadonlyArray<DomainEvent>) => recordFrom(key, events, 0)
    /**
     * Appends `events[from..]` of one decision (the `from` first are already in the log). A plain
     * map over the append, not a generator: this runs for every event of every episode.
     */
    const recordFrom = (key: string, all: ReadonlyArray<DomainEvent>, from: number) => {
      if (from >= all.length) return Effect.void
      const recordedAt = ports.now()
      const batch: NewEvent[] = []
      for (let i = from; i < all.length; i++)
        batch.push({
          eventId: `${key}/${i}`,
          recordedAt,
          correlationId: episodeId,
          causationId: key,
          actor: "agent",
          event: all[i]!,
        })
      return Effect.map(log.append(subject, batch, { expectedLastPosition: folded.position }), (appended) => {
        for (let i = 0; i < batch.length; i++) {
          const e = batch[i]!
          const position = appended.positions[i]!
          // A duplicate answers with its original position, one this worker has folded already.
          if (position <= folded.position) continue
          folded.state = evolve(folded.state, { ...e, position, subject, schemaVersion: 1 })
          folded.position = position
          remember(folded, e.event, e.recordedAt)
        }
      })
    }

    /** Decides the events that follow `input` and appends them under `key`. */
    const decideAndRecord = (key: string, input: Input) => {
      const result = decide(folded.state, input, ports.parse)
      return Result.isFailure(result)
        ? Effect.fail(new EpisodeStuck(`episode ${episodeId}: ${result.failure.reason}`))
        : recordFrom(key, result.success, 0)
    }

    /** Performs one requested tool call; its completion or failure, as the event to record. */
    const callTool = (callId: string): Effect.Effect<DomainEvent, EpisodeStuck> => {
      const request = folded.requests.get(callId)
      if (request === undefined) return Effect.fail(new EpisodeStuck(`tool call ${callId} has no request`))
      const started = performance.now()
      return Effect.map(
        ports.tools.call({
          episodeId,
          callId,
          tool: request.tool,
          arguments: request.arguments,
          idempotencyKey: callKey(callId),
        }),
        (outcome): DomainEvent =>
          outcome.ok
            ? {
                type: "ToolCallCompleted",
                episodeId,
                callId,
                tool: request.tool,
                content: outcome.content,
                truncated: outcome.truncated,
                latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
              }
            : {
                type: "ToolCallFailed",
                episodeId,
                callId,
                tool: request.tool,
                kind: outcome.kind,
                message: outcome.message,
              },
      )
    }

    // JetStream has no atomic multi-event append: a worker that died part-way through writing a
    // decision left a prefix of it. Decide again from the state before it (pure, so the same
    // events) and write the rest under the same ids.
    const torn = folded.last
    if (torn !== undefined) {
      const input = redoInput(torn)
      if (input !== undefined) {
        const again = decide(torn.before, input, ports.parse)
        if (Result.isSuccess(again) && again.success.length > torn.written) {
          yield* recordFrom(torn.key, again.success, torn.written)
        }
      }
    }

    if (folded.state.status === "new") {
      if (start === undefined)
        return yield* Effect.fail(new EpisodeStuck(`episode ${episodeId} was never started`))
      yield* decideAndRecord(`${episodeId}/start`, start)
    }

    for (;;) {
      const timeoutMs = folded.state.policy.timeoutMs
      if (timeoutMs !== undefined && folded.startedAt !== undefined && folded.state.status !== "finished") {
        if ((ports.clock ?? Date.now)() - folded.startedAt > timeoutMs) {
          yield* decideAndRecord(`${episodeId}/stop`, { kind: "stop", outcome: "timeout" })
        }
      }
      const intent = nextIntent(folded.state)
      switch (intent.kind) {
        case "finished":
          return folded.state
        case "not_started":
          return yield* Effect.fail(new EpisodeStuck(`episode ${episodeId} was never started`))
        case "prepare":
          yield* decideAndRecord(`${episodeId}/turn/${folded.state.turn}/prepare`, { kind: "prepare" })
          break
        case "call_model": {
          // Only the port's typed failure is a model error; an interrupt (the worker stopping) or a
          // defect propagates, leaving the request unanswered for the next worker to make again.
          const outcome = yield* Effect.result(
            ports.model.complete({
              model: folded.state.model,
              requestId: intent.requestId,
              affinityKey: episodeId,
              episodeId,
              messages: intent.messages,
              maxTokens: folded.state.policy.maxResponseTokens,
              ...(ports.toolSpecs === undefined || ports.toolSpecs.length === 0
                ? {}
                : { tools: ports.toolSpecs }),
            }),
          )
          const input: Input = Result.isSuccess(outcome)
            ? { kind: "model_responded", response: outcome.success }
            : {
                kind: "model_failed",
                code: outcome.failure.code,
                message: outcome.failure.message,
                ...(outcome.failure.endpoint === undefined ? {} : { endpoint: outcome.failure.endpoint }),
              }
          yield* decideAndRecord(`${intent.requestId}/result`, input)
          break
        }
        case "summarize_context": {
          // The summarizer's failure is not the agent's: the episode then ends at its context limit.
          const summary = yield* Effect.result(
            ports.model.complete({
              model: folded.state.policy.refineModel ?? "summarizer",
              requestId: intent.requestId,
              affinityKey: episodeId,
              episodeId,
              messages: intent.messages,
              maxTokens: 2048,
            }),
          )
          const input: Input = {
            kind: "context_summarized",
            summary: Result.isSuccess(summary) ? summary.success.content : undefined,
          }
          yield* decideAndRecord(`${intent.requestId}/result`, input)
          break
        }
        case "refine": {
          const policy = folded.state.policy
          const model = policy.refineModel ?? "summarizer"
          const pageTokens = policy.refinePageTokens ?? 8000
          yield* Effect.forEach(
            intent.items,
            (item) =>
              Effect.gen(function* () {
                const pages = pagesOf(item.content, pageTokens)
                const rawTokens = Math.ceil(item.content.length / 4)
                // Pages are summarized concurrently; one failed page falls back to truncation for the result.
                const summaries = yield* Effect.result(
                  Effect.forEach(
                    pages,
                    (page, index) =>
                      Effect.map(
                        ports.model.complete({
                          model,
                          requestId: `${callKey(item.callId)}/refine/${index}`,
                          affinityKey: episodeId,
                          episodeId,
                          messages: summarizerMessages(item.purpose, page, index, pages.length),
                          maxTokens: 2048,
                        }),
                        (r) => r.content,
                      ),
                    { concurrency: "unbounded" },
                  ),
                )
                const refined: DomainEvent = {
                  type: "ToolResultRefined",
                  episodeId,
                  callId: item.callId,
                  model,
                  ...(item.purpose === undefined ? {} : { purpose: item.purpose }),
                  pages: pages.length,
                  rawTokens,
                  ...(Result.isSuccess(summaries)
                    ? { method: "summarized" as const, content: joinSummaries(summaries.success, rawTokens) }
                    : {
                        method: "truncated" as const,
                        content: truncatedFallback(item.content, policy.refineAboveTokens ?? pageTokens),
                      }),
                }
                yield* Semaphore.withPermit(lock, record(`${callKey(item.callId)}/refined`, [refined]))
              }),
            { concurrency: ports.toolConcurrency ?? 8, discard: true },
          )
          break
        }
        case "call_tools": {
          // One call (the common case) runs directly; several run concurrently, appended one at a time.
          if (intent.pending.length === 1) {
            const callId = intent.pending[0]!
            yield* recordFrom(`${callKey(callId)}/result`, [yield* callTool(callId)], 0)
          } else
            yield* Effect.forEach(
              intent.pending,
              (callId) =>
                Effect.flatMap(callTool(callId), (event) =>
                  Semaphore.withPermit(lock, recordFrom(`${callKey(callId)}/result`, [event], 0)),
                ),
              { concurrency: ports.toolConcurrency ?? 8, discard: true },
            )
          break
        }
      }
    }
  })

/**
 * Cancels an episode from outside its loop: appends its `cancelled` ending with the stream's last
 * position as the expectation. A worker still running the episode then meets a conflict on its
 * next append, reloads, finds it finished and stops.
 */
export const cancelEpisode = (
  log: EventLogShape,
  episodeId: string,
  parse: ParseAssistant,
): Effect.Effect<EpisodeState, EpisodeError> =>
  Effect.gen(function* () {
    const subject = entitySubject(log.namespace, "episode", episodeId)
    const folded = yield* load(log, subject)
    if (folded.state.status === "finished") return folded.state
    if (folded.state.status === "new")
      return yield* Effect.fail(new EpisodeStuck(`no episode "${episodeId}" in the log`))
    const decided = decide(folded.state, { kind: "stop", outcome: "cancelled" }, parse)
    if (Result.isFailure(decided))
      return yield* Effect.fail(new EpisodeStuck(`episode ${episodeId}: ${decided.failure.reason}`))
    const [event] = decided.success
    const appended = yield* log.append(
      subject,
      [
        {
          eventId: `${episodeId}/cancel`,
          recordedAt: new Date().toISOString(),
          correlationId: episodeId,
          causationId: `${episodeId}/cancel`,
          actor: "agent",
          event: event!,
        },
      ],
      { expectedLastPosition: folded.position },
    )
    return evolve(folded.state, {
      eventId: `${episodeId}/cancel`,
      recordedAt: "",
      correlationId: episodeId,
      causationId: `${episodeId}/cancel`,
      actor: "agent",
      position: appended.positions[0]!,
      subject,
      schemaVersion: 1,
      event: event!,
    })
  })
