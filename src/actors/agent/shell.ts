/**
 * The episode shell: drives one episode to its end on the log. It folds the episode's stream,
 * asks the pure decider what comes next, performs that intent through its ports (the model, the
 * tools) and appends what happened. Every event id is derived from the episode, turn, request or
 * call it answers, so a worker that dies anywhere in the loop loses nothing: the next one folds
 * the stream, re-performs only intents whose results were not recorded, and any decision written
 * twice dedupes. Each part of the loop is a function of the `EpisodeRun` it works on; the times it
 * needs (when an event was recorded, the deadline, a tool call's latency) come from the clock port.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import type { AppendError, EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { DomainEvent, Envelope, EventOf, NewEvent } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import {
  decide,
  type EpisodeState,
  evolve,
  type Input,
  type Intent,
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

/** The worker's view of the episode's stream, extended in place as it appends. */
interface Folded {
  state: EpisodeState
  position: number
  /** When the episode started (its EpisodeStarted's recordedAt), for the deadline. */
  startedAt: number | undefined
  last: LastDecision | undefined
  /** Requested tool calls by id: the decider's state keeps only which are pending. */
  readonly requests: Map<string, EventOf<"ToolCallRequested">>
}

/** One run of an episode: what every part of the loop works with. */
interface EpisodeRun {
  readonly log: EventLogShape
  readonly ports: EpisodePorts
  readonly clock: Clock
  readonly episodeId: string
  readonly subject: string
  readonly folded: Folded
  /** One writer per episode: tool results finishing together are appended one at a time. */
  readonly lock: Semaphore.Semaphore
}

const remember = (folded: Folded, event: DomainEvent, recordedAt: string): void => {
  if (event.type === "EpisodeStarted") folded.startedAt = Date.parse(recordedAt)
  if (event.type === "ToolCallRequested") folded.requests.set(event.callId, event)
}

/** Folds one recorded event; events of one decision share their causation (the decision's key). */
const foldRecorded = (folded: Folded, envelope: Envelope): Folded => {
  const key = envelope.causationId
  if (folded.last?.key === key) folded.last.written++
  else folded.last = { key, before: folded.state, first: envelope.event, written: 1 }
  folded.state = evolve(folded.state, envelope)
  folded.position = envelope.position
  remember(folded, envelope.event, envelope.recordedAt)
  return folded
}

/** Folds the episode's stream; an entry that does not decode leaves it stuck (nothing is decided over a hole). */
const load = (log: EventLogShape, subject: string): Effect.Effect<Folded, LogUnavailable | EpisodeStuck> =>
  Effect.flatMap(
    foldEvents(
      log,
      { filter: subject },
      { startedAt: undefined, state: initial, position: 0, last: undefined, requests: new Map() },
      foldRecorded,
    ),
    (read) => {
      const broken = read.undecodable[0]
      return broken === undefined ? Effect.succeed(read.state) : Effect.fail(new EpisodeStuck(broken.message))
    },
  )

/** The input that produced a recorded decision, from its key and first event; undefined for tool results. */
const redoInput = (last: LastDecision): Input | undefined =>
  last.key.endsWith("/prepare") ? { kind: "prepare" } : recordedInput(last.first)

/**
 * The key of a call's events: call ids come from servers (`call_0` in every response, or the same
 * id in two episodes), while event ids must be unique across the whole log.
 */
const callKey = (run: EpisodeRun, callId: string): string =>
  `${run.episodeId}/t${run.folded.requests.get(callId)?.turn ?? 0}/call/${callId}`

/**
 * Appends `events[from..]` of one decision under ids derived from `key` (the `from` first are
 * already in the log), folding them into the run's view. A plain map over the append, not a
 * generator: this runs for every event of every episode.
 */
