/**
 * Large fields of JSON payloads, decided in one place for both log adapters and the JetStream
 * command bus. On write, a payload whose stored body would exceed the inline limit has its largest
 * fields (strings, and arrays of numbers such as token ids) moved to the blob store, largest first,
 * until the body fits: each is replaced by a `BlobMarker` and its path is listed beside the
 * payload (in an event's envelope, in a command's). On read, every listed field is put back before
 * anyone sees the payload, so replay, export, scoring and actors see ordinary values and no domain
 * code knows about blobs. Nothing is lost quietly: a blob that is missing or does not hash to its
 * name turns its event into an `UndecodableEvent` (its command into a `MalformedCommand`) naming
 * the field and the hash; a store that cannot be reached fails the read like the log itself would.
 *
 * Small events pay one length comparison: a body of `n` UTF-16 units holds at most `3n` UTF-8
 * bytes, so only bodies longer than a third of the limit are measured, and only bodies over the
 * limit are walked.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { encodeBodyWithBlobs, type FieldPath, UndecodableEvent } from "../codec.ts"
import { BlobMarker, type BlobRef, type LogRecord, type NewEvent } from "../schema.ts"
import type { BlobDamaged, BlobMissing, BlobStoreShape, BlobStoreUnavailable } from "./blobStore.ts"
import { type LogEntry, LogUnavailable, type PassedOver } from "./eventLog.ts"

/** The default inline limit: a quarter of JetStream's default message limit (1 MB). */
export const DEFAULT_INLINE_LIMIT = 256 * 1024

/** Where a log (or the command bus) keeps large fields, and from what size of body on. */
export interface LargeFields {
  readonly store: BlobStoreShape
  /** Stored bodies above this many bytes have fields moved to `store`; `Infinity` keeps all inline. */
  readonly inlineLimit: number
}

const TEXT = "text/plain;charset=utf-8"
const JSON_VALUE = "application/json"

/**
 * A field's marker and its path in the envelope together take at most about this many bytes; the
 * estimate of a body's size after a move counts them, so it never undercounts.
 */
const MARKER_BYTES = 192

/** The UTF-8 size of a stored body over the limit, else 0; a body of a third of the limit or less is not measured. */
export const bytesOverLimit = (json: string, limit: number): number => {
  if (json.length * 3 <= limit) return 0
  const bytes = Buffer.byteLength(json, "utf8")
  return bytes > limit ? bytes : 0
}

/** Whether a stored body is over the limit. */
export const overInlineLimit = (json: string, limit: number): boolean => bytesOverLimit(json, limit) > 0

interface Candidate {
  readonly path: FieldPath
  /** The text stored as the blob: the string itself, or the JSON of an array of numbers. */
  readonly text: string
  readonly bytes: number
  readonly mediaType: string
}

const isScalar = (value: unknown): boolean =>
  typeof value === "number" || typeof value === "boolean" || value === null

/**
 * Every field of at least `minimum` bytes that may move: strings, and arrays of numbers (whole). A
 * top-level `type` stays in place: readers find an event's type in its bytes.
 */
const collect = (node: unknown, path: Array<string | number>, minimum: number, out: Candidate[]): void => {
  if (typeof node === "string") {
    if (node.length * 3 < minimum || (path.length === 1 && path[0] === "type")) return
    const bytes = Buffer.byteLength(node, "utf8")
    if (bytes >= minimum) out.push({ path: [...path], text: node, bytes, mediaType: TEXT })
    return
  }
  if (Array.isArray(node)) {
    if (node.length * 2 >= minimum && node.every(isScalar)) {
      const text = JSON.stringify(node)
      if (text.length >= minimum)
        out.push({ path: [...path], text, bytes: text.length, mediaType: JSON_VALUE })
      return
    }
    for (let i = 0; i < node.length; i++) {
      path.push(i)
      collect(node[i], path, minimum, out)
      path.pop()
    }
    return
  }
  if (node !== null && typeof node === "object") {
    for (const key of Object.keys(node)) {
      path.push(key)
      collect((node as Record<string, unknown>)[key], path, minimum, out)
      path.pop()
    }
  }
}

