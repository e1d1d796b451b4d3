/**
 * AgentDock's decider, given(commands).when(command).then(events), with no I/O: a pool's start,
 * crashes and restarts with a doubling, capped backoff, routing under the concurrency cap and the
 * bounded queue, circuits (open after consecutive failures, no traffic while open, half-open after
 * the reset time, closed by a success), a hot-swap (traffic in steps, the old version drained only
 * when idle, a swap abandoned), samples and a closed pool; and properties over any sequence of
 * commands: decide and evolve never throw, commands decide the same after a JSON round trip (plain
 * data), the traffic shares always add up to 100, the queue stays within its bound, and no call is
 * routed to a replica whose circuit is open.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import {
  circuitAt,
  decide,
  evolve,
  initial,
  type PoolCommand,
  type PoolEvent,
  type PoolRejection,
  type PoolSpec,
  type PoolState,
  replicaOf,
  route,
  type VersionSpec,
} from "../../src/actors/tools/decider.ts"

const version = (name: string, overrides: Partial<VersionSpec> = {}): VersionSpec => ({
  version: name,
  transport: "stdio",
  replicas: 2,
  concurrency: 2,
  queueLimit: 2,
  restartBackoffMs: 100,
  maxRestartBackoffMs: 400,
  breakerFailures: 2,
  breakerResetMs: 1_000,
  ...overrides,
})

const spec: PoolSpec = {
  server: "s",
  initial: "v1",
  versions: { v1: version("v1"), v2: version("v2", { replicas: 1 }) },
}

const R0 = "s@v1#0"
const R1 = "s@v1#1"
const N0 = "s@v2#0"

/** Decides and applies; a refusal fails the test. */
const step = (state: PoolState, command: PoolCommand) => {
  const decided = decide(state, command)
  if (Result.isFailure(decided)) throw new Error(`refused: ${decided.failure.message}`)
  return { events: decided.success, state: decided.success.reduce(evolve, state) }
}

const given = (commands: ReadonlyArray<PoolCommand>, from: PoolState = initial(spec)): PoolState =>
  commands.reduce((s, c) => step(s, c).state, from)

const when = (state: PoolState, command: PoolCommand): ReadonlyArray<PoolEvent> => step(state, command).events

const refused = (state: PoolState, command: PoolCommand): PoolRejection => {
  const decided = decide(state, command)
  if (Result.isSuccess(decided)) throw new Error(`accepted: ${JSON.stringify(decided.success)}`)
  return decided.failure
}

const up = (replica: string, at = 0): PoolCommand => ({
  type: "ReplicaUp",
  replica,
  startMs: 12,
  at,
  roll: 0,
})
const request = (call: string, at = 0, roll = 0): PoolCommand => ({ type: "RequestReplica", call, at, roll })
const end = (replica: string, ok: boolean, at = 0): PoolCommand => ({
  type: "EndAttempt",
  replica,
  ok,
  at,
  roll: 0,
})

/** A started pool with both v1 replicas up. */
const running = () => given([{ type: "StartPool" }, up(R0), up(R1)])