const appendDecision = (
  run: EpisodeRun,
  key: string,
  events: ReadonlyArray<DomainEvent>,
  from = 0,
): Effect.Effect<void, AppendError | LogUnavailable> => {
  if (from >= events.length) return Effect.void
  const { folded, subject } = run
  const recordedAt = run.clock.iso()
  const batch: NewEvent[] = []
  for (let i = from; i < events.length; i++)
    batch.push({
      eventId: `${key}/${i}`,
      recordedAt,
      correlationId: run.episodeId,
      causationId: key,
      actor: "agent",
      event: events[i]!,
    })
  return Effect.map(run.log.append(subject, batch, { expectedLastPosition: folded.position }), (appended) => {
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
const decideAndAppend = (run: EpisodeRun, key: string, input: Input): Effect.Effect<void, EpisodeError> => {
  const result = decide(run.folded.state, input, run.ports.parse)
  return Result.isFailure(result)
    ? Effect.fail(new EpisodeStuck(`episode ${run.episodeId}: ${result.failure.reason}`))
    : appendDecision(run, key, result.success)
}

/**
 * JetStream has no atomic multi-event append: a worker that died part-way through writing a
 * decision left a prefix of it. Decides again from the state before it (pure, so the same events)
 * and writes the rest under the same ids.
 */
const finishTornDecision = (run: EpisodeRun): Effect.Effect<void, EpisodeError> => {
  const torn = run.folded.last
  const input = torn === undefined ? undefined : redoInput(torn)
  if (torn === undefined || input === undefined) return Effect.void
  const again = decide(torn.before, input, run.ports.parse)
  return Result.isSuccess(again) && again.success.length > torn.written
    ? appendDecision(run, torn.key, again.success, torn.written)
    : Effect.void
}

/** Ends the episode with `timeout` once its policy's wall-clock limit has passed since it started. */
const stopPastDeadline = (run: EpisodeRun): Effect.Effect<void, EpisodeError> => {
  const { state, startedAt } = run.folded
  const timeoutMs = state.policy.timeoutMs
  return timeoutMs !== undefined &&
    startedAt !== undefined &&
    state.status !== "finished" &&
    run.clock.wallMs() - startedAt > timeoutMs
    ? decideAndAppend(run, `${run.episodeId}/stop`, { kind: "stop", outcome: "timeout" })
    : Effect.void
}

/**
 * Asks the model for the turn and decides on its answer. Only the port's typed failure is a model
 * error; an interrupt (the worker stopping) or a defect propagates, leaving the request unanswered
 * for the next worker to make again.
 */
const callModel = (
  run: EpisodeRun,
  intent: Extract<Intent, { kind: "call_model" }>,
): Effect.Effect<void, EpisodeError> => {
  const { ports, episodeId } = run
  const { state } = run.folded
  return Effect.flatMap(
    Effect.result(
      ports.model.complete({
        model: state.model,
        requestId: intent.requestId,
        affinityKey: episodeId,
        episodeId,
        messages: intent.messages,
        maxTokens: state.policy.maxResponseTokens,
        ...(ports.toolSpecs === undefined || ports.toolSpecs.length === 0 ? {} : { tools: ports.toolSpecs }),
      }),
    ),
    (outcome) =>
      decideAndAppend(
        run,
        `${intent.requestId}/result`,
        Result.isSuccess(outcome)
          ? { kind: "model_responded", response: outcome.success }
          : {
              kind: "model_failed",
              code: outcome.failure.code,
              message: outcome.failure.message,
              ...(outcome.failure.endpoint === undefined ? {} : { endpoint: outcome.failure.endpoint }),
            },
      ),
  )
}

/** Asks the summarizer for the over-budget context; its failure is not the agent's: the episode then ends at its context limit. */
const summarizeContext = (
  run: EpisodeRun,
  intent: Extract<Intent, { kind: "summarize_context" }>,
): Effect.Effect<void, EpisodeError> =>
  Effect.flatMap(
    Effect.result(
      run.ports.model.complete({
        model: run.folded.state.policy.refineModel ?? "summarizer",
        requestId: intent.requestId,
        affinityKey: run.episodeId,
        episodeId: run.episodeId,
        messages: intent.messages,
        maxTokens: 2048,
      }),
    ),
    (summary) =>
      decideAndAppend(run, `${intent.requestId}/result`, {
        kind: "context_summarized",
        summary: Result.isSuccess(summary) ? summary.success.content : undefined,
      }),
  )

type RefineItem = Extract<Intent, { kind: "refine" }>["items"][number]

/**
 * Refines one long tool result: its pages are summarized concurrently, and the joined summaries
 * are recorded; one failed page falls back to truncation for the whole result.
 */
const refineResult = (run: EpisodeRun, item: RefineItem): Effect.Effect<void, EpisodeError> => {
  const { episodeId } = run
  const policy = run.folded.state.policy
  const model = policy.refineModel ?? "summarizer"
  const pageTokens = policy.refinePageTokens ?? 8000
  const pages = pagesOf(item.content, pageTokens)
  const rawTokens = Math.ceil(item.content.length / 4)
  const key = callKey(run, item.callId)
  return Effect.flatMap(
    Effect.result(
      Effect.forEach(
        pages,
        (page, index) =>
          Effect.map(
            run.ports.model.complete({
              model,
              requestId: `${key}/refine/${index}`,
              affinityKey: episodeId,
              episodeId,
              messages: summarizerMessages(item.purpose, page, index, pages.length),
              maxTokens: 2048,
            }),
            (r) => r.content,
          ),
        { concurrency: "unbounded" },
      ),
    ),
    (summaries) => {
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
      return Semaphore.withPermit(run.lock, appendDecision(run, `${key}/refined`, [refined]))
    },
  )
}

/** Performs one requested tool call; its completion or failure, as the event to record. */
const callTool = (run: EpisodeRun, callId: string): Effect.Effect<DomainEvent, EpisodeStuck> => {
  const { episodeId, clock } = run
  const request = run.folded.requests.get(callId)
  if (request === undefined) return Effect.fail(new EpisodeStuck(`tool call ${callId} has no request`))
  const started = clock.monotonicMs()
  return Effect.map(
    run.ports.tools.call({
      episodeId,
      callId,
      tool: request.tool,
      arguments: request.arguments,
      idempotencyKey: callKey(run, callId),
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
            latencyMs: Math.round((clock.monotonicMs() - started) * 1000) / 1000,
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

/** Runs the turn's pending tool calls: one (the common case) directly; several concurrently, appended one at a time. */
const callTools = (run: EpisodeRun, pending: ReadonlyArray<string>): Effect.Effect<void, EpisodeError> => {
  if (pending.length === 1) {
    const callId = pending[0]!
    return Effect.flatMap(callTool(run, callId), (event) =>
      appendDecision(run, `${callKey(run, callId)}/result`, [event]),
    )
  }
  return Effect.forEach(
    pending,
    (callId) =>
      Effect.flatMap(callTool(run, callId), (event) =>
        Semaphore.withPermit(run.lock, appendDecision(run, `${callKey(run, callId)}/result`, [event])),
      ),
    { concurrency: run.ports.toolConcurrency ?? 8, discard: true },
  )
}

/** Performs an intent that keeps the episode going (not `finished` or `not_started`). */
const perform = (
  run: EpisodeRun,
  intent: Exclude<Intent, { kind: "finished" | "not_started" }>,
): Effect.Effect<void, EpisodeError> => {
  switch (intent.kind) {
    case "prepare":
      return decideAndAppend(run, `${run.episodeId}/turn/${run.folded.state.turn}/prepare`, {
        kind: "prepare",
      })
    case "call_model":
      return callModel(run, intent)
    case "summarize_context":
      return summarizeContext(run, intent)
    case "refine":
      return Effect.forEach(intent.items, (item) => refineResult(run, item), {
        concurrency: run.ports.toolConcurrency ?? 8,
        discard: true,
      })
    case "call_tools":
      return callTools(run, intent.pending)
  }
}

/** Runs (or resumes) an episode until it finishes; returns its final state. */
export const runEpisode = (
  log: EventLogShape,
  ports: EpisodePorts,
  episodeId: string,
  start?: StartEpisode,
): Effect.Effect<EpisodeState, EpisodeError> =>
  Effect.gen(function* () {
    const subject = entitySubject(log.namespace, "episode", episodeId)
    const run: EpisodeRun = {
      log,
      ports,
      clock: ports.clock ?? systemClock,
      episodeId,
      subject,
      folded: yield* load(log, subject),
      lock: yield* Semaphore.make(1),
    }
    yield* finishTornDecision(run)
    if (run.folded.state.status === "new") {
      if (start === undefined)
        return yield* Effect.fail(new EpisodeStuck(`episode ${episodeId} was never started`))
      yield* decideAndAppend(run, `${episodeId}/start`, start)
    }
    for (;;) {
      yield* stopPastDeadline(run)
      const intent = nextIntent(run.folded.state)
      if (intent.kind === "finished") return run.folded.state
      if (intent.kind === "not_started")
        return yield* Effect.fail(new EpisodeStuck(`episode ${episodeId} was never started`))
      yield* perform(run, intent)
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
  clock: Clock = systemClock,
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
          recordedAt: clock.iso(),
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
