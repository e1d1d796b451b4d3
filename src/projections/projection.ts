/**
 * What a projection is: a pure fold `{ name, version, initial, apply }` over decoded envelopes, the
 * JSON contract that lets a runner checkpoint its state, and the one reference fold (`advance`,
 * `foldAll`) shared by the runner and the property tests, so "resume from a checkpoint" and "fold
 * from position 0" are the same code. Everything here is pure: no I/O, no clock, no randomness.
 */
import * as Result from "effect/Result"
import type * as Schema from "effect/Schema"
import { decodeEvent, UndecodableEvent } from "../events/codec.ts"
import type { UpcasterTable } from "../events/legacy.ts"
import { type LogEntry, PassedOver } from "../events/log/eventLog.ts"
import type { Envelope, EventType } from "../events/schema.ts"
import { projectionNamePattern, subjectMatches } from "../events/subjects.ts"

/** A JSON value: what a checkpoint can hold. */
export type Json = Schema.Json

/**
 * A projection. Methods (not function properties) so a `Projection<RunsState>` is also an
 * `AnyProjection`; the runner never mixes states of different projections.
 */
export interface Projection<S> {
  /** Unique, stable: it names the checkpoint file / KV key (see `projectionNamePattern`). */
  readonly name: string
  /** Bump whenever `apply` or the state's shape changes: a checkpoint of another version is rebuilt. */
  readonly version: number
  readonly initial: S
  /**
   * Pure and total. Returns the next state and never mutates `state`: snapshots handed to readers
   * and the state being checkpointed are the same objects, so a mutation would corrupt them.
   */
  apply(state: S, envelope: Envelope): S
  /** Optional: lets a projection count entries that could not be decoded (they are skipped either way). */
  onUndecodable?(state: S, event: UndecodableEvent): S
  /**
   * A subject filter relative to the namespace (`ev.run.*`, `ev.episode.>`), so one definition works
   * in every namespace; default: every event. One filter per consumer (nats-server 2.9 has no lists).
   */
  readonly filter?: string
  /**
   * Optional: the event types `apply` reacts to. Entries of other types only move the position —
   * they are not decoded and validated, which was most of a rebuild's cost for folds that ignore
   * most events. A type string is never renamed (see schema.ts), so this stays true across versions.
   */
  readonly types?: ReadonlyArray<EventType>
  /** For states that are not plain JSON (Maps, Sets): how to store them. Omit when the state is JSON. */
  encode?(state: S): Json
  /** The inverse of `encode`; may throw on a malformed value, which the runner treats as "rebuild". */
  decode?(json: Json): S
}

/** A projection of any state, as registries and the CLI hold them. */
export type AnyProjection = Projection<unknown>

/**
 * A fold in progress: the state plus where it stands in the log. `position` is the last entry
 * consumed (applied or undecodable) among those the projection reads; anything at or below it is a
 * redelivery.
 */
export interface Folded<S> {
  readonly state: S
  readonly position: number
  /** Undecodable entries skipped since position 0 (across checkpoints). */
  readonly undecodable: number
}

export const initialFolded = <S>(projection: Projection<S>): Folded<S> => ({
  state: projection.initial,
  position: 0,
  undecodable: 0,
})

/** What one `advance` call did, besides the new fold. */
export interface Advanced<S> {
  readonly folded: Folded<S>
  readonly applied: number
  /** Entries at or below the fold's position: redeliveries, ignored. */
  readonly duplicates: number
  /** Entries outside the projection's filter, ignored (a filtered log read yields none). */
  readonly filteredOut: number
  /** Undecodable entries met in this call, in order, each with its position. */
  readonly undecodable: ReadonlyArray<UndecodableEvent>
}

export interface AdvanceOptions {
  /** Upcasters for retired event versions; default: the production table. */
  readonly upcasters?: UpcasterTable
}

const matchers = new WeakMap<AnyProjection, ((subject: string) => boolean) | null>()

/** Subjects are `<ns>.<rest>`; a projection's filter applies to `<rest>`. */
const matcherFor = <S>(projection: Projection<S>): ((subject: string) => boolean) | null => {
  const key = projection as AnyProjection
  let match = matchers.get(key)
  if (match === undefined) {
    const filter = projection.filter
    if (filter === undefined || filter === ">") match = null
    else if (filter.endsWith(".>") && !filter.includes("*")) {
      // The common shape (`ev.run.>`) as a prefix test: no split per event on the hot path.
      const prefix = filter.slice(0, -1)
      match = (subject) => subject.startsWith(prefix, subject.indexOf(".") + 1)
    } else match = (subject) => subjectMatches(filter, subject.slice(subject.indexOf(".") + 1))
    matchers.set(key, match)
  }
  return match
}

const typeSets = new WeakMap<object, ReadonlySet<string>>()
const typesFor = <S>(projection: Projection<S>): ReadonlySet<string> | undefined => {
  if (projection.types === undefined) return undefined
  let set = typeSets.get(projection.types)
  if (set === undefined) {
    set = new Set(projection.types)
    typeSets.set(projection.types, set)
  }
  return set
}

/**
 * The event types to scan the log for on behalf of `projections` (`EventLog.scan`), or undefined
 * when one of them folds every type (then the log must be read in full).
 */
export const scanTypesFor = (projections: ReadonlyArray<AnyProjection>): ReadonlySet<string> | undefined =>
  projections.some((p) => p.types === undefined)
    ? undefined
    : new Set<string>(projections.flatMap((p) => p.types ?? []))

