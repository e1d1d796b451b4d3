/**
 * The pool of one MCP server (AgentDock's sandbox actor): replicas of one or more versions,
 * least-in-flight routing under a per-replica concurrency cap, a bounded FIFO queue (a full queue
 * refuses the call: backpressure), MCP ping health checks, restart with exponential backoff after a
 * crash (self-healing), a circuit breaker per replica, retries on another replica for idempotent
 * tools only, and hot-swap: start the new version, shift traffic in steps, drain the old one.
 * Every lifecycle change goes to `record`; calls are recorded by the dock.
 */
import type { Tool } from "@modelcontextprotocol/sdk/types.js"
import type { DomainEvent } from "../../events/schema.ts"
import { DockError, type ReplicaStatus, type ServerStatus, type SwapReport } from "./dockTypes.ts"
import { type Replica, type ReplicaDeps, startReplica } from "./replica.ts"
import { isIdempotent, type ServerConfig, type ServerEntry } from "./toolsConfig.ts"

type SlotState = ReplicaStatus["state"]

interface Slot {
  readonly id: string
  readonly config: ServerConfig
  replica: Replica | undefined
  state: SlotState
  inFlight: number
  failures: number
  circuitUntil: number
  restarts: number
  backoffMs: number
  restartTimer: ReturnType<typeof setTimeout> | undefined
}

interface Waiter {
  readonly resolve: (slot: Slot) => void
  readonly reject: (error: Error) => void
  timer: ReturnType<typeof setTimeout> | undefined
}

export interface PoolDeps extends ReplicaDeps {
  /** Appends a lifecycle event (never fails the caller; errors are the recorder's to report). */
  readonly record: (event: DomainEvent) => void
  readonly now?: () => number
}

export type AttemptOutcome =
  | { readonly ok: true; readonly result: unknown; readonly slot: Slot }
  | { readonly ok: false; readonly kind: "timeout" | "unavailable"; readonly message: string }

const LATENCY_WINDOW = 4096

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const isTimeout = (error: unknown): boolean => {
  const e = error as { code?: unknown; message?: unknown }
  return e?.code === -32001 || (typeof e?.message === "string" && /timed out|timeout/i.test(e.message))
}

export class ToolPool {
  private readonly versions = new Map<string, Slot[]>()
  private weights = new Map<string, number>()
  private current: string
  private readonly queue: Waiter[] = []
  private tools: ReadonlyArray<Tool> = []
  private readonly latencies: number[] = []
  private readonly finishedAt: number[] = []
  private calls = 0
  private ring = 0
  private failed = 0
  private swaps = 0
  private restartsTotal = 0
  private closed = false
  private health: ReturnType<typeof setInterval> | undefined
  private readonly now: () => number
  private swapping: Promise<SwapReport> | undefined

  constructor(
    private readonly entry: ServerEntry,
    private readonly deps: PoolDeps,
  ) {
    this.current = entry.current.version
    this.now = deps.now ?? Date.now
  }

  get name(): string {
    return this.entry.current.name
  }

  get config(): ServerConfig {
    return this.entry.versions[this.current] ?? this.entry.current
  }

  /** Starts every replica of the current version; resolves when at least one is up. */
  async start(): Promise<void> {
    await this.startVersion(this.entry.current)
    this.weights = new Map([[this.current, 1]])
    const interval = this.entry.current.healthIntervalMs
    if (interval > 0) {
      this.health = setInterval(() => this.checkHealth(), interval)
      this.health.unref()
    }
  }

  private async startVersion(config: ServerConfig): Promise<void> {
    this.deps.record({
      type: "ToolVersionRegistered",
      server: config.name,
      version: config.version,
      transport: config.transport,
      replicas: config.replicas,
    })
    const slots: Slot[] = Array.from({ length: config.replicas }, (_, i) => ({
      id: `${config.name}@${config.version}#${i}`,
      config,
      replica: undefined,
      state: "starting",
      inFlight: 0,
      failures: 0,
      circuitUntil: 0,
      restarts: 0,
      backoffMs: config.restartBackoffMs,
      restartTimer: undefined,
    }))
    this.versions.set(config.version, slots)
    const results = await Promise.allSettled(slots.map((slot) => this.launch(slot)))
    if (results.every((r) => r.status === "rejected")) {
      const first = results[0] as PromiseRejectedResult
      throw new Error(
        `${config.name}@${config.version}: no replica started: ${(first.reason as Error).message}`,
      )
    }
  }

