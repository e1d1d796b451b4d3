/**
 * Runs projections against the log: loads a checkpoint (or decides to rebuild from position 0, and
 * says why), catches up with `log.read`, optionally follows `log.tail`, and saves checkpoints every
 * N entries, at the end of catch-up and on interruption. The fold itself and its checkpoint rhythm
 * live in `projectionSession`; finding and listing projections in `projectionStatus`.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import {
  type EventLogShape,
  type LogEntry,
  type LogUnavailable,
  PassedOver,
} from "../../events/log/eventLog.ts"
import type { Envelope } from "../../events/schema.ts"
import type {
  CheckpointStoreShape,
  CheckpointStoreUnavailable,
  CheckpointUnreadable,
} from "../../runtime/checkpointStore.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import {
  type AnyProjection,
  advance,
  decodeState,
  encodeState,
  type Folded,
  initialFolded,
  type Json,
  type Projection,
  scanTypesFor,
} from "../projection.ts"
import {
  type ProjectionResult,
  type ProjectionRunError,
  ProjectionSession,
  type ProjectionSnapshot,
  type ProjectionStart,
  type RebuildOptions,
  type RebuildReason,
  type RunProjectionOptions,
} from "./projectionSession.ts"

export type {
  ProjectionProgress,
  ProjectionResult,
  ProjectionRunError,
  ProjectionSnapshot,
  ProjectionStart,
  RebuildOptions,
  RebuildReason,
  RunProjectionOptions,
} from "./projectionSession.ts"
export {
  findProjection,
  listProjections,
  type ProjectionStatus,
  UnknownProjection,
} from "./projectionStatus.ts"

/** A projection running live in a scope; closing the scope stops it and saves a checkpoint. */
export interface LiveProjection<S> {
  readonly projection: string
  readonly start: ProjectionStart
  readonly snapshot: Effect.Effect<ProjectionSnapshot<S>>
  /**
   * Waits until the projection has folded `position` (a position it reads: with a filter, one of
   * its own subjects). Fails with the runner's failure if it stops first.
   */
  readonly awaitPosition: (position: number) => Effect.Effect<ProjectionSnapshot<S>, ProjectionRunError>
}

interface Opened<S> {
  readonly start: ProjectionStart
  readonly folded: Folded<S>
}

/** Loads the checkpoint and decides: resume after its position, or rebuild from 0 and why. */
const open = <S>(
  store: CheckpointStoreShape,
  projection: Projection<S>,
): Effect.Effect<Opened<S>, CheckpointStoreUnavailable> =>
  store.load(projection.name).pipe(
    Effect.map((checkpoint): Opened<S> => {
      const fresh = initialFolded(projection)
      if (checkpoint === undefined)
        return { start: { kind: "rebuilt", reason: "no checkpoint" }, folded: fresh }
      if (checkpoint.version !== projection.version) {
        const reason: RebuildReason = `version changed ${checkpoint.version}→${projection.version}`
        return { start: { kind: "rebuilt", reason }, folded: fresh }
      }
      const state = decodeState(projection, checkpoint.state as Json)
      if (Result.isFailure(state)) {
        const detail = `${store.location}/${projection.name}: ${state.failure}`
        return { start: { kind: "rebuilt", reason: "checkpoint unreadable", detail }, folded: fresh }
      }
      return {
        start: { kind: "resumed", position: checkpoint.position },
        folded: { state: state.success, position: checkpoint.position, undecodable: checkpoint.undecodable },
      }
    }),
    Effect.catchTag("CheckpointUnreadable", (error: CheckpointUnreadable) =>
      Effect.as(Effect.logWarning(`${error.message}; rebuilding from position 0`), {
        start: { kind: "rebuilt", reason: "checkpoint unreadable", detail: error.message },
        folded: initialFolded(projection),
      } satisfies Opened<S>),
    ),
  )

/** Catch-up, a checkpoint, then (live) the tail; a checkpoint is saved if the run is interrupted. */
const drive = <S>(
  session: ProjectionSession<S>,
  live: boolean,
): Effect.Effect<ProjectionResult<S>, ProjectionRunError> =>
  Effect.gen(function* () {
    const fold = (stream: Stream.Stream<LogEntry | PassedOver, LogUnavailable>) =>
      Stream.runForEachArray(stream, (entries) => session.consume(entries))
    // Catching up, entries of types the projection does not fold need not be decoded.
    const types = scanTypesFor([session.projection as AnyProjection])
    const options = session.readOptions()
    yield* fold(types === undefined ? session.log.read(options) : session.log.scan({ ...options, types }))
    session.caughtUp = true
    yield* session.save
    session.progressed()
    if (live) yield* fold(session.log.tail(session.readOptions()))
    return session.result()
  }).pipe(
    Effect.onInterrupt(() =>
      session.save.pipe(
        Effect.catchCause((cause) =>
          Effect.logWarning(`projection ${session.projection.name}: final checkpoint not saved`, cause),
        ),
      ),
    ),
  )