describe("replicas", () => {
  it("given a new pool, when started, then v1 is registered and each replica launched", () => {
    const events = when(initial(spec), { type: "StartPool" })
    expect(events).toEqual([
      { type: "ToolVersionRegistered", server: "s", version: "v1", transport: "stdio", replicas: 2 },
      { type: "ReplicaLaunching", replica: R0, restart: false },
      { type: "ReplicaLaunching", replica: R1, restart: false },
    ])
    const state = given([{ type: "StartPool" }])
    expect(state.replicas.map((r) => [r.id, r.phase])).toEqual([
      [R0, "starting"],
      [R1, "starting"],
    ])
    expect(refused(state, { type: "StartPool" }).kind).toBe("unavailable")
  })

  it("given a launching replica, when it is up, then ToolReplicaStarted names its container and owner", () => {
    const state = given([{ type: "StartPool" }])
    const events = when(state, {
      type: "ReplicaUp",
      replica: R0,
      startMs: 340,
      sandbox: { id: "c0ffee", owner: "ns/dock" },
      at: 5,
      roll: 0,
    })
    expect(events).toEqual([
      {
        type: "ToolReplicaStarted",
        server: "s",
        version: "v1",
        replica: R0,
        restarts: 0,
        startMs: 340,
        sandboxId: "c0ffee",
        owner: "ns/dock",
      },
    ])
  })

  it("given an up replica that crashes and keeps failing to start, then it is retried after 100, 200, 400, 400 ms", () => {
    const crashed = step(running(), {
      type: "ReplicaEnded",
      replica: R0,
      cause: "crashed",
      detail: "session ended",
    })
    expect(crashed.events).toEqual([
      {
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: R0,
        reason: "crashed",
        detail: "session ended",
      },
      { type: "RestartScheduled", replica: R0, delayMs: 100 },
    ])
    let state = crashed.state
    const delays = [100]
    for (let i = 0; i < 3; i++) {
      const due = step(state, { type: "RestartDue", replica: R0 })
      expect(due.events).toEqual([{ type: "ReplicaLaunching", replica: R0, restart: true }])
      const failed = step(due.state, { type: "ReplicaStartFailed", replica: R0, detail: "boom" })
      expect(failed.events[0]).toMatchObject({
        type: "ToolReplicaExited",
        reason: "start_failed",
        detail: "boom",
      })
      const scheduled = failed.events[1]
      if (scheduled?.type !== "RestartScheduled") throw new Error("no restart scheduled")
      delays.push(scheduled.delayMs)
      state = failed.state
      expect(replicaOf(state, R0)?.phase).toBe("down")
    }
    expect(delays).toEqual([100, 200, 400, 400])
    // Up again: the next crash starts from the first delay, and the restarts are counted.
    state = given([{ type: "RestartDue", replica: R0 }, up(R0)], state)
    expect(replicaOf(state, R0)).toMatchObject({ phase: "up", restarts: 4, backoffMs: 100 })
    expect(state.restarts).toBe(4)
    expect(when(state, { type: "ReplicaEnded", replica: R0, cause: "crashed", detail: "x" })[1]).toEqual({
      type: "RestartScheduled",
      replica: R0,
      delayMs: 100,
    })
  })

  it("given a replica failing its health check, then it exits as unhealthy and restarts", () => {
    const events = when(running(), {
      type: "ReplicaEnded",
      replica: R1,
      cause: "unhealthy",
      detail: "unhealthy: ping failed",
    })
    expect(events).toEqual([
      {
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: R1,
        reason: "unhealthy",
        detail: "unhealthy: ping failed",
      },
      { type: "RestartScheduled", replica: R1, delayMs: 100 },
    ])
  })

  it("given a closed pool, a replica that comes up is discarded and one that ends is not restarted", () => {
    const closed = given([{ type: "StartPool" }, up(R0), { type: "Close" }])
    expect(when(closed, up(R1))).toEqual([{ type: "ReplicaDiscarded", replica: R1 }])
    expect(when(closed, { type: "ReplicaEnded", replica: R0, cause: "crashed", detail: "closed" })).toEqual([
      { type: "ReplicaStopped", replica: R0 },
    ])
    expect(when(closed, { type: "ReplicaStartFailed", replica: R1, detail: "x" }).map((e) => e.type)).toEqual(
      ["ToolReplicaExited"],
    )
    expect(when(closed, { type: "RestartDue", replica: R0 })).toEqual([])
    expect(refused(closed, request("c"))).toEqual({ kind: "closed", message: "s: the pool is closed" })
    expect(when(closed, { type: "Close" })).toEqual([])
  })
})

describe("routing and backpressure", () => {
  it("sends a call to the least-loaded replica, queues past the concurrency cap and refuses past the queue", () => {
    let state = running()
    const routed: string[] = []
    for (const call of ["a", "b", "c", "d"]) {
      const r = step(state, request(call))
      state = r.state
      const e = r.events[0]
      if (e?.type === "CallRouted") routed.push(e.replica)
    }
    expect(routed).toEqual([R0, R1, R0, R1])
    expect(when(state, request("e"))).toEqual([{ type: "CallQueued", call: "e" }])
    state = given([request("e"), request("f")], state)
    expect(refused(state, request("g"))).toEqual({
      kind: "queue_full",
      message: "s: 2 calls already queued (queueLimit); try again later",
    })
    // A call ends: the oldest waiting call takes its replica.
    const freed = step(state, end(R1, true))
    expect(freed.events.at(-1)).toEqual({ type: "CallRouted", call: "e", replica: R1 })
    expect(freed.state.queue).toEqual(["f"])
    expect(when(freed.state, { type: "StopWaiting", call: "f" })).toEqual([
      { type: "CallUnqueued", call: "f" },
    ])
    expect(when(freed.state, { type: "StopWaiting", call: "e" })).toEqual([])
  })

  it("picks versions by their traffic share", () => {
    const state = given([
      { type: "StartPool" },
      up(R0),
      { type: "BeginSwap", version: "v2" },
      up(N0),
      { type: "ShiftTraffic", at: 0, roll: 0 },
    ])
    expect(state.shares).toEqual([
      { version: "v1", percent: 75 },
      { version: "v2", percent: 25 },
    ])
    expect(route(state, 0, 0.1)).toBe(R0)
    expect(route(state, 0, 0.8)).toBe(N0)
  })
})

