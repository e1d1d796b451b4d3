/**
 * The `toolHealth` projection: per pooled MCP server, what the log says about it — its version,
 * its replicas' last known state, calls and failures, latency quantiles (from a log-scale
 * histogram, so the state stays small however many calls there were), restarts, swaps and the last
 * sampled in-flight/queued figures. `rollout dock status` shows it when no dock is running.
 */
import type { Envelope } from "../../events/schema.ts"
import { ownValue, type Projection } from "../projection.ts"
import type { ServerStatus } from "./serverStatus.ts"

/** Bucket i holds latencies in [2^(i/4) − 1, 2^((i+1)/4) − 1) ms: about 19% wide. */
const BUCKETS = 96
const bucketOf = (ms: number) => Math.min(BUCKETS - 1, Math.max(0, Math.floor(4 * Math.log2(ms + 1))))
const bucketUpper = (i: number) => 2 ** ((i + 1) / 4) - 1

interface ServerHealth {
  readonly transport: ServerStatus["transport"]
  readonly version: string
  readonly replicas: Readonly<
    Record<
      string,
      {
        readonly version: string
        readonly state: string
        readonly restarts: number
        readonly inFlight: number
        readonly circuit: "open" | "closed"
      }
    >
  >
  readonly queued: number
  readonly calls: number
  readonly failed: number
  readonly histogram: ReadonlyArray<number>
  readonly firstCallAt: string | null
  readonly lastCallAt: string | null
  readonly restarts: number
  readonly swaps: number
}

export type ToolHealthState = Readonly<Record<string, ServerHealth>>

const empty: ServerHealth = {
  transport: "stdio",
  version: "",
  replicas: {},
  queued: 0,
  calls: 0,
  failed: 0,
  histogram: [],
  firstCallAt: null,
  lastCallAt: null,
  restarts: 0,
  swaps: 0,
}

const update = (
  state: ToolHealthState,
  server: string,
  f: (s: ServerHealth) => ServerHealth,
): ToolHealthState => ({
  ...state,
  [server]: f(ownValue(state, server) ?? empty),
})

export const toolHealth: Projection<ToolHealthState> = {
  name: "toolHealth",
  types: [
    "ToolVersionRegistered",
    "ToolReplicaStarted",
    "ToolReplicaExited",
    "ToolCircuitChanged",
    "ToolTrafficShifted",
    "ToolPoolSampled",
    "ToolCallServed",
  ],
  version: 1,
  initial: {},
  apply(state, envelope: Envelope) {
    const e = envelope.event
    switch (e.type) {
      case "ToolVersionRegistered":
        return update(state, e.server, (s) => ({
          ...s,
          transport: e.transport,
          version: s.version === "" ? e.version : s.version,
        }))
      case "ToolReplicaStarted":
        return update(state, e.server, (s) => ({
          ...s,
          restarts: s.restarts + (e.restarts > 0 ? 1 : 0),
          replicas: {
            ...s.replicas,
            [e.replica]: {
              version: e.version,
              state: "up",
              restarts: e.restarts,
              inFlight: 0,
              circuit: "closed",
            },
          },
        }))
      case "ToolReplicaExited": {
        const gone = e.reason === "drained" || e.reason === "stopped"
        return update(state, e.server, (s) => {
          const prior = ownValue(s.replicas, e.replica)
          const replicas = { ...s.replicas }
          if (gone) delete replicas[e.replica]
          else
            replicas[e.replica] = {
              version: e.version,
              state: "down",
              restarts: prior?.restarts ?? 0,
              inFlight: 0,
              circuit: prior?.circuit ?? "closed",
            }
          return { ...s, replicas }
        })
      }
      case "ToolCircuitChanged":
        return update(state, e.server, (s) => {
          const prior = ownValue(s.replicas, e.replica)
          return prior === undefined
            ? s
            : { ...s, replicas: { ...s.replicas, [e.replica]: { ...prior, circuit: e.state } } }
        })
      case "ToolTrafficShifted":
        return e.weight < 1
          ? state
          : update(state, e.server, (s) => ({ ...s, version: e.to, swaps: s.swaps + 1 }))
      case "ToolPoolSampled":
        return update(state, e.server, (s) => {
          const replicas = { ...s.replicas }
          for (const r of e.replicas) {
            const prior = ownValue(replicas, r.replica)
            if (prior !== undefined)
              replicas[r.replica] = { ...prior, inFlight: r.inFlight, circuit: r.circuit }
          }
          return { ...s, queued: e.queued, replicas }
        })
      case "ToolCallServed":
        return update(state, e.server, (s) => {
          const histogram = [...s.histogram]
          const b = bucketOf(e.latencyMs)
          while (histogram.length <= b) histogram.push(0)
          histogram[b]! += 1
          return {
            ...s,
            calls: s.calls + 1,
            failed: s.failed + (e.outcome === "timeout" || e.outcome === "unavailable" ? 1 : 0),
            histogram,
            firstCallAt: s.firstCallAt ?? envelope.recordedAt,
            lastCallAt: envelope.recordedAt,
          }
        })
      default:
        return state
    }
  },
}

const quantile = (histogram: ReadonlyArray<number>, q: number): number => {
  const total = histogram.reduce((a, b) => a + b, 0)
  if (total === 0) return 0
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i] ?? 0
    if (seen >= q * total) return Math.round(bucketUpper(i) * 10) / 10
  }
  return Math.round(bucketUpper(histogram.length - 1) * 10) / 10
}

/** The projection's state in `dock status`'s shape (quantiles are bucket upper bounds). */
export const toolHealthStatus = (state: ToolHealthState): ReadonlyArray<ServerStatus> =>
  Object.entries(state).map(([server, s]) => {
    const span =
      s.firstCallAt === null || s.lastCallAt === null
        ? 0
        : (Date.parse(s.lastCallAt) - Date.parse(s.firstCallAt)) / 1000
    return {
      server,
      transport: s.transport,
      version: s.version,
      weights: { [s.version]: 1 },
      replicas: Object.entries(s.replicas).map(([replica, r]) => ({
        replica,
        version: r.version,
        state: r.state === "up" ? ("up" as const) : ("down" as const),
        inFlight: r.inFlight,
        circuit: r.circuit,
        restarts: r.restarts,
      })),
      queued: s.queued,
      calls: s.calls,
      failed: s.failed,
      callsPerSecond: span > 0 ? s.calls / span : 0,
      p50Ms: quantile(s.histogram, 0.5),
      p99Ms: quantile(s.histogram, 0.99),
      restarts: s.restarts,
      swaps: s.swaps,
    }
  })
