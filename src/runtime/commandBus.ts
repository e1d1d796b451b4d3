/**
 * The `CommandBus` port: how commands reach actors. Each actor kind has one shared queue (one
 * durable JetStream work-queue consumer, or one in-process queue on the embedded log); every
 * worker that runs the kind takes a share. Delivery is at least once: a command is redelivered
 * until acked, and after `maxDeliver` attempts it goes to the dead-letter stream with its error.
 */
import * as Context from "effect/Context"
import type * as Deferred from "effect/Deferred"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { Command, DeadLetter, MalformedCommand } from "./command.ts"

export class BusUnavailable extends Schema.TaggedError<BusUnavailable>()("BusUnavailable", {
  backend: Schema.Literals(["embedded", "nats"]),
  operation: Schema.String,
  code: Schema.optionalKey(Schema.String),
  reason: Schema.String,
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `${this.backend} command bus: ${this.operation} failed${code}: ${this.reason}`
  }
}

/** One delivery of a command to a worker. Exactly one of ack / retry / term ends it. */
export interface Delivery {
  /** The decoded command, or why its bytes could not be decoded. */
  readonly command: Command | MalformedCommand
  /** The command as it travelled (on JetStream, large fields as blob markers), kept in dead letters. */
  readonly raw: string
  /** 1 on first delivery. */
  readonly attempt: number
  readonly ack: Effect.Effect<void>
  /** Asks for redelivery after `delayMs`. */
  readonly retry: (delayMs: number) => Effect.Effect<void>
  /** Drops the command from the queue (after it was dead-lettered). */
  readonly term: Effect.Effect<void>
  /** Tells the bus the handler is still working, so the ack deadline moves on. */
  readonly working: Effect.Effect<void>
}

export interface ConsumeOptions {
  /** Commands in flight at once for this worker. */
  readonly concurrency: number
  readonly maxDeliver: number
  readonly ackWaitMs: number
  /** Completing this stops taking new commands; `consume` returns once those in flight are done. */
  readonly stop: Deferred.Deferred<void>
  /** Longest wait for in-flight commands after stop. */
  readonly drainTimeoutMs: number
}

export interface QueueStats {
  readonly actorKind: string
  /** Waiting to be delivered. */
  readonly pending: number
  /** Delivered and not yet acked. */
  readonly inFlight: number
  readonly redelivered: number
  readonly deadLetters: number
}

export interface CommandBusShape {
  readonly backend: "embedded" | "nats"
  /** Enqueues commands; a `commandId` already enqueued recently is not enqueued twice. */
  readonly send: (commands: ReadonlyArray<Command>) => Effect.Effect<void, BusUnavailable>
  /** Delivers the kind's commands to `handle` until `options.stop`, then drains. */
  readonly consume: (
    actorKind: string,
    options: ConsumeOptions,
    handle: (delivery: Delivery) => Effect.Effect<void>,
  ) => Effect.Effect<void, BusUnavailable>
  readonly deadLetter: (letter: DeadLetter) => Effect.Effect<void, BusUnavailable>
  readonly deadLetters: (actorKind?: string) => Effect.Effect<ReadonlyArray<DeadLetter>, BusUnavailable>
  readonly stats: (actorKind: string) => Effect.Effect<QueueStats, BusUnavailable>
}

export class CommandBus extends Context.Service<CommandBus, CommandBusShape>()("rollout/CommandBus") {}
