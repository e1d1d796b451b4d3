/**
 * The embedded adapter of the `EventLog` port: the default on a fresh machine, with no server. One
 * append-only file of lines (`codec.encodeStoredLine`) per namespace under the data directory, an
 * in-memory index (`embeddedIndex`) rebuilt by scanning that file on open, and a lock so one
 * process writes while any number read. A process killed mid-write leaves at most a torn last line,
 * which the next writer cuts off, keeping the bytes and recording the cut (`embeddedDamage`); every
 * line whose write returned survives a restart. `stats` reports the damage the index found. Appends are
 * synchronous writes (atomic per call), so the semantics match JetStream's with a single writer per
 * subject. Fields of events over the inline limit go to files beside the log (`largeFields`,
 * `fileBlobStore`), written before the line that names them.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { encodeBodyJson, encodeStoredLine } from "../codec.ts"
import type { NewEvent } from "../schema.ts"
import { streamsFor } from "../subjects.ts"
import type { BlobStoreShape } from "./blobStore.ts"
import { cutsSubject, cutTornTail, damageOf, recordedCuts, unrecordedCuts } from "./embeddedDamage.ts"
import { EmbeddedIndex, MAX_BATCH } from "./embeddedIndex.ts"
import {
  type AppendError,
  type Appended,
  ConcurrencyConflict,
  EventLog,
  type EventLogShape,
  type LogEntry,
  type LogStats,
  LogUnavailable,
  type PassedOver,
  type ReadOptions,
  type ScanOptions,
  type TailCut,
} from "./eventLog.ts"
import { fileBlobDir, fileBlobStore } from "./fileBlobStore.ts"
import {
  DEFAULT_INLINE_LIMIT,
  type LargeFields,
  resolvingPull,
  storeLargeFields,
  subjectOrder,
} from "./largeFields.ts"

export interface EmbeddedLogOptions {
  /** The data directory (default `.rollout` in the working directory). */
  readonly dataDir: string
  readonly namespace: string
  /** `always`: fsync every append; `interval`: fsync once a second when dirty; `never`: leave it to the OS. */
  readonly fsync?: "always" | "interval" | "never"
  /** `writer` takes the lock and may append; `reader` only reads and follows the file. */
  readonly mode?: "writer" | "reader"
  /** How many recent event ids are remembered for dedupe (JetStream keeps a time window instead). */
  readonly dedupeWindow?: number
  /** How often a reader polls the file for new lines when tailing. */
  readonly pollIntervalMs?: number
  /**
   * Events whose stored body would be larger than this many bytes keep their largest fields in the
   * blob store (default 256 KiB; `Infinity` keeps every field inline).
   */
  readonly inlineLimitBytes?: number
  /** Where large fields go; default files under the log's directory (`fileBlobDir`). */
  readonly blobStore?: BlobStoreShape
}

/** Where the events of `namespace` are kept under `dataDir`: one NDJSON file. */
export const embeddedLogFile = (dataDir: string, namespace: string): string =>
  path.join(dataDir, "log", namespace, "events.ndjson")

const unavailable = (operation: string, error: unknown, code?: string) =>
  new LogUnavailable({
    backend: "embedded",
    operation,
    reason: error instanceof Error ? error.message : String(error),
    ...(code === undefined ? {} : { code }),
  })

class EmbeddedLog implements EventLogShape {
  readonly backend = "embedded" as const
  readonly namespace: string
  private readonly file: string
  private readonly dir: string
  private readonly lockFile: string
  /** The torn tail this writer cut when it opened the file (reported by `stats`). */
  private cutOnOpen: TailCut | undefined
  private fd: number
  private readonly index: EmbeddedIndex
  private readonly waiters = new Set<() => void>()
  private dirty = false
  private syncTimer: NodeJS.Timeout | undefined
  private closed = false
  private readonly prefix: string
  private readonly largeFields: LargeFields
  private readonly inOrder = subjectOrder()

