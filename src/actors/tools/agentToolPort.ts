/**
 * AgentDock as the agent's tool port. Models see each pooled tool under its plain name when no
 * other server has a tool of that name, the name is a valid OpenAI function name and no other tool
 * is offered under it (`search`, `fetch_url`, `execute_code`); else under the dock's offered name
 * (`server__tool`, unique by the dock's own check), so no two tools ever share a name. Every call
 * carries the episode's idempotency key, so a call repeated by a worker that took over a crashed
 * one is answered from the log.
 */
import * as Effect from "effect/Effect"
import type { ToolOutcome, ToolPort, ToolSpec } from "../agent/ports.ts"
import { type Dock, DockError, type DockTool } from "./dockTypes.ts"
import { OPENAI_TOOL_NAME } from "./toolNames.ts"
import { contentText } from "./toolOutput.ts"

export interface DockToolPort {
  readonly port: ToolPort
  readonly specs: ReadonlyArray<ToolSpec>
}

/**
 * The name the model sees for each tool (in the dock's order). Plain names are unique among
 * themselves (a tool name only one server has) and offered names among themselves (the dock
 * refuses collisions); a plain name that is another tool's offered name is not used.
 */
export const agentToolNames = (tools: ReadonlyArray<DockTool>): ReadonlyArray<string> => {
  const counts = new Map<string, number>()
  for (const t of tools) counts.set(t.tool, (counts.get(t.tool) ?? 0) + 1)
  const offered = new Set(tools.map((t) => t.name))
  return tools.map((t) =>
    counts.get(t.tool) === 1 && OPENAI_TOOL_NAME.test(t.tool) && !offered.has(t.tool) ? t.tool : t.name,
  )
}

export const dockToolPort = (dock: Dock): DockToolPort => {
  const tools = dock.tools()
  const names = agentToolNames(tools)
  const byAgentName = new Map<string, string>()
  const specs: ToolSpec[] = []
  tools.forEach((t, i) => {
    const agentName = names[i]!
    byAgentName.set(agentName, t.name)
    specs.push({
      name: agentName,
      ...(t.description === undefined ? {} : { description: t.description }),
      parameters: t.inputSchema,
    })
  })
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
