/**
 * The JetStream adapter of the `CommandBus` port. Commands live on a work-queue stream
 * (`<NS>_COMMANDS`, subjects `<ns>.cmd.>`); each actor kind has one durable pull consumer with a
 * single filter subject (`<ns>.cmd.<kind>.*`, which Debian's 2.9 server supports), shared by every
 * worker process, so starting another worker takes a share of the work. The server redelivers an
 * unacked command after `ack_wait`; attempts are counted by the server, and the host dead-letters
 * a command onto `<NS>_DLQ` after `maxDeliver` attempts.
 *
 * The server refuses a message over its limit (1 MB by default), so a command (or a dead letter)
 * over the inline limit keeps its largest fields in the blob store the log uses (`largeFields`):
 * a 3 MB question travels as a marker naming its blob. The bus reads such fields back before the
 * worker sees the command; a blob that is missing or damaged makes the command a
 * `MalformedCommand` naming the field and the hash, which the host dead-letters (never runs it
 * with a hole), and a store that cannot be reached hands the command back for a later attempt.
 * Dead letters are listed as stored: their large fields stay markers, so watching the dead letters
 * does not read every blob again.
 */
import { createHash } from "node:crypto"
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import type { BlobStoreShape, BlobStoreUnavailable } from "../events/log/blobStore.ts"
import {
  bytesOverLimit,
  DEFAULT_INLINE_LIMIT,
  type LargeFields,
  moveLargeFields,
  pathText,
  restoreLargeFields,
} from "../events/log/largeFields.ts"
import { type NatsHandle, natsFailure } from "../events/log/natsConnection.ts"
import { blobBucketFor, objectBlobStore } from "../events/log/objectBlobStore.ts"
import { commandSubject, commandsFilter, deadLetterSubject, streamsFor } from "../events/subjects.ts"
import {
  type Command,
  commandOf,
  type DeadLetter,
  encodeCommand,
  encodeWithBlobs,
  MalformedCommand,
  parseCommand,
} from "./command.ts"
import { BusUnavailable, type CommandBusShape, type ConsumeOptions, type Delivery } from "./commandBus.ts"

export interface JetStreamBusOptions {
  readonly namespace: string
  readonly replicas?: number
  readonly duplicateWindowMs?: number
  /**
   * Commands and dead letters whose JSON would be larger than this many bytes keep their largest
   * fields in the blob store (default 256 KiB, as the log; `Infinity` keeps every field inline,
   * and the server refuses a command over its limit).
   */
  readonly inlineLimitBytes?: number
  /** Where large fields go; default the namespace's Object Store bucket, the log's (`blobBucketFor`). */
  readonly blobStore?: BlobStoreShape
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000)

const failure = (operation: string, error: unknown): BusUnavailable => {
  const wrapped = natsFailure(operation, error)
  return new BusUnavailable({
    backend: "nats",
    operation,
    reason: wrapped.reason,
    ...(wrapped.code === undefined ? {} : { code: wrapped.code }),
  })
}

const attempt = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, BusUnavailable> =>
  Effect.tryPromise({ try: f, catch: (error) => failure(operation, error) })

const textDecoder = new TextDecoder()

/** Delay before a command whose large fields could not be read (the store is down) comes again. */
const unreachableRetryMs = (attempt: number): number => Math.min(10_000, 500 * attempt)

const storeFailure = (operation: string, what: string, error: BlobStoreUnavailable): BusUnavailable =>
  new BusUnavailable({
    backend: "nats",
    operation,
    reason: `${what}: storing its large fields: ${error.message}`,
    ...(error.code === undefined ? {} : { code: error.code }),
  })

/** The id a dead letter's raw command carries, when the command itself could not be decoded. */
const commandIdIn = (raw: string | undefined): string | undefined => {
  if (raw === undefined) return undefined
  try {
    const id = (JSON.parse(raw) as { commandId?: unknown } | null)?.commandId
    return typeof id === "string" && id.length > 0 ? id : undefined
  } catch {
    return undefined
  }
}

