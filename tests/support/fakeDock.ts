/**
 * A TEST DOUBLE of the AgentDock `Dock`, in memory, for tests of the MCP gateway only: it runs no
 * MCP server, pools nothing and records nothing in a log. Its tools (all of server `fake`):
 *
 * - `fake__echo` `{text}`: answers the text (and `echo:` + the arguments as JSON when there is no text);
 * - `fake__toolError`: a tool-level error (`isError: true`, outcome `tool_error`);
 * - `fake__throws`: the call rejects with a plain Error (a dock bug, as the gateway sees it);
 * - `fake__unavailable`: the call rejects with `DockError("unavailable")`;
 * - `fake__slow` `{ms, text}`: waits `ms` (default 20) then echoes like `fake__echo`.
 *
 * The old `fake.echo` form is read too. Any other name rejects with `DockError("unknown_tool")`. An idempotency key seen before answers
 * the recorded result with `replayed: true`. Every call is kept in `calls`.
 */
import {
  type Dock,
  type DockCallOptions,
  type DockCallResult,
  DockError,
  type DockTool,
  type ServerStatus,
  type SwapReport,
} from "../../src/actors/tools/dockTypes.ts"

export interface FakeDockCall {
  readonly name: string
  readonly args: unknown
  readonly options: DockCallOptions
}

export interface FakeDock extends Dock {
  readonly calls: ReadonlyArray<FakeDockCall>
  readonly swaps: ReadonlyArray<{ readonly server: string; readonly version: string }>
  /** Calls started and not yet answered. */
  readonly inFlight: () => number
  readonly closed: () => boolean
}

const TOOLS: ReadonlyArray<DockTool> = [
  {
    name: "fake__echo",
    server: "fake",
    tool: "echo",
    description: "Echoes its text argument (test double).",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, additionalProperties: false },
  },
  {
    name: "fake__toolError",
    server: "fake",
    tool: "toolError",
    description: "Always answers a tool-level error (test double).",
    inputSchema: { type: "object", properties: {} },
  },
  {
    name: "fake__throws",
    server: "fake",
    tool: "throws",
    description: "Its call rejects with a plain Error (test double).",
    inputSchema: { type: "object", properties: {} },
  },
  {
    name: "fake__unavailable",
    server: "fake",
    tool: "unavailable",
    description: "Its call rejects with DockError unavailable (test double).",
    inputSchema: { type: "object", properties: {} },
  },
  {
    name: "fake__slow",
    server: "fake",
    tool: "slow",
    // No description: the gateway fills one in.
    inputSchema: { type: "object", properties: { ms: { type: "number" }, text: { type: "string" } } },
  },
]

const textOf = (args: unknown): string => {
  if (typeof args === "object" && args !== null && typeof (args as { text?: unknown }).text === "string")
    return (args as { text: string }).text
  return `echo:${JSON.stringify(args)}`
}

const answer = (text: string, isError: boolean): DockCallResult => ({
  outcome: isError ? "tool_error" : "ok",
  content: [{ type: "text", text }],
  mcpContent: [{ type: "text", text }],
  isError,
  truncated: false,
  replica: "fake-0",
  version: "v1",
  attempts: 1,
  latencyMs: 0,
  replayed: false,
})

export const fakeDock = (): FakeDock => {
  const calls: Array<FakeDockCall> = []
  const swaps: Array<{ server: string; version: string }> = []
  const recorded = new Map<string, DockCallResult>()
  let inFlight = 0
  let closed = false
  let version = "v1"

  const run = async (name: string, args: unknown): Promise<DockCallResult> => {
    // Like the dock, the old `server.tool` form is read as the offered `server__tool`.
    switch (name.replace(/^fake\./, "fake__")) {
      case "fake__echo":
        return answer(textOf(args), false)
      case "fake__toolError":
        return answer("the fake tool said no", true)
      case "fake__throws":
        throw new Error("the fake dock broke")
      case "fake__unavailable":
        throw new DockError("unavailable", "fake: every replica is down")
      case "fake__slow": {
        const ms = typeof args === "object" && args !== null ? (args as { ms?: unknown }).ms : undefined
        await new Promise((resolve) => setTimeout(resolve, typeof ms === "number" ? ms : 20))
        return answer(textOf(args), false)
      }
      default:
        throw new DockError(
          "unknown_tool",
          `unknown tool "${name}": tools are named <server>__<tool> (or <server>.<tool>); servers: fake`,
        )
    }
  }

  const call = async (
    name: string,
    args: unknown,
    options: DockCallOptions = {},
  ): Promise<DockCallResult> => {
    calls.push({ name, args, options })
    if (closed) throw new DockError("closed", "the fake dock is closed")
    const key = options.idempotencyKey
    const earlier = key === undefined ? undefined : recorded.get(key)
    if (earlier !== undefined) return { ...earlier, replayed: true }
    inFlight += 1
    try {
      const result = await run(name, args)
      if (key !== undefined) recorded.set(key, result)
      return result
    } finally {
      inFlight -= 1
    }
  }

  const status = (): ReadonlyArray<ServerStatus> => [
    {
      server: "fake",
      transport: "stdio",
      version,
      weights: { [version]: 1 },
      replicas: [{ replica: "fake-0", version, state: "up", inFlight, circuit: "closed", restarts: 0 }],
      queued: 0,
      calls: calls.length,
      failed: 0,
      callsPerSecond: 0,
      p50Ms: 0,
      p99Ms: 0,
      restarts: 0,
      swaps: swaps.length,
    },
  ]

  const swap = async (server: string, to: string): Promise<SwapReport> => {
    if (server !== "fake") throw new DockError("unknown_tool", `unknown server "${server}"`)
    swaps.push({ server, version: to })
    const from = version
    version = to
    return { server, from, to, drainedCalls: 0, ms: 0 }
  }

  return {
    separator: "__",
    tools: () => TOOLS,
    call,
    status,
    swap,
    close: async () => {
      closed = true
    },
    calls,
    swaps,
    inFlight: () => inFlight,
    closed: () => closed,
  }
}