/** Sets an own property (never the `__proto__` setter: a key of that name in JSON content stays a key). */
const setOwn = (target: object, key: string | number, value: unknown): void => {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

/** A copy of `node` with `value` at `path`: only the objects along the path are copied. */
const withValueAt = (node: unknown, path: FieldPath, at: number, value: unknown): unknown => {
  if (at === path.length) return value
  const key = path[at]!
  const source = node as Record<string | number, unknown>
  const copy = (Array.isArray(node) ? node.slice() : { ...source }) as Record<string | number, unknown>
  setOwn(copy, key, withValueAt(source[key], path, at + 1, value))
  return copy
}

/** The fields of an over-limit event to move, largest first, until its body fits the limit. */
const fieldsToMove = (event: unknown, bodyBytes: number, limit: number): ReadonlyArray<Candidate> => {
  const candidates: Candidate[] = []
  // Fields smaller than this are never worth a blob (an event of many small fields stays inline).
  collect(event, [], Math.max(1, Math.floor(limit / 16)), candidates)
  // The value itself never moves (a large string or number array on its own): only fields in it.
  if (candidates.length === 1 && candidates[0]!.path.length === 0) return []
  candidates.sort((a, b) => b.bytes - a.bytes)
  const moved: Candidate[] = []
  let estimate = bodyBytes
  for (const candidate of candidates) {
    if (estimate <= limit) break
    moved.push(candidate)
    estimate += MARKER_BYTES + Buffer.byteLength(JSON.stringify(candidate.path)) - candidate.bytes
  }
  return moved
}

/** A JSON value with some fields moved to the blob store: markers in their place, and their paths. */
export interface MovedFields {
  readonly value: unknown
  readonly paths: ReadonlyArray<FieldPath>
}

/**
 * `value` with its largest fields put in the store and markers in their place, until the stored
 * body holding it (`bodyBytes` long, over the limit) would fit; undefined when no field is large
 * enough to move. `value` itself is not changed: only the objects along the moved paths are copied.
 */
export const moveLargeFields = (
  value: unknown,
  bodyBytes: number,
  fields: LargeFields,
): Effect.Effect<MovedFields, BlobStoreUnavailable> | undefined => {
  const moved = fieldsToMove(value, bodyBytes, fields.inlineLimit)
  if (moved.length === 0) return undefined
  // Blobs first, then the body that names them: a crash in between leaves an unnamed blob, never a
  // body without one.
  return Effect.map(
    Effect.forEach(moved, (field) => fields.store.put(Buffer.from(field.text, "utf8"), field.mediaType)),
    (refs) => {
      let payload: unknown = value
      for (let i = 0; i < moved.length; i++)
        payload = withValueAt(payload, moved[i]!.path, 0, { $blob: refs[i]! })
      return { value: payload, paths: moved.map((field) => field.path) }
    },
  )
}

/** The stored body of one over-limit event: its large fields put in the store, markers in their place. */
const externalize = (
  e: NewEvent,
  json: string,
  bodyBytes: number,
  fields: LargeFields,
): Effect.Effect<string, BlobStoreUnavailable> => {
  const moved = moveLargeFields(e.event, bodyBytes, fields)
  if (moved === undefined) return Effect.succeed(json)
  return Effect.map(moved, ({ value, paths }) => encodeBodyWithBlobs(e, value, paths))
}

/**
 * The stored bodies of `events` (as `encodeBodyJson` rendered them) with large fields moved to the
 * blob store; undefined, without any work, when no body is over the limit.
 */
export const storeLargeFields = (
  events: ReadonlyArray<NewEvent>,
  bodies: ReadonlyArray<string>,
  fields: LargeFields,
): Effect.Effect<ReadonlyArray<string>, BlobStoreUnavailable> | undefined => {
  // The common case allocates nothing: no body over the limit.
  let first = 0
  while (first < bodies.length && bytesOverLimit(bodies[first]!, fields.inlineLimit) === 0) first++
  if (first === bodies.length) return undefined
  const over: Array<{ readonly index: number; readonly bytes: number }> = []
  for (let i = first; i < bodies.length; i++) {
    const bytes = bytesOverLimit(bodies[i]!, fields.inlineLimit)
    if (bytes > 0) over.push({ index: i, bytes })
  }
  return Effect.map(
    Effect.forEach(over, ({ index, bytes }) =>
      Effect.map(
        externalize(events[index]!, bodies[index]!, bytes, fields),
        (body) => [index, body] as const,
      ),
    ),
    (stored) => {
      const out = bodies.slice()
      for (const [i, body] of stored) out[i] = body
      return out
    },
  )
}

const decodeMarker = Schema.decodeUnknownResult(BlobMarker)
const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The field's value from its blob's bytes, as the ref's media type says to read them. */
const fieldValue = (ref: BlobRef, content: Uint8Array): Result.Result<unknown, string> => {
  try {
    if (ref.mediaType === undefined || ref.mediaType === TEXT) return Result.succeed(utf8.decode(content))
    if (ref.mediaType === JSON_VALUE) return Result.succeed(JSON.parse(utf8.decode(content)))
  } catch (error) {
    return Result.fail(`its content does not read as ${ref.mediaType ?? TEXT}: ${(error as Error).message}`)
  }
  return Result.fail(`unknown media type "${ref.mediaType}"`)
}

export const pathText = (path: FieldPath): string => path.join(".")

/** A listed field that could not be read back, and why (its hash, when there is one). */
export interface FieldHole {
  readonly path: FieldPath
  readonly reason: string
}

/** The store failed while a listed field was being read back. */
export interface FieldUnreachable {
  readonly path: FieldPath
  readonly error: BlobStoreUnavailable
}

/**
 * Puts every field listed in `paths` back into `payload` from the store, in place (the payload must
 * be this read's own copy); the first field that cannot be read back is returned as a hole, and
 * the payload must then not be used.
 */
export const restoreLargeFields = (
  payload: unknown,
  paths: ReadonlyArray<FieldPath>,
  store: BlobStoreShape,
): Effect.Effect<FieldHole | undefined, FieldUnreachable> =>
  Effect.gen(function* () {
    for (const path of paths) {
      let parent: unknown = payload
      for (let i = 0; i < path.length - 1 && typeof parent === "object" && parent !== null; i++) {
        parent = Object.hasOwn(parent, path[i]!)
          ? (parent as Record<string | number, unknown>)[path[i]!]
          : undefined
      }
      const key = path[path.length - 1]!
      const found =
        typeof parent === "object" && parent !== null && Object.hasOwn(parent, key)
          ? (parent as Record<string | number, unknown>)[key]
          : undefined
      const marker = decodeMarker(found)
      if (Result.isFailure(marker))
        return { path, reason: "the envelope lists it, but no blob marker is there" }
      const ref = marker.success.$blob
      const content = yield* Effect.result(store.get(ref))
      if (Result.isFailure(content)) {
        const error: BlobMissing | BlobDamaged | BlobStoreUnavailable = content.failure
        if (error._tag === "BlobStoreUnavailable") return yield* Effect.fail({ path, error })
        return { path, reason: error.message }
      }
      const value = fieldValue(ref, content.success)
      if (Result.isFailure(value)) return { path, reason: `blob sha256 ${ref.sha256}: ${value.failure}` }
      setOwn(parent as object, key, value.success)
    }
    return undefined
  })

const blobFailure = (record: LogRecord, hole: FieldHole) =>
  new UndecodableEvent({
    position: record.position,
    subject: record.subject,
    eventId: record.eventId,
    stage: "blob",
    reason: `field ${pathText(hole.path)}: ${hole.reason}`,
  })

/** A record with its listed fields read back from the store, or why one could not be. */
const resolveRecord = (
  record: LogRecord,
  blobs: ReadonlyArray<FieldPath>,
  store: BlobStoreShape,
  backend: LogUnavailable["backend"],
): Effect.Effect<LogRecord | UndecodableEvent, LogUnavailable> =>
  // The payload was parsed from the log's bytes for this read alone: it is filled in place.
  restoreLargeFields(record.payload, blobs, store).pipe(
    Effect.mapError(
      ({ path, error }) =>
        new LogUnavailable({
          backend,
          operation: "read",
          reason: `reading field ${pathText(path)} of position ${record.position}: ${error.message}`,
          ...(error.code === undefined ? {} : { code: error.code }),
        }),
    ),
    Effect.map((hole) => {
      if (hole !== undefined) return blobFailure(record, hole)
      const { blobs: _listed, ...resolved } = record
      return resolved
    }),
  )

/**
 * Wraps a log reader's pull so every record it hands out has its blob fields read back. A batch
 * without such records (nearly every batch) goes through untouched.
 */
export const resolvingPull = <A extends LogEntry | PassedOver, E>(
  pull: Effect.Effect<readonly [A, ...A[]], E>,
  store: BlobStoreShape,
  backend: LogUnavailable["backend"],
): Effect.Effect<readonly [A, ...A[]], E | LogUnavailable> =>
  Effect.flatMap(pull, (entries) => {
    for (const entry of entries) {
      if ((entry as LogRecord).blobs !== undefined) {
        return Effect.forEach(entries, (e) => {
          const blobs = (e as LogRecord).blobs
          return blobs === undefined
            ? Effect.succeed<LogEntry | PassedOver>(e)
            : resolveRecord(e as LogRecord, blobs, store, backend)
        }) as unknown as Effect.Effect<readonly [A, ...A[]], LogUnavailable>
      }
    }
    return Effect.succeed(entries)
  })

/**
 * Keeps the appends to one subject in call order when some of them first store blobs, which
 * takes a while: an append that stores blobs, or that comes while an earlier one on its subject
 * is still storing, runs only once that earlier one has finished. An append with nothing to
 * store on a subject with nothing pending runs at once (one map lookup).
 */
export const subjectOrder = () => {
  const pending = new Map<string, Promise<void>>()
  return <A, E>(subject: string, storesBlobs: boolean, append: Effect.Effect<A, E>): Effect.Effect<A, E> => {
    const before = pending.get(subject)
    if (!storesBlobs && before === undefined) return append
    let markDone = (): void => {}
    const done = new Promise<void>((resolve) => {
      markDone = () => {
        if (pending.get(subject) === done) pending.delete(subject)
        resolve()
      }
    })
    pending.set(subject, done)
    return Effect.ensuring(
      Effect.flatMap(before === undefined ? Effect.void : Effect.promise(() => before), () => append),
      Effect.sync(markDone),
    )
  }
}