/**
 * Runs `projection`: resumes from its checkpoint when the checkpoint is of the same version,
 * otherwise rebuilds from position 0 (`result.start` says why). With `live: false` it returns once
 * caught up; with `live: true` it follows the log until interrupted (see `startProjection` to read
 * its state meanwhile).
 */
export const runProjection = <S>(
  log: EventLogShape,
  store: CheckpointStoreShape,
  projection: Projection<S>,
  options: RunProjectionOptions,
): Effect.Effect<ProjectionResult<S>, ProjectionRunError> =>
  Effect.flatMap(open(store, projection), ({ start, folded }) =>
    drive(new ProjectionSession(log, store, projection, options, start, folded), options.live),
  )

/** Deletes the checkpoint, folds the whole log from position 0 and saves the result. */
export const rebuildProjection = <S>(
  log: EventLogShape,
  store: CheckpointStoreShape,
  projection: Projection<S>,
  options: RebuildOptions = {},
): Effect.Effect<ProjectionResult<S>, ProjectionRunError> =>
  Effect.andThen(store.remove(projection.name), () =>
    drive(
      new ProjectionSession(
        log,
        store,
        projection,
        options,
        { kind: "rebuilt", reason: "rebuild requested" },
        initialFolded(projection),
      ),
      false,
    ),
  )

/** One projection's part of `rebuildProjections`. */
export interface Rebuilt {
  readonly name: string
  readonly position: number
  readonly events: number
  /** Entries among those it reads that could not be decoded (each is skipped). */
  readonly undecodable: number
}

/**
 * Rebuilds several projections from position 0 with ONE read of the log: each entry is decoded
 * once (when any of them folds its type) and handed to every projection, and each projection's
 * checkpoint is saved at the end (`rollout projections rebuild all`); one projection alone is
 * `rebuildProjection`. `onUndecodable` hears of each entry that could not be decoded once, in
 * order, however many projections skip it.
 */
export const rebuildProjections = (
  log: EventLogShape,
  store: CheckpointStoreShape,
  projections: ReadonlyArray<AnyProjection>,
  options: {
    readonly onUndecodable?: (event: UndecodableEvent) => void
    /** Stamps the checkpoints saved (`savedAt`); default the system clock. */
    readonly clock?: Clock
  } = {},
): Effect.Effect<ReadonlyArray<Rebuilt>, ProjectionRunError> =>
  Effect.gen(function* () {
    for (const p of projections) yield* store.remove(p.name)
    const folds = projections.map((p) => initialFolded(p))
    const applied = projections.map(() => 0)
    // Decode only what some projection folds (undefined: one of them wants every type).
    const wanted = scanTypesFor(projections)
    const entriesOfLog = wanted === undefined ? log.read() : log.scan({ types: wanted })
    yield* Stream.runForEachArray(entriesOfLog, (entries) =>
      Effect.sync(() => {
        const batch: Array<LogEntry | PassedOver | Envelope> = []
        for (const entry of entries) {
          if (
            entry instanceof UndecodableEvent ||
            entry instanceof PassedOver ||
            (wanted !== undefined && !wanted.has(entry.type))
          ) {
            batch.push(entry)
            continue
          }
          const decoded = decodeEvent(entry)
          batch.push(Result.isSuccess(decoded) ? decoded.success : decoded.failure)
        }
        if (options.onUndecodable !== undefined)
          for (const entry of batch) if (entry instanceof UndecodableEvent) options.onUndecodable(entry)
        projections.forEach((p, i) => {
          const next = advance(p, folds[i]!, batch)
          folds[i] = next.folded
          applied[i]! += next.applied
        })
      }),
    )
    const savedAt = (options.clock ?? systemClock).iso()
    const out: Rebuilt[] = []
    for (const [i, p] of projections.entries()) {
      const folded = folds[i]!
      const encoded = encodeState(p, folded.state)
      if (Result.isFailure(encoded)) return yield* Effect.die(new Error(encoded.failure))
      yield* store.save(p.name, {
        projection: p.name,
        version: p.version,
        position: folded.position,
        state: encoded.success,
        undecodable: folded.undecodable,
        savedAt,
      })
      out.push({
        name: p.name,
        position: folded.position,
        events: applied[i]!,
        undecodable: folded.undecodable,
      })
    }
    return out
  })

/**
 * Starts `projection` live in the current scope and returns once its checkpoint is loaded; the
 * fold runs in the background. Closing the scope interrupts it, which saves a checkpoint.
 */
export const startProjection = <S>(
  log: EventLogShape,
  store: CheckpointStoreShape,
  projection: Projection<S>,
  options: RebuildOptions = {},
): Effect.Effect<LiveProjection<S>, CheckpointStoreUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const { start, folded } = yield* open(store, projection)
    const session = new ProjectionSession(log, store, projection, options, start, folded)
    yield* drive(session, true).pipe(
      Effect.onExit((exit) => session.settle(exit)),
      Effect.forkScoped,
    )
    return {
      projection: projection.name,
      start,
      snapshot: Effect.sync(() => session.snapshot()),
      awaitPosition: (position: number) => session.awaitPosition(position),
    }
  })
