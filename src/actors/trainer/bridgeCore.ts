/**
 * The trainer bridge of one run, without its transports: the state rebuilt from the run stream and
 * kept current by a tail of it, and the operations the HTTP server (`bridge.ts`) and the NATS
 * subjects (`bridgeNats.ts`) answer with — `next` (acknowledge, then hand out the lowest step not
 * acknowledged, waiting for one to be published), `batch`, `publishWeights` (a `WeightsPublished`
 * on the run stream, then every endpoint of the model's group through the inference pool),
 * `reportMetrics` (`TrainerStepReported`) and `status`. What to record and what to answer is
 * `bridgeState.ts`'s; here are the log, the waiting and the pool. Every event it writes has an id
 * fixed by what it says, so a retried request or a restarted bridge never records twice.
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { BlobStoreShape } from "../../events/log/blobStore.ts"
import type { EventLogShape, LogEntry } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { DomainEvent } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import type { InferencePool, PublishReport } from "../inference/ports.ts"
import {
  type BatchOf,
  type BridgeState,
  consumedEventId,
  decideAck,
  decideWeights,
  evolveBridge,
  initialBridgeState,
  lowestUnacknowledged,
  type NextRequest,
  nextAnswer,
  parseMetricsBody,
  type Refusal,
  trainerStepEventId,
  type WeightsRequest,
  weightsEventId,
} from "./bridgeState.ts"

export interface TrainerBridgeOptions {
  readonly log: EventLogShape
  /** Where the batches' bytes are (files on the embedded log, the Object Store on NATS). */
  readonly blobs: BlobStoreShape
  /** Loads published weights on the model's endpoints. */
  readonly pool: InferencePool
  readonly runId: string
  /** The RL model group of `models.yaml`; default the run's (its `RunStarted`). */
  readonly model?: string
  readonly clock?: Clock
}

/** A failure of the bridge itself (the log or blob store), answered 503 or 500. */
export interface BridgeFault {
  readonly status: 500 | 502 | 503
  readonly error: string
}

export type BridgeError = Refusal | BridgeFault

export type NextResult =
  | { readonly kind: "batch"; readonly batch: BatchOf }
  | { readonly kind: "empty"; readonly step: number }
  | { readonly kind: "finished" }

export interface WeightsResult {
  /** 200 when some endpoint took the version (or none needed it), 502 when none did. */
  readonly status: 200 | 502
  readonly report: PublishReport
}

export interface BridgeStatus {
  readonly run: string
  readonly model: string | null
  readonly published: number
  readonly lastPublishedStep: number | null
  readonly acknowledged: number
  /** The step `next` hands out now. */
  readonly next: number
  readonly finished: boolean
  /** The last weight version published through the bridge (0: the run's first weights). */
  readonly version: string
  /** The version each endpoint of the model's group serves, as the pool knows it. */
  readonly versions: Readonly<Record<string, string | null>>
  /** Log entries of the run stream that did not decode (each would be a gap in what the bridge knows). */
  readonly undecodable: number
}

export interface BridgeCore {
  /**
   * Runs one of the operations below from outside Effect (an HTTP or NATS handler) with the
   * services the core was made with — the caller's logger among them, so a message goes where the
   * command sends its messages (stderr for the CLI), never to stdout.
   */
  readonly runExit: <A, E>(
    effect: Effect.Effect<A, E>,
    options?: { readonly signal?: AbortSignal },
  ) => Promise<Exit.Exit<A, E>>
  readonly runId: string
  /** The run stream the bridge folds and appends to. */
  readonly subject: string
  readonly state: () => BridgeState
  readonly model: () => string | undefined
  readonly next: (request: NextRequest) => Effect.Effect<NextResult, BridgeError>
  readonly batch: (step: number) => Effect.Effect<BatchOf, BridgeError>
  /** The bytes of a published batch, checked against its hash by the blob store. */
  readonly batchBytes: (batch: BatchOf) => Effect.Effect<Uint8Array, BridgeError>
  readonly publishWeights: (request: WeightsRequest) => Effect.Effect<WeightsResult, BridgeError>
  /** Records a step's report; `recorded` is false when that step was already reported. */
  readonly reportMetrics: (body: unknown) => Effect.Effect<{ readonly recorded: boolean }, BridgeError>
  readonly status: Effect.Effect<BridgeStatus>
}

const ACTOR = "trainer-bridge"

/**
 * Rebuilds the run's state from the log, then follows the run stream for the life of the scope
 * (new batches, the run's end, and anything another writer records).
 */
