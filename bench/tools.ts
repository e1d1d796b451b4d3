/**
 * The tools benchmark: `echo` calls to the third-party MCP server `server-everything` (4 stdio
 * processes), at a fixed concurrency, three ways in one run: direct MCP clients round-robin (the
 * baseline), and through AgentDock (the tool pool actors, every call recorded as `ToolCallServed`)
 * on the embedded log and on JetStream (a private nats-server). A last JetStream phase SIGKILLs one
 * replica's process while the load runs and counts failed calls (the target: none) and the time
 * until `dock.status()` shows the replica up again. Targets: JetStream ≥ 2,000 calls/s and p99 ≤ 50 ms.
 * Each phase first runs unmeasured warm-up calls (default: as many as it measures), since every
 * phase starts fresh server processes whose JIT is cold. Flags: --calls, --warmup, --concurrency,
 * --json, --check.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { startDock } from "../src/actors/tools/dock.ts"
import type { Dock, ReplicaStatus } from "../src/actors/tools/dockTypes.ts"
import { toolsConfigFrom } from "../src/actors/tools/toolsConfig.ts"
import { makeEmbeddedLog } from "../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../src/events/log/jetStreamLog.ts"
import { connectNats } from "../src/events/log/natsConnection.ts"
import { startNatsServer } from "../src/runtime/natsServerProcess.ts"
import type { Benchmark } from "./benchmark.ts"
import { Resources } from "./resources.ts"

const SERVER = "everything"
const COMMAND = "mcp-server-everything"
const REPLICAS = 4
const PHASE_LIMIT_MS = 120_000
const RECOVERY_LIMIT_MS = 30_000

interface Measured {
  readonly phase: "baseline" | "embedded" | "jetstream" | "jetstream+kill"
  readonly via: string
  readonly calls: number
  readonly failed: number
  readonly seconds: number
  readonly callsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** CPU time (user + system) of this process per call: the client side's cost, servers excluded. */
  readonly cpuUsPerCall: number
  /** The first few failures' messages, to say what went wrong. */
  readonly errors: ReadonlyArray<string>
}

interface KillReport {
  /** `sigkill`: the replica's child process got SIGKILL; `dock.crash`: its session was closed. */
  readonly method: "sigkill" | "dock.crash" | "none"
  readonly pid?: number
  readonly replica?: string
  readonly afterCalls: number
  readonly failedCalls: number
  /** Kill → `dock.status()` no longer shows the replica `up`. */
  readonly detectedMs?: number
  /** Kill → `dock.status()` shows it `up` again with one more restart. */
  readonly recoveredMs?: number
  readonly restarts: number
  readonly note?: string
}

type DockWithDrill = Dock & {
  readonly crash?: (server: string, index?: number) => Promise<string | undefined>
}

/** The project's `node_modules/.bin`, so `mcp-server-everything` resolves as the dock resolves it. */
const binDir = (): string | undefined => {
  for (
    let dir = path.dirname(fileURLToPath(import.meta.url)), up = 0;
    up < 6;
    up++, dir = path.dirname(dir)
  ) {
    const candidate = path.join(dir, "node_modules", ".bin")
    if (fs.existsSync(path.join(candidate, COMMAND))) return candidate
  }
  return undefined
}

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0
    ? 0
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Echo's answer for `message`, as server-everything words it. */
const echoed = (message: string) => `Echo: ${message}`

/** The load of every phase, and the signal that Ctrl-C raises to stop it. */
interface Load {
  readonly calls: number
  readonly warmup: number
  readonly concurrency: number
  readonly signal: AbortSignal
}

/**
 * A closed loop: `load.concurrency` workers take the next call index until `total` calls have
 * finished. `call` resolves true for a correct answer; false or a throw counts as a failed call. A
 * phase that runs longer than PHASE_LIMIT_MS, or is interrupted, stops with an error saying so.
 */