/** The absolute subject filter to read `projection`'s events from the log of `namespace`. */
export const logFilterFor = <S>(projection: Projection<S>, namespace: string): string | undefined =>
  projection.filter === undefined ? undefined : `${namespace}.${projection.filter}`

/**
 * Folds entries into `folded`: records are decoded (upcast, validated), undecodable entries are
 * counted and reported, entries at or below the fold's position are ignored, and the projection's
 * filter is applied. Entries may be raw log entries or already-decoded envelopes.
 */
export const advance = <S>(
  projection: Projection<S>,
  folded: Folded<S>,
  entries: Iterable<LogEntry | PassedOver | Envelope>,
  options?: AdvanceOptions,
): Advanced<S> => {
  const match = matcherFor(projection)
  const wanted = typesFor(projection)
  const upcasters = options?.upcasters
  let state = folded.state
  let position = folded.position
  let undecodableTotal = folded.undecodable
  let applied = 0
  let duplicates = 0
  let filteredOut = 0
  const undecodable: UndecodableEvent[] = []
  const skip = (event: UndecodableEvent) => {
    undecodable.push(event)
    undecodableTotal++
    if (projection.onUndecodable !== undefined) state = projection.onUndecodable(state, event)
  }
  for (const entry of entries) {
    // Outside the filter: ignored without moving the position, exactly as if the log had filtered
    // it, so a fold over raw entries and one over a filtered read end in the same place. Broken
    // entries have no trustworthy subject and reach every projection (as the log reports them).
    if (match !== null && !(entry instanceof UndecodableEvent) && !match(entry.subject)) {
      filteredOut++
      continue
    }
    if (!(entry.position > position)) {
      duplicates++
      continue
    }
    position = entry.position
    if (entry instanceof UndecodableEvent) {
      skip(entry)
      continue
    }
    // A scan passed it over: not a type this projection folds (see `scanTypesFor`).
    if (entry instanceof PassedOver) continue
    let envelope: Envelope
    if ("event" in entry) envelope = entry
    else if (wanted !== undefined && !wanted.has(entry.type)) continue
    else {
      const decoded = decodeEvent(entry, upcasters)
      if (Result.isFailure(decoded)) {
        skip(decoded.failure)
        continue
      }
      envelope = decoded.success
    }
    state = projection.apply(state, envelope)
    applied++
  }
  return {
    folded: { state, position, undecodable: undecodableTotal },
    applied,
    duplicates,
    filteredOut,
    undecodable,
  }
}

/** The reference fold: every entry from position 0, in order. */
export const foldAll = <S>(
  projection: Projection<S>,
  entries: Iterable<LogEntry | PassedOver | Envelope>,
  options?: AdvanceOptions,
): S => advance(projection, initialFolded(projection), entries, options).folded.state

/**
 * The path of the first value in `value` that does not survive `JSON.stringify`/`JSON.parse`
 * unchanged (undefined, NaN, a Map, a class instance, -0 ...), or `undefined` when it is JSON.
 */
export const findNonJson = (value: unknown, path = "state"): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0) ? undefined : path
    case "object": {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const bad = findNonJson(value[i], `${path}[${i}]`)
          if (bad !== undefined) return bad
        }
        return undefined
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return path
      for (const key of Object.keys(value)) {
        const bad = findNonJson((value as Record<string, unknown>)[key], `${path}.${key}`)
        if (bad !== undefined) return bad
      }
      return undefined
    }
    default:
      return path
  }
}

/** The state as a checkpoint stores it; fails (naming the path) when it is not JSON-safe. */
export const encodeState = <S>(projection: Projection<S>, state: S): Result.Result<Json, string> => {
  let json: unknown
  try {
    json = projection.encode === undefined ? state : projection.encode(state)
  } catch (error) {
    return Result.fail(`encode threw: ${error instanceof Error ? error.message : String(error)}`)
  }
  const bad = findNonJson(json)
  return bad === undefined
    ? Result.succeed(json as Json)
    : Result.fail(`${projection.name}: ${bad} is not JSON-safe (give the projection encode/decode)`)
}

/** A state back from a checkpoint; fails when the projection's `decode` rejects it. */
export const decodeState = <S>(projection: Projection<S>, json: Json): Result.Result<S, string> => {
  if (projection.decode === undefined) return Result.succeed(json as S)
  try {
    return Result.succeed(projection.decode(json))
  } catch (error) {
    return Result.fail(`decode threw: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * Reads a key of a state record as an own property only: ids come from events, and an id such as
 * `__proto__` or `constructor` must not resolve to something inherited.
 */
export const ownValue = <V>(record: Readonly<Record<string, V>>, key: string): V | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined

/** The known projections by name. */
export interface ProjectionRegistry {
  readonly all: ReadonlyArray<AnyProjection>
  readonly names: ReadonlyArray<string>
  readonly get: (name: string) => AnyProjection | undefined
}

/** Builds a registry; a bad or repeated name is a programming error and throws at startup. */
export const makeProjectionRegistry = (projections: ReadonlyArray<AnyProjection>): ProjectionRegistry => {
  const byName = new Map<string, AnyProjection>()
  for (const p of projections) {
    if (!projectionNamePattern.test(p.name)) {
      throw new Error(`projection name "${p.name}" must match ${projectionNamePattern}`)
    }
    if (!Number.isInteger(p.version) || p.version < 1) {
      throw new Error(`projection ${p.name}: version must be a positive integer, got ${p.version}`)
    }
    if (byName.has(p.name)) throw new Error(`two projections are named "${p.name}"`)
    byName.set(p.name, p)
  }
  return {
    all: projections,
    names: [...byName.keys()],
    get: (name) => byName.get(name),
  }
}
