/**
 * The one clock port of the shells: wall-clock time for what is recorded (event times, report
 * dates) and a monotonic reading for durations (latencies, timeouts), which must not jump when
 * the wall clock is stepped (NTP). Pure code never reads a clock: a time it needs comes in a
 * command or an event. Tests pass `manualClock`, which moves only when told to.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  readonly wallMs: () => number
  /** The wall-clock time as ISO-8601 (UTC), as events record it. */
  readonly iso: () => string
  /** Milliseconds from an arbitrary origin, never decreasing: for durations only. */
  readonly monotonicMs: () => number
}

export const systemClock: Clock = {
  wallMs: () => Date.now(),
  iso: () => new Date().toISOString(),
  monotonicMs: () => performance.now(),
}

export interface ManualClock extends Clock {
  /** Moves both readings forward by `ms`. */
  readonly advance: (ms: number) => void
}

/** A clock for tests: starts at `startMs` (wall) and 0 (monotonic), moves by `advance` only. */
export const manualClock = (startMs = Date.UTC(2026, 0, 1)): ManualClock => {
  let wall = startMs
  let mono = 0
  return {
    wallMs: () => wall,
    iso: () => new Date(wall).toISOString(),
    monotonicMs: () => mono,
    advance: (ms) => {
      if (!(ms >= 0)) throw new RangeError(`a clock only moves forward (asked to move by ${ms} ms)`)
      wall += ms
      mono += ms
    },
  }
}
