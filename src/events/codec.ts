/**
 * The only place bytes meet events. The log stores each event as a JSON body
 * `{eventId, recordedAt, correlationId, causationId, actor, schemaVersion, event}` (plus `blobs`, the
 * paths of fields the log moved to the blob store); the embedded log wraps that body with its
 * position and subject on one line. Decoding is in two steps so replay stays fast: `decodeBody`
 * checks the envelope, `decodeEvent` upcasts and validates the payload.
 * Anything malformed comes back as an `UndecodableEvent` naming its position, never as a throw.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { upcasters as productionUpcasters, type UpcasterTable, upcast } from "./legacy.ts"
import { payloadCheck } from "./payloadValidators.ts"
import {
  currentVersions,
  DomainEvent,
  type Envelope,
  eventSchemas,
  isEventType,
  type LogRecord,
  type NewEvent,
} from "./schema.ts"

/** An event read from the log that cannot be used: where it is and what is wrong with it. */
export class UndecodableEvent extends Schema.TaggedError<UndecodableEvent>()("UndecodableEvent", {
  position: Schema.Number,
  subject: Schema.String,
  eventId: Schema.optionalKey(Schema.String),
  stage: Schema.Literals(["envelope", "version", "payload", "blob"]),
  reason: Schema.String,
  /** The record's event type, when its envelope was read and its payload was not usable. */
  type: Schema.optionalKey(Schema.String),
}) {
  override get message(): string {
    const id = this.eventId === undefined ? "" : ` (event ${this.eventId})`
    return `undecodable event at position ${this.position} on ${this.subject}${id}: ${this.stage}: ${this.reason}`
  }
}

/** An event that does not match its schema on the way in; nothing was written. */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>()("InvalidEvent", {
  eventId: Schema.String,
  type: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `refusing to append ${this.type} ${this.eventId}: ${this.reason}`
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true })

const validators = new Map<string, (u: unknown) => Result.Result<unknown, Schema.SchemaError>>()
const validatorFor = (type: string) => {
  let v = validators.get(type)
  if (v === undefined) {
    const schema = isEventType(type) ? eventSchemas[type] : DomainEvent
    v = Schema.decodeUnknownResult(schema as Schema.Codec<unknown, unknown>)
    validators.set(type, v)
  }
  return v
}

/** Validates an event against its schema and renders the stored JSON body. */
export const encodeBodyJson = (e: NewEvent): Result.Result<string, InvalidEvent> => {
  const type = (e.event as { type?: unknown }).type
  const typeName = typeof type === "string" ? type : "<no type>"
  if (typeof type !== "string" || !isEventType(type)) {
    return Result.fail(new InvalidEvent({ eventId: e.eventId, type: typeName, reason: "unknown event type" }))
  }
  for (const key of ["eventId", "recordedAt", "correlationId", "causationId", "actor"] as const) {
    if (typeof e[key] !== "string" || (key === "eventId" && e[key].length === 0)) {
      return Result.fail(
        new InvalidEvent({ eventId: String(e.eventId), type, reason: `envelope ${key} missing` }),
      )
    }
  }
  const checked = validatorFor(type)(e.event)
  if (Result.isFailure(checked)) {
    return Result.fail(new InvalidEvent({ eventId: e.eventId, type, reason: checked.failure.message }))
  }
  return Result.succeed(
    JSON.stringify({
      eventId: e.eventId,
      recordedAt: e.recordedAt,
      correlationId: e.correlationId,
      causationId: e.causationId,
      actor: e.actor,
      schemaVersion: currentVersions[type],
      event: e.event,
    }),
  )
}

/** A field's place in a payload: object keys and array indices from the payload's root. */
export type FieldPath = ReadonlyArray<string | number>

/**
 * The stored body of an event `encodeBodyJson` accepted, with some fields moved to the blob store:
 * `payload` holds a `BlobMarker` at each path in `blobs`, and the envelope lists those paths so a
 * reader knows where to look without walking the payload.
 */
export const encodeBodyWithBlobs = (e: NewEvent, payload: unknown, blobs: ReadonlyArray<FieldPath>): string =>
  JSON.stringify({
    eventId: e.eventId,
    recordedAt: e.recordedAt,
    correlationId: e.correlationId,
    causationId: e.causationId,
    actor: e.actor,
    schemaVersion: currentVersions[e.event.type],
    blobs,
    event: payload,
  })

