/**
 * The JetStream adapter of the `EventLog` port: one file-storage stream per namespace holding
 * `<ns>.ev.>`. `Nats-Msg-Id = eventId` makes appends idempotent within the stream's duplicate
 * window; `Nats-Expected-Last-Subject-Sequence` gives single-writer optimistic concurrency (error
 * 10071 becomes `ConcurrencyConflict`); reads, scans and tails use an ephemeral pull consumer with
 * one filter subject (nats-server 2.9 has no multi-filter). Semantics match `embeddedLog` through one
 * contract suite. This module assembles the adapter from the append path (`jetStreamAppend`, whose
 * acks arrive on `ackInbox`: see there for why appends bypass `js.publish`) and the reader
 * (`jetStreamReplay`). Fields of events over the inline limit go to the namespace's Object Store
 * bucket (`largeFields`, `objectBlobStore`) before the event that names them is published.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { encodeBodyJson } from "../codec.ts"
import type { NewEvent } from "../schema.ts"
import { streamsFor } from "../subjects.ts"
import { ackInbox } from "./ackInbox.ts"
import type { BlobStoreShape } from "./blobStore.ts"
import {
  type AppendError,
  type Appended,
  type AppendOptions,
  EventLog,
  type EventLogShape,
  type LogEntry,
  type LogStats,
  LogUnavailable,
  type PassedOver,
  type ReadOptions,
  type ScanOptions,
} from "./eventLog.ts"
import { type AppendOutcome, appendChained, appendPipelined } from "./jetStreamAppend.ts"
import { JetStreamReplay } from "./jetStreamReplay.ts"
import {
  DEFAULT_INLINE_LIMIT,
  type LargeFields,
  resolvingPull,
  storeLargeFields,
  subjectOrder,
} from "./largeFields.ts"
import { NatsClient, type NatsHandle, natsFailure } from "./natsConnection.ts"
import { blobBucketFor, objectBlobStore } from "./objectBlobStore.ts"

export interface JetStreamLogOptions {
  readonly namespace: string
  /** Stream replicas when the stream is created; default 1 (production clusters use 3). */
  readonly replicas?: number
  /** How long JetStream remembers event ids for dedupe; default 2 minutes. */
  readonly duplicateWindowMs?: number
  /** Decoded entries a reader may hold before its consumer pauses; default 16384. */
  readonly readBuffer?: number
  /**
   * Events whose stored body would be larger than this many bytes keep their largest fields in the
   * blob store (default 256 KiB, under the server's 1 MB message limit; `Infinity` keeps every field
   * inline, and the server refuses an event over its limit).
   */
  readonly inlineLimitBytes?: number
  /** Where large fields go; default the Object Store bucket `<NS>_BLOBS` (`blobBucketFor`). */
  readonly blobStore?: BlobStoreShape
}

/** Decoded entries a reader may hold before the consumer pauses (replay has no other backpressure). */
const READ_BUFFER = 16_384

const streamConfig = (name: string, filter: string, options: JetStreamLogOptions) => ({
  name,
  subjects: [filter],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.Old,
  duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
  num_replicas: options.replicas ?? 1,
  // The log is append-only: single messages are never deleted.
  deny_delete: true,
})

const isApiError = (error: unknown, code: number): boolean =>
  error instanceof JetStreamApiError && error.code === code

/** Creates the events stream, or checks that an existing one stores the namespace's events. */
const ensureStream = async (
  handle: NatsHandle,
  name: string,
  filter: string,
  options: JetStreamLogOptions,
) => {
  const check = (subjects: ReadonlyArray<string> | undefined) => {
    if (!subjects?.includes(filter)) {
      throw new LogUnavailable({
        backend: "nats",
        operation: "open",
        reason: `stream ${name} exists with subjects [${subjects?.join(", ") ?? ""}], not ${filter}; fix or delete that stream`,
      })
    }
  }
  try {
    check((await handle.jsm.streams.info(name)).config.subjects)
    return
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error
  }
  try {
    await handle.jsm.streams.add(streamConfig(name, filter, options))
  } catch (error) {
    // Another process may have created it between our look and our add.
    if (!(error instanceof JetStreamApiError)) throw error
    check((await handle.jsm.streams.info(name)).config.subjects)
  }
}

const isLiteral = (subject: string) => !subject.includes("*") && !subject.includes(">")

