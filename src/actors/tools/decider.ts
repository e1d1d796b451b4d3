/**
 * AgentDock's decider: the pool of one MCP server as a pure state machine over what the pool owns
 * and writes — its replicas (starting, up, down and waiting to restart with a doubling backoff,
 * draining, stopped), its versions (registered at start or for a hot-swap, traffic moved to the
 * new one in steps, the old one drained), the traffic shares of the versions (percent, 100 in all)
 * and one circuit per replica (closed; open after consecutive failures; half-open once its reset
 * time has passed, when calls may try the replica again). The shell (toolPool.ts) runs what this
 * cannot — processes, containers, MCP sessions, timers — and tells the decider what happened or
 * what it wants as plain-data commands, each carrying the time it happened (from the shell's
 * monotonic clock) and, where a call is routed, a random draw. It applies the events it gets back
 * with `evolve`, records the lifecycle ones (the `Tool…` events of the log) and does what the
 * notes ask: launch a replica, restart it after a delay, hand a replica to a waiting call, close a
 * replica nobody needs. Nothing here reads a clock or a random source.
 */
import * as Result from "effect/Result"
import type { EventOf } from "../../events/schema.ts"
import type { ServerEntry } from "./toolsConfig.ts"

// ---------------------------------------------------------------------------------------------
// What the pool is made of

/** The figures of one version that decisions need (tools.yaml, defaults filled in). */
export interface VersionSpec {
  readonly version: string
  readonly transport: "stdio" | "http" | "docker"
  readonly replicas: number
  /** Calls one replica takes at once. */
  readonly concurrency: number
  /** Calls that may wait for a replica; one more is refused (backpressure). */
  readonly queueLimit: number
  /** The first restart's delay after a crash; it doubles up to `maxRestartBackoffMs`. */
  readonly restartBackoffMs: number
  readonly maxRestartBackoffMs: number
  /** Consecutive failed calls that open a replica's circuit. */
  readonly breakerFailures: number
  /** How long an open circuit stays open before calls may try the replica again. */
  readonly breakerResetMs: number
}

export interface PoolSpec {
  readonly server: string
  /** The version that runs at start. */
  readonly initial: string
  /** Every version a swap may go to, the initial one included. */
  readonly versions: Readonly<Record<string, VersionSpec>>
}

export const poolSpecOf = (entry: ServerEntry): PoolSpec => ({
  server: entry.current.name,
  initial: entry.current.version,
  versions: Object.fromEntries(
    Object.entries(entry.versions).map(([version, c]) => [
      version,
      {
        version: c.version,
        transport: c.transport,
        replicas: c.replicas,
        concurrency: c.concurrency,
        queueLimit: c.queueLimit,
        restartBackoffMs: c.restartBackoffMs,
        maxRestartBackoffMs: c.maxRestartBackoffMs,
        breakerFailures: c.breakerFailures,
        breakerResetMs: c.breakerResetMs,
      },
    ]),
  ),
})

export type Phase = "starting" | "up" | "down" | "draining" | "stopped"

/** A circuit as kept; half-open is an open circuit whose `until` has passed (see `circuitAt`). */
export type Circuit = { readonly state: "closed" } | { readonly state: "open"; readonly until: number }

export interface ReplicaState {
  readonly id: string
  readonly version: string
  readonly phase: Phase
  readonly inFlight: number
  /** Consecutive failed calls. */
  readonly failures: number
  readonly circuit: Circuit
  readonly restarts: number
  /** The delay before the next restart. */
  readonly backoffMs: number
  /** The container of a Docker replica while it is up. */
  readonly sandboxId?: string
}

export interface Share {
  readonly version: string
  readonly percent: number
}

export interface SwapState {
  readonly from: string
  readonly to: string
  /** The share of `to` reached so far. */
  readonly percent: number
}