const drive = async (
  label: string,
  total: number,
  load: Load,
  call: (i: number) => Promise<boolean>,
  onDone?: (done: number) => void,
): Promise<{ latencies: Float64Array; failed: number; seconds: number; cpuUs: number; errors: string[] }> => {
  const latencies = new Float64Array(total)
  const errors: string[] = []
  let next = 0
  let done = 0
  let failed = 0
  let aborted = false
  const worker = async () => {
    while (!aborted && next < total) {
      const i = next++
      const t0 = performance.now()
      let ok: boolean
      try {
        ok = await call(i)
        if (!ok && errors.length < 5) errors.push(`call ${i}: wrong or failed answer`)
      } catch (error) {
        ok = false
        if (errors.length < 5) errors.push(`call ${i}: ${describe(error)}`)
      }
      latencies[i] = performance.now() - t0
      if (!ok) failed++
      done++
      onDone?.(done)
    }
  }
  const progress = setInterval(() => process.stderr.write(`  ${label}: ${done}/${total} calls\r`), 1000)
  let limit: ReturnType<typeof setTimeout> | undefined
  let onAbort: (() => void) | undefined
  const overdue = new Promise<never>((_, reject) => {
    onAbort = () => {
      aborted = true
      reject(new Error(`tools benchmark: interrupted during phase "${label}"`))
    }
    if (load.signal.aborted) onAbort()
    else load.signal.addEventListener("abort", onAbort, { once: true })
    limit = setTimeout(() => {
      aborted = true
      reject(
        new Error(
          `tools benchmark: phase "${label}" did not finish ${total} calls within ${PHASE_LIMIT_MS / 1000} s ` +
            `(${done} done, ${failed} failed); aborting`,
        ),
      )
    }, PHASE_LIMIT_MS)
  })
  const started = performance.now()
  const cpu = process.cpuUsage()
  try {
    await Promise.race([
      Promise.all(Array.from({ length: Math.min(load.concurrency, total) }, () => worker())),
      overdue,
    ])
  } finally {
    if (onAbort !== undefined) load.signal.removeEventListener("abort", onAbort)
    clearTimeout(limit)
    clearInterval(progress)
  }
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  process.stderr.write(`\r  ${label}: ${done}/${total} calls, ${failed} failed, ${seconds.toFixed(2)} s\n`)
  return { latencies, failed, seconds, cpuUs: used.user + used.system, errors }
}

const summarize = (
  phase: Measured["phase"],
  via: string,
  run: { latencies: Float64Array; failed: number; seconds: number; cpuUs: number; errors: string[] },
): Measured => {
  const sorted = run.latencies.slice().sort()
  return {
    phase,
    via,
    calls: run.latencies.length,
    failed: run.failed,
    seconds: run.seconds,
    callsPerSecond: run.latencies.length / run.seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? 0,
    cpuUsPerCall: run.cpuUs / run.latencies.length,
    errors: run.errors,
  }
}

/** Runs `body` once; later calls return the first call's promise. */
const once = (body: () => Promise<void>): (() => Promise<void>) => {
  let running: Promise<void> | undefined
  return () => {
    running ??= body()
    return running
  }
}

/** The baseline: REPLICAS direct MCP clients, each over its own stdio server process, round-robin. */
const baseline = async (resources: Resources, bin: string | undefined, load: Load): Promise<Measured> => {
  const clients: Client[] = []
  const close = once(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()))
  })
  resources.add(close)
  const base = getDefaultEnvironment()
  const PATH = [bin, base.PATH ?? process.env.PATH].filter(Boolean).join(path.delimiter)
  try {
    for (let i = 0; i < REPLICAS; i++) {
      const transport = new StdioClientTransport({
        command: COMMAND,
        args: ["stdio"],
        env: { ...base, PATH },
        stderr: "pipe",
      })
      transport.stderr?.on("data", () => undefined)
      const client = new Client({ name: `rollout-bench-tools/${i}`, version: "0.1.0" })
      clients.push(client)
      await client.connect(transport)
    }
    const call = async (i: number) => {
      const message = `m${i}`
      const result = await clients[i % clients.length]!.callTool({ name: "echo", arguments: { message } })
      const first = (result.content as ReadonlyArray<{ type: string; text?: string }> | undefined)?.[0]
      return result.isError !== true && first?.type === "text" && first.text === echoed(message)
    }
    if (load.warmup > 0) await drive("baseline warm-up", load.warmup, load, call)
    return summarize(
      "baseline",
      `direct MCP clients → ${REPLICAS} stdio processes`,
      await drive("baseline", load.calls, load, call),
    )
  } finally {
    // Its processes go before the dock phases start theirs (the kill looks for the dock's children).
    await close()
  }
}