/** Opens (creating if needed) the namespace's events stream and returns the adapter. */
export const makeJetStreamLog = (
  handle: NatsHandle,
  options: JetStreamLogOptions,
): Effect.Effect<EventLogShape, LogUnavailable> =>
  Effect.gen(function* () {
    const namespace = options.namespace
    const streams = yield* Effect.try({
      try: () => streamsFor(namespace),
      catch: (error) => natsFailure("open", error),
    })
    const stream = streams.events
    const allEvents = `${namespace}.ev.>`
    const prefix = `${namespace}.ev.`
    yield* Effect.tryPromise({
      try: () => ensureStream(handle, stream, allEvents, options),
      catch: (error) => natsFailure("open", error, `stream ${stream}`),
    })
    const inbox = ackInbox(handle.nc)
    const largeFields: LargeFields = {
      store:
        options.blobStore ??
        objectBlobStore(handle, { bucket: blobBucketFor(namespace), replicas: options.replicas ?? 1 }),
      inlineLimit: options.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT,
    }

    const refuseSubject = (subject: string): LogUnavailable | undefined => {
      const valid =
        subject.startsWith(prefix) &&
        subject.length > prefix.length &&
        !/[\s*>]/.test(subject) &&
        !subject.split(".").includes("")
      return valid
        ? undefined
        : new LogUnavailable({
            backend: "nats",
            operation: "append",
            reason: `subject "${subject}" is not an event subject of ${allEvents}`,
          })
    }

    const inOrder = subjectOrder()

    const append = (
      subject: string,
      events: ReadonlyArray<NewEvent>,
      appendOptions?: AppendOptions,
    ): Effect.Effect<Appended, AppendError> =>
      Effect.suspend(() => {
        const refused = refuseSubject(subject)
        if (refused !== undefined) return Effect.fail(refused)
        if (events.length === 0) return Effect.succeed<Appended>({ positions: [], duplicates: 0 })
        // Every event is validated before the first byte is published.
        const bodies: string[] = []
        for (const event of events) {
          const body = encodeBodyJson(event)
          if (Result.isFailure(body)) return Effect.fail(body.failure)
          bodies.push(body.success)
        }
        const stored = storeLargeFields(events, bodies, largeFields)
        return inOrder(
          subject,
          stored !== undefined,
          stored === undefined
            ? Effect.suspend(() => publish(subject, events, bodies, appendOptions))
            : Effect.flatMap(
                Effect.mapError(stored, (error) => natsFailure("append", error)),
                (withBlobs) => publish(subject, events, withBlobs, appendOptions),
              ),
        )
      })

    const publish = (
      subject: string,
      events: ReadonlyArray<NewEvent>,
      json: ReadonlyArray<string>,
      appendOptions: AppendOptions | undefined,
    ): Effect.Effect<Appended, AppendError> => {
      // `Buffer.from` carves small bodies out of a shared pool (see `codec.encodeBody`).
      const bodies = json.map((body) => Buffer.from(body, "utf8"))
      const expected = appendOptions?.expectedLastPosition
      // Resumed straight from the ack callback: an agent appends a few events per step, so a
      // promise per append was a measurable share of a step.
      return Effect.callback<Appended, AppendError>((resume) => {
        const done = (outcome: AppendOutcome) =>
          resume("ok" in outcome ? Effect.succeed(outcome.ok) : Effect.fail(outcome.error))
        if (expected === undefined) appendPipelined(inbox, subject, bodies, events, done)
        else appendChained(inbox, subject, bodies, events, expected, done)
      })
    }

    const lastPositionOf = async (subject: string): Promise<number> => {
      try {
        const message = await handle.jsm.streams.getMessage(stream, { last_by_subj: subject })
        return message?.seq ?? 0
      } catch (error) {
        // 2.9 answers 10037 "no message found" for a subject without messages.
        if (isApiError(error, JetStreamApiCodes.NoMessageFound)) return 0
        throw error
      }
    }

    const lastPosition = (subject: string) =>
      Effect.tryPromise({
        try: () => lastPositionOf(subject),
        catch: (error) => natsFailure("lastPosition", error),
      })

    const replay = (
      readOptions: ReadOptions | ScanOptions | undefined,
      follow: boolean,
    ): Stream.Stream<LogEntry | PassedOver, LogUnavailable> =>
      Stream.unwrap(
        Effect.gen(function* () {
          const filter = readOptions?.filter ?? allEvents
          const from = Math.max(1, Math.floor(readOptions?.from ?? 1))
          const operation = follow ? "tail" : "read"
          let upTo: number | undefined
          if (!follow) {
            // A read ends at the last position as of now; for one entity that is its last event.
            upTo = yield* Effect.tryPromise({
              try: async () =>
                isLiteral(filter)
                  ? lastPositionOf(filter)
                  : (await handle.jsm.streams.info(stream)).state.last_seq,
              catch: (error) => natsFailure(operation, error),
            })
            if (upTo < from) return Stream.empty
          }
          const source = yield* Effect.acquireRelease(
            Effect.sync(() => {
              const r = new JetStreamReplay(
                handle,
                stream,
                filter === allEvents ? undefined : filter,
                from,
                upTo,
                options.readBuffer ?? READ_BUFFER,
                readOptions !== undefined && "types" in readOptions ? readOptions.types : undefined,
              )
              r.start()
              return r
            }),
            (r) => Effect.promise(() => r.close()),
          )
          return Stream.fromPull(Effect.succeed(resolvingPull(source.pull, largeFields.store, "nats")))
        }),
      )

    const stats = Effect.tryPromise({
      try: async (): Promise<LogStats> => {
        const { state } = await handle.jsm.streams.info(stream)
        return {
          backend: "nats",
          stream,
          location: `nats://${handle.nc.getServer()}`,
          events: state.messages,
          bytes: state.bytes,
          firstPosition: state.messages === 0 ? 0 : state.first_seq,
          lastPosition: state.last_seq,
          subjects: state.num_subjects ?? 0,
        }
      },
      catch: (error) => natsFailure("stats", error),
    })

    return {
      backend: "nats",
      namespace,
      append,
      // Without `types` the reader decodes every entry: nothing is passed over.
      read: (readOptions?: ReadOptions) =>
        replay(readOptions, false) as Stream.Stream<LogEntry, LogUnavailable>,
      scan: (scanOptions: ScanOptions) => replay(scanOptions, false),
      tail: (readOptions?: ReadOptions) =>
        replay(readOptions, true) as Stream.Stream<LogEntry, LogUnavailable>,
      lastPosition,
      stats,
    } satisfies EventLogShape
  })

/** The EventLog on the shared `NatsClient` connection. */
export const layerJetStream = (
  options: JetStreamLogOptions,
): Layer.Layer<EventLog, LogUnavailable, NatsClient> =>
  Layer.effect(
    EventLog,
    Effect.gen(function* () {
      const handle = yield* NatsClient
      return yield* makeJetStreamLog(handle, options)
    }),
  )
