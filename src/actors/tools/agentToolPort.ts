/**
 * AgentDock as the agent's tool port. Models see each pooled tool under its plain name when no
 * other server has a tool of that name (`search`, `fetch_url`, `execute_code`), else as
 * `server__tool` (OpenAI tool names allow no dots). Every call carries the episode's idempotency
 * key, so a call repeated by a worker that took over a crashed one is answered from the log.
 */
import * as Effect from "effect/Effect"
import type { ToolOutcome, ToolPort, ToolSpec } from "../agent/ports.ts"
import { type Dock, DockError } from "./dockTypes.ts"
import { contentText } from "./toolOutput.ts"

export interface DockToolPort {
  readonly port: ToolPort
  readonly specs: ReadonlyArray<ToolSpec>
}

export const dockToolPort = (dock: Dock): DockToolPort => {
  const tools = dock.tools()
  const counts = new Map<string, number>()
  for (const t of tools) counts.set(t.tool, (counts.get(t.tool) ?? 0) + 1)
  const byAgentName = new Map<string, string>()
  const specs: ToolSpec[] = []
  for (const t of tools) {
    const agentName =
      counts.get(t.tool) === 1 && /^[A-Za-z0-9_-]+$/.test(t.tool)
        ? t.tool
        : `${t.server}__${t.tool}`.replace(/[^A-Za-z0-9_-]/g, "_")
    byAgentName.set(agentName, t.name)
    specs.push({
      name: agentName,
      ...(t.description === undefined ? {} : { description: t.description }),
      parameters: t.inputSchema,
    })
  }
  const call: ToolPort["call"] = (request) =>
    Effect.promise(async (): Promise<ToolOutcome> => {
      const name = byAgentName.get(request.tool)
      if (name === undefined)
        return {
          ok: false,
          kind: "tool",
          message: `unknown tool "${request.tool}"; available: ${[...byAgentName.keys()].join(", ")}`,
        }
      try {
        const result = await dock.call(name, request.arguments, {
          idempotencyKey: request.idempotencyKey ?? `${request.episodeId}/${request.callId}`,
        })
        switch (result.outcome) {
          case "ok":
            return { ok: true, content: contentText(result.content), truncated: result.truncated }
          case "tool_error":
            return { ok: false, kind: "tool", message: contentText(result.content) }
          case "invalid_arguments":
            return { ok: false, kind: "format", message: result.error ?? contentText(result.content) }
          case "timeout":
            return { ok: false, kind: "timeout", message: result.error ?? "the tool timed out" }
          default:
            return { ok: false, kind: "infrastructure", message: result.error ?? result.outcome }
        }
      } catch (error) {
        const kind = error instanceof DockError && error.kind === "unknown_tool" ? "tool" : "infrastructure"
        return { ok: false, kind, message: (error as Error).message }
      }
    })
  return { port: { call }, specs }
}
