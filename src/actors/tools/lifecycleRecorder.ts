/**
 * AgentDock's lifecycle recorder: replica starts and exits, circuit changes, swaps and pool
 * samples go to the log in the background, in order, so a pool never waits on the log. While the
 * log is unreachable (NATS down) nothing is dropped: events wait in a bounded buffer and the
 * recorder retries with capped backoff; each event keeps the id and time it got when it happened,
 * so a retry of a write whose answer was lost is deduplicated by the log and the record says when
 * things happened, not when the log came back. Only past the bound does an event go, a pool sample
 * first (the next sample says the same), and every such loss is counted and said. `rollout dock
 * status` shows what is pending (`status`).
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { DomainEvent, NewEvent } from "../../events/schema.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"

/** How the recorder is doing, for `rollout dock status`. */
export interface RecordingStatus {
  /** Lifecycle events waiting to be written (held while the log does not take them). */
  readonly pending: number
  /** How many may wait; past it the oldest go (a pool sample first) and are counted in `dropped`. */
  readonly buffer: number
  readonly recorded: number
  /** Events given up on: past the buffer while the log stayed unreachable, or left at close. */
  readonly dropped: number
  /** Since when writes fail, and the last failure; absent while the log takes them. */
  readonly failingSince?: string
  readonly lastError?: string
}

export interface RecorderOptions {
  /** How many events may wait while the log is unreachable (default 10 000). */
  readonly buffer?: number
  /** The first retry's delay; it doubles up to `maxRetryMs` (defaults 200 ms and 5 s). */
  readonly retryMs?: number
  readonly maxRetryMs?: number
  /** Where the recorder says what happens (default: stderr). */
  readonly say?: (line: string) => void
  /** When events happened and since when writes fail (default: the system clock). */
  readonly clock?: Clock
}

interface Held {
  readonly subject: string
  readonly event: NewEvent
}

const BATCH = 256

export class LifecycleRecorder {
  private readonly pending: Held[] = []
  /** Events of the write under way: past the bound, others go first (these may be written already). */
  private readonly inFlight = new Set<Held>()
  private running: Promise<void> | undefined
  private seq = 0
  private readonly instance = randomUUID().slice(0, 8)
  private readonly buffer: number
  private readonly retryMs: number
  private readonly maxRetryMs: number
  private readonly say: (line: string) => void
  private readonly clock: Clock
  private failingSince: number | undefined
  private lastError: string | undefined
  private droppedThisOutage = 0
  private stopped = false
  private wake: (() => void) | undefined
  recorded = 0
  dropped = 0
  /** Failed write attempts (each retry counts). */
  errors = 0

  constructor(
    private readonly log: EventLogShape,
    options: RecorderOptions = {},
  ) {
    this.buffer = Math.max(1, options.buffer ?? 10_000)
    this.retryMs = options.retryMs ?? 200
    this.maxRetryMs = options.maxRetryMs ?? 5_000
    this.say = options.say ?? ((line) => process.stderr.write(`rollout dock: ${line}\n`))
    this.clock = options.clock ?? systemClock
  }

  add(subject: string, event: DomainEvent): void {
    if (this.stopped) {
      this.dropped++
      this.say(`not recording ${event.type}: the dock is closed`)
      return
    }
    this.pending.push({
      subject,
      event: {
        eventId: `dock/${this.instance}/${++this.seq}`,
        recordedAt: this.clock.iso(),
        correlationId: "dock",
        causationId: `dock/${this.instance}`,
        actor: "dock",
        event,
      },
    })
    if (this.pending.length > this.buffer) this.shed(this.pending.length - this.buffer)
    this.running ??= this.drain().finally(() => {
      this.running = undefined
    })
  }

  status(): RecordingStatus {
    return {
      pending: this.pending.length,
      buffer: this.buffer,
      recorded: this.recorded,
      dropped: this.dropped,
      ...(this.failingSince === undefined
        ? {}
        : { failingSince: new Date(this.failingSince).toISOString(), lastError: this.lastError ?? "" }),
    }
  }

