/**
 * AgentDock: the pools of every configured MCP server behind one call surface. Starting it removes
 * the orphans of a dead predecessor (orphans.ts), starts each server's pool (toolPool.ts, around
 * the decider) and refuses two tools under one offered name (offeredTools.ts). A call names a tool
 * as the dock offers it (`server__tool`, see toolNames.ts; the old `server.tool` is still read) and
 * carries an idempotency key: a key already answered in the log returns the recorded result
 * instead of running the tool twice (serveCall.ts, callReplay.ts). Every call (`ToolCallServed`)
 * and lifecycle change is an event; lifecycle events are written by a background recorder
 * (lifecycleRecorder.ts) so a pool never waits on the log to heal itself; while the log is
 * unreachable they wait in a bounded buffer and are retried.
 */
import type { EventLogShape } from "../../events/log/eventLog.ts"
import { entitySubject } from "../../events/subjects.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import { CallReplay } from "./callReplay.ts"
import { type Dock, DockError, type ServerStatus, type SwapReport } from "./dockTypes.ts"
import { LifecycleRecorder, type RecorderOptions } from "./lifecycleRecorder.ts"
import { OfferedTools } from "./offeredTools.ts"
import { type OwnedSandboxes, removeOrphans } from "./orphans.ts"
import type { Sandbox } from "./sandbox/sandbox.ts"
import { serveCall } from "./serveCall.ts"
import { ToolPool } from "./toolPool.ts"
import type { ToolsConfig } from "./toolsConfig.ts"

export interface DockOptions {
  readonly log: EventLogShape
  readonly config: ToolsConfig
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Needed when a server uses transport docker. */
  readonly sandbox?: Sandbox & OwnedSandboxes
  /** The `rollout.owner` label of this dock's containers (default `<namespace>/dock`). */
  readonly sandboxOwner?: string
  /** Only these servers (default: all). */
  readonly servers?: ReadonlyArray<string>
  /** How often pools are sampled into the log for `dock status` (0 = never; default 2 s). */
  readonly sampleEveryMs?: number
  readonly onStderr?: (replica: string, line: string) => void
  /** How lifecycle events wait while the log is unreachable (buffer bound, retry delays). */
  readonly recorder?: RecorderOptions
  /** Event times, latencies and circuits (default: the system clock). */
  readonly clock?: Clock
}

export type RunningDock = Dock & {
  readonly recorder: LifecycleRecorder
  /** Kills one replica's session as a crash would (fault tests, `dock` drills). */
  readonly crash: (server: string, index?: number) => Promise<string | undefined>
}

const say = (line: string) => process.stderr.write(`rollout dock: ${line}\n`)

/** The servers to pool: all of tools.yaml, or the ones asked for, each of which it must define. */
const serversToPool = (
  config: ToolsConfig,
  asked: ReadonlyArray<string> | undefined,
): ReadonlyArray<string> => {
  const names = asked ?? Object.keys(config.servers)
  for (const name of names)
    if (!Object.hasOwn(config.servers, name))
      throw new DockError(
        "unknown_tool",
        `unknown server "${name}": ${config.source} defines ${Object.keys(config.servers).join(", ") || "none"}`,
      )
  return names
}

/** Starts one pool per server, in order; when one fails, the ones started are closed. */
const startPools = async (
  options: DockOptions,
  names: ReadonlyArray<string>,
  owner: string,
  recorder: LifecycleRecorder,
  clock: Clock,
): Promise<Map<string, ToolPool>> => {
  const ns = options.log.namespace
  const pools = new Map<string, ToolPool>()
  try {
    for (const name of names) {
      const pool = new ToolPool(options.config.servers[name]!, {
        env: options.env ?? process.env,
        ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox }),
        owner,
        record: (event) => recorder.add(entitySubject(ns, "tool", name), event),
        ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
        clock,
      })
      pools.set(name, pool)
      await pool.start()
    }
    return pools
  } catch (error) {
    await closePools(pools)
    throw error
  }
}

const closePools = async (pools: ReadonlyMap<string, ToolPool>): Promise<void> => {
  await Promise.allSettled([...pools.values()].map((p) => p.close()))
}

/** Samples every pool into the log (`ToolPoolSampled`) every `everyMs`; undefined when 0. */
const startSampler = (pools: ReadonlyMap<string, ToolPool>, everyMs: number) => {
  if (everyMs <= 0) return undefined
  const sampler = setInterval(() => {
    for (const pool of pools.values()) pool.sample()
  }, everyMs)
  sampler.unref()
  return sampler
}

/** Hot-swaps one server; the new version's tools must not take a name another tool has. */
const swapServer = (
  pools: ReadonlyMap<string, ToolPool>,
  offered: OfferedTools,
  server: string,
  version: string,
): Promise<SwapReport> => {
  const pool = pools.get(server)
  if (pool === undefined)
    return Promise.reject(
      new DockError("unknown_tool", `unknown server "${server}": ${[...pools.keys()].join(", ")}`),
    )
  return pool.swap(version, (tools) => offered.clashWith(server, tools))
}

/** Starts the pools (all replicas started, orphans of a dead predecessor removed first). */
export const startDock = async (options: DockOptions): Promise<RunningDock> => {
  const { log, config } = options
  const clock = options.clock ?? systemClock
  const recorder = new LifecycleRecorder(log, { clock, ...options.recorder })
  const names = serversToPool(config, options.servers)
  const owner = options.sandboxOwner ?? `${log.namespace}/dock`
  if (options.sandbox !== undefined)
    await removeOrphans({ log, sandbox: options.sandbox, owner, recorder, say })

  let pools: Map<string, ToolPool>
  try {
    pools = await startPools(options, names, owner, recorder, clock)
  } catch (error) {
    await recorder.flush()
    throw error
  }
  const offered = new OfferedTools(pools, config.separator)
  const collisions = [...offered.table().collisions.values()]
  if (collisions.length > 0) {
    await closePools(pools)
    await recorder.flush()
    throw new DockError("refused", `two tools would share one name: ${collisions.join("; ")}`)
  }
  const sampler = startSampler(pools, options.sampleEveryMs ?? 2_000)
  const replay = new CallReplay(log, clock, say)

  return {
    recorder,
    recording: () => recorder.status(),
    separator: config.separator,
    tools: () => offered.tools(),
    call: (name, args, callOptions) => serveCall({ offered, replay, clock }, name, args, callOptions),
    status: (): ReadonlyArray<ServerStatus> => [...pools.values()].map((p) => p.status()),
    swap: (server, version) => swapServer(pools, offered, server, version),
    close: async () => {
      if (sampler !== undefined) clearInterval(sampler)
      await closePools(pools)
      await replay.settle()
      await recorder.flush()
    },
    crash: (server, index = 0) => pools.get(server)?.crash(index) ?? Promise.resolve(undefined),
  }
}