  constructor(
    private readonly options: Required<
      Omit<EmbeddedLogOptions, "dataDir" | "namespace" | "inlineLimitBytes" | "blobStore">
    > &
      EmbeddedLogOptions,
  ) {
    this.namespace = options.namespace
    this.largeFields = {
      store: options.blobStore ?? fileBlobStore(fileBlobDir(options.dataDir, options.namespace)),
      inlineLimit: options.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT,
    }
    this.file = embeddedLogFile(options.dataDir, options.namespace)
    const dir = path.dirname(this.file)
    this.dir = dir
    this.index = new EmbeddedIndex(this.file, options.dedupeWindow)
    this.prefix = `${options.namespace}.ev.`
    streamsFor(options.namespace)
    this.lockFile = path.join(dir, "writer.lock")
    fs.mkdirSync(dir, { recursive: true })
    if (options.mode === "writer") this.takeLock()
    this.fd = fs.openSync(this.file, options.mode === "writer" ? "a+" : fs.existsSync(this.file) ? "r" : "a+")
    const torn = this.index.scan(this.fd)
    // Only the writer may shorten the file; a reader reports the torn line (`stats`).
    if (torn !== undefined && options.mode === "writer")
      this.cutOnOpen = cutTornTail(this.fd, dir, this.index.lastPosition + 1, torn)
    if (options.mode === "writer" && options.fsync === "interval") {
      this.syncTimer = setInterval(() => this.flush(), 1000)
      this.syncTimer.unref()
    }
  }