export interface PoolState {
  readonly spec: PoolSpec
  /** The version whose tools and limits the pool offers. */
  readonly current: string
  /** In order: by version as registered, then by index. */
  readonly replicas: ReadonlyArray<ReplicaState>
  /** Percent of traffic by version; they add up to 100. */
  readonly shares: ReadonlyArray<Share>
  /** Calls waiting for a free replica, oldest first. */
  readonly queue: ReadonlyArray<string>
  readonly swap?: SwapState
  readonly closed: boolean
  /** Restarts of every replica since the pool started. */
  readonly restarts: number
  readonly swaps: number
}

export const initial = (spec: PoolSpec): PoolState => ({
  spec,
  current: spec.initial,
  replicas: [],
  shares: [{ version: spec.initial, percent: 100 }],
  queue: [],
  closed: false,
  restarts: 0,
  swaps: 0,
})

/** The shares of `to` a hot-swap moves through, 100 last. */
export const TRAFFIC_STEPS: ReadonlyArray<number> = [25, 50, 75, 100]

// ---------------------------------------------------------------------------------------------
// Commands: what the shell saw or wants, as plain data. `at` is the shell's monotonic time in ms;
// `roll` a random draw in [0, 1) for routing.

export type PoolCommand =
  /** Register the initial version and launch its replicas. */
  | { readonly type: "StartPool" }
  /** A replica's MCP session is up (after `startMs`). */
  | {
      readonly type: "ReplicaUp"
      readonly replica: string
      readonly startMs: number
      readonly sandbox?: { readonly id: string; readonly owner: string }
      readonly at: number
      readonly roll: number
    }
  | { readonly type: "ReplicaStartFailed"; readonly replica: string; readonly detail: string }
  /** An up replica's session ended: it crashed, or failed its health check. */
  | {
      readonly type: "ReplicaEnded"
      readonly replica: string
      readonly cause: "crashed" | "unhealthy"
      readonly detail: string
    }
  /** A replica's restart delay has passed. */
  | { readonly type: "RestartDue"; readonly replica: string }
  /** A call wants a replica: one now, a place in the queue, or a refusal. */
  | { readonly type: "RequestReplica"; readonly call: string; readonly at: number; readonly roll: number }
  /** A queued call stopped waiting (its deadline passed). */
  | { readonly type: "StopWaiting"; readonly call: string }
  /** A call's attempt on a replica ended; `ok` false when the replica failed it (crash, timeout). */
  | {
      readonly type: "EndAttempt"
      readonly replica: string
      readonly ok: boolean
      readonly at: number
      readonly roll: number
    }
  /** Hand free replicas to queued calls (a circuit's reset time has passed). */
  | { readonly type: "RouteWaiting"; readonly at: number; readonly roll: number }
  | { readonly type: "BeginSwap"; readonly version: string }
  /** Move the swap's traffic one step on. */
  | { readonly type: "ShiftTraffic"; readonly at: number; readonly roll: number }
  /** The old version has no call in flight: stop it and end the swap. */
  | { readonly type: "FinishSwap" }
  /** The swap cannot go on (no replica started, or its tools were refused): stop the new version. */
  | { readonly type: "AbandonSwap"; readonly detail: string }
  | { readonly type: "Sample"; readonly at: number }
  | { readonly type: "Close" }

/** A refused command; the kinds are DockError's, so the shell can throw one as it is. */
export interface PoolRejection {
  readonly kind: "unknown_tool" | "queue_full" | "unavailable" | "closed" | "refused"
  readonly message: string
}

// ---------------------------------------------------------------------------------------------
// Events: the lifecycle events the log records, and notes the pool keeps for itself (not
// recorded) that say what the shell must do or what changed without a record.

export type LifecycleEvent =
  | EventOf<"ToolVersionRegistered">
  | EventOf<"ToolReplicaStarted">
  | EventOf<"ToolReplicaExited">
  | EventOf<"ToolCircuitChanged">
  | EventOf<"ToolTrafficShifted">
  | EventOf<"ToolPoolSampled">

