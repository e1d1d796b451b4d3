/**
 * AgentDock's ports. What it offers the rest of `rollout` — the `Dock` (call, tools, status,
 * swap), its results and errors — is dockTypes.ts, re-exported here. What its shell needs from
 * the outside is below: where lifecycle events go, the clock and the random draw the decider's
 * commands carry, and what a replica is started with (environment, sandbox, owner label, where
 * server stderr goes), so pools run on real processes and containers in production and on a
 * manual clock and fixed draws in tests.
 */
import type { DomainEvent } from "../../events/schema.ts"
import type { Clock } from "../../runtime/clock.ts"
import type { Sandbox } from "./sandbox/sandbox.ts"

export {
  type Dock,
  type DockCallOptions,
  type DockCallResult,
  DockError,
  type DockTool,
  type ReplicaStatus,
  type ServerStatus,
  type SwapReport,
  type ToolContent,
} from "./dockTypes.ts"

/** What a replica is started with. */
export interface ReplicaDeps {
  readonly env: Readonly<Record<string, string | undefined>>
  /** For Docker replicas. */
  readonly sandbox?: Sandbox
  /** `<namespace>/<pool>`, the owner label of Docker replicas. */
  readonly owner: string
  /** Where stdio servers' output to stderr goes (default: dropped, last lines kept for errors). */
  readonly onStderr?: (replica: string, line: string) => void
}

/** What a pool's shell is given. */
export interface PoolDeps extends ReplicaDeps {
  /** Appends a lifecycle event (never fails the caller; errors are the recorder's to report). */
  readonly record: (event: DomainEvent) => void
  /** Deadlines, latencies and circuits run on its monotonic reading (default: the system clock). */
  readonly clock?: Clock
  /** A draw in [0, 1) for routing and retry jitter (default Math.random). */
  readonly random?: () => number
}
