/**
 * The pool of one MCP server, the shell around AgentDock's decider (decider.ts): it runs the
 * replicas (MCP sessions over stdio processes, HTTP or Docker containers, see replica.ts), the
 * timers (restart backoff, a circuit's reset, a queued call's deadline, health pings) and the
 * calls themselves, and asks the decider at each turn what follows: which replica a call takes,
 * whether it waits or is refused (a bounded queue: backpressure), whether a crashed replica
 * restarts and when, when a circuit opens, how traffic moves in a hot-swap. It records the
 * lifecycle events the decider returns (through `record`) and does what its notes ask. Retries
 * on another replica are for idempotent tools only, and only for the replica's failures (crash,
 * timeout), never for a tool's own error. Calls are recorded by the dock.
 */
import type { Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Result from "effect/Result"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import { CallFigures } from "./callFigures.ts"
import {
  circuitAt,
  decide,
  evolve,
  inFlightOf,
  initial,
  isLifecycle,
  type PoolCommand,
  type PoolEvent,
  type PoolState,
  poolSpecOf,
  replicaOf,
  specOf,
} from "./decider.ts"
import { DockError, type ReplicaStatus, type ServerStatus, type SwapReport } from "./dockTypes.ts"
import type { PoolDeps } from "./ports.ts"
import { type Replica, startReplica } from "./replica.ts"
import { isIdempotent, type ServerConfig, type ServerEntry } from "./toolsConfig.ts"

export type AttemptOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly kind: "timeout" | "unavailable"; readonly message: string }

interface Waiter {
  readonly resolve: (replica: string) => void
  readonly reject: (error: Error) => void
  readonly timer: ReturnType<typeof setTimeout>
}

/** How long a swap waits between traffic steps. */
const STEP_PAUSE_MS = 100

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const isTimeout = (error: unknown): boolean => {
  const e = error as { code?: unknown; message?: unknown }
  return e?.code === -32001 || (typeof e?.message === "string" && /timed out|timeout/i.test(e.message))
}

/** A ping's timeout: within the health interval, 0.5 to 2 s. */
const pingTimeoutMs = (config: ServerConfig) => Math.max(500, Math.min(2_000, config.healthIntervalMs))

