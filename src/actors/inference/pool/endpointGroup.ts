/**
 * One model's group of endpoints inside the inference pool, the shell around the group's decider
 * (`../decider.ts`): what the group owns and records — membership, health, weight versions — is
 * the decider's state, changed only by running a command through `decide` and `evolve`; here are
 * the effects and the live parts: each endpoint's client, calls in flight, eviction signal and
 * counters, the episode-affinity table, and the FIFO of calls waiting for a free slot. Slots are
 * handed straight to the oldest waiter when one frees up (or an endpoint returns or joins), so a
 * burst of new calls cannot starve a call that has been waiting. All state changes are synchronous
 * (one JS thread), so there are no locks; only waiting is an Effect.
 *
 * Membership changes at run time: `join` appends an endpoint, `leave` takes one out of routing at
 * once while its in-flight calls finish (or are evicted, to be retried elsewhere); it leaves the
 * list when the last one has. A weight update pauses endpoints (`startUpdates`): they take no new
 * call, calls wait in the FIFO meanwhile, and `idle` says when a paused endpoint's last call has
 * ended; the update's outcome (`observeUpdated`, `observeUpdateFailed`) hands it the waiting calls
 * again, or ejects it. Endpoints are known by a stable `id` (never reused), not by their
 * position, so affinity and a call's "already tried" set survive others joining and leaving.
 */
import { setMaxListeners } from "node:events"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type OpenAI from "openai"
import {
  decide,
  type EndpointRecord,
  endpointById,
  evolve,
  type FailureKind,
  hasUntriedMember,
  type InferenceCommand,
  type InferenceEvent,
  type InferenceRejection,
  type InferenceState,
  initialState,
  memberByUrl,
  needsUpdate,
  type PoolEvent,
  probeDue,
  recordable,
  routable,
  unusable,
} from "../decider.ts"
import type { EndpointConfig, ModelConfig } from "../modelsConfig.ts"
import { canTake, LatencyWindow, pickEndpoint, type RoutingView } from "./routing.ts"

/**
 * Every call in flight on an endpoint listens for its eviction: one listener per call, so the
 * default limit of 10 (a leak warning) does not apply.
 */