/**
 * The stored bytes of an event. `Buffer.from` carves small bodies out of a shared pool, where
 * `TextEncoder` allocated an ArrayBuffer per event (measured: a sixth of the append path's CPU with
 * the garbage collection it caused).
 */
export const encodeBody = (e: NewEvent): Result.Result<Uint8Array, InvalidEvent> =>
  Result.map(encodeBodyJson(e), (json) => Buffer.from(json, "utf8"))

const fail = (
  position: number,
  subject: string,
  stage: UndecodableEvent["stage"],
  reason: string,
  eventId?: string,
  type?: string,
) =>
  Result.fail(
    new UndecodableEvent({
      position,
      subject,
      stage,
      reason,
      ...(eventId === undefined ? {} : { eventId }),
      ...(type === undefined ? {} : { type }),
    }),
  )

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const isFieldPath = (u: unknown): u is FieldPath =>
  Array.isArray(u) &&
  u.length > 0 &&
  u.every((key) => typeof key === "string" || (typeof key === "number" && Number.isInteger(key) && key >= 0))

/** Checks a parsed body's envelope; the payload stays unchecked (see `decodeEvent`). */
const recordFromParsed = (
  parsed: unknown,
  position: number,
  subject: string,
): Result.Result<LogRecord, UndecodableEvent> => {
  if (!isRecord(parsed)) return fail(position, subject, "envelope", "body is not a JSON object")
  const { eventId, recordedAt, correlationId, causationId, actor, schemaVersion, event, blobs } = parsed
  if (typeof eventId !== "string" || eventId.length === 0) {
    return fail(position, subject, "envelope", "eventId missing or not a string")
  }
  if (
    typeof recordedAt !== "string" ||
    typeof correlationId !== "string" ||
    typeof causationId !== "string" ||
    typeof actor !== "string"
  ) {
    return fail(
      position,
      subject,
      "envelope",
      "recordedAt/correlationId/causationId/actor must be strings",
      eventId,
    )
  }
  if (typeof schemaVersion !== "number" || !Number.isInteger(schemaVersion) || schemaVersion < 1) {
    return fail(position, subject, "envelope", "schemaVersion must be a positive integer", eventId)
  }
  if (!isRecord(event) || typeof event.type !== "string") {
    return fail(position, subject, "envelope", "event must be an object with a string type", eventId)
  }
  const record: LogRecord = {
    position,
    subject,
    eventId,
    recordedAt,
    correlationId,
    causationId,
    actor,
    schemaVersion,
    type: event.type,
    payload: event,
  }
  if (blobs === undefined) return Result.succeed(record)
  if (!Array.isArray(blobs) || blobs.length === 0 || !blobs.every(isFieldPath)) {
    return fail(position, subject, "envelope", "blobs must be a non-empty list of field paths", eventId)
  }
  return Result.succeed({ ...record, blobs })
}

const parseJson = (text: string): { ok: true; value: unknown } | { ok: false; reason: string } => {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch (error) {
    return { ok: false, reason: `invalid JSON: ${(error as Error).message}` }
  }
}

/** Decodes a stored body (JetStream message data) at a known position and subject. */
export const decodeBody = (
  bytes: Uint8Array | string,
  position: number,
  subject: string,
): Result.Result<LogRecord, UndecodableEvent> => {
  let text: string
  if (typeof bytes === "string") text = bytes
  else {
    try {
      text = decoder.decode(bytes)
    } catch {
      return fail(position, subject, "envelope", "body is not valid UTF-8")
    }
  }
  const parsed = parseJson(text)
  if (!parsed.ok) return fail(position, subject, "envelope", parsed.reason)
  return recordFromParsed(parsed.value, position, subject)
}

const BODY_START = Buffer.from('{"eventId":"')
const LINE_BODY = Buffer.from(',"body":{"eventId":"')
const TYPE_MARK = Buffer.from(',"event":{"type":"')