export class ToolPool {
  private state: PoolState
  /** Live MCP sessions by replica id; a session not in here has been let go. */
  private readonly sessions = new Map<string, Replica>()
  /** Launches under way by replica id (start and swap wait for theirs). */
  private readonly launches = new Map<string, Promise<void>>()
  private readonly restartTimers = new Map<string, ReturnType<typeof setTimeout>>()
  private readonly waiters = new Map<string, Waiter>()
  private readonly figures: CallFigures
  private readonly clock: Clock
  private readonly random: () => number
  private tools: ReadonlyArray<Tool> = []
  private callSeq = 0
  private lastSampledCalls: number | undefined
  private health: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly entry: ServerEntry,
    private readonly deps: PoolDeps,
  ) {
    this.state = initial(poolSpecOf(entry))
    this.clock = deps.clock ?? systemClock
    this.random = deps.random ?? Math.random
    this.figures = new CallFigures(this.clock)
  }

  get name(): string {
    return this.entry.current.name
  }

  get config(): ServerConfig {
    return this.configOf(this.state.current)
  }

  private configOf(version: string): ServerConfig {
    return Object.hasOwn(this.entry.versions, version) ? this.entry.versions[version]! : this.entry.current
  }

  private now(): number {
    return this.clock.monotonicMs()
  }

  /**
   * Asks the decider, applies what it decided, then does it: lifecycle events to the log, notes
   * turned into effects. A refusal is thrown as the DockError it names.
   */
  private apply(command: PoolCommand): ReadonlyArray<PoolEvent> {
    const decided = decide(this.state, command)
    if (Result.isFailure(decided)) throw new DockError(decided.failure.kind, decided.failure.message)
    for (const event of decided.success) this.state = evolve(this.state, event)
    for (const event of decided.success) this.perform(event)
    return decided.success
  }

  private perform(event: PoolEvent): void {
    if (isLifecycle(event)) this.deps.record(event)
    switch (event.type) {
      case "ReplicaLaunching": {
        const launch = this.launch(event.replica)
        launch.catch(() => undefined)
        this.launches.set(event.replica, launch)
        return
      }
      case "RestartScheduled": {
        const timer = setTimeout(() => {
          this.restartTimers.delete(event.replica)
          this.apply({ type: "RestartDue", replica: event.replica })
        }, event.delayMs)
        timer.unref?.()
        this.restartTimers.set(event.replica, timer)
        return
      }
      case "CallRouted": {
        const waiter = this.waiters.get(event.call)
        if (waiter === undefined) return
        this.waiters.delete(event.call)
        clearTimeout(waiter.timer)
        waiter.resolve(event.replica)
        return
      }
      case "ToolCircuitChanged": {
        const replica = replicaOf(this.state, event.replica)
        if (event.state === "open" && replica?.circuit.state === "open")
          this.atHalfOpen(replica.circuit.until)
        return
      }
      case "ToolReplicaExited":
        if (event.reason === "drained" || event.reason === "stopped") this.cancelRestart(event.replica)
        return
      case "PoolClosed":
        for (const id of [...this.restartTimers.keys()]) this.cancelRestart(id)
        for (const [call, waiter] of [...this.waiters]) {
          this.waiters.delete(call)
          clearTimeout(waiter.timer)
          waiter.reject(new DockError("closed", `${this.name}: the pool closed`))
        }
        return
      default:
        return
    }
  }

  private cancelRestart(replica: string): void {
    const timer = this.restartTimers.get(replica)
    if (timer !== undefined) clearTimeout(timer)
    this.restartTimers.delete(replica)
  }

  /**
   * Lets queued calls try a replica once its circuit is half-open. A timer may fire a little
   * before the monotonic clock reaches its time (it counts from the event loop's cached time), so
   * it checks and waits the rest.
   */
  private atHalfOpen(until: number): void {
    const wait = until - this.now()
    if (wait <= 0) this.routeWaiting()
    else setTimeout(() => this.atHalfOpen(until), Math.ceil(wait)).unref?.()
  }

  private routeWaiting(): void {
    this.apply({ type: "RouteWaiting", at: this.now(), roll: this.random() })
  }

  /** Starts every replica of the current version; resolves when at least one is up. */
  async start(): Promise<void> {
    this.apply({ type: "StartPool" })
    await this.launched(this.state.current)
    const interval = this.entry.current.healthIntervalMs
    if (interval > 0) {
      this.health = setInterval(() => this.checkHealth(), interval)
      this.health.unref()
    }
  }

  /** Waits for the launches of a version's replicas; fails when none of them came up. */
  private async launched(version: string): Promise<void> {
    const ids = this.state.replicas.filter((r) => r.version === version).map((r) => r.id)
    const results = await Promise.allSettled(ids.map((id) => this.launches.get(id) ?? Promise.resolve()))
    if (results.length > 0 && results.every((r) => r.status === "rejected")) {
      const first = results[0] as PromiseRejectedResult
      throw new Error(`${this.name}@${version}: no replica started: ${(first.reason as Error).message}`)
    }
  }

  /** Starts (or restarts) one replica; a failure is the decider's to answer (a restart later). */
  private async launch(id: string): Promise<void> {
    const replicaState = replicaOf(this.state, id)
    if (replicaState === undefined) return
    const config = this.configOf(replicaState.version)
    const started = this.now()
    let replica: Replica
    try {
      replica = await startReplica(config, id, this.deps)
    } catch (error) {
      this.apply({ type: "ReplicaStartFailed", replica: id, detail: (error as Error).message })
      throw error
    }
    this.sessions.set(id, replica)
    const events = this.apply({
      type: "ReplicaUp",
      replica: id,
      startMs: Math.round(this.now() - started),
      ...(replica.sandboxId === undefined
        ? {}
        : { sandbox: { id: replica.sandboxId, owner: this.deps.owner } }),
      at: this.now(),
      roll: this.random(),
    })
    if (events.some((e) => e.type === "ReplicaDiscarded")) {
      if (this.sessions.get(id) === replica) this.sessions.delete(id)
      await replica.close()
      return
    }
    if (this.tools.length === 0 || config.version === this.state.current) this.tools = replica.tools
    replica.ended.then((reason) => this.ended(id, replica, "crashed", reason))
  }

  /** A session ended (or failed its ping): unless the pool let it go already, the decider hears of it. */
  private ended(id: string, replica: Replica, cause: "crashed" | "unhealthy", detail: string): void {
    if (this.sessions.get(id) !== replica) return
    this.sessions.delete(id)
    this.apply({ type: "ReplicaEnded", replica: id, cause, detail })
  }

  private checkHealth(): void {
    for (const r of this.state.replicas) {
      const replica = this.sessions.get(r.id)
      if (r.phase !== "up" || replica === undefined) continue
      replica.client.ping({ timeout: pingTimeoutMs(this.configOf(r.version)) }).catch((error: unknown) => {
        // The decider records it and restarts the replica; closing ends the session.
        this.ended(r.id, replica, "unhealthy", `unhealthy: ping failed (${(error as Error).message})`)
        replica.close().catch(() => undefined)
      })
    }
  }

  /** Waits for a free replica; refuses at once when the queue is full. */
  private acquire(deadline: number): Promise<string> {
    const call = `${this.name}/${++this.callSeq}`
    let events: ReadonlyArray<PoolEvent>
    try {
      events = this.apply({ type: "RequestReplica", call, at: this.now(), roll: this.random() })
    } catch (error) {
      return Promise.reject(error)
    }
    const routed = events.find((e) => e.type === "CallRouted" && e.call === call)
    if (routed?.type === "CallRouted") return Promise.resolve(routed.replica)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.waiters.delete(call)
          this.apply({ type: "StopWaiting", call })
          reject(new DockError("unavailable", `${this.name}: no replica became free in time`))
        },
        Math.max(0, deadline - this.now()),
      )
      this.waiters.set(call, { resolve, reject, timer })
    })
  }

  private endAttempt(replica: string, ok: boolean): void {
    this.apply({ type: "EndAttempt", replica, ok, at: this.now(), roll: this.random() })
  }

  /** The input schema of a tool, from the current version's tool list. */
  schemaOf(tool: string): Tool | undefined {
    return this.tools.find((t) => t.name === tool)
  }

  listTools(): ReadonlyArray<Tool> {
    return this.tools
  }

  /**
   * Runs one call: up to `retries` further attempts on another replica when the tool is
   * idempotent and the failure was the replica's (crash, timeout), never for a tool's own error.
   */
  async run(
    tool: string,
    args: Record<string, unknown>,
    timeoutMs: number | undefined,
  ): Promise<{ outcome: AttemptOutcome; attempts: number; replica: string; version: string }> {
    const config = this.config
    const timeout = timeoutMs ?? config.timeoutMs
    const maxAttempts = isIdempotent(config, tool) ? config.retries + 1 : 1
    let last: AttemptOutcome = { ok: false, kind: "unavailable", message: "not attempted" }
    let replica = ""
    let version = ""
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const started = this.now()
      let id: string
      try {
        id = await this.acquire(started + timeout)
      } catch (error) {
        if (error instanceof DockError && error.kind === "queue_full") throw error
        last = { ok: false, kind: "unavailable", message: (error as Error).message }
        continue
      }
      replica = id
      version = replicaOf(this.state, id)?.version ?? ""
      const client = this.sessions.get(id)?.client
      try {
        if (client === undefined) throw new Error("replica went down before the call")
        const result = await client.callTool({ name: tool, arguments: args }, undefined, {
          timeout: Math.max(1, timeout - (this.now() - started)),
        })
        this.endAttempt(id, true)
        return { outcome: { ok: true, result }, attempts: attempt, replica, version }
      } catch (error) {
        this.endAttempt(id, false)
        last = {
          ok: false,
          kind: isTimeout(error) ? "timeout" : "unavailable",
          message: `${id}: ${(error as Error).message}`,
        }
        if (attempt < maxAttempts) await sleep(this.random() * config.backoffMs * attempt)
      }
    }
    return { outcome: last, attempts: maxAttempts, replica, version }
  }

  /** Remembers a finished call for the status figures. */
  observe(latencyMs: number, ok: boolean): void {
    this.figures.observe(latencyMs, ok)
  }

  /**
   * Hot-swap: start `version`, shift traffic in steps, then drain and stop the old version.
   * `vet` sees the new version's tools before any traffic moves; a reason it gives stops the new
   * replicas and refuses the swap (the old version keeps serving).
   */
  swap(version: string, vet?: (tools: ReadonlyArray<Tool>) => string | undefined): Promise<SwapReport> {
    try {
      this.apply({ type: "BeginSwap", version })
    } catch (error) {
      return Promise.reject(error)
    }
    return this.runSwap(version, vet)
  }

  private async runSwap(
    to: string,
    vet: ((tools: ReadonlyArray<Tool>) => string | undefined) | undefined,
  ): Promise<SwapReport> {
    const started = this.now()
    const from = this.state.swap?.from ?? this.state.current
    try {
      await this.launched(to)
    } catch (error) {
      await this.abandonSwap(`swap to ${to} abandoned: ${(error as Error).message}`)
      throw error
    }
    const offered = this.upSession(to)?.tools
    const refusal = offered === undefined ? undefined : vet?.(offered)
    if (refusal !== undefined) {
      await this.abandonSwap(`swap to ${to} refused: ${refusal}`)
      throw new DockError("refused", `${this.name}: swap to ${to} refused: ${refusal}`)
    }
    while ((this.state.swap?.percent ?? 100) < 100) {
      this.apply({ type: "ShiftTraffic", at: this.now(), roll: this.random() })
      if ((this.state.swap?.percent ?? 100) < 100) await sleep(STEP_PAUSE_MS)
    }
    this.tools = this.upSession(to)?.tools ?? this.tools
    const drainedCalls = inFlightOf(this.state, from)
    while (inFlightOf(this.state, from) > 0) await sleep(10)
    await this.closeSessions(from)
    this.apply({ type: "FinishSwap" })
    return { server: this.name, from, to, drainedCalls, ms: Math.round(this.now() - started) }
  }

  private async abandonSwap(detail: string): Promise<void> {
    const to = this.state.swap?.to
    if (to !== undefined) await this.closeSessions(to)
    this.apply({ type: "AbandonSwap", detail })
  }

  /** The session of an up replica of a version. */
  private upSession(version: string): Replica | undefined {
    for (const r of this.state.replicas)
      if (r.version === version && this.sessions.has(r.id)) return this.sessions.get(r.id)
    return undefined
  }

  /** Lets a version's sessions go and closes them, one after the other. */
  private async closeSessions(version: string): Promise<void> {
    for (const r of this.state.replicas.filter((r) => r.version === version)) {
      this.cancelRestart(r.id)
      const replica = this.sessions.get(r.id)
      this.sessions.delete(r.id)
      await replica?.close()
    }
  }

  /** Kills one replica's session as a crash would (for fault tests and `dock` drills). */
  async crash(index = 0): Promise<string | undefined> {
    const id = this.state.replicas.filter((r) => r.version === this.state.current)[index]?.id
    const replica = id === undefined ? undefined : this.sessions.get(id)
    if (replica === undefined) return undefined
    await replica.close()
    return id
  }

  /** Records a look at the pool (`ToolPoolSampled`) when something moved since the last one. */
  sample(): void {
    const calls = this.figures.calls
    // An idle dock does not fill the log.
    if (calls === this.lastSampledCalls && this.state.queue.length === 0) return
    this.lastSampledCalls = calls
    this.apply({ type: "Sample", at: this.now() })
  }

  status(): ServerStatus {
    const now = this.now()
    const replicas: ReplicaStatus[] = this.state.replicas.map((r) => {
      const session = this.sessions.get(r.id)
      return {
        replica: r.id,
        version: r.version,
        state: r.phase,
        inFlight: r.inFlight,
        circuit: circuitAt(r, now) === "open" ? "open" : "closed",
        restarts: r.restarts,
        ...(session?.sandboxId === undefined ? {} : { sandboxId: session.sandboxId }),
        ...(session?.pid === undefined ? {} : { pid: session.pid }),
      }
    })
    return {
      server: this.name,
      transport: specOf(this.state, this.state.current)?.transport ?? this.entry.current.transport,
      version: this.state.current,
      weights: Object.fromEntries(this.state.shares.map((s) => [s.version, s.percent / 100])),
      replicas,
      queued: this.state.queue.length,
      ...this.figures.now(),
      restarts: this.state.restarts,
      swaps: this.state.swaps,
    }
  }

  async close(): Promise<void> {
    if (this.health !== undefined) clearInterval(this.health)
    this.apply({ type: "Close" })
    const closing = [...this.sessions.values()].map((replica) => replica.close())
    this.sessions.clear()
    await Promise.allSettled(closing)
  }
}
