/**
 * The inference pool's routing rules as pure functions: which endpoint takes a call (episode
 * affinity first, then least in-flight among healthy endpoints under their cap, preferring ones
 * this call has not failed on), how long to back off before a retry, and latency percentiles over
 * a bounded window. Kept free of I/O so the rules can be checked with properties.
 */

/** What routing needs to know about one endpoint. */
export interface RoutingView {
  readonly inFlight: number
  readonly maxConcurrency: number
  readonly healthy: boolean
  /** Set when the endpoint can never take calls (e.g. its API key variable is unset). */
  readonly disabled?: string | undefined
  /** True once the endpoint was removed from its group: it finishes its calls but takes no new one. */
  readonly removed?: boolean
}

export interface PickOptions {
  /** The endpoint this call's episode used last (KV-cache reuse): taken when it can take the call. */
  readonly preferred?: number | undefined
  /** Endpoints this call already failed on: used only when nothing else can take it. */
  readonly avoid?: ReadonlySet<number> | undefined
  /** Where tie-breaking starts, so equal loads are spread round-robin rather than piled on #0. */
  readonly rotation?: number
}

/** True when the endpoint may take one more call now. */
export const canTake = (endpoint: RoutingView): boolean =>
  endpoint.healthy &&
  endpoint.disabled === undefined &&
  endpoint.removed !== true &&
  endpoint.inFlight < endpoint.maxConcurrency

const leastLoaded = (
  endpoints: ReadonlyArray<RoutingView>,
  rotation: number,
  accept: (index: number) => boolean,
): number | undefined => {
  let best: number | undefined
  const n = endpoints.length
  for (let step = 0; step < n; step++) {
    const index = (((rotation + step) % n) + n) % n
    const endpoint = endpoints[index]!
    if (!canTake(endpoint) || !accept(index)) continue
    if (best === undefined || endpoint.inFlight < endpoints[best]!.inFlight) best = index
  }
  return best
}

/**
 * The endpoint that takes the next call, or undefined when none can (all busy, ejected or
 * disabled). Affinity wins while its endpoint can take the call and was not failed on; otherwise
 * the least in-flight endpoint, untried ones first.
 */
export const pickEndpoint = (
  endpoints: ReadonlyArray<RoutingView>,
  options: PickOptions = {},
): number | undefined => {
  const { preferred, avoid } = options
  const rotation = options.rotation ?? 0
  if (
    preferred !== undefined &&
    endpoints[preferred] !== undefined &&
    canTake(endpoints[preferred]) &&
    avoid?.has(preferred) !== true
  )
    return preferred
  if (avoid === undefined || avoid.size === 0) return leastLoaded(endpoints, rotation, () => true)
  return (
    leastLoaded(endpoints, rotation, (index) => !avoid.has(index)) ??
    leastLoaded(endpoints, rotation, () => true)
  )
}

/**
 * The wait before retry number `retry` (1 for the first retry): exponential from `baseMs`, capped
 * at `maxMs`, with "equal jitter" (half fixed, half random) so retries of many calls that failed
 * together spread out yet never fire at once. `random` is a draw in [0, 1). A server's
 * `retry-after` raises the wait (still capped).
 */
export const backoffDelay = (
  retry: number,
  baseMs: number,
  maxMs: number,
  random: number,
  retryAfterMs?: number,
): number => {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1))
  const jittered = ceiling / 2 + (ceiling / 2) * Math.min(Math.max(random, 0), 1)
  const floor = retryAfterMs === undefined ? 0 : Math.min(maxMs, retryAfterMs)
  return Math.round(Math.max(jittered, floor))
}

/** The last `capacity` latencies of an endpoint, for p50/p99 without unbounded memory. */
export class LatencyWindow {
  private readonly samples: Float64Array
  private next = 0
  private count = 0

  constructor(readonly capacity = 1024) {
    this.samples = new Float64Array(capacity)
  }

  add(ms: number): void {
    this.samples[this.next] = ms
    this.next = (this.next + 1) % this.capacity
    this.count = Math.min(this.count + 1, this.capacity)
  }

  /** The nearest-rank percentile (0 < p ≤ 100), or undefined before the first sample. */
  percentile(p: number): number | undefined {
    if (this.count === 0) return undefined
    const sorted = Array.from(this.samples.subarray(0, this.count)).sort((a, b) => a - b)
    const rank = Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count)))
    return sorted[rank - 1]
  }
}