describe("circuits", () => {
  const opened = () => {
    const state = given([request("a", 10), request("b", 10), end(R0, false, 20)], running())
    return step(state, end(R0, false, 30))
  }

  it("opens after consecutive failures and records it", () => {
    const { events, state } = opened()
    expect(events).toEqual([
      { type: "AttemptEnded", replica: R0, failures: 2, circuit: { state: "open", until: 1_030 } },
      { type: "ToolCircuitChanged", server: "s", replica: R0, state: "open", failures: 2 },
    ])
    expect(circuitAt(replicaOf(state, R0)!, 1_029)).toBe("open")
    expect(circuitAt(replicaOf(state, R0)!, 1_030)).toBe("half-open")
  })

  it("gives an open replica no traffic until half-open, then lets a call try it, and a success closes it", () => {
    let state = given(
      [{ type: "ReplicaEnded", replica: R1, cause: "crashed", detail: "gone" }],
      opened().state,
    )
    expect(when(state, request("c", 500))).toEqual([{ type: "CallQueued", call: "c" }])
    state = given([request("c", 500)], state)
    expect(when(state, { type: "RouteWaiting", at: 1_029, roll: 0 })).toEqual([])
    expect(when(state, { type: "RouteWaiting", at: 1_030, roll: 0 })).toEqual([
      { type: "CallRouted", call: "c", replica: R0 },
    ])
    state = given([{ type: "RouteWaiting", at: 1_030, roll: 0 }], state)
    expect(when(state, end(R0, true, 1_100))).toEqual([
      { type: "AttemptEnded", replica: R0, failures: 0, circuit: { state: "closed" } },
      { type: "ToolCircuitChanged", server: "s", replica: R0, state: "closed", failures: 0 },
    ])
  })

  it("reopens when the half-open try fails too", () => {
    const state = given([request("c", 1_030)], opened().state)
    const events = when(state, end(R0, false, 1_200))
    expect(events).toEqual([
      { type: "AttemptEnded", replica: R0, failures: 3, circuit: { state: "open", until: 2_200 } },
      { type: "ToolCircuitChanged", server: "s", replica: R0, state: "open", failures: 3 },
    ])
  })

  it("a restarted replica starts with a closed circuit", () => {
    const state = given(
      [
        { type: "ReplicaEnded", replica: R0, cause: "crashed", detail: "x" },
        { type: "RestartDue", replica: R0 },
        up(R0, 40),
      ],
      opened().state,
    )
    expect(replicaOf(state, R0)).toMatchObject({ failures: 0, circuit: { state: "closed" } })
  })
})