  /** Starts (or restarts) one replica; on failure schedules another try with backoff. */
  private async launch(slot: Slot): Promise<void> {
    slot.state = "starting"
    const started = this.now()
    try {
      const replica = await startReplica(slot.config, slot.id, this.deps)
      const now = slot.state as SlotState
      if (this.closed || now === "stopped" || now === "draining") {
        await replica.close()
        return
      }
      slot.replica = replica
      slot.state = "up"
      slot.failures = 0
      slot.circuitUntil = 0
      slot.backoffMs = slot.config.restartBackoffMs
      if (this.tools.length === 0 || slot.config.version === this.current) this.tools = replica.tools
      this.deps.record({
        type: "ToolReplicaStarted",
        server: slot.config.name,
        version: slot.config.version,
        replica: slot.id,
        restarts: slot.restarts,
        startMs: this.now() - started,
        ...(replica.sandboxId === undefined ? {} : { sandboxId: replica.sandboxId, owner: this.deps.owner }),
      })
      replica.ended.then((reason) => this.onEnded(slot, replica, reason))
      this.pump()
    } catch (error) {
      slot.state = "down"
      this.deps.record({
        type: "ToolReplicaExited",
        server: slot.config.name,
        version: slot.config.version,
        replica: slot.id,
        reason: "start_failed",
        detail: (error as Error).message,
      })
      this.scheduleRestart(slot)
      throw error
    }
  }

  private onEnded(slot: Slot, replica: Replica, reason: string): void {
    if (slot.replica !== replica) return
    slot.replica = undefined
    if (slot.state === "draining" || slot.state === "stopped" || this.closed) {
      slot.state = "stopped"
      return
    }
    slot.state = "down"
    this.deps.record({
      type: "ToolReplicaExited",
      server: slot.config.name,
      version: slot.config.version,
      replica: slot.id,
      reason: reason.startsWith("unhealthy") ? "unhealthy" : "crashed",
      detail: reason,
      ...(replica.sandboxId === undefined ? {} : { sandboxId: replica.sandboxId }),
    })
    this.scheduleRestart(slot)
  }

