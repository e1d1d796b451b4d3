/**
 * The `EventLog` port: the system of record. Append (idempotent by `eventId`, optionally guarded by
 * the subject's last position for single-writer concurrency), read an entity or everything from a
 * position, tail with catch-up, and stats. Two adapters pass one contract suite: `embeddedLog`
 * (in-process, on disk) and `jetStreamLog` (NATS JetStream, file storage).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { InvalidEvent, UndecodableEvent } from "../codec.ts"
import type { LogRecord, NewEvent } from "../schema.ts"

/** Another writer appended to the subject since the caller read it (JetStream error 10071). */
export class ConcurrencyConflict extends Schema.TaggedError<ConcurrencyConflict>()("ConcurrencyConflict", {
  subject: Schema.String,
  expected: Schema.Number,
  actual: Schema.optionalKey(Schema.Number),
}) {
  override get message(): string {
    const actual = this.actual === undefined ? "" : `, found ${this.actual}`
    return `concurrency conflict on ${this.subject}: expected last position ${this.expected}${actual}`
  }
}

/** The log could not be reached or refused an operation for infrastructure reasons. */
export class LogUnavailable extends Schema.TaggedError<LogUnavailable>()("LogUnavailable", {
  backend: Schema.Literals(["embedded", "nats"]),
  operation: Schema.String,
  code: Schema.optionalKey(Schema.String),
  reason: Schema.String,
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `${this.backend} log: ${this.operation} failed${code}: ${this.reason}`
  }
}

export type AppendError = ConcurrencyConflict | InvalidEvent | LogUnavailable

export interface AppendOptions {
  /**
   * The position of the subject's last event as the writer saw it; `0` means the subject must be
   * empty. A mismatch fails with `ConcurrencyConflict`. Later events of the same call are chained:
   * each is expected right after the one before it (a duplicate counts at its original position),
   * so a retry of an already-written batch reports duplicates instead of a conflict. A conflict on
   * the first new event writes nothing; JetStream has no atomic batch, so a conflict part-way
   * leaves the prefix written on both adapters, and the writer's retry dedupes it.
   */
  readonly expectedLastPosition?: number
}

export interface Appended {
  /** The position of each event, in order; a duplicate reports the position it was first written at. */
  readonly positions: ReadonlyArray<number>
  /** How many of the events were already in the log (same `eventId`) and were not written again. */
  readonly duplicates: number
}

export interface ReadOptions {
  /** A subject filter with NATS wildcards (`*`, trailing `>`); default: every event of the namespace. */
  readonly filter?: string
  /** The first position to include; default 1. */
  readonly from?: number
}

/** A read for folds that look at some event types only (see `EventLogShape.scan`). */
export interface ScanOptions extends ReadOptions {
  /** The event types the caller folds; entries of other types may come back as `PassedOver`. */
  readonly types: ReadonlySet<string>
}

/**
 * An entry a scan did not decode because its event type is not among those asked for: its
 * position, its subject (from the log) and its type (read from the stored bytes). Nothing else of
 * it was looked at, so a body broken past its type goes unnoticed here; `read` reports it.
 */
export class PassedOver {
  readonly _tag = "PassedOver"
  constructor(
    readonly position: number,
    readonly subject: string,
    readonly type: string,
  ) {}
}

export interface LogStats {
  readonly backend: "embedded" | "nats"
  readonly stream: string
  readonly location: string
  readonly events: number
  readonly bytes: number
  readonly firstPosition: number
  readonly lastPosition: number
  readonly subjects: number
  /**
   * What the adapter knows to be damaged without reading the log: the embedded log from the index
   * it builds on open (lines whose envelope does not decode, an incomplete last line, tails cut by
   * a writer). Absent on JetStream, which stores whole messages: there only a read finds an entry
   * that does not decode, and the reader reports it.
   */
  readonly damage?: LogDamage
}

/** How many undecodable positions a report carries; the count is always exact. */
export const DAMAGE_POSITIONS_KEPT = 1000

/**
 * An incomplete last line of the embedded log: no newline ends it, so it is no event. A crash
 * mid-write leaves one; so does a copy of the file taken mid-write, or a truncated file.
 */
export interface TornTail {
  /** Where its bytes start in the file, and how many there are. */
  readonly offset: number
  readonly bytes: number
  /** The position the line would have had. */
  readonly position: number
  /** What its bytes still say about it, when they get that far. */
  readonly subject?: string
  readonly type?: string
  /** A live process holding the writer lock: the line may be a write still in progress. */
  readonly writer?: number
}

/**
 * A torn tail a writer cut off when it opened the log. The cut is recorded as a `LogTailCut`
 * event (so the log's own history says it happened, wherever the file is copied) and the cut
 * bytes are kept in a side file beside the log (so nothing is lost, even bytes that were no event).
 */
export interface TailCut {
  /** The position of its `LogTailCut` event (0 until it is written). */
  readonly recordedAtPosition: number
  readonly offset: number
  readonly bytes: number
  readonly sha256: string
  /** The position the cut line would have had. */
  readonly position: number
  /** The side file holding the cut bytes. */
  readonly keptIn: string
}

export interface LogDamage {
  /** Lines whose envelope does not decode (or that claim another position): the exact count. */
  readonly undecodable: number
  /** Their positions, in order (the first `DAMAGE_POSITIONS_KEPT`). */
  readonly undecodablePositions: ReadonlyArray<number>
  /** An incomplete last line a reader sees now (a writer cuts it on open). */
  readonly tornTail?: TornTail
  /** The cut this process made when it opened the log, if it made one (it is also in `cuts`). */
  readonly cutOnOpen?: TailCut
  /** Every cut recorded in the log, oldest first. */
  readonly cuts: ReadonlyArray<TailCut>
}

/**
 * An entry read from the log: a record whose envelope decoded, or the reason one did not. A broken
 * entry is surfaced with its position so readers can report it and go on; it never ends a read.
 */
export type LogEntry = LogRecord | UndecodableEvent

export interface EventLogShape {
  readonly backend: "embedded" | "nats"
  readonly namespace: string
  /** Appends events to one subject, in order. Duplicate `eventId`s are not written twice. */
  readonly append: (
    subject: string,
    events: ReadonlyArray<NewEvent>,
    options?: AppendOptions,
  ) => Effect.Effect<Appended, AppendError>
  /** Reads matching entries from `from` up to the last position at the time of the call, then ends. */
  readonly read: (options?: ReadOptions) => Stream.Stream<LogEntry, LogUnavailable>
  /**
   * Like `read`, for a fold over some event types: an entry of another type may come back as
   * `PassedOver` instead of being decoded (JSON parsing was most of a rebuild's cost). Every
   * position `read` would yield is yielded, in the same order.
   */
  readonly scan: (options: ScanOptions) => Stream.Stream<LogEntry | PassedOver, LogUnavailable>
  /** Like `read`, then keeps following new entries until interrupted. */
  readonly tail: (options?: ReadOptions) => Stream.Stream<LogEntry, LogUnavailable>
  /** The position of the last event on `subject`, or 0 when it has none. */
  readonly lastPosition: (subject: string) => Effect.Effect<number, LogUnavailable>
  readonly stats: Effect.Effect<LogStats, LogUnavailable>
}

export class EventLog extends Context.Service<EventLog, EventLogShape>()("rollout/EventLog") {}