describe("hot-swap", () => {
  it("refuses an unknown version, the current one, and a second swap", () => {
    const state = running()
    expect(refused(state, { type: "BeginSwap", version: "v9" })).toEqual({
      kind: "unknown_tool",
      message: 's has no version "v9" (tools.yaml lists v1, v2)',
    })
    expect(refused(state, { type: "BeginSwap", version: "constructor" }).kind).toBe("unknown_tool")
    expect(refused(state, { type: "BeginSwap", version: "v1" })).toEqual({
      kind: "unavailable",
      message: "s already runs v1",
    })
    const swapping = given([{ type: "BeginSwap", version: "v2" }], state)
    expect(refused(swapping, { type: "BeginSwap", version: "v2" }).message).toBe(
      "s: a swap is already running",
    )
  })

  it("starts the new version, moves traffic in four steps, drains the old one when idle and stops it", () => {
    let state = given([request("busy")], running())
    expect(when(state, { type: "BeginSwap", version: "v2" })).toEqual([
      { type: "SwapBegun", from: "v1", to: "v2" },
      { type: "ToolVersionRegistered", server: "s", version: "v2", transport: "stdio", replicas: 1 },
      { type: "ReplicaLaunching", replica: N0, restart: false },
    ])
    state = given([{ type: "BeginSwap", version: "v2" }, up(N0)], state)
    const weights: number[] = []
    for (let i = 0; i < 4; i++) {
      const shifted = step(state, { type: "ShiftTraffic", at: i, roll: 0 })
      state = shifted.state
      for (const e of shifted.events) if (e.type === "ToolTrafficShifted") weights.push(e.weight)
      expect(state.shares.reduce((sum, s) => sum + s.percent, 0)).toBe(100)
    }
    expect(weights).toEqual([0.25, 0.5, 0.75, 1])
    expect(state.current).toBe("v2")
    expect(state.replicas.filter((r) => r.version === "v1").map((r) => r.phase)).toEqual([
      "draining",
      "draining",
    ])
    expect(refused(state, { type: "ShiftTraffic", at: 5, roll: 0 }).kind).toBe("unavailable")
    // The call still running on v1 holds the drain.
    expect(refused(state, { type: "FinishSwap" }).message).toBe("s: 1 calls still in flight on v1")
    state = given([end(R0, true)], state)
    expect(when(state, { type: "FinishSwap" })).toEqual([
      {
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: R0,
        reason: "drained",
        detail: "swapped to v2",
      },
      {
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: R1,
        reason: "drained",
        detail: "swapped to v2",
      },
      { type: "SwapFinished", from: "v1", to: "v2" },
    ])
    state = given([{ type: "FinishSwap" }], state)
    expect(state).toMatchObject({ current: "v2", shares: [{ version: "v2", percent: 100 }], swaps: 1 })
    expect(state.swap).toBeUndefined()
    expect(state.replicas.map((r) => r.id)).toEqual([N0])
  })

  it("a draining replica that ends is not restarted", () => {
    let state = given([{ type: "BeginSwap", version: "v2" }, up(N0)], running())
    for (let i = 0; i < 4; i++) state = given([{ type: "ShiftTraffic", at: i, roll: 0 }], state)
    expect(when(state, { type: "ReplicaEnded", replica: R0, cause: "crashed", detail: "x" })).toEqual([
      { type: "ReplicaStopped", replica: R0 },
    ])
  })

  it("an abandoned swap stops the new replicas and leaves the old version serving", () => {
    const state = given([{ type: "BeginSwap", version: "v2" }, up(N0)], running())
    const detail = "swap to v2 refused: tools would share a name"
    expect(when(state, { type: "AbandonSwap", detail })).toEqual([
      { type: "ToolReplicaExited", server: "s", version: "v2", replica: N0, reason: "stopped", detail },
      { type: "VersionRemoved", version: "v2" },
      { type: "SwapAbandoned", to: "v2" },
    ])
    const after = given([{ type: "AbandonSwap", detail }], state)
    expect(after).toMatchObject({ current: "v1", shares: [{ version: "v1", percent: 100 }], swaps: 0 })
    expect(after.replicas.map((r) => r.id)).toEqual([R0, R1])
    expect(after.swap).toBeUndefined()
  })
})

describe("samples", () => {
  it("says per replica what is in flight, whether it is up and whether its circuit is open", () => {
    const state = given(
      [request("a", 0), { type: "ReplicaEnded", replica: R1, cause: "crashed", detail: "x" }],
      running(),
    )
    expect(when(state, { type: "Sample", at: 0 })).toEqual([
      {
        type: "ToolPoolSampled",
        server: "s",
        queued: 0,
        replicas: [
          { replica: R0, version: "v1", inFlight: 1, healthy: true, circuit: "closed" },
          { replica: R1, version: "v1", inFlight: 0, healthy: false, circuit: "closed" },
        ],
      },
    ])
  })
})

// ---------------------------------------------------------------------------------------------
// Properties

const replicaIds = [R0, R0, R1, R1, N0, "nobody"]
const versions = ["v1", "v2", "v9", "constructor", ""]
const callIds = ["a", "b", "c", "d", "e"]