const evictionController = (): AbortController => {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

/** The shell's side of one listed endpoint: what it needs to call it, and what it counts. */
export interface LiveEndpoint {
  /** The decider's id of the endpoint. */
  readonly id: number
  /** The base URL as configured (the config refuses credentials in it), safe for events. */
  readonly url: string
  readonly maxConcurrency: number
  /** undefined when the endpoint is disabled */
  readonly client: OpenAI | undefined
  inFlight: number
  /** Aborted by `leave` without draining: in-flight attempts stop and are retried elsewhere. */
  readonly eviction: AbortController
  /** Attempts finished (successes and counted failures). */
  calls: number
  failures: number
  /** 429 answers (also counted in `failures`). */
  rateLimited: number
  /** Failed probes, of a healthy or an ejected endpoint. */
  probeFailures: number
  /** True while a probe of this endpoint runs, so rounds never overlap on one endpoint. */
  probing: boolean
  lastError: string | undefined
  readonly latencies: LatencyWindow
}

/** Holds the endpoint one attempt acquired, so whoever ends the attempt (even an interrupt) frees it. */
export interface Ticket {
  endpoint: LiveEndpoint | undefined
}

interface Waiter {
  readonly ticket: Ticket
  readonly affinityKey: string | undefined
  readonly avoid: ReadonlySet<number> | undefined
  readonly wake: () => void
}

export interface EndpointClient {
  readonly client: OpenAI | undefined
  /** Why the endpoint can never take a call (its key variable is unset). */
  readonly disabled: string | undefined
}

/** What a call saw fail, as the attempt classified it. */
export interface ObservedFailure {
  readonly kind: FailureKind
  readonly code: string
  /** Already redacted. */
  readonly message: string
  readonly retryAfterMs?: number
}

/** Where an endpoint group sends the events its decider says to record. */
export type RecordEvent = (event: PoolEvent) => void

/** Enough affinity entries for every live episode of a large run; the oldest are forgotten first. */
const AFFINITY_LIMIT = 100_000

export class EndpointGroup {
  private decided: InferenceState
  private readonly live = new Map<number, LiveEndpoint>()
  private readonly waiters = new Set<Waiter>()
  /** affinity key → endpoint id */
  private readonly affinity = new Map<string, number>()
  /** Callbacks waiting for a left endpoint's last call to end, by endpoint id. */
  private readonly drainWatchers = new Map<number, Array<() => void>>()
  /** Callbacks waiting for an endpoint to have no call in flight, by endpoint id. */
  private readonly idleWatchers = new Map<number, Array<() => void>>()
  private rotation = 0
  /** 429 answers over the group's life, including endpoints that have left since. */
  rateLimited = 0

  /** Joins the configured endpoints (`clients` in the same order), recording each join. */
  constructor(
    readonly config: ModelConfig,
    clients: ReadonlyArray<EndpointClient>,
    private readonly record: RecordEvent = () => {},
  ) {
    this.decided = initialState(config.name, { ejectAfterFailures: config.ejectAfterFailures })
    config.endpoints.forEach((endpoint, index) => {
      this.join(endpoint, clients[index] ?? { client: undefined, disabled: "no client" }, "config")
    })
  }

  /** The decider's state: membership, health and versions of every listed endpoint. */
  get state(): InferenceState {
    return this.decided
  }

  /** Every endpoint still listed, in joining order: members, and left ones with calls in flight. */
  get endpoints(): ReadonlyArray<LiveEndpoint> {
    return this.decided.endpoints.map((record) => this.live.get(record.id)!)
  }

  /** The endpoints that belong to the group (not left). */
  get members(): ReadonlyArray<LiveEndpoint> {
    return this.decided.endpoints
      .filter((record) => record.membership === "joined")
      .map((record) => this.live.get(record.id)!)
  }

  get waiting(): number {
    return this.waiters.size
  }

  /** See the decider's `unusable`. */
  get unusable(): string | undefined {
    return unusable(this.decided)
  }

  /** What the decider knows of a listed endpoint (undefined once it has drained and gone). */
  recordOf(endpoint: LiveEndpoint): EndpointRecord | undefined {
    return endpointById(this.decided, endpoint.id)
  }

  /**
   * Runs a command through the decider: its events change the state, the recordable ones are
   * recorded, and the shell follows what they say (a returned endpoint takes the waiting calls, a
   * drained one leaves the list). A rejection changes nothing.
   */
  apply(command: InferenceCommand): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> {
    const decided = decide(this.decided, command)
    if (Result.isFailure(decided)) return decided
    for (const event of decided.success) {
      this.decided = evolve(this.decided, event)
      const recorded = recordable(event)
      if (recorded !== undefined) this.record(recorded)
      if (event.type === "EndpointDrained") this.forget(event.endpointId)
    }
    // A returned endpoint, or one whose update ended, may take the calls that wait.
    if (decided.success.some((e) => e.type === "EndpointReturned" || e.type === "EndpointWeightsUpdated"))
      this.drain()
    return decided
  }

  /** Observations decide no rejection; this reads their events. */
  private observe(command: InferenceCommand): ReadonlyArray<InferenceEvent> {
    const decided = this.apply(command)
    return Result.isSuccess(decided) ? decided.success : []
  }

  /** The member serving `url` (trailing slashes ignored), if any. */
  member(url: string): LiveEndpoint | undefined {
    const record = memberByUrl(this.decided, url)
    return record === undefined ? undefined : this.live.get(record.id)
  }

  /**
   * Joins an endpoint: from the config (listed disabled when `client.disabled` says why its key
   * cannot be had), or by an operator at run time (refused when its URL is a member already, or
   * its key cannot be had). An enabled one takes calls at once, waiting calls first.
   */
  join(
    config: EndpointConfig,
    client: EndpointClient,
    source: "config" | "operator",
  ): Result.Result<LiveEndpoint, InferenceRejection> {
    // The decider gives a joining endpoint the state's `nextId`.
    const id = this.decided.nextId
    const joined = this.apply({
      type: "Join",
      url: config.url,
      source,
      ...(client.disabled === undefined ? {} : { keyProblem: client.disabled }),
    })
    if (Result.isFailure(joined)) return Result.fail(joined.failure)
    const endpoint: LiveEndpoint = {
      id,
      url: endpointById(this.decided, id)!.url,
      maxConcurrency: config.maxConcurrency,
      client: client.client,
      inFlight: 0,
      eviction: evictionController(),
      calls: 0,
      failures: 0,
      rateLimited: 0,
      probeFailures: 0,
      probing: false,
      lastError: undefined,
      latencies: new LatencyWindow(),
    }
    this.live.set(id, endpoint)
    this.drain()
    return Result.succeed(endpoint)
  }

  /**
   * Takes the member serving `url` out of routing now (its `EndpointLeft` recorded). With `drain`,
   * its in-flight calls finish there; without, they are evicted (their attempts end and are
   * retried elsewhere). The effect ends once the endpoint has no call in flight and has left the
   * list.
   */
  leave(url: string, reason: string, drain: boolean): Result.Result<Effect.Effect<void>, InferenceRejection> {
    const left = this.apply({ type: "Leave", url, reason })
    if (Result.isFailure(left)) return Result.fail(left.failure)
    const event = left.success[0]
    const endpoint = event?.type === "EndpointLeft" ? this.live.get(event.endpointId!) : undefined
    if (endpoint === undefined) return Result.succeed(Effect.void)
    if (!drain) endpoint.eviction.abort()
    this.drainIfIdle(endpoint)
    return Result.succeed(this.drained(endpoint))
  }

  /** Ends once `endpoint` has left the list. */
  private drained(endpoint: LiveEndpoint): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.live.has(endpoint.id) ? watch(this.drainWatchers, endpoint.id) : Effect.void,
    )
  }

  /**
   * Ends once `endpoint` has no call in flight (at once when it has none, or has left the list):
   * a paused endpoint's calls finish before its weights change, so no call spans two versions.
   */
  idle(endpoint: LiveEndpoint): Effect.Effect<void> {
    return Effect.suspend(() =>
      endpoint.inFlight > 0 && this.live.has(endpoint.id)
        ? watch(this.idleWatchers, endpoint.id)
        : Effect.void,
    )
  }

  /** A left endpoint with no call in flight has drained: the decider removes it. */
  private drainIfIdle(endpoint: LiveEndpoint): void {
    if (endpoint.inFlight === 0) this.apply({ type: "Drained", endpointId: endpoint.id })
  }

  private forget(id: number): void {
    this.live.delete(id)
    wake(this.drainWatchers, id)
    wake(this.idleWatchers, id)
  }

  /** Why each member cannot take a call now, for a user-facing error. */
  capacitySummary(): string {
    const listed = this.decided.endpoints.filter((record) => record.membership === "joined")
    if (listed.length === 0) return "the group has no endpoints (all were removed)"
    return listed
      .map((record) => {
        const e = this.live.get(record.id)!
        const state =
          record.disabled !== undefined
            ? "disabled"
            : record.health === "ejected"
              ? `ejected (${e.lastError ?? "failing"})`
              : record.updatingTo !== undefined
                ? `paused (updating to ${record.updatingTo})`
                : `${e.inFlight}/${e.maxConcurrency} in flight`
        return `${e.url} ${state}`
      })
      .join(", ")
  }

  /** What routing sees of each listed endpoint, in list order: the decider says whether it is routable. */
  private views(): ReadonlyArray<RoutingView> {
    return this.decided.endpoints.map((record) => {
      const endpoint = this.live.get(record.id)!
      return {
        inFlight: endpoint.inFlight,
        maxConcurrency: endpoint.maxConcurrency,
        healthy: routable(record),
      }
    })
  }

  /** True when an endpoint this call has not tried (by id) can take it right now (retry at once). */
  hasUntriedCapacity(avoid: ReadonlySet<number>): boolean {
    const views = this.views()
    return this.decided.endpoints.some(
      (record, position) => !avoid.has(record.id) && canTake(views[position]!),
    )
  }

  /** True when some member not yet tried (by id) could ever take the call. */
  hasUntriedMember(avoid: ReadonlySet<number>): boolean {
    return hasUntriedMember(this.decided, avoid)
  }

  private positionOf(id: number | undefined): number | undefined {
    if (id === undefined) return undefined
    const position = this.decided.endpoints.findIndex((record) => record.id === id)
    return position < 0 ? undefined : position
  }

  private assign(ticket: Ticket, affinityKey: string | undefined, avoid: ReadonlySet<number> | undefined) {
    const records = this.decided.endpoints
    if (records.length === 0) return false
    const pinned = affinityKey === undefined ? undefined : this.affinity.get(affinityKey)
    const preferred = this.positionOf(pinned)
    const avoidPositions =
      avoid === undefined || avoid.size === 0
        ? undefined
        : new Set(records.flatMap((record, position) => (avoid.has(record.id) ? [position] : [])))
    const position = pickEndpoint(this.views(), {
      preferred,
      avoid: avoidPositions,
      rotation: this.rotation,
    })
    if (position === undefined) return false
    this.rotation = (this.rotation + 1) % records.length
    const endpoint = this.live.get(records[position]!.id)!
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
    if (endpoint.inFlight === 0) wake(this.idleWatchers, endpoint.id)
    if (this.recordOf(endpoint)?.membership === "left") this.drainIfIdle(endpoint)
    this.drain()
  }

  /** A call on `endpoint` succeeded; the answer may report a new policy version. */
  observeSuccess(endpoint: LiveEndpoint, latencyMs: number, policyVersion: string | undefined): void {
    endpoint.calls++
    endpoint.latencies.add(latencyMs)
    this.observe({
      type: "ObserveSuccess",
      endpointId: endpoint.id,
      ...(policyVersion === undefined ? {} : { policyVersion }),
    })
  }

  /**
   * A call on `endpoint` failed at `now` (wall-clock ms): counted (a 429 also apart) unless it was
   * a bad request; the events say whether it ejected the endpoint.
   */
  observeFailure(
    endpoint: LiveEndpoint,
    failure: ObservedFailure,
    now: number,
  ): ReadonlyArray<InferenceEvent> {
    const events = this.observe({
      type: "ObserveFailure",
      endpointId: endpoint.id,
      kind: failure.kind,
      code: failure.code,
      message: failure.message,
      ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }),
      now,
    })
    for (const event of events) {
      if (event.type !== "CallFailed" || !event.counted) continue
      endpoint.calls++
      endpoint.failures++
      endpoint.lastError = `${failure.code}: ${failure.message}`
      if (event.rateLimited) {
        endpoint.rateLimited++
        this.rateLimited++
      }
    }
    return events
  }

  /** A probe of `endpoint` sent for `probe` was answered, or failed with `reason`, at `now`. */
  observeProbe(
    endpoint: LiveEndpoint,
    probe: "health" | "return",
    outcome: { readonly answered: true } | { readonly answered: false; readonly reason: string },
    now: number,
  ): ReadonlyArray<InferenceEvent> {
    if (!outcome.answered) {
      endpoint.probeFailures++
      endpoint.lastError = outcome.reason
    }
    return this.observe({ type: "ObserveProbe", endpointId: endpoint.id, probe, outcome, now })
  }

  /**
   * Pauses, for an update to `version`, every member the decider says needs one (`needsUpdate`),
   * all at once: from now on no new call starts on any of them. Returns the paused endpoints.
   */
  startUpdates(version: string): ReadonlyArray<LiveEndpoint> {
    return this.decided.endpoints
      .filter((record) => needsUpdate(record, version))
      .flatMap((record) => {
        const started = this.apply({ type: "StartUpdate", endpointId: record.id, version })
        return Result.isSuccess(started) ? [this.live.get(record.id)!] : []
      })
  }

  /** `endpoint` now serves `version`, `ms` after its pause: it takes calls again (waiting ones first). */
  observeUpdated(
    endpoint: LiveEndpoint,
    version: string,
    ms: number,
    checksum: string | undefined,
    recovered?: string,
  ): ReadonlyArray<InferenceEvent> {
    return this.observe({
      type: "ObserveUpdated",
      endpointId: endpoint.id,
      version,
      ms,
      ...(checksum === undefined ? {} : { checksum }),
      ...(recovered === undefined ? {} : { recovered }),
    })
  }

  /** The update of `endpoint` failed (`reason` already redacted): the decider ejects it. */
  observeUpdateFailed(
    endpoint: LiveEndpoint,
    reason: string,
    ms: number,
    checksum: string | undefined,
  ): ReadonlyArray<InferenceEvent> {
    endpoint.lastError = `weight update: ${reason}`
    return this.observe({
      type: "ObserveUpdateFailed",
      endpointId: endpoint.id,
      reason,
      ms,
      ...(checksum === undefined ? {} : { checksum }),
    })
  }

  /**
   * The endpoints a probe round at `now` asks, and what for (the decider's `probeDue`): a health
   * probe only of an idle endpoint, and never one already being probed.
   */
  probesDue(
    now: number,
    which: "ejected" | "all",
  ): ReadonlyArray<{ readonly endpoint: LiveEndpoint; readonly probe: "health" | "return" }> {
    return this.decided.endpoints.flatMap((record) => {
      const endpoint = this.live.get(record.id)!
      if (endpoint.probing) return []
      const probe = probeDue(record, now, which)
      if (probe === undefined || (probe === "health" && endpoint.inFlight > 0)) return []
      return [{ endpoint, probe }]
    })
  }
}

/** Ends when `wake(watchers, id)` is called; leaves the list if interrupted first. */
const watch = (watchers: Map<number, Array<() => void>>, id: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const watcher = () => resume(Effect.void)
    watchers.set(id, [...(watchers.get(id) ?? []), watcher])
    return Effect.sync(() => {
      const left = watchers.get(id)?.filter((w) => w !== watcher) ?? []
      if (left.length > 0) watchers.set(id, left)
      else watchers.delete(id)
    })
  })

/** Calls (and forgets) every watcher of `id`. */
const wake = (watchers: Map<number, Array<() => void>>, id: number): void => {
  const waiting = watchers.get(id) ?? []
  watchers.delete(id)
  for (const watcher of waiting) watcher()
}