const startToolsDock = async (
  resources: Resources,
  log: EventLogShape,
): Promise<{ dock: DockWithDrill; close: () => Promise<void> }> => {
  const config = toolsConfigFrom({
    servers: {
      [SERVER]: {
        command: COMMAND,
        args: ["stdio"],
        replicas: REPLICAS,
        concurrency: 32,
        idempotent: ["echo"],
      },
    },
  })
  if (Result.isFailure(config)) throw new Error(`tools benchmark: bad dock config: ${config.failure.message}`)
  const dock: DockWithDrill = await startDock({ log, config: config.success })
  const close = once(() => dock.close())
  resources.add(close)
  // startDock resolves once one replica is up; wait for all of them so every phase starts with REPLICAS.
  const deadline = Date.now() + 30_000
  while (!replicasOf(dock).every((r) => r.state === "up")) {
    if (Date.now() > deadline)
      throw new Error(
        `tools benchmark: not every replica came up within 30 s: ${JSON.stringify(replicasOf(dock))}`,
      )
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { dock, close }
}

const replicasOf = (dock: Dock): ReadonlyArray<ReplicaStatus> =>
  dock.status().find((s) => s.server === SERVER)?.replicas ?? []

const dockCall = (dock: Dock) => async (i: number) => {
  const message = `m${i}`
  const result = await dock.call(`${SERVER}.echo`, { message })
  const first = result.content[0]
  return result.outcome === "ok" && first?.type === "text" && first.text === echoed(message)
}

/** Pids of this process's children that run the MCP server (Linux `/proc`; empty elsewhere). */
const serverChildren = (): number[] => {
  const pids = new Set<number>()
  try {
    for (const task of fs.readdirSync(`/proc/${process.pid}/task`)) {
      const children = fs.readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8")
      for (const pid of children.split(/\s+/).filter(Boolean)) pids.add(Number(pid))
    }
  } catch {
    return []
  }
  return [...pids].filter((pid) => {
    try {
      return fs
        .readFileSync(`/proc/${pid}/cmdline`, "utf8")
        .split("\0")
        .some((arg) => arg.includes(COMMAND))
    } catch {
      return false
    }
  })
}

/** A phase on the dock with one replica killed once a quarter of the calls have finished. */
const withReplicaKill = async (
  dock: DockWithDrill,
  load: Load,
  dockPids: ReadonlySet<number>,
): Promise<{ measured: Measured; kill: KillReport }> => {
  const before = new Map(replicasOf(dock).map((r) => [r.replica, r.restarts]))
  let killAt: number | undefined
  let method: KillReport["method"] = "sigkill"
  let pid: number | undefined
  let note: string | undefined
  let killed: string | undefined
  let detectedAt: number | undefined
  let recoveredAt: number | undefined
  let afterCalls = 0
  const watch = () => {
    if (killAt === undefined || recoveredAt !== undefined) return
    const now = performance.now()
    for (const r of replicasOf(dock)) {
      const restarted = r.restarts > (before.get(r.replica) ?? 0)
      if ((r.state !== "up" || restarted) && killed === undefined) killed = r.replica
      if (r.replica !== killed) continue
      if (r.state !== "up") detectedAt ??= now
      else if (restarted) {
        detectedAt ??= now
        recoveredAt = now
      }
    }
  }
  // dock.status() sorts the latency window: poll it gently so the watching does not load the phase.
  const watcher = setInterval(watch, 20)
  const kill = (done: number) => {
    if (killAt !== undefined || done < Math.floor(load.calls / 4)) return
    afterCalls = done
    // Only a pid that the dock started: one that appeared with the dock and still runs the server.
    const target = serverChildren().find((p) => dockPids.has(p))
    killAt = performance.now()
    if (target !== undefined) {
      pid = target
      process.kill(target, "SIGKILL")
      process.stderr.write(`  killed replica process ${target} (SIGKILL) after ${done} calls\n`)
    } else if (dock.crash !== undefined) {
      method = "dock.crash"
      note = "no replica pid found under /proc; closed replica 1's session with dock.crash instead"
      dock.crash(SERVER, 1).then(
        (id) => {
          killed ??= id
        },
        () => undefined,
      )
      process.stderr.write(`  crashed replica 1 with dock.crash after ${done} calls\n`)
    } else {
      method = "none"
      note = "no replica pid and no dock.crash: nothing was killed"
    }
  }
  try {
    const run = await drive("jetstream+kill", load.calls, load, dockCall(dock), kill)
    const deadline = performance.now() + RECOVERY_LIMIT_MS
    while (
      killAt !== undefined &&
      recoveredAt === undefined &&
      performance.now() < deadline &&
      !load.signal.aborted
    ) {
      watch()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const measured = summarize("jetstream+kill", `AgentDock, ${REPLICAS} replicas, 1 SIGKILLed`, run)
    const restarts =
      killed === undefined
        ? 0
        : (replicasOf(dock).find((r) => r.replica === killed)?.restarts ?? 0) - (before.get(killed) ?? 0)
    if (killAt !== undefined && recoveredAt === undefined)
      note = [note, `the replica was not back up within ${RECOVERY_LIMIT_MS / 1000} s of the phase's end`]
        .filter(Boolean)
        .join("; ")
    return {
      measured,
      kill: {
        method,
        ...(pid === undefined ? {} : { pid }),
        ...(killed === undefined ? {} : { replica: killed }),
        afterCalls,
        failedCalls: run.failed,
        ...(killAt === undefined || detectedAt === undefined ? {} : { detectedMs: detectedAt - killAt }),
        ...(killAt === undefined || recoveredAt === undefined ? {} : { recoveredMs: recoveredAt - killAt }),
        restarts,
        ...(note === undefined ? {} : { note }),
      },
    }
  } finally {
    clearInterval(watcher)
  }
}

const onEmbedded = async (resources: Resources, load: Load) => {
  const log = await resources.scoped(
    makeEmbeddedLog({
      dataDir: resources.tempDir("rollout-bench-tools-"),
      namespace: "tools",
      fsync: "interval",
    }),
  )
  const { dock, close } = await startToolsDock(resources, log)
  try {
    if (load.warmup > 0) await drive("embedded warm-up", load.warmup, load, dockCall(dock))
    return summarize(
      "embedded",
      `AgentDock on the embedded log, ${REPLICAS} replicas`,
      await drive("embedded", load.calls, load, dockCall(dock)),
    )
  } finally {
    await close()
  }
}

const onJetStream = async (resources: Resources, load: Load) => {
  const server = await startNatsServer({ storeDir: resources.tempDir("rollout-bench-tools-nats-") })
  resources.add(() => server.stop())
  const handle = await resources.scoped(connectNats({ servers: server.url, name: "rollout-bench-tools" }))
  const log = await Effect.runPromise(makeJetStreamLog(handle, { namespace: "tools" }))
  const earlier = new Set(serverChildren())
  const { dock, close } = await startToolsDock(resources, log)
  const dockPids = new Set(serverChildren().filter((p) => !earlier.has(p)))
  try {
    if (load.warmup > 0) await drive("jetstream warm-up", load.warmup, load, dockCall(dock))
    const clean = summarize(
      "jetstream",
      `AgentDock on JetStream, ${REPLICAS} replicas`,
      await drive("jetstream", load.calls, load, dockCall(dock)),
    )
    const killed = await withReplicaKill(dock, load, dockPids)
    return { clean, killed }
  } finally {
    await close()
  }
}

const positive = (name: string, raw: string): number => {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}

const rate = (x: number) => Math.round(x).toLocaleString("en")
const ms = (x: number | undefined) => (x === undefined ? "—" : `${x.toFixed(1)} ms`)

const runTools = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      calls: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "64" },
      // Fresh server processes are cold: measured with a short warm-up, the phases compare JIT tiers.
      warmup: { type: "string" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const calls = positive("calls", values.calls)
  const concurrency = positive("concurrency", values.concurrency)
  const warmup = values.warmup === undefined ? calls : Number(values.warmup)
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error("--warmup must be a non-negative integer")
  const bin = binDir()
  if (bin === undefined)
    throw new Error(
      `tools benchmark: ${COMMAND} not found in node_modules/.bin (npm install @modelcontextprotocol/server-everything)`,
    )
  const resources = new Resources()
  const interrupt = new AbortController()
  const load: Load = { calls, warmup, concurrency, signal: interrupt.signal }
  const onSignal = () => {
    interrupt.abort()
    process.stderr.write("\ntools benchmark: interrupted, stopping what it started\n")
    resources.release().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  try {
    process.stderr.write(
      `tools benchmark: ${calls} echo calls per phase, concurrency ${concurrency}, ${warmup} warm-up calls, ${REPLICAS} × ${COMMAND}\n`,
    )
    const base = await baseline(resources, bin, load)
    const embedded = await onEmbedded(resources, load)
    const js = await onJetStream(resources, load)
    const results = [base, embedded, js.clean, js.killed.measured]
    const kill = js.killed.kill
    const targets = [
      {
        name: "JetStream calls/s",
        goal: "≥ 2,000",
        actual: rate(js.clean.callsPerSecond),
        pass: js.clean.callsPerSecond >= 2_000,
      },
      {
        name: "JetStream p99 latency",
        goal: "≤ 50 ms",
        actual: ms(js.clean.p99Ms),
        pass: js.clean.p99Ms <= 50,
      },
      {
        name: "failed calls during the replica kill",
        goal: "0",
        actual:
          kill.method === "none" ? `${kill.failedCalls} (nothing was killed)` : String(kill.failedCalls),
        pass: kill.failedCalls === 0 && kill.method !== "none",
      },
    ]
    const environment = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    }
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          benchmark: "tools",
          callsPerPhase: calls,
          concurrency,
          warmup,
          replicas: REPLICAS,
          environment,
          results: results.map((r) => ({ ...r, ofBaseline: r.callsPerSecond / base.callsPerSecond })),
          kill,
          targets,
        })}\n`,
      )
    } else {
      process.stdout.write(
        `\ntools benchmark: ${calls} echo calls per phase, concurrency ${concurrency}, ${REPLICAS} replicas; ` +
          `node ${environment.node}, ${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}\n\n`,
      )
      const header = [
        "phase".padEnd(15),
        "calls".padStart(7),
        "failed".padStart(6),
        "seconds".padStart(8),
        "calls/s".padStart(9),
        "×base".padStart(6),
        "p50".padStart(9),
        "p99".padStart(9),
        "max".padStart(10),
        "cpu/call".padStart(9),
        "  via",
      ].join("  ")
      const rows = results.map((r) =>
        [
          r.phase.padEnd(15),
          String(r.calls).padStart(7),
          String(r.failed).padStart(6),
          r.seconds.toFixed(2).padStart(8),
          rate(r.callsPerSecond).padStart(9),
          (r.callsPerSecond / base.callsPerSecond).toFixed(3).padStart(6),
          ms(r.p50Ms).padStart(9),
          ms(r.p99Ms).padStart(9),
          ms(r.maxMs).padStart(10),
          `${Math.round(r.cpuUsPerCall)} µs`.padStart(9),
          `  ${r.via}`,
        ].join("  "),
      )
      process.stdout.write(`${header}\n${rows.join("\n")}\n\n`)
      for (const r of results) for (const e of r.errors) process.stdout.write(`  ${r.phase} failure: ${e}\n`)
      process.stdout.write(
        `replica kill (${kill.method}${kill.pid === undefined ? "" : ` pid ${kill.pid}`}${kill.replica === undefined ? "" : `, ${kill.replica}`}) ` +
          `after ${kill.afterCalls} calls: ${kill.failedCalls} failed calls, down in dock.status() after ${ms(kill.detectedMs)}, ` +
          `up again after ${ms(kill.recoveredMs)}, ${kill.restarts} restart(s)${kill.note === undefined ? "" : `; ${kill.note}`}\n\n`,
      )
      for (const t of targets)
        process.stdout.write(`${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.actual} (goal ${t.goal})\n`)
    }
    return values.check && targets.some((t) => !t.pass) ? 1 : 0
  } finally {
    process.off("SIGINT", onSignal)
    await resources.release()
  }
}

export const toolsBenchmark: Benchmark = {
  name: "tools",
  summary:
    "MCP echo calls via AgentDock on both logs vs direct clients, with a replica kill (--calls, --warmup, --concurrency, --json, --check)",
  run: runTools,
}