const anyEvent: fc.Arbitrary<PoolEvent> = fc.oneof(
  fc.record({
    type: fc.constant("ToolVersionRegistered" as const),
    server: fc.constant("s"),
    version: fc.constantFrom(...versions),
    transport: fc.constant("stdio" as const),
    replicas: fc.integer({ min: -2, max: 4 }),
  }),
  fc.record({
    type: fc.constant("ToolReplicaStarted" as const),
    server: fc.constant("s"),
    version: fc.constantFrom(...versions),
    replica: fc.constantFrom(...replicaIds),
    restarts: fc.nat(5),
    startMs: fc.nat(1000),
  }),
  fc.record({
    type: fc.constant("ToolReplicaExited" as const),
    server: fc.constant("s"),
    version: fc.constantFrom(...versions),
    replica: fc.constantFrom(...replicaIds),
    reason: fc.constantFrom("crashed", "unhealthy", "drained", "stopped", "start_failed"),
    detail: fc.string(),
  }),
  fc.record({
    type: fc.constant("ToolTrafficShifted" as const),
    server: fc.constant("s"),
    from: fc.constantFrom(...versions),
    to: fc.constantFrom(...versions),
    weight: fc.double(),
  }),
  fc.record({
    type: fc.constant("ReplicaLaunching" as const),
    replica: fc.constantFrom(...replicaIds),
    restart: fc.boolean(),
  }),
  fc.record({
    type: fc.constant("RestartScheduled" as const),
    replica: fc.constantFrom(...replicaIds),
    delayMs: fc.nat(),
  }),
  fc.record({ type: fc.constant("CallQueued" as const), call: fc.constantFrom(...callIds) }),
  fc.record({ type: fc.constant("CallUnqueued" as const), call: fc.constantFrom(...callIds) }),
  fc.record({
    type: fc.constant("CallRouted" as const),
    call: fc.constantFrom(...callIds),
    replica: fc.constantFrom(...replicaIds),
  }),
  fc.record({
    type: fc.constant("AttemptEnded" as const),
    replica: fc.constantFrom(...replicaIds),
    failures: fc.integer({ min: -1, max: 5 }),
    circuit: fc.oneof(
      fc.constant({ state: "closed" as const }),
      fc.record({ state: fc.constant("open" as const), until: fc.nat() }),
    ),
  }),
  fc.record({
    type: fc.constant("SwapBegun" as const),
    from: fc.constantFrom(...versions),
    to: fc.constantFrom(...versions),
  }),
  fc.record({
    type: fc.constant("VersionDraining" as const),
    version: fc.constantFrom(...versions),
    current: fc.constantFrom(...versions),
  }),
  fc.record({ type: fc.constant("VersionRemoved" as const), version: fc.constantFrom(...versions) }),
  fc.record({
    type: fc.constant("SwapFinished" as const),
    from: fc.constantFrom(...versions),
    to: fc.constantFrom(...versions),
  }),
  fc.record({ type: fc.constant("SwapAbandoned" as const), to: fc.constantFrom(...versions) }),
  fc.constant({ type: "PoolClosed" as const }),
)

/** A command at a time (times only go forward: each command comes `delay` ms after the last). */
const anyCommand: fc.Arbitrary<(at: number) => PoolCommand> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(() => ({ type: "StartPool" as const })) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom(...replicaIds), fc.double({ min: 0, max: 1, maxExcluded: true }))
      .map(([replica, roll]) => (at: number) => ({
        type: "ReplicaUp" as const,
        replica,
        startMs: 5,
        at,
        roll,
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(...replicaIds)
      .map((replica) => () => ({ type: "ReplicaStartFailed" as const, replica, detail: "x" })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...replicaIds), fc.constantFrom("crashed" as const, "unhealthy" as const))
      .map(([replica, cause]) => () => ({ type: "ReplicaEnded" as const, replica, cause, detail: "x" })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(...replicaIds)
      .map((replica) => () => ({ type: "RestartDue" as const, replica })),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.constantFrom(...callIds), fc.double({ min: 0, max: 1, maxExcluded: true }))
      .map(([call, roll]) => (at: number) => ({ type: "RequestReplica" as const, call, at, roll })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...callIds).map((call) => () => ({ type: "StopWaiting" as const, call })),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.constantFrom(...replicaIds), fc.boolean(), fc.double({ min: 0, max: 1, maxExcluded: true }))
      .map(([replica, ok, roll]) => (at: number) => ({ type: "EndAttempt" as const, replica, ok, at, roll })),
  },
  {
    weight: 2,
    arbitrary: fc
      .double({ min: 0, max: 1, maxExcluded: true })
      .map((roll) => (at: number) => ({ type: "RouteWaiting" as const, at, roll })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...versions).map((version) => () => ({ type: "BeginSwap" as const, version })),
  },
  {
    weight: 2,
    arbitrary: fc
      .double({ min: 0, max: 1, maxExcluded: true })
      .map((roll) => (at: number) => ({ type: "ShiftTraffic" as const, at, roll })),
  },
  { weight: 1, arbitrary: fc.constant(() => ({ type: "FinishSwap" as const })) },
  { weight: 1, arbitrary: fc.constant(() => ({ type: "AbandonSwap" as const, detail: "x" })) },
  { weight: 1, arbitrary: fc.constant((at: number) => ({ type: "Sample" as const, at })) },
  { weight: 1, arbitrary: fc.constant(() => ({ type: "Close" as const })) },
)

