/**
 * AgentDock: the pools of every configured MCP server behind one call surface. A call names a tool
 * as the dock offers it (`server__tool`, see toolNames.ts; the old `server.tool` is still read), with
 * arguments parsed leniently, coerced by the tool's schema and checked against it; it carries
 * an idempotency key, and a key already answered in the log returns the recorded result instead of
 * running the tool twice. Every call (`ToolCallServed`) and lifecycle change is an event; lifecycle
 * events are written by a background recorder (`lifecycleRecorder`) so a pool never waits on the
 * log to heal itself; while the log is unreachable they wait in a bounded buffer and are retried.
 */
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { EventOf } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import {
  type Dock,
  type DockCallOptions,
  type DockCallResult,
  DockError,
  type DockTool,
  type ServerStatus,
  type SwapReport,
} from "./dockTypes.ts"
import { LifecycleRecorder, type RecorderOptions } from "./lifecycleRecorder.ts"
import type { Sandbox } from "./sandbox/sandbox.ts"
import { type Coercion, parseToolArguments } from "./toolArguments.ts"
import { publicToolName, serverOfToolName, type ToolNameTable, toolNameTable } from "./toolNames.ts"
import { normalizeToolResult } from "./toolOutput.ts"
import { ToolPool } from "./toolPool.ts"
import type { ToolsConfig } from "./toolsConfig.ts"

export interface DockOptions {
  readonly log: EventLogShape
  readonly config: ToolsConfig
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Needed when a server uses transport docker. */
  readonly sandbox?: Sandbox & {
    readonly reconcileOrphans?: (live: ReadonlySet<string>, owner: string) => Promise<ReadonlyArray<string>>
    readonly listOwned?: (
      owner: string,
    ) => Promise<ReadonlyArray<{ readonly id: string; readonly labels: Readonly<Record<string, string>> }>>
  }
  /** The `rollout.owner` label of this dock's containers (default `<namespace>/dock`). */
  readonly sandboxOwner?: string
  /** Only these servers (default: all). */
  readonly servers?: ReadonlyArray<string>
  /** How often pools are sampled into the log for `dock status` (0 = never; default 2 s). */
  readonly sampleEveryMs?: number
  readonly onStderr?: (replica: string, line: string) => void
  /** How lifecycle events wait while the log is unreachable (buffer bound, retry delays). */
  readonly recorder?: RecorderOptions
}

/** Containers that a previous pool process started and never recorded as ended, by owner. */
const unendedSandboxes = (log: EventLogShape, namespace: string) =>
  Effect.gen(function* () {
    const started = new Map<string, string>()
    const entries = yield* Stream.runCollect(log.read({ filter: `${namespace}.ev.tool.>` }))
    for (const entry of entries) {
      if (entry instanceof UndecodableEvent) continue
      const decoded = decodeEvent(entry)
      if (decoded._tag === "Failure") continue
      const e = decoded.success.event
      if (e.type === "ToolReplicaStarted" && e.sandboxId !== undefined)
        started.set(e.sandboxId, e.owner ?? "")
      if (e.type === "ToolReplicaExited" && e.sandboxId !== undefined) started.delete(e.sandboxId)
      if (e.type === "ToolSandboxesReconciled") for (const id of e.removed) started.delete(id)
    }
    return started
  })

/** The event's record of coerced arguments (JSON: they were read from JSON); absent when none were. */
const coercedOf = (coerced: ReadonlyArray<Coercion> | undefined) =>
  coerced === undefined || coerced.length === 0
    ? {}
    : { coerced: coerced as NonNullable<EventOf<"ToolCallServed">["coerced"]> }