export type PoolNote =
  /** Start (or restart) this replica. */
  | { readonly type: "ReplicaLaunching"; readonly replica: string; readonly restart: boolean }
  /** Restart this replica after `delayMs` (send RestartDue then). */
  | { readonly type: "RestartScheduled"; readonly replica: string; readonly delayMs: number }
  /** A replica came up that nobody needs any more (stopped, drained, the pool closed): close it. */
  | { readonly type: "ReplicaDiscarded"; readonly replica: string }
  /** A draining or stopped replica's session ended. */
  | { readonly type: "ReplicaStopped"; readonly replica: string }
  | { readonly type: "CallQueued"; readonly call: string }
  | { readonly type: "CallUnqueued"; readonly call: string }
  /** This call takes this replica (give it the session). */
  | { readonly type: "CallRouted"; readonly call: string; readonly replica: string }
  /** An attempt ended: the replica's failure count and circuit after it. */
  | {
      readonly type: "AttemptEnded"
      readonly replica: string
      readonly failures: number
      readonly circuit: Circuit
    }
  | { readonly type: "SwapBegun"; readonly from: string; readonly to: string }
  /** All traffic is on `current`; `version`'s replicas drain. */
  | { readonly type: "VersionDraining"; readonly version: string; readonly current: string }
  | { readonly type: "VersionRemoved"; readonly version: string }
  | { readonly type: "SwapFinished"; readonly from: string; readonly to: string }
  | { readonly type: "SwapAbandoned"; readonly to: string }
  | { readonly type: "PoolClosed" }

export type PoolEvent = LifecycleEvent | PoolNote

const LIFECYCLE: ReadonlySet<string> = new Set([
  "ToolVersionRegistered",
  "ToolReplicaStarted",
  "ToolReplicaExited",
  "ToolCircuitChanged",
  "ToolTrafficShifted",
  "ToolPoolSampled",
])

/** The events the log records (the notes stay in the pool). */
export const isLifecycle = (event: PoolEvent): event is LifecycleEvent => LIFECYCLE.has(event.type)

// ---------------------------------------------------------------------------------------------
// Queries

export const specOf = (state: PoolState, version: string): VersionSpec | undefined =>
  Object.hasOwn(state.spec.versions, version) ? state.spec.versions[version] : undefined

export const replicaOf = (state: PoolState, id: string): ReplicaState | undefined =>
  state.replicas.find((r) => r.id === id)

export const replicaId = (server: string, version: string, index: number): string =>
  `${server}@${version}#${index}`

/** Closed; open until its reset time; half-open after it (calls may try the replica again). */
export const circuitAt = (replica: ReplicaState, at: number): "closed" | "open" | "half-open" =>
  replica.circuit.state === "closed" ? "closed" : at < replica.circuit.until ? "open" : "half-open"

/** Calls in flight on a version's replicas. */
export const inFlightOf = (state: PoolState, version: string): number =>
  state.replicas.reduce((sum, r) => (r.version === version ? sum + r.inFlight : sum), 0)

/** A replica that may take a call at `at`: up, under its concurrency cap, its circuit not open. */
export const usable = (state: PoolState, replica: ReplicaState, at: number): boolean => {
  const spec = specOf(state, replica.version)
  return (
    spec !== undefined &&
    replica.phase === "up" &&
    replica.inFlight < spec.concurrency &&
    circuitAt(replica, at) !== "open"
  )
}

const leastLoaded = (state: PoolState, version: string, at: number): ReplicaState | undefined => {
  let best: ReplicaState | undefined
  for (const r of state.replicas)
    if (r.version === version && usable(state, r, at) && (best === undefined || r.inFlight < best.inFlight))
      best = r
  return best
}

/** A draw in [0, 1) whatever number comes in (NaN and infinities read as 0). */
const unit = (roll: number): number => (Number.isFinite(roll) ? roll - Math.floor(roll) : 0)

/** The i-th draw after `roll` (a golden-ratio sequence: one draw routes many calls evenly). */
const drawAt = (roll: number, i: number): number => unit(unit(roll) + i * 0.6180339887498949)

/**
 * The replica a call goes to at `at`: a version picked by its traffic share (`roll` in [0, 1)),
 * the least-loaded usable replica of it, else of any version with a share; none when no replica
 * may take a call.
 */