/** The type name starting at `at` up to its closing quote: letters and digits only, else undefined. */
const typeNameAt = (bytes: Buffer, at: number, end: number): string | undefined => {
  let i = at
  for (; i < end && i - at <= 64; i++) {
    const c = bytes[i]!
    if (c === 34) break
    const alphanumeric = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    if (!alphanumeric) return undefined
  }
  return i > at && i < end && bytes[i] === 34 ? bytes.toString("latin1", at, i) : undefined
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * The event type of a stored body, read from its bytes without parsing them, when the body has the
 * layout `encodeBodyJson` writes (`{"eventId":"…", …,"event":{"type":"X", …}}`); otherwise
 * undefined, and the caller decodes it in full. Every quote inside a JSON string is escaped, so
 * the first `,"event":{"type":"` of such a body is the envelope's own. A body that merely looks
 * right can still be broken further on: only readers that leave entries of other types alone use
 * this (`EventLog.scan`).
 */
export const peekBodyType = (bytes: Uint8Array): string | undefined => {
  const buf = asBuffer(bytes)
  if (
    buf.length < BODY_START.length ||
    buf.compare(BODY_START, 0, BODY_START.length, 0, BODY_START.length) !== 0
  )
    return undefined
  const mark = buf.indexOf(TYPE_MARK, BODY_START.length)
  return mark === -1 ? undefined : typeNameAt(buf, mark + TYPE_MARK.length, buf.length)
}

/** `peekBodyType` for an embedded-log line (`{"position":…,"subject":…,"body":{…}}`) in `buf[start, end)`. */
export const peekLineType = (buf: Buffer, start: number, end: number): string | undefined => {
  const body = buf.indexOf(LINE_BODY, start)
  if (body === -1 || body >= end) return undefined
  const mark = buf.indexOf(TYPE_MARK, body + LINE_BODY.length)
  return mark === -1 || mark >= end ? undefined : typeNameAt(buf, mark + TYPE_MARK.length, end)
}

/** One line of the embedded log: the body plus the position and subject the log assigned. */
export const encodeStoredLine = (position: number, subject: string, bodyJson: string): string =>
  `{"position":${position},"subject":${JSON.stringify(subject)},"body":${bodyJson}}\n`

/**
 * Decodes one embedded-log line. `where` describes the line (file and line number) for errors when
 * the line is too broken to know its own position.
 */
export const decodeStoredLine = (
  line: string,
  fallbackPosition: number,
  where: string,
): Result.Result<LogRecord, UndecodableEvent> => {
  const parsed = parseJson(line)
  if (!parsed.ok) return fail(fallbackPosition, where, "envelope", parsed.reason)
  const value = parsed.value
  if (!isRecord(value) || typeof value.position !== "number" || typeof value.subject !== "string") {
    return fail(fallbackPosition, where, "envelope", "line lacks position/subject")
  }
  return recordFromParsed(value.body, value.position, value.subject)
}

/**
 * Upcasts a record's payload to the current version and validates it against its schema. Unknown
 * types, versions newer than this build and schema violations are reported with the position.
 */
export const decodeEvent = (
  record: LogRecord,
  table: UpcasterTable = productionUpcasters,
): Result.Result<Envelope, UndecodableEvent> => {
  const { position, subject, eventId, type } = record
  if (record.blobs !== undefined) {
    // The log resolves these before handing a record out; a record decoded from bytes by hand has not.
    const paths = record.blobs.map((p) => p.join(".")).join(", ")
    return fail(
      position,
      subject,
      "blob",
      `fields ${paths} are in the blob store and were not read back`,
      eventId,
      type,
    )
  }
  if (!isEventType(type))
    return fail(position, subject, "payload", `unknown event type "${type}"`, eventId, type)
  let payload = record.payload as Record<string, unknown>
  const target = currentVersions[type]
  if (record.schemaVersion !== target) {
    const lifted = upcast(table, type, record.schemaVersion, target, payload)
    if ("error" in lifted) return fail(position, subject, "version", lifted.error, eventId, type)
    payload = lifted.payload
  }
  let event: unknown = payload
  if (!payloadCheck(type)(payload)) {
    // Refused by the fast check: the Effect Schema gives the verdict and says what is wrong.
    const checked = validatorFor(type)(payload)
    if (Result.isFailure(checked))
      return fail(position, subject, "payload", checked.failure.message, eventId, type)
    event = checked.success
  }
  return Result.succeed({
    position,
    subject,
    eventId,
    recordedAt: record.recordedAt,
    correlationId: record.correlationId,
    causationId: record.causationId,
    actor: record.actor,
    schemaVersion: target,
    event: event as DomainEvent,
  })
}