export const makeJetStreamBus = (
  handle: NatsHandle,
  options: JetStreamBusOptions,
): Effect.Effect<CommandBusShape, BusUnavailable> =>
  Effect.gen(function* () {
    const { namespace } = options
    const names = streamsFor(namespace)
    const replicas = options.replicas ?? 1
    const largeFields: LargeFields = {
      store: options.blobStore ?? objectBlobStore(handle, { bucket: blobBucketFor(namespace), replicas }),
      inlineLimit: options.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT,
    }

    /**
     * The JSON `value` is stored as: itself, or (over the inline limit) with its largest fields in
     * the blob store and listed in `blobs`.
     */
    const onWire = (
      value: object,
      json: string,
      operation: string,
      what: string,
    ): Effect.Effect<string, BusUnavailable> => {
      const bytes = bytesOverLimit(json, largeFields.inlineLimit)
      const moved = bytes === 0 ? undefined : moveLargeFields(value, bytes, largeFields)
      if (moved === undefined) return Effect.succeed(json)
      return moved.pipe(
        Effect.map(({ value: withMarkers, paths }) => encodeWithBlobs(withMarkers, paths)),
        Effect.mapError((error) => storeFailure(operation, what, error)),
      )
    }

    const ensureStream = async (name: string, subjects: string, retention: RetentionPolicy) => {
      try {
        await handle.jsm.streams.info(name)
        return
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound))
          throw error
      }
      try {
        await handle.jsm.streams.add({
          name,
          subjects: [subjects],
          retention,
          storage: StorageType.File,
          num_replicas: replicas,
          duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
        })
      } catch (error) {
        // Another worker may have created it between our look and our add.
        if (!(error instanceof JetStreamApiError)) throw error
        await handle.jsm.streams.info(name)
      }
    }

    yield* attempt("open", async () => {
      await ensureStream(names.commands, `${namespace}.cmd.>`, RetentionPolicy.Workqueue)
      await ensureStream(names.deadLetters, `${namespace}.dlq.>`, RetentionPolicy.Limits)
    })

    const ensureConsumer = (kind: string, opts: ConsumeOptions) =>
      attempt("consume", async () => {
        const config = {
          durable_name: kind,
          filter_subject: commandsFilter(namespace, kind),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(opts.ackWaitMs),
          // The host counts attempts and dead-letters; the server must never silently stop redelivering.
          max_deliver: -1,
          max_ack_pending: Math.max(1000, opts.concurrency * 64),
        }
        try {
          await handle.jsm.consumers.info(names.commands, kind)
          await handle.jsm.consumers.update(names.commands, kind, {
            ack_wait: config.ack_wait,
            max_ack_pending: config.max_ack_pending,
          })
        } catch (error) {
          if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
            throw error
          await handle.jsm.consumers.add(names.commands, config)
        }
        return handle.js.consumers.get(names.commands, kind)
      })

    /** The delivery of `m`, or undefined when it was handed back (its blobs could not be read yet). */
    const deliveryOf = (m: JsMsg): Effect.Effect<Delivery | undefined> => {
      const raw = textDecoder.decode(m.data)
      const where = `${names.commands} seq ${m.seq}`
      let settled = false
      const once = (f: () => void) =>
        Effect.sync(() => {
          if (settled) return
          settled = true
          f()
        })
      const delivery = (command: Command | MalformedCommand): Delivery => ({
        command,
        raw,
        attempt: m.info.deliveryCount,
        ack: once(() => m.ack()),
        retry: (delayMs) => once(() => m.nak(delayMs)),
        term: once(() => m.term()),
        working: Effect.sync(() => m.working()),
      })
      const parsed = parseCommand(raw, where)
      if (Result.isFailure(parsed)) return Effect.succeed(delivery(parsed.failure))
      const { value, blobs } = parsed.success
      const whole = () => {
        const command = commandOf(value, where)
        return delivery(Result.isSuccess(command) ? command.success : command.failure)
      }
      if (blobs === undefined) return Effect.succeed(whole())
      const named = `command ${String(value.commandId)} (${String(value.type)} for ${String(value.actorKind)} ${String(value.entityId)})`
      // Reading large fields back may take a while: the ack deadline starts again.
      m.working()
      return restoreLargeFields(value, blobs, largeFields.store).pipe(
        Effect.map((hole) =>
          hole === undefined
            ? whole()
            : delivery(
                new MalformedCommand({
                  where,
                  reason: `${named}: field ${pathText(hole.path)}: ${hole.reason}`,
                }),
              ),
        ),
        Effect.catch(({ path, error }) => {
          const delayMs = unreachableRetryMs(m.info.deliveryCount)
          return Effect.as(
            Effect.andThen(
              Effect.logWarning(
                `${named}: field ${pathText(path)} could not be read back, again in ${delayMs} ms: ${error.message}`,
              ),
              Effect.sync(() => m.nak(delayMs)),
            ),
            undefined,
          )
        }),
      )
    }

    const consume = (
      kind: string,
      opts: ConsumeOptions,
      handleDelivery: (d: Delivery) => Effect.Effect<void>,
    ) =>
      Effect.gen(function* () {
        const consumer = yield* ensureConsumer(kind, opts)
        const messages = yield* attempt("consume", () =>
          consumer.consume({ max_messages: Math.max(16, opts.concurrency * 2) }),
        )
        let stopping = false
        let lost: string | undefined
        // The client keeps retrying a consumer that was deleted or lost; recreating it is ours to
        // do: end this loop with an error and let the host's supervisor restart it.
        yield* Effect.forkChild(
          Effect.promise(async () => {
            for await (const status of messages.status()) {
              if (
                status.type === "consumer_deleted" ||
                status.type === "consumer_not_found" ||
                status.type === "stream_not_found"
              ) {
                lost = status.type
                messages.stop()
                return
              }
            }
          }),
        )
        // On stop: end the iterator; messages already buffered are handed back at once (nak) so
        // another worker takes them instead of waiting out the ack deadline.
        yield* Effect.forkChild(
          Effect.andThen(Deferred.await(opts.stop), () =>
            Effect.sync(() => {
              stopping = true
              messages.stop()
            }),
          ),
        )
        const processing = Stream.fromAsyncIterable(messages, (error) => failure("consume", error)).pipe(
          Stream.mapEffect(
            (m) =>
              stopping
                ? Effect.sync(() => m.nak())
                : Effect.flatMap(deliveryOf(m), (d) => (d === undefined ? Effect.void : handleDelivery(d))),
            { concurrency: opts.concurrency, unordered: true },
          ),
          Stream.runDrain,
        )
        const drainDeadline = Effect.andThen(Deferred.await(opts.stop), Effect.sleep(opts.drainTimeoutMs))
        yield* Effect.raceFirst(processing, drainDeadline)
        const closed = yield* attempt("consume", () => messages.closed())
        if (lost !== undefined) {
          return yield* Effect.fail(
            failure("consume", new Error(`consumer ${kind}: ${lost.replaceAll("_", " ")}`)),
          )
        }
        if (closed instanceof Error && !stopping) return yield* Effect.fail(failure("consume", closed))
        if (!stopping) {
          // The iterator ended without a stop: the consumer went away (deleted, connection closed).
          return yield* Effect.fail(failure("consume", new Error(`consumer ${kind} stopped delivering`)))
        }
      })

    const readDeadLetters = (kind?: string) =>
      attempt("deadLetters", async () => {
        const filter = kind === undefined ? `${namespace}.dlq.>` : deadLetterSubject(namespace, kind)
        const info = await handle.jsm.streams.info(names.deadLetters)
        const last = info.state.last_seq
        const out: DeadLetter[] = []
        if (info.state.messages === 0) return out
        const consumer = await handle.js.consumers.get(names.deadLetters, { filter_subjects: filter })
        const iter = await consumer.consume()
        for await (const m of iter) {
          try {
            out.push(JSON.parse(textDecoder.decode(m.data)) as DeadLetter)
          } catch {
            out.push({
              actorKind: kind ?? "unknown",
              commandId: "unknown",
              raw: textDecoder.decode(m.data).slice(0, 1024),
              reason: `dead letter at ${names.deadLetters} seq ${m.seq} is not JSON`,
              kind: "malformed",
              attempts: 0,
              worker: "unknown",
              at: "",
            })
          }
          if (m.seq >= last || m.info.pending === 0) break
        }
        await iter.close()
        return out
      })

    const bus: CommandBusShape = {
      backend: "nats",
      send: (commands: ReadonlyArray<Command>) =>
        Effect.suspend(() => {
          const publish = (wire: ReadonlyArray<string>) =>
            attempt("send", async () => {
              await Promise.all(
                commands.map((c, i) =>
                  handle.js.publish(commandSubject(namespace, c.actorKind, c.entityId), wire[i]!, {
                    msgID: c.commandId,
                  }),
                ),
              )
            })
          const json = commands.map(encodeCommand)
          // The common case stores nothing: every command fits inline.
          if (json.every((j) => bytesOverLimit(j, largeFields.inlineLimit) === 0)) return publish(json)
          return Effect.flatMap(
            Effect.forEach(commands, (c, i) => onWire(c, json[i]!, "send", `command ${c.commandId}`)),
            publish,
          )
        }),
      consume,
      deadLetter: (letter) =>
        Effect.suspend(() => {
          // A command that could not be decoded (its blob is lost, say) is still named by the id its
          // bytes carry, so whoever sent it learns it was given up on.
          const commandId = letter.commandId === "unknown" ? commandIdIn(letter.raw) : undefined
          const named = commandId === undefined ? letter : { ...letter, commandId }
          const msgID =
            named.commandId === "unknown"
              ? `dlq/unknown/${createHash("sha256")
                  .update(named.raw ?? "")
                  .digest("hex")}/${named.attempts}`
              : `dlq/${named.commandId}/${named.attempts}`
          return Effect.flatMap(
            onWire(named, JSON.stringify(named), "deadLetter", `dead letter of ${named.commandId}`),
            (wire) =>
              attempt("deadLetter", async () => {
                await handle.js.publish(deadLetterSubject(namespace, named.actorKind), wire, { msgID })
              }),
          )
        }),
      deadLetters: readDeadLetters,
      stats: (kind) =>
        attempt("stats", async () => {
          let pending = 0
          let inFlight = 0
          let redelivered = 0
          try {
            const info = await handle.jsm.consumers.info(names.commands, kind)
            pending = info.num_pending
            inFlight = info.num_ack_pending
            redelivered = info.num_redelivered
          } catch (error) {
            if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
              throw error
          }
          const dlq = await handle.jsm.streams.info(names.deadLetters, {
            subjects_filter: deadLetterSubject(namespace, kind),
          })
          const deadLetters = dlq.state.subjects?.[deadLetterSubject(namespace, kind)] ?? 0
          return { actorKind: kind, pending, inFlight, redelivered, deadLetters }
        }),
    }
    return bus
  })