/** Starts the pools (all replicas started, orphans of a dead predecessor removed first). */
export const startDock = async (
  options: DockOptions,
): Promise<Dock & { readonly recorder: LifecycleRecorder }> => {
  const { log, config } = options
  const ns = log.namespace
  const recorder = new LifecycleRecorder(log, options.recorder)
  const names = options.servers ?? Object.keys(config.servers)
  for (const name of names)
    if (config.servers[name] === undefined)
      throw new DockError(
        "unknown_tool",
        `unknown server "${name}": ${config.source} defines ${Object.keys(config.servers).join(", ") || "none"}`,
      )

  // Orphans: containers of a pool process that died (kill -9) keep running. On start, every
  // container of this owner whose process is gone is removed; the log says which of them were
  // recorded as started and never as ended.
  const sandboxOwner = options.sandboxOwner ?? `${ns}/dock`
  if (options.sandbox?.reconcileOrphans !== undefined && options.sandbox.listOwned !== undefined) {
    const unended = await Effect.runPromise(unendedSandboxes(log, ns))
    const owned = await options.sandbox.listOwned(sandboxOwner)
    const alive = (labels: Readonly<Record<string, string>>) => {
      const pid = Number(labels["rollout.pid"])
      if (labels["rollout.host"] !== os.hostname() || !Number.isInteger(pid)) return false
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    const live = new Set(owned.filter((c) => alive(c.labels)).map((c) => c.id))
    const removed = await options.sandbox.reconcileOrphans(live, sandboxOwner)
    if (removed.length > 0) {
      const known = removed.filter((id) =>
        [...unended.keys()].some((u) => id.startsWith(u) || u.startsWith(id)),
      )
      process.stderr.write(
        `rollout dock: removed ${removed.length} orphaned sandbox container(s) of ${sandboxOwner} (${known.length} recorded in the log as never ended)\n`,
      )
      recorder.add(entitySubject(ns, "tool", "sandboxes"), {
        type: "ToolSandboxesReconciled",
        owner: sandboxOwner,
        removed: [...removed],
      })
    }
  }

  const pools = new Map<string, ToolPool>()
  try {
    for (const name of names) {
      const pool = new ToolPool(config.servers[name]!, {
        env: options.env ?? process.env,
        ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox }),
        owner: sandboxOwner,
        record: (event) => recorder.add(entitySubject(ns, "tool", name), event),
        ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
      })
      pools.set(name, pool)
      await pool.start()
    }
  } catch (error) {
    await Promise.allSettled([...pools.values()].map((p) => p.close()))
    await recorder.flush()
    throw error
  }

  // The offered names, rebuilt whenever a pool's tool list changes (a restart, a swap).
  const separator = config.separator
  let offered: { readonly lists: ReadonlyArray<unknown>; readonly table: ToolNameTable } | undefined
  const refsWith = (server: string, tools: ReadonlyArray<{ readonly name: string }>) =>
    [...pools]
      .flatMap(([s, pool]) =>
        s === server ? [] : pool.listTools().map((t) => ({ server: s, tool: t.name })),
      )
      .concat(tools.map((t) => ({ server, tool: t.name })))
  const nameTable = (): ToolNameTable => {
    const lists = [...pools.values()].map((p) => p.listTools())
    if (offered?.lists.every((l, i) => l === lists[i])) return offered.table
    const table = toolNameTable(
      [...pools].flatMap(([server, pool]) => pool.listTools().map((t) => ({ server, tool: t.name }))),
      separator,
    )
    offered = { lists, table }
    return table
  }
  const collisions = [...nameTable().collisions.values()]
  if (collisions.length > 0) {
    await Promise.allSettled([...pools.values()].map((p) => p.close()))
    await recorder.flush()
    throw new DockError("refused", `two tools would share one name: ${collisions.join("; ")}`)
  }

  const sampleEvery = options.sampleEveryMs ?? 2_000
  const sampler =
    sampleEvery > 0
      ? setInterval(() => {
          for (const pool of pools.values()) pool.sample()
        }, sampleEvery)
      : undefined
  sampler?.unref()

  /** Records written off the call path; `close` waits for them. */
  const calls = {
    pending: new Set<Promise<void>>(),
    track(p: Promise<void>) {
      this.pending.add(p)
      p.finally(() => this.pending.delete(p))
    },
  }

  /** Recent answers by key, so a retried call within this process needs no read. */
  const answered = new Map<string, EventOf<"ToolCallServed">>()
  const remember = (key: string, served: EventOf<"ToolCallServed">) => {
    answered.set(key, served)
    if (answered.size > 10_000) answered.delete(answered.keys().next().value!)
  }

  const recorded = async (key: string): Promise<EventOf<"ToolCallServed"> | undefined> => {
    const hit = answered.get(key)
    if (hit !== undefined) return hit
    const subject = entitySubject(ns, "toolcall", key)
    const last = await Effect.runPromise(log.lastPosition(subject))
    if (last === 0) return undefined
    const entries = await Effect.runPromise(Stream.runCollect(log.read({ filter: subject })))
    for (const entry of entries) {
      if (entry instanceof UndecodableEvent) continue
      const decoded = decodeEvent(entry)
      if (decoded._tag === "Success" && decoded.success.event.type === "ToolCallServed")
        return decoded.success.event
    }
    return undefined
  }

  const resultOf = (
    served: EventOf<"ToolCallServed">,
    mcpContent: ReadonlyArray<Record<string, unknown>>,
    replayed: boolean,
  ): DockCallResult => ({
    outcome: served.outcome,
    content: served.content,
    mcpContent,
    isError: served.outcome !== "ok",
    truncated: served.truncated,
    replica: served.replica,
    version: served.version,
    attempts: served.attempts,
    latencyMs: served.latencyMs,
    ...(served.error === undefined ? {} : { error: served.error }),
    replayed,
    ...(served.coerced === undefined ? {} : { coerced: served.coerced }),
  })

  /** A recorded answer: images and blobs come back as their recorded description (no bytes). */
  const fromRecord = (served: EventOf<"ToolCallServed">): DockCallResult =>
    resultOf(
      served,
      served.content.map((c) =>
        c.type === "text" ? { type: "text", text: c.text } : { type: "text", text: JSON.stringify(c) },
      ),
      true,
    )

  /** The pool and the tool's own name of an offered name (or of the old `server.tool`). */
  const resolve = (name: string): { pool: ToolPool; tool: string } => {
    const table = nameTable()
    const ref = table.byName.get(name)
    if (ref !== undefined) return { pool: pools.get(ref.server)!, tool: ref.tool }
    const parts = serverOfToolName(name, separator, [...pools.keys()])
    if (parts === undefined || parts.rest === "")
      throw new DockError(
        "unknown_tool",
        `unknown tool "${name}": tools are named <server>${separator}<tool> (or <server>.<tool>); servers: ${[...pools.keys()].join(", ") || "none"}`,
      )
    const collision = table.collisions.get(name)
    if (collision !== undefined)
      throw new DockError("unknown_tool", `tool "${name}" is not offered: ${collision}`)
    // The old form carries the tool's own name; an offered name not in the table is checked below.
    return { pool: pools.get(parts.server)!, tool: parts.rest }
  }

  const call = async (
    name: string,
    rawArgs: unknown,
    callOptions: DockCallOptions = {},
  ): Promise<DockCallResult> => {
    const { pool, tool } = resolve(name)
    const key = callOptions.idempotencyKey ?? `auto-${randomUUID()}`
    if (callOptions.idempotencyKey !== undefined) {
      const earlier = await recorded(key)
      if (earlier !== undefined) return fromRecord(earlier)
    }
    const started = performance.now()
    const spec = pool.schemaOf(tool)
    let served: EventOf<"ToolCallServed">
    let mcpContent: ReadonlyArray<Record<string, unknown>> = []
    if (spec === undefined && pool.listTools().length > 0) {
      throw new DockError(
        "unknown_tool",
        `unknown tool "${name}": ${pool.name} offers ${pool
          .listTools()
          .map((t) => publicToolName(pool.name, t.name, separator))
          .join(", ")}`,
      )
    }
    const args = parseToolArguments(name, rawArgs, spec?.inputSchema)
    if (!args.ok) {
      served = {
        type: "ToolCallServed",
        server: pool.name,
        tool,
        idempotencyKey: key,
        version: pool.config.version,
        replica: "",
        attempts: 0,
        latencyMs: 0,
        outcome: "invalid_arguments",
        content: [{ type: "text", text: args.message }],
        truncated: false,
        error: args.message,
      }
      mcpContent = [{ type: "text", text: args.message }]
    } else {
      const run = await pool.run(tool, args.value, callOptions.timeoutMs)
      const latencyMs = Math.round((performance.now() - started) * 1000) / 1000
      if (run.outcome.ok) {
        const normalized = normalizeToolResult(run.outcome.result, pool.config.maxOutputChars)
        mcpContent = normalized.mcpContent
        served = {
          type: "ToolCallServed",
          server: pool.name,
          tool,
          idempotencyKey: key,
          version: run.version,
          replica: run.replica,
          attempts: run.attempts,
          latencyMs,
          outcome: normalized.isError ? "tool_error" : "ok",
          content: normalized.content,
          truncated: normalized.truncated,
          ...coercedOf(args.coerced),
        }
      } else {
        const message = `${name} failed after ${run.attempts} attempt(s): ${run.outcome.message}`
        mcpContent = [{ type: "text", text: message }]
        served = {
          type: "ToolCallServed",
          server: pool.name,
          tool,
          idempotencyKey: key,
          version: run.version,
          replica: run.replica,
          attempts: run.attempts,
          latencyMs,
          outcome: run.outcome.kind,
          content: [{ type: "text", text: message }],
          truncated: false,
          error: message,
          ...coercedOf(args.coerced),
        }
      }
    }
    // The caller's bad arguments and the tool's own errors are answers; only the pool's failures count.
    pool.observe(served.latencyMs, served.outcome !== "timeout" && served.outcome !== "unavailable")
    const append = Effect.result(
      log.append(entitySubject(ns, "toolcall", key), [
        {
          eventId: `toolcall/${key}`,
          recordedAt: new Date().toISOString(),
          correlationId: key,
          causationId: key,
          actor: "dock",
          event: served,
        },
      ]),
    )
    if (callOptions.idempotencyKey === undefined) {
      // Nobody can ask for this call again by key: record it off the call path (a crash in the
      // next milliseconds may lose the record, never the answer already given).
      calls.track(
        Effect.runPromise(append).then((w) => {
          if (w._tag === "Failure")
            process.stderr.write(`rollout dock: could not record call ${key}: ${w.failure.message}\n`)
        }),
      )
      return resultOf(served, mcpContent, false)
    }
    const written = await Effect.runPromise(append)
    if (written._tag === "Failure")
      process.stderr.write(`rollout dock: could not record call ${key}: ${written.failure.message}\n`)
    else if (written.success.duplicates > 0) {
      // Another process answered the same key first: its answer is the one of record.
      const first = await recorded(key)
      if (first !== undefined) return fromRecord(first)
    }
    if (callOptions.idempotencyKey !== undefined) remember(key, served)
    return resultOf(served, mcpContent, false)
  }

  return {
    recorder,
    recording: () => recorder.status(),
    separator,
    tools: (): ReadonlyArray<DockTool> => {
      const table = nameTable()
      return [...pools].flatMap(([server, pool]) =>
        pool.listTools().flatMap((t) => {
          const name = publicToolName(server, t.name, separator)
          // A name two tools would share is offered for neither (see the collisions).
          if (table.byName.get(name)?.server !== server) return []
          return [
            {
              name,
              server,
              tool: t.name,
              ...(t.description === undefined ? {} : { description: t.description }),
              inputSchema: t.inputSchema as Record<string, unknown>,
            },
          ]
        }),
      )
    },
    call,
    status: (): ReadonlyArray<ServerStatus> => [...pools.values()].map((p) => p.status()),
    swap: (server: string, version: string): Promise<SwapReport> => {
      const pool = pools.get(server)
      if (pool === undefined)
        return Promise.reject(
          new DockError("unknown_tool", `unknown server "${server}": ${[...pools.keys()].join(", ")}`),
        )
      // The new version's tools must not take a name another tool has.
      return pool.swap(version, (tools) => {
        const clash = [...toolNameTable(refsWith(server, tools), separator).collisions.values()]
        return clash.length === 0 ? undefined : clash.join("; ")
      })
    },
    close: async () => {
      if (sampler !== undefined) clearInterval(sampler)
      await Promise.allSettled([...pools.values()].map((p) => p.close()))
      await Promise.allSettled([...calls.pending])
      await recorder.flush()
    },
    crash: (server: string, index = 0) => pools.get(server)?.crash(index) ?? Promise.resolve(undefined),
  } as Dock & {
    readonly recorder: LifecycleRecorder
    crash: (server: string, index?: number) => Promise<string | undefined>
  }
}
