/**
 * The tools a running dock offers, over its live pools: the name table (toolNames.ts) rebuilt
 * whenever a pool's tool list changes (a restart, a swap), the offered tools in the dock's order,
 * a called name resolved to its pool and the tool's own name (offered `server__tool`, or the old
 * `server.tool`), and the check a swap must pass: its version's tools take no name another tool has.
 */
import type { Tool } from "@modelcontextprotocol/sdk/types.js"
import { DockError, type DockTool } from "./dockTypes.ts"
import {
  publicToolName,
  serverOfToolName,
  type ToolNameTable,
  type ToolRef,
  toolNameTable,
} from "./toolNames.ts"
import type { ToolPool } from "./toolPool.ts"

const refsOf = (pools: ReadonlyMap<string, ToolPool>): ReadonlyArray<ToolRef> =>
  [...pools].flatMap(([server, pool]) => pool.listTools().map((t) => ({ server, tool: t.name })))

export class OfferedTools {
  /** The table and the tool lists it was built from (a pool's list is replaced, never changed). */
  private built: { readonly lists: ReadonlyArray<unknown>; readonly table: ToolNameTable } | undefined

  constructor(
    private readonly pools: ReadonlyMap<string, ToolPool>,
    readonly separator: string,
  ) {}

  /** The name table of the pools' current tool lists. */
  table(): ToolNameTable {
    const lists = [...this.pools.values()].map((p) => p.listTools())
    if (this.built?.lists.every((l, i) => l === lists[i])) return this.built.table
    const table = toolNameTable(refsOf(this.pools), this.separator)
    this.built = { lists, table }
    return table
  }

  /** Every offered tool; a name two tools would share is offered for neither (see the collisions). */
  tools(): ReadonlyArray<DockTool> {
    const table = this.table()
    return [...this.pools].flatMap(([server, pool]) =>
      pool.listTools().flatMap((t) => {
        const name = publicToolName(server, t.name, this.separator)
        if (table.byName.get(name)?.server !== server) return []
        return [
          {
            name,
            server,
            tool: t.name,
            ...(t.description === undefined ? {} : { description: t.description }),
            inputSchema: t.inputSchema as Record<string, unknown>,
          },
        ]
      }),
    )
  }

  /** The pool and the tool's own name of an offered name (or of the old `server.tool`). */
  resolve(name: string): { readonly pool: ToolPool; readonly tool: string } {
    const table = this.table()
    const ref = table.byName.get(name)
    if (ref !== undefined) return { pool: this.pools.get(ref.server)!, tool: ref.tool }
    const servers = [...this.pools.keys()]
    const parts = serverOfToolName(name, this.separator, servers)
    if (parts === undefined || parts.rest === "")
      throw new DockError(
        "unknown_tool",
        `unknown tool "${name}": tools are named <server>${this.separator}<tool> (or <server>.<tool>); servers: ${servers.join(", ") || "none"}`,
      )
    const collision = table.collisions.get(name)
    if (collision !== undefined)
      throw new DockError("unknown_tool", `tool "${name}" is not offered: ${collision}`)
    // The old form carries the tool's own name; an offered name not in the table is checked by the caller.
    return { pool: this.pools.get(parts.server)!, tool: parts.rest }
  }

  /** Why `server`'s tools would take names other tools have if it offered `tools`, or undefined. */
  clashWith(server: string, tools: ReadonlyArray<Pick<Tool, "name">>): string | undefined {
    const others = refsOf(this.pools).filter((r) => r.server !== server)
    const table = toolNameTable([...others, ...tools.map((t) => ({ server, tool: t.name }))], this.separator)
    const clash = [...table.collisions.values()]
    return clash.length === 0 ? undefined : clash.join("; ")
  }
}