const sessions = fc.array(fc.tuple(anyCommand, fc.nat(600)), { minLength: 20, maxLength: 120 })

/** A new pool, or one started with both v1 replicas up (where most of the routing happens). */
const startFrom = fc.constantFrom("new", "running").map((s) => (s === "new" ? initial(spec) : running()))

const sharesAdd = (state: PoolState) => state.shares.reduce((sum, s) => sum + s.percent, 0)

const wellFormed = (state: PoolState) => {
  expect(sharesAdd(state)).toBe(100)
  for (const s of state.shares) expect(s.percent >= 0 && s.percent <= 100).toBe(true)
  for (const r of state.replicas) expect(r.inFlight).toBeGreaterThanOrEqual(0)
  expect(new Set(state.queue).size).toBe(state.queue.length)
}

/** What the routing property met, so that it is known not to hold vacuously. */
const met = { openWhenRequested: 0, routedHalfOpen: 0 }

describe("properties", () => {
  test.prop([fc.array(anyEvent, { maxLength: 60 })], { numRuns: 500 })(
    "evolve is total: any events, known or not, leave a well-formed state with shares adding up to 100",
    (events) => {
      let state = initial(spec)
      for (const event of events) {
        state = evolve(state, event)
        wellFormed(state)
      }
    },
  )

  test.prop([startFrom, sessions], { numRuns: 500 })(
    "decide is total: any commands, as sent or after a JSON round trip, get the same events or refusal; the shares add up to 100 and the queue stays within its bound",
    (from, commands) => {
      let state = from
      let at = 0
      for (const [make, delay] of commands) {
        at += delay
        const command = make(at)
        const decided = decide(state, command)
        // Commands are plain data (they will travel over NATS): a JSON round trip decides the same.
        expect(decide(state, JSON.parse(JSON.stringify(command)) as PoolCommand)).toEqual(decided)
        if (Result.isFailure(decided)) {
          expect(decided.failure.message.length).toBeGreaterThan(0)
          continue
        }
        state = decided.success.reduce(evolve, state)
        wellFormed(state)
        expect(state.queue.length).toBeLessThanOrEqual(spec.versions[state.current]!.queueLimit)
      }
    },
  )

  test.prop([startFrom, sessions], { numRuns: 500 })(
    "no call is routed to a replica whose circuit is open, that is not up, or that is at its cap",
    (from, commands) => {
      let state = from
      let at = 0
      for (const [make, delay] of commands) {
        at += delay
        const command = make(at)
        const decided = decide(state, command)
        if (
          command.type === "RequestReplica" &&
          state.replicas.some((r) => circuitAt(r, command.at) === "open")
        )
          met.openWhenRequested++
        if (Result.isFailure(decided)) continue
        for (const event of decided.success) {
          if (event.type === "CallRouted") {
            const replica = replicaOf(state, event.replica)
            if (replica === undefined) throw new Error(`routed to unknown replica ${event.replica}`)
            const circuit = circuitAt(replica, "at" in command ? command.at : at)
            expect(circuit).not.toBe("open")
            if (circuit === "half-open") met.routedHalfOpen++
            expect(replica.phase).toBe("up")
            expect(replica.inFlight).toBeLessThan(spec.versions[replica.version]!.concurrency)
          }
          state = evolve(state, event)
        }
      }
    },
  )

  it("the routing property met calls asked for while a circuit was open, and calls let through half-open", () => {
    expect(met.openWhenRequested).toBeGreaterThan(0)
    expect(met.routedHalfOpen).toBeGreaterThan(0)
  })
})