  /** Past the bound: the oldest pool samples go first, then the oldest events; never silently. */
  private shed(over: number): void {
    const gone = new Map<string, number>()
    const drop = (i: number) => {
      const [held] = this.pending.splice(i, 1)
      gone.set(held!.event.event.type, (gone.get(held!.event.event.type) ?? 0) + 1)
    }
    let removed = 0
    for (let i = 0; i < this.pending.length && removed < over; ) {
      const held = this.pending[i]!
      if (held.event.event.type === "ToolPoolSampled" && !this.inFlight.has(held)) {
        drop(i)
        removed++
      } else i++
    }
    for (let i = 0; i < this.pending.length && removed < over; ) {
      if (this.inFlight.has(this.pending[i]!)) i++
      else {
        drop(i)
        removed++
      }
    }
    this.dropped += removed
    // Said once per outage when it starts, then summed up when the log is back.
    if (removed > 0 && this.droppedThisOutage === 0)
      this.say(
        `the log is still unreachable and ${this.buffer} lifecycle event(s) wait: dropping the oldest beyond that (${describe(gone)}); the count is in rollout dock status`,
      )
    this.droppedThisOutage += removed
  }

  private async drain(): Promise<void> {
    let delay = this.retryMs
    while (this.pending.length > 0 && !this.stopped) {
      const batch = this.pending.slice(0, BATCH)
      for (const held of batch) this.inFlight.add(held)
      const bySubject = new Map<string, Held[]>()
      for (const held of batch) bySubject.set(held.subject, [...(bySubject.get(held.subject) ?? []), held])
      let failure: string | undefined
      let failedCount = 0
      // In order, subject by subject; at the first failure the rest of the batch waits too, so no
      // event of a subject is written before an earlier one of the same subject.
      for (const [subject, held] of bySubject) {
        const done = await Effect.runPromise(
          Effect.result(
            this.log.append(
              subject,
              held.map((h) => h.event),
            ),
          ),
        )
        if (done._tag === "Failure") {
          failure = done.failure.message
          failedCount = batch.filter((h) => this.pending.includes(h)).length
          break
        }
        if (this.failingSince !== undefined) this.recovered()
        this.recorded += held.length
        const written = new Set(held)
        for (let i = this.pending.length - 1; i >= 0; i--)
          if (written.has(this.pending[i]!)) this.pending.splice(i, 1)
        for (const h of held) this.inFlight.delete(h)
      }
      this.inFlight.clear()
      if (failure === undefined) {
        delay = this.retryMs
        continue
      }
      this.errors++
      this.lastError = failure
      if (this.failingSince === undefined) {
        this.failingSince = this.clock.wallMs()
        this.say(
          `could not record ${failedCount} lifecycle event(s): ${failure}; holding them (up to ${this.buffer}) and retrying`,
        )
      }
      await this.sleep(delay)
      delay = Math.min(this.maxRetryMs, delay * 2)
    }
  }

  private recovered(): void {
    const now = this.clock.wallMs()
    const seconds = ((now - (this.failingSince ?? now)) / 1000).toFixed(1)
    const lost =
      this.droppedThisOutage === 0 ? "" : ` (${this.droppedThisOutage} were dropped beyond the buffer)`
    this.say(
      `the log takes lifecycle events again after ${seconds} s: recording the ${this.pending.length} held${lost}`,
    )
    this.failingSince = undefined
    this.lastError = undefined
    this.droppedThisOutage = 0
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.wake = done
    })
  }

  /**
   * Waits until every held event is written, for at most `timeoutMs`; what is still held then is
   * given up, counted and said (the log stayed unreachable to the end).
   */
  async flush(timeoutMs = 10_000): Promise<void> {
    let timedOut = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true
        resolve()
      }, timeoutMs)
    })
    // A drain that ends may have let another start (an event added meanwhile): wait for each.
    while (this.running !== undefined && !timedOut) await Promise.race([this.running, bound])
    clearTimeout(timer)
    if (this.pending.length === 0) return
    this.stopped = true
    this.wake?.()
    const left = this.pending.splice(0)
    this.dropped += left.length
    const gone = new Map<string, number>()
    for (const h of left) gone.set(h.event.event.type, (gone.get(h.event.event.type) ?? 0) + 1)
    this.say(
      `${left.length} lifecycle event(s) not recorded before closing (${describe(gone)}): the log is unreachable${
        this.lastError === undefined ? "" : ` (${this.lastError})`
      }`,
    )
  }
}

const describe = (counts: ReadonlyMap<string, number>): string =>
  [...counts].map(([type, n]) => `${n} ${type}`).join(", ")
