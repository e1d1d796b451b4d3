/**
 * What AgentDock offers the rest of `rollout` (the agent's tool port, the MCP gateway, the CLI):
 * call a pooled tool by name (`server__tool`, or the old `server.tool`), list the tools, look at
 * the pools, hot-swap a server.
 */
import type { EventOf } from "../../events/schema.ts"
import type { ReplicaStatus, ServerStatus } from "../../projections/toolHealth/serverStatus.ts"
import type { RecordingStatus } from "./lifecycleRecorder.ts"
import type { Coercion } from "./toolArguments.ts"

/** A pool's status is the toolHealth read model's shape (the same answer from a live dock or the log). */
export type { ReplicaStatus, ServerStatus }

export type ToolContent = EventOf<"ToolCallServed">["content"][number]

/** A tool as the pool offers it, with the server's description and input schema. */
export interface DockTool {
  /** The offered name, `<server><separator><tool>` (a valid OpenAI function name; see toolNames.ts). */
  readonly name: string
  readonly server: string
  readonly tool: string
  readonly description?: string
  readonly inputSchema: Readonly<Record<string, unknown>>
}

export interface DockCallOptions {
  /**
   * The same key twice returns the first call's recorded result (when that call finished) instead
   * of running the tool again. Default: a fresh key per call.
   */
  readonly idempotencyKey?: string
  /** Overrides the server's call timeout. */
  readonly timeoutMs?: number
}

/** A call's normalized result. `isError` is a tool-level error (the tool ran and said no). */
export interface DockCallResult {
  readonly outcome: EventOf<"ToolCallServed">["outcome"]
  readonly content: ReadonlyArray<ToolContent>
  /** The MCP content as the caller should see it (images keep their data here, never in the log). */
  readonly mcpContent: ReadonlyArray<Record<string, unknown>>
  readonly isError: boolean
  readonly truncated: boolean
  readonly replica: string
  readonly version: string
  readonly attempts: number
  readonly latencyMs: number
  readonly error?: string
  /** Answered from the log: an earlier call with the same idempotency key. */
  readonly replayed: boolean
  /** Arguments the schema refused as written and accepted as read (`"2"` as 2), when there were any. */
  readonly coerced?: ReadonlyArray<Coercion>
}

export interface SwapReport {
  readonly server: string
  readonly from: string
  readonly to: string
  readonly drainedCalls: number
  readonly ms: number
}

/** The pools of every configured server. Promise-based so the gateway and tests use it plainly. */
export interface Dock {
  /** What joins server and tool in the offered names (tools.yaml `separator`, default `__`). */
  readonly separator: string
  readonly tools: () => ReadonlyArray<DockTool>
  readonly call: (name: string, args: unknown, options?: DockCallOptions) => Promise<DockCallResult>
  readonly status: () => ReadonlyArray<ServerStatus>
  readonly swap: (server: string, version: string) => Promise<SwapReport>
  readonly close: () => Promise<void>
  /** The lifecycle events waiting for the log (held while it is unreachable), for `dock status`. */
  readonly recording?: () => RecordingStatus
}

/**
 * A call that could not be served at all (unknown tool, queue full, every replica down), or a swap
 * refused (`refused`: its version's tools would take names other tools have).
 */
export class DockError extends Error {
  override readonly name = "DockError"
  constructor(
    readonly kind: "unknown_tool" | "queue_full" | "unavailable" | "closed" | "refused",
    message: string,
  ) {
    super(message)
  }
}