export const makeBridgeCore = (
  options: TrainerBridgeOptions,
): Effect.Effect<BridgeCore, BridgeFault, Scope.Scope> =>
  Effect.gen(function* () {
    const { log, blobs, pool, runId } = options
    const services = yield* Effect.context<never>()
    const clock = options.clock ?? systemClock
    const subject = entitySubject(log.namespace, "run", runId)
    const rebuilt = yield* foldEvents(
      log,
      { filter: subject },
      initialBridgeState(runId),
      (state, envelope) => evolveBridge(state, envelope.event),
    ).pipe(Effect.mapError((e) => fault(503, `reading the run stream ${subject}: ${e.message}`)))
    let state = rebuilt.state
    let last = rebuilt.last
    let undecodable = rebuilt.undecodable.length
    if (undecodable > 0)
      yield* Effect.logWarning(
        `trainer bridge: ${undecodable} entr${undecodable === 1 ? "y" : "ies"} of ${subject} did not decode (first at position ${rebuilt.undecodable[0]!.position}); the bridge goes on without them`,
      )

    // Waiters of `next`: woken on every change; `changes` closes the race between a check and a wait.
    let changes = 0
    const waiters = new Set<() => void>()
    const apply = (events: ReadonlyArray<DomainEvent>) => {
      for (const event of events) state = evolveBridge(state, event)
      changes++
      for (const wake of [...waiters]) wake()
    }
    const changedSince = (seen: number, ms: number): Effect.Effect<void> =>
      Effect.asVoid(
        Effect.timeoutOption(
          Effect.callback<void>((resume) => {
            if (changes !== seen) {
              resume(Effect.void)
              return
            }
            const wake = () => resume(Effect.void)
            waiters.add(wake)
            return Effect.sync(() => waiters.delete(wake))
          }),
          ms,
        ),
      )

    const follow = (entry: LogEntry) => {
      last = Math.max(last, entry.position)
      if (entry instanceof UndecodableEvent) {
        undecodable++
        return
      }
      const decoded = decodeEvent(entry)
      if (Result.isFailure(decoded)) undecodable++
      else apply([decoded.success.event])
    }
    // The tail is the bridge's view of the run; a log that goes away is retried, from where it stopped.
    const tailLoop: Effect.Effect<never> = Effect.gen(function* () {
      for (;;) {
        const exit = yield* Effect.exit(
          Stream.runForEach(log.tail({ filter: subject, from: last + 1 }), (entry) =>
            Effect.sync(() => follow(entry)),
          ),
        )
        if (exit._tag === "Failure")
          yield* Effect.logWarning(`trainer bridge: following ${subject} failed; retrying in 1 s`)
        yield* Effect.sleep(1000)
      }
    })
    yield* Effect.forkScoped(tailLoop)

    const writing = yield* Semaphore.make(1)
    const publishing = yield* Semaphore.make(1)

    const meta = (eventId: string) => ({
      eventId,
      recordedAt: clock.iso(),
      correlationId: runId,
      causationId: `${ACTOR}:${runId}`,
      actor: ACTOR,
    })

    const append = (eventId: string, event: DomainEvent) =>
      log
        .append(subject, [{ ...meta(eventId), event }])
        .pipe(Effect.mapError((e) => fault(503, `recording ${event.type} on ${subject}: ${e.message}`)))

    const acknowledge = (step: number, trainer: string | undefined) =>
      Semaphore.withPermit(
        writing,
        Effect.gen(function* () {
          const decided = decideAck(state, step, trainer)
          if (Result.isFailure(decided)) return yield* Effect.fail<BridgeError>(decided.failure)
          for (const event of decided.success) {
            yield* append(consumedEventId(runId, event.step), event)
            apply([event])
          }
        }),
      )

    const next = (request: NextRequest): Effect.Effect<NextResult, BridgeError> =>
      Effect.gen(function* () {
        if (request.ack !== undefined) yield* acknowledge(request.ack, request.trainer)
        const deadline = clock.monotonicMs() + request.waitMs
        for (;;) {
          const seen = changes
          const answer = nextAnswer(state)
          if (answer.kind === "batch") return answer
          if (answer.kind === "finished") return answer
          const remaining = deadline - clock.monotonicMs()
          if (remaining <= 0) return { kind: "empty", step: answer.step } as const
          yield* changedSince(seen, remaining)
        }
      })

    const batch = (step: number): Effect.Effect<BatchOf, BridgeError> => {
      const found = state.published.get(step)
      return found === undefined
        ? Effect.fail({
            status: 404,
            error: `step: ${step} is not published (published: ${publishedRange(state)})`,
          })
        : Effect.succeed(found)
    }

    const batchBytes = (found: BatchOf): Effect.Effect<Uint8Array, BridgeError> =>
      blobs
        .get(found.blob)
        .pipe(
          Effect.mapError((e) =>
            fault(e._tag === "BlobStoreUnavailable" ? 503 : 500, `batch of step ${found.step}: ${e.message}`),
          ),
        )

    const modelOrFail = Effect.suspend(() => {
      const model = options.model ?? state.model
      return model === undefined
        ? Effect.fail<BridgeError>(
            fault(
              503,
              `the run ${runId} has not started (no RunStarted on ${subject}) and the bridge was given no model`,
            ),
          )
        : Effect.succeed(model)
    })

    const publishWeights = (request: WeightsRequest): Effect.Effect<WeightsResult, BridgeError> =>
      Semaphore.withPermit(
        publishing,
        Effect.gen(function* () {
          const model = yield* modelOrFail
          const decided = yield* Semaphore.withPermit(
            writing,
            Effect.gen(function* () {
              const decision = decideWeights(state, model, request.version)
              if (Result.isFailure(decision)) return yield* Effect.fail<BridgeError>(decision.failure)
              if (decision.success.kind === "publish") {
                // Recorded before the endpoints load it: the trainer made this version whatever they do.
                yield* append(weightsEventId(runId, request.version), decision.success.event)
                apply([decision.success.event])
              }
              return decision.success
            }),
          )
          const report = yield* pool
            .publishWeights(model, {
              version: String(request.version),
              path: request.path,
              ...(request.checksum === undefined ? {} : { checksum: request.checksum }),
            })
            .pipe(Effect.mapError((e) => fault(502, e.message)))
          const noneTook = report.endpoints.length > 0 && report.endpoints.every((e) => !e.ok)
          const line = `trainer bridge: version ${request.version} ${decided.kind === "repeat" ? "published again" : "published"} to ${model}: ${report.endpoints.filter((e) => e.ok).length}/${report.endpoints.length} endpoint(s) updated`
          const failures = report.endpoints.filter((e) => !e.ok)
          if (failures.length === 0) yield* Effect.logInfo(line)
          // Damage said where it shows: each failed endpoint is ejected, and with none left no
          // episode of the run can sample until an update succeeds (a trainer may POST again).
          else
            yield* Effect.logWarning(
              `${line}; ${failures.map((e) => `${e.endpoint} ejected: ${e.error ?? "update failed"}`).join("; ")}${noneTook ? `; no endpoint of ${model} serves the version: episodes wait until an update succeeds (POST /v1/weights again to retry)` : ""}`,
            )
          return { status: noneTook ? 502 : 200, report } as const
        }),
      )

    const reportMetrics = (body: unknown) =>
      Effect.gen(function* () {
        const parsed = parseMetricsBody(runId, body)
        if (Result.isFailure(parsed)) return yield* Effect.fail<BridgeError>(parsed.failure)
        const appended = yield* append(trainerStepEventId(runId, parsed.success.step), parsed.success)
        return { recorded: appended.duplicates === 0 }
      })

    const status = Effect.gen(function* () {
      const model = options.model ?? state.model
      const stats = yield* pool.stats
      const versions: Record<string, string | null> = {}
      for (const endpoint of stats.endpoints)
        if (endpoint.model === model) versions[endpoint.endpoint] = endpoint.policyVersion ?? null
      const steps = [...state.published.keys()]
      return {
        run: runId,
        model: model ?? null,
        published: steps.length,
        lastPublishedStep: steps.length === 0 ? null : Math.max(...steps),
        acknowledged: state.acknowledged.size,
        next: lowestUnacknowledged(state),
        finished: state.finished,
        version: String(state.lastVersion),
        versions,
        undecodable,
      } satisfies BridgeStatus
    })

    return {
      runExit: (effect, runOptions) => Effect.runPromiseExitWith(services)(effect, runOptions),
      runId,
      subject,
      state: () => state,
      model: () => options.model ?? state.model,
      next,
      batch,
      batchBytes,
      publishWeights,
      reportMetrics,
      status,
    } satisfies BridgeCore
  })

const fault = (status: BridgeFault["status"], error: string): BridgeFault => ({ status, error })

const publishedRange = (state: BridgeState): string => {
  const steps = [...state.published.keys()].sort((a, b) => a - b)
  if (steps.length === 0) return "none yet"
  return steps.length === steps[steps.length - 1]! + 1 && steps[0] === 0
    ? `0 to ${steps[steps.length - 1]}`
    : `${steps.length} step(s), the last ${steps[steps.length - 1]}`
}
