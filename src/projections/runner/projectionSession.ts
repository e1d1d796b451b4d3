/**
 * One run of a projection over the log, and the words that describe it: how it started (resumed,
 * or rebuilt and why), its progress, its result and its live snapshot. `ProjectionSession` holds
 * the mutable side of a run: the fold, the counters, the checkpoint rhythm (a save every N
 * entries, splitting a log array where one is due), undecodable reports, and whoever waits for a
 * position. Entries are folded an array at a time through `advance` (the same pure fold the
 * property tests check), never one Effect per event.
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { UpcasterTable } from "../../events/legacy.ts"
import type {
  EventLogShape,
  LogEntry,
  LogUnavailable,
  PassedOver,
  ReadOptions,
} from "../../events/log/eventLog.ts"
import type { CheckpointStoreShape, CheckpointStoreUnavailable } from "../../runtime/checkpointStore.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import { advance, encodeState, type Folded, logFilterFor, type Projection } from "../projection.ts"

/** Why a run started from position 0. */
export type RebuildReason =
  | "no checkpoint"
  | `version changed ${number}→${number}`
  | "checkpoint unreadable"
  | "rebuild requested"

/** How a run started: from a checkpoint, or from scratch and why (with the details, e.g. the path). */
export type ProjectionStart =
  | { readonly kind: "resumed"; readonly position: number }
  | { readonly kind: "rebuilt"; readonly reason: RebuildReason; readonly detail?: string }

export interface ProjectionProgress {
  readonly projection: string
  readonly phase: "catch-up" | "live"
  /** Last position folded. */
  readonly position: number
  /** Events applied by this run. */
  readonly applied: number
  readonly duplicates: number
  /** Undecodable entries skipped since position 0. */
  readonly undecodable: number
}

export interface RunProjectionOptions {
  /** `false`: catch up with `read` and return; `true`: then follow `tail` until interrupted. */
  readonly live: boolean
  /** Save a checkpoint after this many entries (default 10 000). */
  readonly checkpointEvery?: number
  /** Called after each array of entries; cheap, so throttle in the caller if printing. */
  readonly onProgress?: (progress: ProjectionProgress) => void
  /** Called for each undecodable entry skipped; default: a warning in the Effect log. */
  readonly onUndecodable?: (event: UndecodableEvent) => void
  readonly upcasters?: UpcasterTable
  /** Stamps the checkpoints it saves (`savedAt`); default the system clock. */
  readonly clock?: Clock
}

export type RebuildOptions = Omit<RunProjectionOptions, "live">

export interface ProjectionResult<S> {
  readonly projection: string
  readonly version: number
  readonly start: ProjectionStart
  readonly state: S
  readonly position: number
  readonly applied: number
  readonly duplicates: number
  /** Undecodable entries skipped since position 0 (including runs before the checkpoint). */
  readonly undecodable: number
  /** The undecodable entries this run met, with their positions (the first 1000). */
  readonly undecodableSeen: ReadonlyArray<UndecodableEvent>
  readonly checkpointsSaved: number
}

export interface ProjectionSnapshot<S> {
  readonly state: S
  readonly position: number
  readonly undecodable: number
  readonly applied: number
  /** True once the catch-up read ended and the projection follows the tail. */
  readonly caughtUp: boolean
}

export type ProjectionRunError = LogUnavailable | CheckpointStoreUnavailable

const DEFAULT_CHECKPOINT_EVERY = 10_000
const KEPT_UNDECODABLE = 1000

/** The mutable side of one run: the fold, counters, and whoever waits for a position. */
export class ProjectionSession<S> {
  folded: Folded<S>
  applied = 0
  duplicates = 0
  checkpointsSaved = 0
  caughtUp = false
  private sinceCheckpoint = 0
  /** A rebuild saves even an empty fold, so the new version's checkpoint exists afterwards. */
  private dirty: boolean
  private readonly seen: UndecodableEvent[] = []
  private readonly waiters: Array<{
    position: number
    deferred: Deferred.Deferred<ProjectionSnapshot<S>, ProjectionRunError>
  }> = []
  private ended: Exit.Exit<unknown, ProjectionRunError> | undefined
  private readonly every: number

  constructor(
    readonly log: EventLogShape,
    readonly store: CheckpointStoreShape,
    readonly projection: Projection<S>,
    readonly options: RebuildOptions,
    readonly start: ProjectionStart,
    folded: Folded<S>,
  ) {
    this.folded = folded
    this.dirty = start.kind === "rebuilt"
    this.every = Math.max(1, options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY)
  }

  readOptions(): ReadOptions {
    const filter = logFilterFor(this.projection, this.log.namespace)
    const from = this.folded.position + 1
    return filter === undefined ? { from } : { filter, from }
  }

  snapshot(): ProjectionSnapshot<S> {
    const { state, position, undecodable } = this.folded
    return { state, position, undecodable, applied: this.applied, caughtUp: this.caughtUp }
  }

  result(): ProjectionResult<S> {
    return {
      projection: this.projection.name,
      version: this.projection.version,
      start: this.start,
      state: this.folded.state,
      position: this.folded.position,
      applied: this.applied,
      duplicates: this.duplicates,
      undecodable: this.folded.undecodable,
      undecodableSeen: this.seen,
      checkpointsSaved: this.checkpointsSaved,
    }
  }

