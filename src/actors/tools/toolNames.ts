/**
 * The names under which AgentDock offers pooled tools. A pooled tool is one server's tool, but
 * OpenAI function names must match `^[a-zA-Z0-9_-]{1,64}$` and clients pass MCP names through, so
 * `search.search` is refused there. A tool is offered as `<server><separator><tool>`: the separator
 * is `__` unless tools.yaml sets `separator:` (only `_` and `-`, so the name stays valid), the
 * tool's characters outside that set become `_`, and a name past 64 characters is cut and ends in
 * a hash of the full name. The names of a dock are a table built from the tools listed and checked
 * for collisions (two tools under one name are refused, both named), so every offered name leads
 * back to exactly one tool. The old `server.tool` form is still accepted where a name is read.
 */
import { createHash } from "node:crypto"

/** What OpenAI (and most function-calling APIs) accept as a function name. */
export const OPENAI_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/

export const DEFAULT_TOOL_NAME_SEPARATOR = "__"

const MAX_NAME = 64

/** Why a separator cannot be used, or undefined when it can. */
export const separatorProblem = (separator: string): string | undefined =>
  /^[_-]{1,4}$/.test(separator)
    ? undefined
    : `the tool name separator must be 1 to 4 of '_' and '-' (valid in OpenAI function names), got ${JSON.stringify(separator)}`

/**
 * Why a server name cannot be joined with this separator, or undefined when it can: the first
 * separator in `<server><separator>…` must be the one after the server, or the server of a name
 * could not be read back (`a_` + `__` reads as server `a`).
 */
export const serverNameProblem = (server: string, separator: string): string | undefined =>
  `${server}${separator}`.indexOf(separator) === server.length
    ? undefined
    : `server name "${server}" holds the tool name separator "${separator}" (or ends in part of it), so its tools' names could not be read back; rename it or set another separator`

/** The offered name of one server's tool. */
export const publicToolName = (server: string, tool: string, separator: string): string => {
  const name = `${server}${separator}${tool.replace(/[^A-Za-z0-9_-]/g, "_")}`
  if (name.length <= MAX_NAME) return name
  const hash = createHash("sha256").update(`${server}\u0000${tool}`).digest("hex").slice(0, 8)
  return `${name.slice(0, MAX_NAME - hash.length - 1)}_${hash}`
}

/** The server a name starts with (`<server><separator>…`, or the old `<server>.…`), if any. */
export const serverOfToolName = (
  name: string,
  separator: string,
  servers: ReadonlyArray<string>,
): { readonly server: string; readonly rest: string; readonly form: "public" | "dotted" } | undefined => {
  const at = name.indexOf(separator)
  if (at > 0 && servers.includes(name.slice(0, at)))
    return { server: name.slice(0, at), rest: name.slice(at + separator.length), form: "public" }
  // Server names hold no dot, so the first dot ends the server (the tool's own name may hold dots).
  const dot = name.indexOf(".")
  if (dot > 0 && servers.includes(name.slice(0, dot)))
    return { server: name.slice(0, dot), rest: name.slice(dot + 1), form: "dotted" }
  return undefined
}

export interface ToolRef {
  readonly server: string
  readonly tool: string
}

/** Offered names to tools, one to one; `collisions` describes, by name, the tools that would share one. */
export interface ToolNameTable {
  readonly byName: ReadonlyMap<string, ToolRef>
  readonly collisions: ReadonlyMap<string, string>
}

/**
 * Names every tool. A name two tools would share is left out of `byName` (neither is offered) and
 * described in `collisions` with both tools' own names.
 */
export const toolNameTable = (tools: ReadonlyArray<ToolRef>, separator: string): ToolNameTable => {
  const claimed = new Map<string, ToolRef[]>()
  for (const ref of tools) {
    const name = publicToolName(ref.server, ref.tool, separator)
    const refs = claimed.get(name) ?? []
    // A server that lists one tool twice still has one tool of that name.
    if (!refs.some((r) => r.server === ref.server && r.tool === ref.tool)) refs.push(ref)
    claimed.set(name, refs)
  }
  const byName = new Map<string, ToolRef>()
  const collisions = new Map<string, string>()
  for (const [name, refs] of claimed) {
    if (refs.length === 1) byName.set(name, refs[0]!)
    else
      collisions.set(
        name,
        `tools ${refs.map((r) => `${r.server}.${r.tool}`).join(" and ")} would both be named "${name}"`,
      )
  }
  return { byName, collisions }
}