  private scheduleRestart(slot: Slot): void {
    if (this.closed || slot.state === "stopped" || slot.state === "draining") return
    const delay = slot.backoffMs
    slot.backoffMs = Math.min(slot.backoffMs * 2, slot.config.maxRestartBackoffMs)
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined
      slot.restarts++
      this.restartsTotal++
      this.launch(slot).catch(() => undefined)
    }, delay)
    slot.restartTimer.unref?.()
  }

  private checkHealth(): void {
    for (const slots of this.versions.values())
      for (const slot of slots) {
        const replica = slot.replica
        if (slot.state !== "up" || replica === undefined) continue
        const timeout = Math.max(500, Math.min(2_000, slot.config.healthIntervalMs))
        replica.client.ping({ timeout }).catch((error: unknown) => {
          if (slot.replica !== replica) return
          // Closing ends the session; `onEnded` records it and restarts.
          this.onEnded(slot, replica, `unhealthy: ping failed (${(error as Error).message})`)
          replica.close().catch(() => undefined)
        })
      }
  }

  private usable(slot: Slot, now: number): boolean {
    return slot.state === "up" && slot.inFlight < slot.config.concurrency && slot.circuitUntil <= now
  }

  /** The least-loaded usable replica of a version picked by traffic weight, or of any live version. */
  private pick(): Slot | undefined {
    const now = this.now()
    const live = [...this.weights].filter(([, w]) => w > 0)
    let r = Math.random() * live.reduce((sum, [, w]) => sum + w, 0)
    let chosen = live[0]?.[0]
    for (const [version, w] of live) {
      if (r < w) {
        chosen = version
        break
      }
      r -= w
    }
    const best = (slots: ReadonlyArray<Slot> | undefined) => {
      let out: Slot | undefined
      for (const slot of slots ?? [])
        if (this.usable(slot, now) && (out === undefined || slot.inFlight < out.inFlight)) out = slot
      return out
    }
    const first = best(chosen === undefined ? undefined : this.versions.get(chosen))
    if (first !== undefined) return first
    for (const [version] of live) {
      const other = best(this.versions.get(version))
      if (other !== undefined) return other
    }
    return undefined
  }

  /** Waits for a free replica; refuses at once when the queue is full. */
  private acquire(deadline: number): Promise<Slot> {
    if (this.closed) return Promise.reject(new DockError("closed", `${this.name}: the pool is closed`))
    const slot = this.queue.length === 0 ? this.pick() : undefined
    if (slot !== undefined) {
      slot.inFlight++
      return Promise.resolve(slot)
    }
    if (this.queue.length >= this.config.queueLimit)
      return Promise.reject(
        new DockError(
          "queue_full",
          `${this.name}: ${this.queue.length} calls already queued (queueLimit); try again later`,
        ),
      )
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined }
      waiter.timer = setTimeout(
        () => {
          const i = this.queue.indexOf(waiter)
          if (i >= 0) this.queue.splice(i, 1)
          reject(new DockError("unavailable", `${this.name}: no replica became free in time`))
        },
        Math.max(0, deadline - this.now()),
      )
      this.queue.push(waiter)
    })
  }

  private release(slot: Slot): void {
    slot.inFlight--
    this.pump()
  }

  /** Hands free replicas to queued calls, in order. */
  private pump(): void {
    while (this.queue.length > 0) {
      const slot = this.pick()
      if (slot === undefined) return
      const waiter = this.queue.shift()!
      if (waiter.timer !== undefined) clearTimeout(waiter.timer)
      slot.inFlight++
      waiter.resolve(slot)
    }
  }

  private failure(slot: Slot): void {
    slot.failures++
    if (slot.failures >= slot.config.breakerFailures && slot.circuitUntil <= this.now()) {
      slot.circuitUntil = this.now() + slot.config.breakerResetMs
      this.deps.record({
        type: "ToolCircuitChanged",
        server: slot.config.name,
        replica: slot.id,
        state: "open",
        failures: slot.failures,
      })
      // Half-open after the reset time: the next call tries it again.
      setTimeout(() => this.pump(), slot.config.breakerResetMs).unref?.()
    }
  }

  private success(slot: Slot): void {
    if (slot.failures >= slot.config.breakerFailures)
      this.deps.record({
        type: "ToolCircuitChanged",
        server: slot.config.name,
        replica: slot.id,
        state: "closed",
        failures: 0,
      })
    slot.failures = 0
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
    const retryable = isIdempotent(config, tool)
    const maxAttempts = retryable ? config.retries + 1 : 1
    let last: AttemptOutcome = { ok: false, kind: "unavailable", message: "not attempted" }
    let replica = ""
    let version = ""
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const started = this.now()
      let slot: Slot
      try {
        slot = await this.acquire(started + timeout)
      } catch (error) {
        if (error instanceof DockError && error.kind === "queue_full") throw error
        last = { ok: false, kind: "unavailable", message: (error as Error).message }
        continue
      }
      replica = slot.id
      version = slot.config.version
      const client = slot.replica?.client
      try {
        if (client === undefined) throw new Error("replica went down before the call")
        const result = await client.callTool({ name: tool, arguments: args }, undefined, {
          timeout: Math.max(1, timeout - (this.now() - started)),
        })
        this.success(slot)
        this.release(slot)
        return { outcome: { ok: true, result, slot }, attempts: attempt, replica, version }
      } catch (error) {
        this.failure(slot)
        this.release(slot)
        last = {
          ok: false,
          kind: isTimeout(error) ? "timeout" : "unavailable",
          message: `${slot.id}: ${(error as Error).message}`,
        }
        if (attempt < maxAttempts) await sleep(Math.random() * config.backoffMs * attempt)
      }
    }
    return { outcome: last, attempts: maxAttempts, replica, version }
  }

  /** Remembers a finished call for the status figures. */
  observe(latencyMs: number, ok: boolean): void {
    this.calls++
    if (!ok) this.failed++
    // Rings of the last LATENCY_WINDOW calls (shifting a 4k array per call showed in profiles).
    this.latencies[this.ring] = latencyMs
    this.finishedAt[this.ring] = this.now()
    this.ring = (this.ring + 1) % LATENCY_WINDOW
  }

  /**
   * Hot-swap: start `version`, shift traffic in four steps, then drain and stop the old version.
   * `vet` sees the new version's tools before any traffic moves; a reason it gives stops the new
   * replicas and refuses the swap (the old version keeps serving).
   */
  swap(version: string, vet?: (tools: ReadonlyArray<Tool>) => string | undefined): Promise<SwapReport> {
    if (this.swapping !== undefined)
      return Promise.reject(new DockError("unavailable", `${this.name}: a swap is already running`))
    const target = this.entry.versions[version]
    if (target === undefined)
      return Promise.reject(
        new DockError(
          "unknown_tool",
          `${this.name} has no version "${version}" (tools.yaml lists ${Object.keys(this.entry.versions).join(", ")})`,
        ),
      )
    if (version === this.current)
      return Promise.reject(new DockError("unavailable", `${this.name} already runs ${version}`))
    const run = async (): Promise<SwapReport> => {
      const started = this.now()
      const from = this.current
      const old = this.versions.get(from) ?? []
      await this.startVersion(target)
      const offered = this.versions.get(version)?.find((s) => s.replica !== undefined)?.replica?.tools
      const refusal = offered === undefined ? undefined : vet?.(offered)
      if (refusal !== undefined) {
        await this.stopVersion(version, `swap to ${version} refused: ${refusal}`)
        throw new DockError("refused", `${this.name}: swap to ${version} refused: ${refusal}`)
      }
      for (const weight of [0.25, 0.5, 0.75, 1]) {
        this.weights = new Map([
          [from, 1 - weight],
          [version, weight],
        ])
        this.deps.record({ type: "ToolTrafficShifted", server: this.name, from, to: version, weight })
        this.pump()
        if (weight < 1) await sleep(100)
      }
      this.current = version
      this.tools =
        this.versions.get(version)?.find((s) => s.replica !== undefined)?.replica?.tools ?? this.tools
      let drained = 0
      for (const slot of old) {
        drained += slot.inFlight
        slot.state = "draining"
      }
      while (old.some((s) => s.inFlight > 0)) await sleep(10)
      for (const slot of old) {
        if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer)
        const replica = slot.replica
        slot.replica = undefined
        slot.state = "stopped"
        await replica?.close()
        this.deps.record({
          type: "ToolReplicaExited",
          server: this.name,
          version: from,
          replica: slot.id,
          reason: "drained",
          detail: `swapped to ${version}`,
          ...(replica?.sandboxId === undefined ? {} : { sandboxId: replica.sandboxId }),
        })
      }
      this.versions.delete(from)
      this.weights = new Map([[version, 1]])
      this.swaps++
      return { server: this.name, from, to: version, drainedCalls: drained, ms: this.now() - started }
    }
    this.swapping = run().finally(() => {
      this.swapping = undefined
    })
    return this.swapping
  }

  /** Stops every replica of a version that never took traffic (a refused swap). */
  private async stopVersion(version: string, detail: string): Promise<void> {
    const slots = this.versions.get(version) ?? []
    this.versions.delete(version)
    for (const slot of slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer)
      const replica = slot.replica
      slot.replica = undefined
      slot.state = "stopped"
      await replica?.close()
      this.deps.record({
        type: "ToolReplicaExited",
        server: this.name,
        version,
        replica: slot.id,
        reason: "stopped",
        detail,
        ...(replica?.sandboxId === undefined ? {} : { sandboxId: replica.sandboxId }),
      })
    }
  }

  /** Kills one replica's session as a crash would (for fault tests and `dock` drills). */
  async crash(index = 0): Promise<string | undefined> {
    const slot = this.versions.get(this.current)?.[index]
    const replica = slot?.replica
    if (replica === undefined) return undefined
    await replica.close()
    return slot!.id
  }

  status(): ServerStatus {
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const q = (p: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
    const windowStart = this.now() - 10_000
    const recent = this.finishedAt.filter((t) => t >= windowStart).length
    const oldest = this.finishedAt.length < LATENCY_WINDOW ? this.finishedAt[0] : this.finishedAt[this.ring]
    const since = Math.max(1, Math.min(10_000, this.now() - (oldest ?? this.now())))
    const replicas: ReplicaStatus[] = []
    for (const slots of this.versions.values())
      for (const s of slots)
        replicas.push({
          replica: s.id,
          version: s.config.version,
          state: s.state,
          inFlight: s.inFlight,
          circuit: s.circuitUntil > this.now() ? "open" : "closed",
          restarts: s.restarts,
          ...(s.replica?.sandboxId === undefined ? {} : { sandboxId: s.replica.sandboxId }),
          ...(s.replica?.pid === undefined ? {} : { pid: s.replica.pid }),
        })
    return {
      server: this.name,
      transport: this.config.transport,
      version: this.current,
      weights: Object.fromEntries(this.weights),
      replicas,
      queued: this.queue.length,
      calls: this.calls,
      failed: this.failed,
      callsPerSecond: (recent * 1000) / since,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      restarts: this.restartsTotal,
      swaps: this.swaps,
    }
  }

  /** Live sandbox ids (Docker replicas), for orphan reconciliation. */
  sandboxIds(): ReadonlyArray<string> {
    const ids: string[] = []
    for (const slots of this.versions.values())
      for (const s of slots) if (s.replica?.sandboxId !== undefined) ids.push(s.replica.sandboxId)
    return ids
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.health !== undefined) clearInterval(this.health)
    for (const waiter of this.queue.splice(0)) {
      if (waiter.timer !== undefined) clearTimeout(waiter.timer)
      waiter.reject(new DockError("closed", `${this.name}: the pool closed`))
    }
    const closing: Promise<void>[] = []
    for (const slots of this.versions.values())
      for (const slot of slots) {
        if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer)
        slot.state = "stopped"
        if (slot.replica !== undefined) closing.push(slot.replica.close())
        slot.replica = undefined
      }
    await Promise.allSettled(closing)
  }
}
