/**
 * A pool's call figures for `rollout dock status`: calls and failures counted, latency quantiles
 * and calls per second over a ring of the last calls. Figures only: nothing here decides where a
 * call goes (that is the pool's decider).
 */
import type { Clock } from "../../runtime/clock.ts"

const LATENCY_WINDOW = 4096

/** How far back calls per second look. */
const RATE_WINDOW_MS = 10_000

export interface CallFiguresNow {
  readonly calls: number
  readonly failed: number
  readonly callsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export class CallFigures {
  private readonly latencies: number[] = []
  private readonly finishedAt: number[] = []
  private ring = 0
  calls = 0
  failed = 0

  constructor(private readonly clock: Clock) {}

  /** Remembers a finished call. */
  observe(latencyMs: number, ok: boolean): void {
    this.calls++
    if (!ok) this.failed++
    // Rings of the last LATENCY_WINDOW calls (shifting a 4k array per call showed in profiles).
    this.latencies[this.ring] = latencyMs
    this.finishedAt[this.ring] = this.clock.monotonicMs()
    this.ring = (this.ring + 1) % LATENCY_WINDOW
  }

  now(): CallFiguresNow {
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const q = (p: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
    const now = this.clock.monotonicMs()
    const recent = this.finishedAt.filter((t) => t >= now - RATE_WINDOW_MS).length
    const oldest = this.finishedAt.length < LATENCY_WINDOW ? this.finishedAt[0] : this.finishedAt[this.ring]
    const since = Math.max(1, Math.min(RATE_WINDOW_MS, now - (oldest ?? now)))
    return {
      calls: this.calls,
      failed: this.failed,
      callsPerSecond: (recent * 1000) / since,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
    }
  }
}
