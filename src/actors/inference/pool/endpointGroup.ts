/**
 * One model's group of endpoints inside the inference pool: their live state (in-flight calls,
 * health, failure counts, latencies), the episode-affinity table, and the FIFO of calls waiting for
 * a free slot. Slots are handed straight to the oldest waiter when one frees up (or an endpoint
 * returns or joins), so a burst of new calls cannot starve a call that has been waiting. All state
 * changes are synchronous (one JS thread), so there are no locks; only waiting is an Effect.
 *
 * Membership changes at run time: `add` appends an endpoint, `remove` takes one out of routing at
 * once while its in-flight calls finish (or are evicted, to be retried elsewhere); it leaves the
 * list when the last one has. Endpoints are known by a stable `id` (never reused), not by their
 * position, so affinity and a call's "already tried" set survive others joining and leaving.
 */
import { setMaxListeners } from "node:events"
import * as Effect from "effect/Effect"
import type OpenAI from "openai"
import type { EndpointConfig, ModelConfig } from "../modelsConfig.ts"
import { canTake, LatencyWindow, pickEndpoint } from "./routing.ts"

/**
 * Every call in flight on an endpoint listens for its eviction: one listener per call, so the
 * default limit of 10 (a leak warning) does not apply.
 */
const evictionController = (): AbortController => {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

export interface EndpointState {
  /** Stable within the group and never reused, unlike the position in `endpoints`. */
  readonly id: number
  /** The base URL as configured (the config refuses credentials in it), safe for events. */
  readonly url: string
  readonly maxConcurrency: number
  /** undefined when `disabled` */
  readonly client: OpenAI | undefined
  readonly disabled: string | undefined
  inFlight: number
  healthy: boolean
  /** Set by `remove`: no new calls; the endpoint leaves the list once `inFlight` is 0. */
  removed: boolean
  /** Aborted by `remove` without draining: in-flight attempts stop and are retried elsewhere. */
  readonly eviction: AbortController
  consecutiveFailures: number
  /** Failed health probes in a row while healthy (reset by a good probe or a successful call). */
  consecutiveProbeFailures: number
  calls: number
  failures: number
  /** 429 answers (also counted in `failures`). */
  rateLimited: number
  probeFailures: number
  /** True while a probe of this endpoint runs, so rounds never overlap on one endpoint. */
  probing: boolean
  /** Wall-clock ms before which a return probe is not sent (the server's `retry-after`). */
  retryAfterUntil: number | undefined
  lastError: string | undefined
  policyVersion: string | undefined
  readonly latencies: LatencyWindow
}

/** Holds the endpoint one attempt acquired, so whoever ends the attempt (even an interrupt) frees it. */
export interface Ticket {
  endpoint: EndpointState | undefined
}

interface Waiter {
  readonly ticket: Ticket
  readonly affinityKey: string | undefined
  readonly avoid: ReadonlySet<number> | undefined
  readonly wake: () => void
}

export interface EndpointClient {
  readonly client: OpenAI | undefined
  readonly disabled: string | undefined
}

/** Enough affinity entries for every live episode of a large run; the oldest are forgotten first. */
const AFFINITY_LIMIT = 100_000

export class EndpointGroup {
  private readonly list: Array<EndpointState> = []
  private readonly waiters = new Set<Waiter>()
  /** affinity key → endpoint id */
  private readonly affinity = new Map<string, number>()
  /** Callbacks waiting for a removed endpoint's last call to end, by endpoint id. */
  private readonly drainWatchers = new Map<number, Array<() => void>>()
  private rotation = 0
  private nextId = 0
  /** 429 answers over the group's life, including endpoints that have left since. */
  rateLimited = 0

  constructor(
    readonly config: ModelConfig,
    clients: ReadonlyArray<EndpointClient>,
  ) {
    config.endpoints.forEach((endpoint, index) => {
      this.append(endpoint, clients[index] ?? { client: undefined, disabled: "no client" })
    })
  }

  /** Every endpoint still listed: members, and removed ones with calls in flight. */
  get endpoints(): ReadonlyArray<EndpointState> {
    return this.list
  }

  /** The endpoints that belong to the group (not removed). */
  get members(): ReadonlyArray<EndpointState> {
    return this.list.filter((endpoint) => !endpoint.removed)
  }

  get waiting(): number {
    return this.waiters.size
  }

  /**
   * Why no call can ever succeed here (every member disabled), or undefined. A group with no member
   * at all is not unusable: calls wait (bounded) for one to be added.
   */
  get unusable(): string | undefined {
    const members = this.members
    if (members.length === 0) return undefined
    const reasons = members.map((endpoint) => endpoint.disabled)
    return reasons.every((reason) => reason !== undefined) ? reasons.join("; ") : undefined
  }

  private append(config: EndpointConfig, client: EndpointClient): EndpointState {
    const endpoint: EndpointState = {
      id: this.nextId++,
      url: config.url,
      maxConcurrency: config.maxConcurrency,
      client: client.client,
      disabled: client.disabled,
      inFlight: 0,
      healthy: true,
      removed: false,
      eviction: evictionController(),
      consecutiveFailures: 0,
      consecutiveProbeFailures: 0,
      calls: 0,
      failures: 0,
      rateLimited: 0,
      probeFailures: 0,
      probing: false,
      retryAfterUntil: undefined,
      lastError: undefined,
      policyVersion: undefined,
      latencies: new LatencyWindow(),
    }
    this.list.push(endpoint)
    return endpoint
  }

  /** The member serving `url` (trailing slashes ignored), if any. */
  member(url: string): EndpointState | undefined {
    const wanted = url.replace(/\/+$/, "")
    return this.list.find((endpoint) => !endpoint.removed && endpoint.url === wanted)
  }

  /** Adds an endpoint that takes calls at once (waiting calls first). */
  add(config: EndpointConfig, client: EndpointClient): EndpointState {
    const endpoint = this.append(config, client)
    this.drain()
    return endpoint
  }

  /**
   * Takes `endpoint` out of routing now. With `drain`, its in-flight calls finish there; without,
   * they are evicted (their attempts end and are retried elsewhere). The effect ends once the
   * endpoint has no call in flight and has left the list.
   */
  remove(endpoint: EndpointState, drain: boolean): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (!endpoint.removed) {
        endpoint.removed = true
        if (!drain) endpoint.eviction.abort()
        this.forgetIfIdle(endpoint)
      }
      if (!this.list.includes(endpoint)) return Effect.void
      return Effect.callback<void>((resume) => {
        const watchers = this.drainWatchers.get(endpoint.id) ?? []
        const watcher = () => resume(Effect.void)
        watchers.push(watcher)
        this.drainWatchers.set(endpoint.id, watchers)
        return Effect.sync(() => {
          const left = this.drainWatchers.get(endpoint.id)?.filter((w) => w !== watcher) ?? []
          if (left.length > 0) this.drainWatchers.set(endpoint.id, left)
          else this.drainWatchers.delete(endpoint.id)
        })
      })
    })
  }

  private forgetIfIdle(endpoint: EndpointState): void {
    if (!endpoint.removed || endpoint.inFlight > 0) return
    const position = this.list.indexOf(endpoint)
    if (position >= 0) this.list.splice(position, 1)
    const watchers = this.drainWatchers.get(endpoint.id) ?? []
    this.drainWatchers.delete(endpoint.id)
    for (const watcher of watchers) watcher()
  }

  /** Why each member cannot take a call now, for a user-facing error. */
  capacitySummary(): string {
    const members = this.members
    if (members.length === 0) return "the group has no endpoints (all were removed)"
    return members
      .map((e) => {
        const state =
          e.disabled !== undefined
            ? "disabled"
            : e.healthy
              ? `${e.inFlight}/${e.maxConcurrency} in flight`
              : `ejected (${e.lastError ?? "failing"})`
        return `${e.url} ${state}`
      })
      .join(", ")
  }

  /** True when an endpoint this call has not tried (by id) can take it right now (retry at once). */
  hasUntriedCapacity(avoid: ReadonlySet<number>): boolean {
    return this.list.some((endpoint) => !avoid.has(endpoint.id) && canTake(endpoint))
  }

  /** True when some member not yet tried (by id) could ever take the call. */
  hasUntriedMember(avoid: ReadonlySet<number>): boolean {
    return this.list.some((e) => !e.removed && e.disabled === undefined && !avoid.has(e.id))
  }

  private positionOf(id: number | undefined): number | undefined {
    if (id === undefined) return undefined
    const position = this.list.findIndex((endpoint) => endpoint.id === id)
    return position < 0 ? undefined : position
  }

  private assign(ticket: Ticket, affinityKey: string | undefined, avoid: ReadonlySet<number> | undefined) {
    if (this.list.length === 0) return false
    const pinned = affinityKey === undefined ? undefined : this.affinity.get(affinityKey)
    const preferred = this.positionOf(pinned)
    const avoidPositions =
      avoid === undefined || avoid.size === 0
        ? undefined
        : new Set(this.list.flatMap((endpoint, position) => (avoid.has(endpoint.id) ? [position] : [])))
    const position = pickEndpoint(this.list, {
      preferred,
      avoid: avoidPositions,
      rotation: this.rotation,
    })
    if (position === undefined) return false
    this.rotation = (this.rotation + 1) % this.list.length
    const endpoint = this.list[position]!
    endpoint.inFlight++
    ticket.endpoint = endpoint
    if (affinityKey !== undefined && pinned !== endpoint.id) {
      // Re-pin: the episode's KV cache now lives where this turn runs.
      this.affinity.delete(affinityKey)
      this.affinity.set(affinityKey, endpoint.id)
      if (this.affinity.size > AFFINITY_LIMIT) this.affinity.delete(this.affinity.keys().next().value!)
    }
    return true
  }

  /**
   * Fills `ticket` with an endpoint, waiting up to `timeoutMs` for a slot when none is free; the
   * ticket stays empty when the wait timed out. `avoid` holds endpoint ids this call failed on. The
   * caller must `release` whatever the ticket holds, whatever happens (see `Ticket`).
   */
  acquire(
    ticket: Ticket,
    affinityKey: string | undefined,
    avoid: ReadonlySet<number> | undefined,
    timeoutMs: number,
  ): Effect.Effect<void> {
    return Effect.suspend(() => {
      // Newcomers queue behind existing waiters rather than overtaking them.
      if (this.waiters.size === 0 && this.assign(ticket, affinityKey, avoid)) return Effect.void
      if (timeoutMs <= 0) return Effect.void
      const wait = Effect.callback<void>((resume) => {
        const waiter: Waiter = { ticket, affinityKey, avoid, wake: () => resume(Effect.void) }
        this.waiters.add(waiter)
        // A slot may be free already (waiters ahead of us were served by the same release).
        this.drain()
        // On interrupt (timeout, cancellation) leave the queue; an assigned slot is freed by the owner.
        return Effect.sync(() => {
          this.waiters.delete(waiter)
        })
      })
      return Effect.asVoid(Effect.timeoutOption(wait, timeoutMs))
    })
  }

  /** Gives free slots to the oldest waiters. */
  private drain(): void {
    for (const waiter of this.waiters) {
      if (!this.assign(waiter.ticket, waiter.affinityKey, waiter.avoid)) return
      this.waiters.delete(waiter)
      waiter.wake()
    }
  }

  release(ticket: Ticket): void {
    const endpoint = ticket.endpoint
    if (endpoint === undefined) return
    ticket.endpoint = undefined
    endpoint.inFlight--
    this.forgetIfIdle(endpoint)
    this.drain()
  }

  recordSuccess(endpoint: EndpointState, latencyMs: number): void {
    endpoint.calls++
    endpoint.consecutiveFailures = 0
    endpoint.consecutiveProbeFailures = 0
    endpoint.latencies.add(latencyMs)
  }

  /**
   * Counts a failed attempt (a 429 also as `rateLimited`); true when it ejects the endpoint (the
   * caller records the event). A removed endpoint is never ejected: it is leaving anyway.
   */
  recordFailure(endpoint: EndpointState, reason: string, rateLimited = false): boolean {
    endpoint.calls++
    endpoint.failures++
    endpoint.consecutiveFailures++
    endpoint.lastError = reason
    if (rateLimited) {
      endpoint.rateLimited++
      this.rateLimited++
    }
    if (
      !endpoint.healthy ||
      endpoint.removed ||
      endpoint.consecutiveFailures < this.config.ejectAfterFailures
    )
      return false
    endpoint.healthy = false
    return true
  }

  /** A healthy endpoint's probe got an answer. */
  recordProbeSuccess(endpoint: EndpointState): void {
    endpoint.consecutiveProbeFailures = 0
  }

  /** A probe failed; true when it ejects a healthy endpoint (the caller records the event). */
  recordProbeFailure(endpoint: EndpointState, reason: string): boolean {
    endpoint.probeFailures++
    endpoint.lastError = reason
    if (!endpoint.healthy || endpoint.removed) return false
    endpoint.consecutiveProbeFailures++
    if (endpoint.consecutiveProbeFailures < this.config.ejectAfterFailures) return false
    endpoint.healthy = false
    return true
  }

  /**
   * The probe of an ejected endpoint got an answer: it takes calls again, starting with the waiting
   * ones. False when there was nothing to do (already back, or removed meanwhile).
   */
  markReturned(endpoint: EndpointState): boolean {
    if (endpoint.healthy || endpoint.removed) return false
    endpoint.healthy = true
    endpoint.consecutiveFailures = 0
    endpoint.consecutiveProbeFailures = 0
    endpoint.retryAfterUntil = undefined
    this.drain()
    return true
  }
}