  /** Saves the fold if it changed since the last save. */
  readonly save: Effect.Effect<void, CheckpointStoreUnavailable> = Effect.suspend(() => {
    if (!this.dirty) {
      this.sinceCheckpoint = 0
      return Effect.void
    }
    const folded = this.folded
    const encoded = encodeState(this.projection, folded.state)
    // A state that is not JSON is a bug in the projection, not a condition to recover from.
    if (Result.isFailure(encoded)) return Effect.die(new Error(encoded.failure))
    return Effect.suspend(() =>
      this.store.save(this.projection.name, {
        projection: this.projection.name,
        version: this.projection.version,
        position: folded.position,
        state: encoded.success,
        undecodable: folded.undecodable,
        savedAt: (this.options.clock ?? systemClock).iso(),
      }),
    ).pipe(
      Effect.tap(() =>
        Effect.sync(() => {
          this.checkpointsSaved++
          if (this.folded === folded) {
            this.dirty = false
            this.sinceCheckpoint = 0
          }
        }),
      ),
    )
  })

  /** Folds one array from the log, splitting it where a checkpoint is due. */
  consume(entries: ReadonlyArray<LogEntry | PassedOver>): Effect.Effect<void, CheckpointStoreUnavailable> {
    let i = 0
    const loop: Effect.Effect<void, CheckpointStoreUnavailable> = Effect.suspend(() => {
      const reports: UndecodableEvent[] = []
      while (i < entries.length) {
        const end = Math.min(entries.length, i + Math.max(1, this.every - this.sinceCheckpoint))
        const slice = i === 0 && end === entries.length ? entries : entries.slice(i, end)
        const step = advance(this.projection, this.folded, slice, this.upcasterOptions)
        this.folded = step.folded
        this.applied += step.applied
        this.duplicates += step.duplicates
        if (step.applied > 0 || step.undecodable.length > 0) this.dirty = true
        this.sinceCheckpoint += slice.length
        for (const u of step.undecodable) {
          if (this.seen.length < KEPT_UNDECODABLE) this.seen.push(u)
          reports.push(u)
        }
        i = end
        if (this.sinceCheckpoint >= this.every) {
          return Effect.andThen(this.report(reports), Effect.andThen(this.save, loop))
        }
      }
      this.progressed()
      return this.report(reports)
    })
    return loop
  }

  private get upcasterOptions() {
    return this.options.upcasters === undefined ? undefined : { upcasters: this.options.upcasters }
  }

  private report(events: ReadonlyArray<UndecodableEvent>): Effect.Effect<void> {
    if (events.length === 0) return Effect.void
    const callback = this.options.onUndecodable
    if (callback !== undefined) return Effect.sync(() => events.forEach(callback))
    return Effect.forEach(
      events,
      (u) => Effect.logWarning(`projection ${this.projection.name}: skipped ${u.message}`),
      { discard: true },
    )
  }

  /** Tells the progress callback and wakes the waiters whose position has been folded. */
  progressed(): void {
    this.options.onProgress?.({
      projection: this.projection.name,
      phase: this.caughtUp ? "live" : "catch-up",
      position: this.folded.position,
      applied: this.applied,
      duplicates: this.duplicates,
      undecodable: this.folded.undecodable,
    })
    if (this.waiters.length === 0) return
    const snapshot = this.snapshot()
    for (let w = this.waiters.length - 1; w >= 0; w--) {
      const waiter = this.waiters[w]!
      if (waiter.position <= snapshot.position) {
        Deferred.doneUnsafe(waiter.deferred, Effect.succeed(snapshot))
        this.waiters.splice(w, 1)
      }
    }
  }

  awaitPosition(position: number): Effect.Effect<ProjectionSnapshot<S>, ProjectionRunError> {
    return Effect.suspend(() => {
      if (this.folded.position >= position) return Effect.succeed(this.snapshot())
      if (this.ended !== undefined) return Effect.failCause(stoppedCause(this.ended))
      const deferred = Deferred.makeUnsafe<ProjectionSnapshot<S>, ProjectionRunError>()
      const waiter = { position, deferred }
      this.waiters.push(waiter)
      return Deferred.await(deferred).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            const at = this.waiters.indexOf(waiter)
            if (at !== -1) this.waiters.splice(at, 1)
          }),
        ),
      )
    })
  }

  /** The run ended: whoever still waits gets its failure (or an interruption). */
  settle(exit: Exit.Exit<unknown, ProjectionRunError>): Effect.Effect<void> {
    return Effect.sync(() => {
      this.ended = exit
      const cause = stoppedCause(exit)
      for (const waiter of this.waiters.splice(0))
        Deferred.doneUnsafe(waiter.deferred, Effect.failCause(cause))
    })
  }
}

const stoppedCause = (exit: Exit.Exit<unknown, ProjectionRunError>): Cause.Cause<ProjectionRunError> =>
  exit._tag === "Failure" ? exit.cause : Cause.interrupt()
