/**
 * The actor host: runs the command handlers of some actor kinds on a command bus and a log. For
 * each kind it consumes the kind's shared queue with bounded concurrency, handles each command
 * through the actor shell, and settles the delivery: ack when done (or already done), retry with
 * backoff on infrastructure errors and exhausted conflicts, dead-letter poison (malformed or
 * invalid commands, a broken entity stream, or too many attempts). A consumer that breaks is
 * restarted with exponential backoff (supervision). Completing `stop` drains: no new commands,
 * in-flight ones finish.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type { EventLogShape } from "../events/log/eventLog.ts"
import { type AnyActor, EntityCache, handleCommand, isProcessActor, runProcess } from "./actor.ts"
import { type Clock, systemClock } from "./clock.ts"
import { type Command, type DeadLetter, MalformedCommand } from "./command.ts"
import type { CommandBusShape, Delivery } from "./commandBus.ts"

export interface HostOptions {
  readonly worker: string
  readonly concurrency: number
  readonly ackWaitMs: number
  readonly maxDeliver: number
  readonly drainTimeoutMs: number
  readonly conflictRetries: number
  /** Stamps the dead letters (`at`); default the system clock. */
  readonly clock?: Clock
}

/** Running totals per actor kind, for status and tests. */
export interface KindCounters {
  handled: number
  alreadyHandled: number
  conflicts: number
  retried: number
  deadLettered: number
  restarts: number
}

export interface Host {
  readonly counters: ReadonlyMap<string, KindCounters>
  /** Stops taking commands and waits for the ones in flight (bounded by `drainTimeoutMs`). */
  readonly drain: Effect.Effect<void>
  /** Completes when every kind's consumer has stopped. */
  readonly done: Effect.Effect<void>
}

/** Delay before the n-th redelivery: 250 ms doubling, capped at 10 s. */
export const retryDelay = (attempt: number): number => Math.min(10_000, 250 * 2 ** Math.max(0, attempt - 1))

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const settle = (
  log: EventLogShape,
  bus: CommandBusShape,
  actor: AnyActor,
  options: HostOptions,
  cache: EntityCache<unknown>,
  counters: KindCounters,
  delivery: Delivery,
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const letter = (kind: DeadLetter["kind"], reason: string, command?: Command) =>
      Effect.gen(function* () {
        const at = (options.clock ?? systemClock).iso()
        const base = {
          actorKind: actor.kind,
          commandId: command?.commandId ?? "unknown",
          raw: delivery.raw.slice(0, 64 * 1024),
          reason,
          kind,
          attempts: delivery.attempt,
          worker: options.worker,
          at,
        }
        const kept = yield* Effect.exit(bus.deadLetter(command === undefined ? base : { ...base, command }))
        if (Exit.isFailure(kept)) {
          // Never drop a command we could not keep: leave it on the queue for a later attempt.
          yield* Effect.logWarning(`could not dead-letter ${base.commandId}; will retry`)
          return yield* delivery.retry(retryDelay(delivery.attempt))
        }
        counters.deadLettered++
        yield* Effect.logWarning(`dead-lettered ${actor.kind} command ${base.commandId} (${kind}): ${reason}`)
        yield* delivery.term
      })

    const command = delivery.command
    if (command instanceof MalformedCommand) return yield* letter("malformed", command.message)
    if (delivery.attempt > options.maxDeliver) {
      // Delivered this often without ever settling: workers crashed on it (or were killed) each time.
      return yield* letter("failed", `delivered ${delivery.attempt} times without completing`, command)
    }
    const exit = yield* Effect.exit(
      isProcessActor(actor)
        ? // A long process: tell the bus it is alive so the command is not redelivered meanwhile.
          Effect.raceFirst(
            runProcess(log, actor, command, options.worker),
            Effect.forever(
              Effect.andThen(
                Effect.sleep(Math.max(100, Math.floor(options.ackWaitMs / 3))),
                delivery.working,
              ),
            ),
          )
        : handleCommand(log, actor, command, {
            worker: options.worker,
            conflictRetries: options.conflictRetries,
            cache,
          }),
    )
    if (Exit.isSuccess(exit)) {
      const outcome = exit.value
      if (outcome._tag === "Rejected") return yield* letter("rejected", outcome.reason, command)
      if (outcome._tag === "AlreadyHandled") counters.alreadyHandled++
      else if (outcome._tag === "Completed") counters.handled++
      else {
        counters.handled++
        counters.conflicts += outcome.conflicts
      }
      return yield* delivery.ack
    }
    const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
    const error = failure?._tag === "Fail" ? failure.error : undefined
    if (error !== undefined && (error._tag === "InvalidCommand" || error._tag === "UndecodableEvent")) {
      return yield* letter("malformed", describe(error), command)
    }
    const reason = error === undefined ? `defect: ${describe(exit.cause.reasons[0])}` : describe(error)
    if (error?._tag === "ConcurrencyConflict") counters.conflicts += options.conflictRetries + 1
    if (delivery.attempt >= options.maxDeliver) {
      return yield* letter("failed", `gave up after ${delivery.attempt} attempts: ${reason}`, command)
    }
    counters.retried++
    yield* Effect.logWarning(
      `retrying ${actor.kind} command ${command.commandId} (attempt ${delivery.attempt}): ${reason}`,
    )
    yield* delivery.retry(retryDelay(delivery.attempt))
  })

/** Starts consumers for `actors` and returns at once; see `Host`. */
export const startHost = (
  log: EventLogShape,
  bus: CommandBusShape,
  actors: ReadonlyArray<AnyActor>,
  options: HostOptions,
): Effect.Effect<Host> =>
  Effect.gen(function* (): Effect.fn.Return<Host> {
    const stop = yield* Deferred.make<void>()
    const counters = new Map<string, KindCounters>()
    const fibers = []
    for (const actor of actors) {
      const c: KindCounters = {
        handled: 0,
        alreadyHandled: 0,
        conflicts: 0,
        retried: 0,
        deadLettered: 0,
        restarts: 0,
      }
      counters.set(actor.kind, c)
      const cache = new EntityCache<unknown>()
      const consumeOnce = bus.consume(
        actor.kind,
        {
          concurrency: options.concurrency,
          maxDeliver: options.maxDeliver,
          ackWaitMs: options.ackWaitMs,
          drainTimeoutMs: options.drainTimeoutMs,
          stop,
        },
        (delivery) => settle(log, bus, actor, options, cache, c, delivery),
      )
      // Supervision: a broken consumer (lost connection, deleted consumer) restarts with backoff.
      const supervised = consumeOnce.pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            c.restarts++
          }).pipe(
            Effect.andThen(Effect.logWarning(`${actor.kind} consumer failed, restarting: ${error.message}`)),
          ),
        ),
        Effect.retry(
          Schedule.exponential("200 millis", 2).pipe(
            Schedule.modifyDelay(({ duration }) =>
              Effect.succeed(Duration.min(duration, Duration.seconds(30))),
            ),
          ),
        ),
        Effect.orDie,
      )
      fibers.push(yield* Effect.forkDetach(supervised))
    }
    const done: Effect.Effect<void> = Effect.asVoid(Fiber.awaitAll(fibers))
    return {
      counters,
      drain: Effect.andThen(Deferred.succeed(stop, undefined), done),
      done,
    }
  })
