/**
 * The MCP face of a Dock: a low-level SDK `Server` whose tools/list is `dock.tools()` and whose
 * tools/call forwards to `dock.call`. The list says how names are made (its `_meta` and each
 * tool's `_meta` carry the separator, server and tool) so a client can map them back. A call that
 * cannot be served (a DockError, any thrown error) becomes a tool error result naming the tool
 * and the reason; the handler never throws.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js"
import { type Dock, type DockCallOptions, DockError, type DockTool } from "./dockTypes.ts"

export const GATEWAY_SERVER_NAME = "rollout-agentdock"
export const GATEWAY_SERVER_VERSION = "0.1.0"

/** The `_meta` key of a tools/call request whose string value becomes the dock's idempotency key. */
export const IDEMPOTENCY_META_KEY = "idempotencyKey"
/** The `_meta` key under which a result carries where it was served (outcome, replica, version…). */
export const RESULT_META_KEY = "rollout/dock"

const MAX_IDEMPOTENCY_KEY_LENGTH = 512

/**
 * A dock tool as MCP lists it: its offered name (`server__tool`), its description (or a stand-in),
 * its input schema as given, and in `_meta` the server and the tool's own name.
 */
export const toMcpTool = (tool: DockTool): Tool => {
  const schema = tool.inputSchema
  // MCP requires an object schema; a server that gave none (or no type) takes any object.
  const inputSchema = (
    schema.type === undefined ? { type: "object", ...schema } : { ...schema }
  ) as Tool["inputSchema"]
  return {
    name: tool.name,
    description:
      tool.description !== undefined && tool.description !== ""
        ? tool.description
        : `${tool.tool} (from the ${tool.server} server)`,
    inputSchema,
    _meta: { [RESULT_META_KEY]: { server: tool.server, tool: tool.tool } },
  }
}

/** What tools/list says about names, in its `_meta` (and, in words, the server's instructions). */
export const namingOf = (separator: string) => ({
  separator,
  form: `<server>${separator}<tool>`,
  accepted: [`<server>${separator}<tool>`, "<server>.<tool>"],
  description: `Tools are named <server>${separator}<tool> (valid OpenAI function names: letters, digits, '_' and '-', at most 64); a tool's own characters outside that set are '_', and tools/call also accepts the older <server>.<tool>.`,
})

const idempotencyKeyOf = (meta: unknown): string | undefined => {
  if (typeof meta !== "object" || meta === null) return undefined
  const value = (meta as Record<string, unknown>)[IDEMPOTENCY_META_KEY]
  return typeof value === "string" && value !== "" && value.length <= MAX_IDEMPOTENCY_KEY_LENGTH
    ? value
    : undefined
}

const errorText = (name: string, error: unknown): string => {
  if (error instanceof DockError) return `tool ${name} could not be served (${error.kind}): ${error.message}`
  const message = error instanceof Error ? error.message : String(error)
  return `tool ${name} failed: ${message}`
}

/** Serves one MCP tools/call against the dock; never rejects. */
export const callThroughDock = async (
  dock: Dock,
  name: string,
  args: unknown,
  meta: unknown,
): Promise<CallToolResult> => {
  const key = idempotencyKeyOf(meta)
  const options: DockCallOptions = key === undefined ? {} : { idempotencyKey: key }
  try {
    const result = await dock.call(name, args ?? {}, options)
    return {
      content: result.mcpContent as CallToolResult["content"],
      isError: result.isError,
      _meta: {
        [RESULT_META_KEY]: {
          outcome: result.outcome,
          replica: result.replica,
          version: result.version,
          attempts: result.attempts,
          truncated: result.truncated,
          replayed: result.replayed,
          ...(result.coerced === undefined ? {} : { coerced: result.coerced }),
        },
      },
    }
  } catch (error) {
    return {
      content: [{ type: "text", text: errorText(name, error) }],
      isError: true,
      ...(error instanceof DockError ? { _meta: { [RESULT_META_KEY]: { error: error.kind } } } : {}),
    }
  }
}

/** One MCP server (one per session in stateful mode, one per request in stateless mode). */
export const dockMcpServer = (dock: Dock): Server => {
  const server = new Server(
    { name: GATEWAY_SERVER_NAME, version: GATEWAY_SERVER_VERSION },
    {
      capabilities: { tools: { listChanged: false } },
      instructions: `AgentDock: every pooled MCP tool. ${namingOf(dock.separator).description}`,
    },
  )
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: dock.tools().map(toMcpTool),
    _meta: { [RESULT_META_KEY]: { naming: namingOf(dock.separator) } },
  }))
  server.setRequestHandler(CallToolRequestSchema, (request) =>
    callThroughDock(dock, request.params.name, request.params.arguments, request.params._meta),
  )
  return server
}