  private takeLock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(this.lockFile, String(process.pid), { flag: "wx" })
        openWriters.add(this.lockFile)
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
        const holder = Number.parseInt(fs.readFileSync(this.lockFile, "utf8"), 10)
        // Our own pid counts as alive only if this process really holds the file open: a container
        // restarted with the same pid must not be locked out by its previous life's lock.
        const ours = holder === process.pid && openWriters.has(this.lockFile)
        if (ours || (Number.isInteger(holder) && holder !== process.pid && isAlive(holder))) {
          throw new Error(
            `the embedded log in ${this.options.dataDir} is open for writing by process ${holder}; ` +
              "stop it, or point this command at another --data-dir",
          )
        }
        // A stale lock from a process that died: take it over.
        fs.rmSync(this.lockFile, { force: true })
      }
    }
    throw new Error(`could not take the writer lock ${this.lockFile}`)
  }

  get lastPositionNow(): number {
    return this.index.lastPosition
  }

  readonly append = (
    subject: string,
    events: ReadonlyArray<NewEvent>,
    options?: { expectedLastPosition?: number },
  ): Effect.Effect<Appended, AppendError> =>
    Effect.suspend((): Effect.Effect<Appended, AppendError> => {
      if (this.options.mode !== "writer") {
        return Effect.fail(unavailable("append", "this embedded log was opened read-only"))
      }
      if (this.closed) return Effect.fail(unavailable("append", "the log is closed"))
      if (
        !subject.startsWith(this.prefix) ||
        subject.length === this.prefix.length ||
        /[\s*>]/.test(subject)
      ) {
        return Effect.fail(
          unavailable("append", `subject "${subject}" is not an event subject of ${this.prefix}>`),
        )
      }
      // Validate everything before writing anything, as the JetStream adapter does.
      const bodies: string[] = []
      for (const e of events) {
        const body = encodeBodyJson(e)
        if (Result.isFailure(body)) return Effect.fail(body.failure)
        bodies.push(body.success)
      }
      const stored = storeLargeFields(events, bodies, this.largeFields)
      return this.inOrder(
        subject,
        stored !== undefined,
        stored === undefined
          ? Effect.suspend(() => this.write(subject, events, bodies, options))
          : Effect.flatMap(
              Effect.mapError(stored, (error) => unavailable("append", error, error.code)),
              (withBlobs) => Effect.suspend(() => this.write(subject, events, withBlobs, options)),
            ),
      )
    })

  /** Writes validated bodies in one synchronous write, checking expectations and dedupe as it goes. */
  private write(
    subject: string,
    events: ReadonlyArray<NewEvent>,
    bodies: ReadonlyArray<string>,
    options: { expectedLastPosition?: number } | undefined,
  ): Effect.Effect<Appended, AppendError> {
    {
      // The blob store may have taken a while: the log can have closed meanwhile.
      if (this.closed) return Effect.fail(unavailable("append", "the log is closed"))
      const inCall = new Map<string, number>()
      // Expectations chain exactly as on JetStream: the first event is checked against the caller's
      // expectation, each later one against the position of the event before it (a duplicate's
      // original position included). A conflict part-way leaves the prefix written, as there.
      let chained = options?.expectedLastPosition
      let conflict: ConcurrencyConflict | undefined
      const positions: number[] = []
      let out = ""
      const pending: Array<{ position: number; eventId: string; offset: number; length: number }> = []
      let next = this.index.lastPosition + 1
      let offset = this.index.size
      let last = this.index.lastOf(subject)
      for (let i = 0; i < bodies.length; i++) {
        const eventId = events[i]!.eventId
        const known = this.index.recentIds.get(eventId) ?? inCall.get(eventId)
        if (known !== undefined) {
          positions.push(known)
          chained = chained === undefined ? undefined : known
          continue
        }
        if (chained !== undefined && last !== chained) {
          conflict = new ConcurrencyConflict({ subject, expected: chained, actual: last })
          break
        }
        const line = encodeStoredLine(next, subject, bodies[i]!)
        const length = Buffer.byteLength(line)
        pending.push({ position: next, eventId, offset, length: length - 1 })
        inCall.set(eventId, next)
        positions.push(next)
        out += line
        offset += length
        last = next
        chained = chained === undefined ? undefined : next
        next++
      }
      if (out.length > 0) {
        try {
          fs.writeSync(this.fd, out)
          if (this.options.fsync === "always") fs.fsyncSync(this.fd)
          else this.dirty = true
        } catch (error) {
          // Nothing is indexed unless the write returned; cut any partial write so the file stays clean.
          try {
            fs.ftruncateSync(this.fd, this.index.size)
          } catch {}
          return Effect.fail(unavailable("append", error, (error as NodeJS.ErrnoException).code))
        }
        for (const p of pending) this.index.add(subject, p.position, p.eventId, p.offset, p.length)
        this.index.size = offset
        this.notify()
      }
      if (conflict !== undefined) return Effect.fail(conflict)
      return Effect.succeed<Appended>({ positions, duplicates: bodies.length - pending.length })
    }
  }

  private notify(): void {
    // Snapshot first: a woken reader may register again synchronously while we iterate.
    const woken = [...this.waiters]
    this.waiters.clear()
    for (const wake of woken) wake()
  }

  /** Builds a pull over `[from, limit()]`; `wait` decides what happens at the end (end or follow). */
  private stream(
    options: ReadOptions | ScanOptions | undefined,
    follow: boolean,
  ): Stream.Stream<LogEntry | PassedOver, LogUnavailable> {
    const types = options !== undefined && "types" in options ? options.types : undefined
    const allEvents = `${this.namespace}.ev.>`
    const filter = options?.filter ?? allEvents
    return Stream.fromPull(
      Effect.sync(() => {
        if (this.options.mode === "reader" && !this.closed) this.refresh()
        let next = Math.max(1, options?.from ?? 1)
        const upTo = follow ? Number.POSITIVE_INFINITY : this.lastPositionNow
        const pull: Effect.Effect<
          ReadonlyArray<LogEntry | PassedOver>,
          LogUnavailable | Cause.Done
        > = Effect.suspend(() => {
          if (this.closed)
            return follow ? Cause.done() : Effect.fail(unavailable("read", "the log is closed"))
          if (this.options.mode === "reader") this.refresh()
          const last = Math.min(upTo, this.lastPositionNow)
          if (next > last) {
            if (!follow) return Cause.done()
            return Effect.andThen(this.waitForMore(), pull)
          }
          try {
            const batchEnd = Math.min(last, next + MAX_BATCH - 1)
            // Every position for the whole namespace: no need to look at subjects.
            const picked = filter === allEvents ? undefined : this.index.candidates(filter, next, batchEnd)
            const entries =
              picked === undefined
                ? this.index.readRange(this.fd, next, batchEnd, types)
                : this.index.readPositions(this.fd, picked, types)
            next = picked === undefined ? next + entries.length : batchEnd + 1
            return entries.length === 0 ? pull : Effect.succeed(entries)
          } catch (error) {
            return Effect.fail(unavailable("read", error, (error as NodeJS.ErrnoException).code))
          }
        })
        return resolvingPull(
          pull as Effect.Effect<
            readonly [LogEntry | PassedOver, ...Array<LogEntry | PassedOver>],
            LogUnavailable | Cause.Done
          >,
          this.largeFields.store,
          "embedded",
        )
      }),
    )
  }

  private waitForMore(): Effect.Effect<void> {
    if (this.options.mode === "reader") return Effect.sleep(this.options.pollIntervalMs)
    return Effect.callback<void>((resume) => {
      const wake = () => resume(Effect.void)
      this.waiters.add(wake)
      return Effect.sync(() => this.waiters.delete(wake))
    })
  }

  /** A reader picks up lines another process appended since the last look. */
  private refresh(): void {
    if (fs.fstatSync(this.fd).size > this.index.size) this.index.scan(this.fd)
  }

  /**
   * Writes a `LogTailCut` event for every kept cut the log does not mention yet: the one this open
   * made, and any whose record a crash prevented. Run once by the writer right after opening.
   */
  readonly recordCuts: Effect.Effect<void, AppendError> = Effect.suspend(() => {
    if (this.options.mode !== "writer") return Effect.void
    const pending = unrecordedCuts(this.dir, recordedCuts(this.fd, this.index, this.namespace))
    if (pending.length === 0) return Effect.void
    return Effect.map(
      this.append(
        cutsSubject(this.namespace),
        pending.map((p) => p.event),
      ),
      ({ positions }) => {
        const mine = pending.findIndex((p) => p.cut.keptIn === this.cutOnOpen?.keptIn)
        if (mine !== -1 && this.cutOnOpen !== undefined)
          this.cutOnOpen = { ...this.cutOnOpen, recordedAtPosition: positions[mine]! }
      },
    )
  })

  /** The live process holding the writer lock, if any (this one included). */
  private writerPid(): number | undefined {
    if (this.options.mode === "writer") return process.pid
    try {
      const holder = Number.parseInt(fs.readFileSync(this.lockFile, "utf8"), 10)
      return Number.isInteger(holder) && isAlive(holder) ? holder : undefined
    } catch {
      return undefined
    }
  }

  // Without `types` nothing is passed over: read and tail yield log entries only.
  readonly read = (options?: ReadOptions) =>
    this.stream(options, false) as Stream.Stream<LogEntry, LogUnavailable>
  readonly scan = (options: ScanOptions) => this.stream(options, false)
  readonly tail = (options?: ReadOptions) =>
    this.stream(options, true) as Stream.Stream<LogEntry, LogUnavailable>

  readonly lastPosition = (subject: string) =>
    Effect.sync(() => {
      if (this.options.mode === "reader") this.refresh()
      return this.index.lastOf(subject)
    })

  readonly stats = Effect.sync((): LogStats => {
    if (this.options.mode === "reader") this.refresh()
    const last = this.lastPositionNow
    return {
      backend: "embedded",
      stream: streamsFor(this.namespace).events,
      location: this.file,
      events: last,
      bytes: this.index.size,
      firstPosition: last === 0 ? 0 : 1,
      lastPosition: last,
      subjects: this.index.subjectCount,
      damage: damageOf(this.fd, this.index, this.namespace, this.writerPid(), this.cutOnOpen),
    }
  })

  flush(): void {
    if (this.dirty && !this.closed) {
      fs.fsyncSync(this.fd)
      this.dirty = false
    }
  }

  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer)
    this.notify()
    fs.closeSync(this.fd)
    if (this.options.mode === "writer") {
      fs.rmSync(this.lockFile, { force: true })
      openWriters.delete(this.lockFile)
    }
  }
}

/** Lock files held by writers of this process. */
const openWriters = new Set<string>()

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Opens the embedded log for the life of the scope; closing the scope flushes and releases the lock. */
export const makeEmbeddedLog = (options: EmbeddedLogOptions) =>
  Effect.acquireRelease(
    Effect.try({
      try: () =>
        new EmbeddedLog({
          fsync: "interval",
          mode: "writer",
          dedupeWindow: 100_000,
          pollIntervalMs: 100,
          ...options,
        }),
      catch: (error) => unavailable("open", error, (error as NodeJS.ErrnoException).code),
    }),
    (log) => Effect.sync(() => log.close()),
  ).pipe(
    // A cut made on open is recorded before anyone else appends (it takes the cut line's position).
    Effect.tap((log) =>
      Effect.mapError(log.recordCuts, (error) =>
        unavailable("open", `cut a torn last line but could not record the cut: ${error.message}`),
      ),
    ),
  ) as Effect.Effect<EventLogShape, LogUnavailable, Scope.Scope>

export const layerEmbedded = (options: EmbeddedLogOptions): Layer.Layer<EventLog, LogUnavailable> =>
  Layer.effect(EventLog, makeEmbeddedLog(options))
