/**
 * One call through AgentDock: the name resolved to its pool, a key already answered replayed from
 * the record, the arguments parsed leniently, coerced by the tool's schema and checked against it
 * (bad ones are an answer, `invalid_arguments`, not a refusal), the pool's run, its result
 * normalized, and the `ToolCallServed` record written under the call's key.
 */
import { randomUUID } from "node:crypto"
import type { EventOf } from "../../events/schema.ts"
import type { Clock } from "../../runtime/clock.ts"
import { type CallReplay, fromRecord, resultOf, type Served } from "./callReplay.ts"
import { type DockCallOptions, type DockCallResult, DockError } from "./dockTypes.ts"
import type { OfferedTools } from "./offeredTools.ts"
import { type Coercion, parseToolArguments } from "./toolArguments.ts"
import { publicToolName } from "./toolNames.ts"
import { normalizeToolResult } from "./toolOutput.ts"
import type { ToolPool } from "./toolPool.ts"

export interface CallPath {
  readonly offered: OfferedTools
  readonly replay: CallReplay
  readonly clock: Clock
}

/** The event's record of coerced arguments (JSON: they were read from JSON); absent when none were. */
const coercedOf = (coerced: ReadonlyArray<Coercion> | undefined) =>
  coerced === undefined || coerced.length === 0
    ? {}
    : { coerced: coerced as NonNullable<EventOf<"ToolCallServed">["coerced"]> }

/** What a served call says in words when it has nothing else: one text item. */
const says = (text: string) => [{ type: "text" as const, text }]

interface Answer {
  readonly served: Served
  /** The MCP content as the caller should see it (images keep their data here, never in the log). */
  readonly mcpContent: ReadonlyArray<Record<string, unknown>>
}

/**
 * Runs a call whose arguments were read: the pool's answer, or why it could not give one. Its
 * latency counts from `started` (when the dock took the call).
 */
const runOnPool = async (
  pool: ToolPool,
  name: string,
  tool: string,
  key: string,
  args: Record<string, unknown>,
  coerced: ReadonlyArray<Coercion> | undefined,
  options: DockCallOptions,
  clock: Clock,
  started: number,
): Promise<Answer> => {
  const run = await pool.run(tool, args, options.timeoutMs)
  const latencyMs = Math.round((clock.monotonicMs() - started) * 1000) / 1000
  const where = { server: pool.name, tool, idempotencyKey: key, version: run.version, replica: run.replica }
  if (run.outcome.ok) {
    const normalized = normalizeToolResult(run.outcome.result, pool.config.maxOutputChars)
    return {
      served: {
        type: "ToolCallServed",
        ...where,
        attempts: run.attempts,
        latencyMs,
        outcome: normalized.isError ? "tool_error" : "ok",
        content: normalized.content,
        truncated: normalized.truncated,
        ...coercedOf(coerced),
      },
      mcpContent: normalized.mcpContent,
    }
  }
  const message = `${name} failed after ${run.attempts} attempt(s): ${run.outcome.message}`
  return {
    served: {
      type: "ToolCallServed",
      ...where,
      attempts: run.attempts,
      latencyMs,
      outcome: run.outcome.kind,
      content: says(message),
      truncated: false,
      error: message,
      ...coercedOf(coerced),
    },
    mcpContent: says(message),
  }
}

/** Arguments the tool's schema refuses: answered at once, the tool never runs. */
const invalidArguments = (pool: ToolPool, tool: string, key: string, message: string): Answer => ({
  served: {
    type: "ToolCallServed",
    server: pool.name,
    tool,
    idempotencyKey: key,
    version: pool.config.version,
    replica: "",
    attempts: 0,
    latencyMs: 0,
    outcome: "invalid_arguments",
    content: says(message),
    truncated: false,
    error: message,
  },
  mcpContent: says(message),
})

export const serveCall = async (
  { offered, replay, clock }: CallPath,
  name: string,
  rawArgs: unknown,
  options: DockCallOptions = {},
): Promise<DockCallResult> => {
  const { pool, tool } = offered.resolve(name)
  const key = options.idempotencyKey ?? `auto-${randomUUID()}`
  if (options.idempotencyKey !== undefined) {
    const earlier = await replay.recorded(key)
    if (earlier !== undefined) return fromRecord(earlier)
  }
  const started = clock.monotonicMs()
  const spec = pool.schemaOf(tool)
  if (spec === undefined && pool.listTools().length > 0)
    throw new DockError(
      "unknown_tool",
      `unknown tool "${name}": ${pool.name} offers ${pool
        .listTools()
        .map((t) => publicToolName(pool.name, t.name, offered.separator))
        .join(", ")}`,
    )
  const args = parseToolArguments(name, rawArgs, spec?.inputSchema)
  const { served, mcpContent } = args.ok
    ? await runOnPool(pool, name, tool, key, args.value, args.coerced, options, clock, started)
    : invalidArguments(pool, tool, key, args.message)
  // The caller's bad arguments and the tool's own errors are answers; only the pool's failures count.
  pool.observe(served.latencyMs, served.outcome !== "timeout" && served.outcome !== "unavailable")
  if (options.idempotencyKey === undefined) {
    replay.recordUnkeyed(key, served)
    return resultOf(served, mcpContent, false)
  }
  const first = await replay.recordKeyed(key, served)
  return first === undefined ? resultOf(served, mcpContent, false) : fromRecord(first)
}