export const route = (state: PoolState, at: number, roll: number): string | undefined => {
  const live = state.shares.filter((s) => s.percent > 0)
  let r = unit(roll) * live.reduce((sum, s) => sum + s.percent, 0)
  let chosen = live[0]?.version
  for (const s of live) {
    if (r < s.percent) {
      chosen = s.version
      break
    }
    r -= s.percent
  }
  const first = chosen === undefined ? undefined : leastLoaded(state, chosen, at)
  if (first !== undefined) return first.id
  for (const s of live) {
    const other = leastLoaded(state, s.version, at)
    if (other !== undefined) return other.id
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// evolve: total — an event about a replica or version the state does not know changes nothing.

const mapReplica = (state: PoolState, id: string, f: (r: ReplicaState) => ReplicaState): PoolState => {
  let changed = false
  const replicas = state.replicas.map((r) => {
    if (r.id !== id) return r
    changed = true
    return f(r)
  })
  return changed ? { ...state, replicas } : state
}

const withoutSandbox = (r: ReplicaState): ReplicaState => {
  if (r.sandboxId === undefined) return r
  const { sandboxId: _, ...rest } = r
  return rest
}

/** A phase an exit or a start may not undo: a draining or stopped replica stays so. */
const settled = (phase: Phase): boolean => phase === "draining" || phase === "stopped"

const freshReplica = (spec: PoolSpec, version: VersionSpec, index: number): ReplicaState => ({
  id: replicaId(spec.server, version.version, index),
  version: version.version,
  phase: "starting",
  inFlight: 0,
  failures: 0,
  circuit: { state: "closed" },
  restarts: 0,
  backoffMs: version.restartBackoffMs,
})

const percentOf = (weight: number): number => Math.min(100, Math.max(0, Math.round(weight * 100)))

export const evolve = (state: PoolState, event: PoolEvent): PoolState => {
  switch (event.type) {
    case "ToolVersionRegistered": {
      const spec = specOf(state, event.version)
      if (spec === undefined) return state
      const count = Number.isSafeInteger(event.replicas) ? Math.max(0, event.replicas) : 0
      return {
        ...state,
        replicas: [
          ...state.replicas.filter((r) => r.version !== event.version),
          ...Array.from({ length: count }, (_, i) => freshReplica(state.spec, spec, i)),
        ],
      }
    }
    case "ToolReplicaStarted":
      return mapReplica(state, event.replica, (r) => {
        if (settled(r.phase)) return r
        const spec = specOf(state, r.version)
        const up: ReplicaState = {
          ...withoutSandbox(r),
          phase: "up",
          failures: 0,
          circuit: { state: "closed" },
          backoffMs: spec?.restartBackoffMs ?? r.backoffMs,
        }
        return event.sandboxId === undefined ? up : { ...up, sandboxId: event.sandboxId }
      })
    case "ToolReplicaExited":
      return mapReplica(state, event.replica, (r) => ({
        ...withoutSandbox(r),
        phase:
          event.reason === "drained" || event.reason === "stopped" || settled(r.phase) ? "stopped" : "down",
      }))
    case "ToolTrafficShifted": {
      if (!Number.isFinite(event.weight)) return state
      const percent = event.from === event.to ? 100 : percentOf(event.weight)
      const shares =
        event.from === event.to
          ? [{ version: event.to, percent }]
          : [
              { version: event.from, percent: 100 - percent },
              { version: event.to, percent },
            ]
      const swap =
        state.swap !== undefined && state.swap.from === event.from && state.swap.to === event.to
          ? { ...state.swap, percent }
          : state.swap
      return { ...state, shares, ...(swap === undefined ? {} : { swap }) }
    }
    // The record of a change the state already holds (AttemptEnded), or a look at it.
    case "ToolCircuitChanged":
    case "ToolPoolSampled":
    case "ReplicaDiscarded":
      return state
    case "ReplicaLaunching":
      return {
        ...mapReplica(state, event.replica, (r) => ({
          ...r,
          phase: "starting",
          restarts: r.restarts + (event.restart ? 1 : 0),
        })),
        restarts: state.restarts + (event.restart && replicaOf(state, event.replica) !== undefined ? 1 : 0),
      }
    case "RestartScheduled":
      return mapReplica(state, event.replica, (r) => {
        const spec = specOf(state, r.version)
        return { ...r, backoffMs: Math.min(r.backoffMs * 2, spec?.maxRestartBackoffMs ?? r.backoffMs) }
      })
    case "ReplicaStopped":
      return mapReplica(state, event.replica, (r) => ({ ...withoutSandbox(r), phase: "stopped" }))
    case "CallQueued":
      return state.queue.includes(event.call) ? state : { ...state, queue: [...state.queue, event.call] }
    case "CallUnqueued":
      return { ...state, queue: state.queue.filter((c) => c !== event.call) }
    case "CallRouted":
      return mapReplica(
        { ...state, queue: state.queue.filter((c) => c !== event.call) },
        event.replica,
        (r) => ({
          ...r,
          inFlight: r.inFlight + 1,
        }),
      )
    case "AttemptEnded":
      return mapReplica(state, event.replica, (r) => ({
        ...r,
        inFlight: Math.max(0, r.inFlight - 1),
        failures: Math.max(0, event.failures),
        circuit: event.circuit,
      }))
    case "SwapBegun":
      return { ...state, swap: { from: event.from, to: event.to, percent: 0 } }
    case "VersionDraining":
      return {
        ...state,
        current: specOf(state, event.current) === undefined ? state.current : event.current,
        replicas: state.replicas.map((r) =>
          r.version === event.version && r.phase !== "stopped" ? { ...r, phase: "draining" } : r,
        ),
      }
    case "VersionRemoved":
      return { ...state, replicas: state.replicas.filter((r) => r.version !== event.version) }
    case "SwapFinished": {
      if (specOf(state, event.to) === undefined) return state
      const { swap: _, ...rest } = state
      return {
        ...rest,
        current: event.to,
        replicas: state.replicas.filter((r) => r.version !== event.from || event.from === event.to),
        shares: [{ version: event.to, percent: 100 }],
        swaps: state.swaps + 1,
      }
    }
    case "SwapAbandoned": {
      const { swap: _, ...rest } = state
      return rest
    }
    case "PoolClosed":
      return {
        ...state,
        closed: true,
        queue: [],
        replicas: state.replicas.map((r) => ({ ...withoutSandbox(r), phase: "stopped" })),
      }
  }
}

const evolveAll = (state: PoolState, events: ReadonlyArray<PoolEvent>): PoolState =>
  events.reduce(evolve, state)

// ---------------------------------------------------------------------------------------------
// decide: total — every command gets events (possibly none) or a rejection, never a throw.

type Decision = Result.Result<ReadonlyArray<PoolEvent>, PoolRejection>

const accept = (events: ReadonlyArray<PoolEvent>): Decision => Result.succeed(events)
const refuse = (kind: PoolRejection["kind"], message: string): Decision => Result.fail({ kind, message })

/** Queued calls that may have a replica now, in order, each on the state the previous one left. */
const routeWaiting = (state: PoolState, at: number, roll: number): ReadonlyArray<PoolEvent> => {
  const routed: PoolEvent[] = []
  let s = state
  for (let i = 0; s.queue.length > 0; i++) {
    const replica = route(s, at, drawAt(roll, i))
    if (replica === undefined) break
    const event: PoolEvent = { type: "CallRouted", call: s.queue[0]!, replica }
    routed.push(event)
    s = evolve(s, event)
  }
  return routed
}

/** The events, then the queued calls they let through. */
const thenRoute = (state: PoolState, events: ReadonlyArray<PoolEvent>, at: number, roll: number) => [
  ...events,
  ...routeWaiting(evolveAll(state, events), at, roll),
]

const register = (state: PoolState, spec: VersionSpec): ReadonlyArray<PoolEvent> => [
  {
    type: "ToolVersionRegistered",
    server: state.spec.server,
    version: spec.version,
    transport: spec.transport,
    replicas: spec.replicas,
  },
  ...Array.from({ length: spec.replicas }, (_, i) => ({
    type: "ReplicaLaunching" as const,
    replica: replicaId(state.spec.server, spec.version, i),
    restart: false,
  })),
]

const exited = (
  state: PoolState,
  r: ReplicaState,
  reason: EventOf<"ToolReplicaExited">["reason"],
  detail: string,
): EventOf<"ToolReplicaExited"> => ({
  type: "ToolReplicaExited",
  server: state.spec.server,
  version: r.version,
  replica: r.id,
  reason,
  detail,
  ...(r.sandboxId === undefined ? {} : { sandboxId: r.sandboxId }),
})

/** Whether a replica that ended or failed to start should be started again. */
const restartable = (state: PoolState, r: ReplicaState): boolean => !state.closed && !settled(r.phase)

export const decide = (state: PoolState, command: PoolCommand): Decision => {
  const server = state.spec.server
  switch (command.type) {
    case "StartPool": {
      if (state.closed) return refuse("closed", `${server}: the pool is closed`)
      const spec = specOf(state, state.spec.initial)
      if (spec === undefined)
        return refuse("unknown_tool", `${server} has no version "${state.spec.initial}" to start`)
      if (state.replicas.length > 0) return refuse("unavailable", `${server}: the pool has started already`)
      return accept(register(state, spec))
    }
    case "ReplicaUp": {
      const r = replicaOf(state, command.replica)
      if (r === undefined || state.closed || settled(r.phase) || r.phase === "up")
        return accept([{ type: "ReplicaDiscarded", replica: command.replica }])
      const started: EventOf<"ToolReplicaStarted"> = {
        type: "ToolReplicaStarted",
        server,
        version: r.version,
        replica: r.id,
        restarts: r.restarts,
        startMs: Math.max(0, Number.isFinite(command.startMs) ? command.startMs : 0),
        ...(command.sandbox === undefined
          ? {}
          : { sandboxId: command.sandbox.id, owner: command.sandbox.owner }),
      }
      return accept(thenRoute(state, [started], command.at, command.roll))
    }
    case "ReplicaStartFailed": {
      const r = replicaOf(state, command.replica)
      if (r === undefined) return accept([])
      return accept([
        exited(state, r, "start_failed", command.detail),
        ...(restartable(state, r)
          ? [{ type: "RestartScheduled" as const, replica: r.id, delayMs: r.backoffMs }]
          : []),
      ])
    }
    case "ReplicaEnded": {
      const r = replicaOf(state, command.replica)
      if (r === undefined) return accept([])
      if (state.closed || settled(r.phase)) return accept([{ type: "ReplicaStopped", replica: r.id }])
      if (r.phase !== "up") return accept([])
      return accept([
        exited(state, r, command.cause, command.detail),
        { type: "RestartScheduled", replica: r.id, delayMs: r.backoffMs },
      ])
    }
    case "RestartDue": {
      const r = replicaOf(state, command.replica)
      if (r === undefined || state.closed || r.phase !== "down") return accept([])
      return accept([{ type: "ReplicaLaunching", replica: r.id, restart: true }])
    }
    case "RequestReplica": {
      if (state.closed) return refuse("closed", `${server}: the pool is closed`)
      if (state.queue.includes(command.call))
        return refuse("unavailable", `${server}: call ${command.call} is already waiting`)
      const replica = state.queue.length === 0 ? route(state, command.at, command.roll) : undefined
      if (replica !== undefined) return accept([{ type: "CallRouted", call: command.call, replica }])
      const limit = specOf(state, state.current)?.queueLimit ?? 0
      if (state.queue.length >= limit)
        return refuse(
          "queue_full",
          `${server}: ${state.queue.length} calls already queued (queueLimit); try again later`,
        )
      return accept([{ type: "CallQueued", call: command.call }])
    }
    case "StopWaiting":
      return accept(state.queue.includes(command.call) ? [{ type: "CallUnqueued", call: command.call }] : [])
    case "EndAttempt": {
      const r = replicaOf(state, command.replica)
      if (r === undefined) return accept(routeWaiting(state, command.at, command.roll))
      const breakerFailures = specOf(state, r.version)?.breakerFailures ?? Number.POSITIVE_INFINITY
      const events: PoolEvent[] = []
      if (command.ok) {
        events.push({ type: "AttemptEnded", replica: r.id, failures: 0, circuit: { state: "closed" } })
        if (r.failures >= breakerFailures)
          events.push({ type: "ToolCircuitChanged", server, replica: r.id, state: "closed", failures: 0 })
      } else {
        const failures = r.failures + 1
        const opens = failures >= breakerFailures && circuitAt(r, command.at) !== "open"
        const resetMs = specOf(state, r.version)?.breakerResetMs ?? 0
        events.push({
          type: "AttemptEnded",
          replica: r.id,
          failures,
          circuit: opens ? { state: "open", until: command.at + resetMs } : r.circuit,
        })
        if (opens) events.push({ type: "ToolCircuitChanged", server, replica: r.id, state: "open", failures })
      }
      return accept(thenRoute(state, events, command.at, command.roll))
    }
    case "RouteWaiting":
      return accept(routeWaiting(state, command.at, command.roll))
    case "BeginSwap": {
      if (state.swap !== undefined) return refuse("unavailable", `${server}: a swap is already running`)
      const spec = specOf(state, command.version)
      if (spec === undefined)
        return refuse(
          "unknown_tool",
          `${server} has no version "${command.version}" (tools.yaml lists ${Object.keys(state.spec.versions).join(", ")})`,
        )
      if (command.version === state.current)
        return refuse("unavailable", `${server} already runs ${command.version}`)
      if (state.closed) return refuse("closed", `${server}: the pool is closed`)
      return accept([
        { type: "SwapBegun", from: state.current, to: command.version },
        ...register(state, spec),
      ])
    }
    case "ShiftTraffic": {
      const swap = state.swap
      if (swap === undefined) return refuse("unavailable", `${server}: no swap is running`)
      const next = TRAFFIC_STEPS.find((step) => step > swap.percent)
      if (next === undefined) return refuse("unavailable", `${server}: all traffic is on ${swap.to} already`)
      const shifted: PoolEvent = {
        type: "ToolTrafficShifted",
        server,
        from: swap.from,
        to: swap.to,
        weight: next / 100,
      }
      const draining: ReadonlyArray<PoolEvent> =
        next === 100 ? [{ type: "VersionDraining", version: swap.from, current: swap.to }] : []
      return accept(thenRoute(state, [shifted, ...draining], command.at, command.roll))
    }
    case "FinishSwap": {
      const swap = state.swap
      if (swap === undefined || swap.percent < 100)
        return refuse("unavailable", `${server}: no swap has moved all its traffic`)
      const left = inFlightOf(state, swap.from)
      if (left > 0) return refuse("unavailable", `${server}: ${left} calls still in flight on ${swap.from}`)
      return accept([
        ...state.replicas
          .filter((r) => r.version === swap.from)
          .map((r) => exited(state, r, "drained", `swapped to ${swap.to}`)),
        { type: "SwapFinished", from: swap.from, to: swap.to },
      ])
    }
    case "AbandonSwap": {
      const swap = state.swap
      if (swap === undefined) return refuse("unavailable", `${server}: no swap is running`)
      if (swap.percent > 0)
        return refuse("unavailable", `${server}: traffic has moved to ${swap.to}; the swap finishes`)
      return accept([
        ...state.replicas
          .filter((r) => r.version === swap.to)
          .map((r) => exited(state, r, "stopped", command.detail)),
        { type: "VersionRemoved", version: swap.to },
        { type: "SwapAbandoned", to: swap.to },
      ])
    }
    case "Sample":
      return accept([
        {
          type: "ToolPoolSampled",
          server,
          queued: state.queue.length,
          replicas: state.replicas.map((r) => ({
            replica: r.id,
            version: r.version,
            inFlight: r.inFlight,
            healthy: r.phase === "up",
            circuit: circuitAt(r, command.at) === "open" ? "open" : "closed",
          })),
        },
      ])
    case "Close":
      return accept(state.closed ? [] : [{ type: "PoolClosed" }])
  }
}
