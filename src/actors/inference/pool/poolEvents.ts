/**
 * Writes the inference pool's membership and weight-version events (`EndpointJoined`,
 * `EndpointLeft`, `EndpointEjected`, `EndpointReturned`, `WeightsPublished`: what the decider says
 * to record) to the log on `entitySubject(namespace, "inference", model)`. Routing decisions are
 * synchronous and must never wait for the log, so events are queued and appended in order by one
 * background fiber; a log that is down costs a warning and a dropped event, never a failed
 * completion. Closing the scope flushes what is queued.
 */
import { randomUUID } from "node:crypto"
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { EventLogShape } from "../../../events/log/eventLog.ts"
import type { NewEvent } from "../../../events/schema.ts"
import { entitySubject } from "../../../events/subjects.ts"
import type { Clock } from "../../../runtime/clock.ts"
import type { PoolEvent } from "../decider.ts"

export interface PoolEventSink {
  /** Queues an event; returns at once. */
  readonly emit: (event: PoolEvent) => void
  /** Events the log refused after retries (they are also logged as warnings). */
  readonly dropped: () => number
}

export interface PoolEventSinkOptions {
  readonly log: EventLogShape | undefined
  readonly namespace: string
  /** Gives `recordedAt` (wall-clock time). */
  readonly clock: Clock
  /** Identifies this pool instance in `causationId`, so events of several workers' pools stay apart. */
  readonly poolId: string
}

const APPEND_ATTEMPTS = 3

/** A sink that appends to `options.log`, or discards everything when there is no log. */
export const makePoolEventSink = (
  options: PoolEventSinkOptions,
): Effect.Effect<PoolEventSink, never, Scope.Scope> =>
  Effect.gen(function* () {
    const log = options.log
    if (log === undefined) return { emit: () => {}, dropped: () => 0 } satisfies PoolEventSink
    let dropped = 0
    const queue = yield* Queue.unbounded<NewEvent & { readonly subject: string }, Cause.Done>()

    const appendOne = (subject: string, events: ReadonlyArray<NewEvent>) =>
      Effect.gen(function* () {
        for (let attempt = 1; ; attempt++) {
          const exit = yield* Effect.exit(log.append(subject, events))
          if (exit._tag === "Success") return
          if (attempt >= APPEND_ATTEMPTS) {
            dropped += events.length
            yield* Effect.logWarning(
              `inference pool: dropped ${events.length} event(s) for ${subject}: the log refused them`,
            )
            return
          }
          yield* Effect.sleep(50 * attempt)
        }
      })

    const writer = Effect.gen(function* () {
      for (;;) {
        const batch = yield* Queue.takeAll(queue)
        // Group consecutive events by subject so each model's events stay in order, in few appends.
        let start = 0
        while (start < batch.length) {
          const subject = batch[start]!.subject
          let end = start + 1
          while (end < batch.length && batch[end]!.subject === subject) end++
          yield* appendOne(
            subject,
            batch.slice(start, end).map(({ subject: _subject, ...event }) => event),
          )
          start = end
        }
      }
    }).pipe(Effect.catch(() => Effect.void))

    const fiber = yield* Effect.forkDetach(writer)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Queue.end(queue)
        // Bounded: a hung log must not hang the shutdown.
        const done = yield* Effect.timeoutOption(Fiber.await(fiber), 5_000)
        if (done._tag === "None") yield* Fiber.interrupt(fiber)
      }),
    )

    return {
      emit: (event: PoolEvent) => {
        Queue.offerUnsafe(queue, {
          subject: entitySubject(options.namespace, "inference", event.model),
          eventId: randomUUID(),
          recordedAt: options.clock.iso(),
          correlationId: event.model,
          causationId: options.poolId,
          actor: "inference",
          event,
        })
      },
      dropped: () => dropped,
    }
  })
