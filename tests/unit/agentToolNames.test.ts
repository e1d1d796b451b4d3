/**
 * The names a model sees for pooled tools: the plain tool name when only one server has it and it
 * is a valid OpenAI function name, else the dock's offered `server__tool`; never two tools under
 * one name, every name valid for OpenAI. Fuzzed over the dock's own naming.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { agentToolNames } from "../../src/actors/tools/agentToolPort.ts"
import type { DockTool } from "../../src/actors/tools/dockTypes.ts"
import { publicToolName, serverNameProblem, toolNameTable } from "../../src/actors/tools/toolNames.ts"

const OPENAI_FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/

/** The tools a dock would offer for these (server, tool) pairs: its names, its collision rule. */
const offeredBy = (refs: ReadonlyArray<{ server: string; tool: string }>, sep = "__"): DockTool[] => {
  const table = toolNameTable(refs, sep)
  return [...table.byName].map(([name, ref]) => ({ name, ...ref, inputSchema: { type: "object" } }))
}

describe("agent tool names", () => {
  it("keeps plain names where they are unique and valid, and the dock's names elsewhere", () => {
    const tools = offeredBy([
      { server: "search", tool: "search" },
      { server: "fetch_url", tool: "fetch_url" },
      { server: "web", tool: "lookup" },
      { server: "wiki", tool: "lookup" },
      { server: "fs", tool: "read.file" },
      // A plain name that is another tool's offered name.
      { server: "x", tool: "web__lookup" },
    ])
    expect(Object.fromEntries(tools.map((t, i) => [t.name, agentToolNames(tools)[i]]))).toEqual({
      search__search: "search",
      fetch_url__fetch_url: "fetch_url",
      web__lookup: "web__lookup",
      wiki__lookup: "wiki__lookup",
      fs__read_file: "fs__read_file",
      x__web__lookup: "x__web__lookup",
    })
  })

  test.prop([
    fc.array(
      fc.record({
        server: fc
          .stringMatching(/^[a-z][a-z_]{0,8}$/)
          .filter((s) => serverNameProblem(s, "__") === undefined),
        tool: fc.oneof(
          fc.stringMatching(/^[a-z_.]{1,12}$/),
          fc.constantFrom("a__b", "web__lookup", "lookup"),
        ),
      }),
      { maxLength: 12 },
    ),
  ])("never gives two tools one name, and every name is a valid OpenAI name", (refs) => {
    const tools = offeredBy(refs)
    const names = agentToolNames(tools)
    expect(new Set(names).size).toBe(names.length)
    for (const n of names) expect(n).toMatch(OPENAI_FUNCTION_NAME)
    for (const [i, t] of tools.entries())
      expect([t.tool, publicToolName(t.server, t.tool, "__")]).toContain(names[i])
  })
})
