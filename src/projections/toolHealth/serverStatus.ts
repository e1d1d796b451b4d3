/**
 * The status of one pooled MCP server as `rollout dock status` shows it: its version and traffic
 * weights, each replica's state, in-flight calls and circuit, and the call figures. A running
 * AgentDock answers it live; without one, the toolHealth read model rebuilds it from the log. The
 * shape lives with the read model so that the read side (the CLI, a web viewer) needs nothing of
 * the dock to show it.
 */

export interface ReplicaStatus {
  readonly replica: string
  readonly version: string
  readonly state: "starting" | "up" | "down" | "draining" | "stopped"
  readonly inFlight: number
  readonly circuit: "open" | "closed"
  readonly restarts: number
  readonly sandboxId?: string
  /** stdio replicas: the server process. */
  readonly pid?: number
}

export interface ServerStatus {
  readonly server: string
  readonly transport: "stdio" | "http" | "docker"
  readonly version: string
  readonly weights: Readonly<Record<string, number>>
  readonly replicas: ReadonlyArray<ReplicaStatus>
  readonly queued: number
  readonly calls: number
  readonly failed: number
  readonly callsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly restarts: number
  readonly swaps: number
}
