/**
 * The names AgentDock offers tools under: valid OpenAI function names (their own regex, checked
 * here), read back to exactly one server and tool, two tools under one name refused with both
 * named, and tools.yaml's `separator` and server names checked so the server of a name can always
 * be read. Fuzzed over server and tool names.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import {
  DEFAULT_TOOL_NAME_SEPARATOR,
  OPENAI_TOOL_NAME,
  publicToolName,
  separatorProblem,
  serverNameProblem,
  serverOfToolName,
  toolNameTable,
} from "../../src/actors/tools/toolNames.ts"
import { toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"

/** As OpenAI's function-calling documentation states it. */
const OPENAI_FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/

describe("offered tool names", () => {
  it("joins server and tool with the separator, within OpenAI's rule", () => {
    expect(OPENAI_TOOL_NAME.source).toBe(OPENAI_FUNCTION_NAME.source)
    expect(DEFAULT_TOOL_NAME_SEPARATOR).toBe("__")
    expect(publicToolName("search", "search", "__")).toBe("search__search")
    expect(publicToolName("everything", "get-sum", "__")).toBe("everything__get-sum")
    expect(publicToolName("remote", "everything.echo", "__")).toBe("remote__everything_echo")
    expect(publicToolName("fs", "read file", "-")).toBe("fs-read_file")
    const long = publicToolName("server", "t".repeat(100), "__")
    expect(long).toHaveLength(64)
    expect(long).toMatch(OPENAI_FUNCTION_NAME)
    expect(long).not.toBe(publicToolName("server", `${"t".repeat(99)}u`, "__"))
  })

  it("reads the server back from the offered and the old dotted form", () => {
    const servers = ["search", "fetch_url", "execute_code"]
    expect(serverOfToolName("search__search", "__", servers)).toEqual({
      server: "search",
      rest: "search",
      form: "public",
    })
    expect(serverOfToolName("fetch_url__fetch_url", "__", servers)?.server).toBe("fetch_url")
    expect(serverOfToolName("search.search", "__", servers)).toEqual({
      server: "search",
      rest: "search",
      form: "dotted",
    })
    expect(serverOfToolName("remote.everything.echo", "__", ["remote"])?.rest).toBe("everything.echo")
    expect(serverOfToolName("nowhere__echo", "__", servers)).toBeUndefined()
    expect(serverOfToolName("search", "__", servers)).toBeUndefined()
  })

  it("refuses two tools under one name, naming both, and offers neither", () => {
    const table = toolNameTable(
      [
        { server: "x", tool: "get.item" },
        { server: "x", tool: "get_item" },
        { server: "x", tool: "other" },
        { server: "x", tool: "other" },
      ],
      "__",
    )
    expect([...table.collisions]).toEqual([
      ["x__get_item", 'tools x.get.item and x.get_item would both be named "x__get_item"'],
    ])
    expect([...table.byName.keys()]).toEqual(["x__other"])
    expect(table.byName.get("x__other")).toEqual({ server: "x", tool: "other" })
  })

  it("takes only separators made of '_' and '-', and server names it can read back", () => {
    for (const ok of ["__", "_", "-", "--", "_-_"]) expect(separatorProblem(ok)).toBeUndefined()
    for (const bad of [".", "", "/", "::", "_____", "x"]) expect(separatorProblem(bad)).toMatch(/'_' and '-'/)
    expect(serverNameProblem("fetch_url", "__")).toBeUndefined()
    expect(serverNameProblem("a__b", "__")).toMatch(/holds the tool name separator "__"/)
    // `a_` + `__` + `b` would read as server `a`.
    expect(serverNameProblem("a_", "__")).toMatch(/ends in part of it/)
    expect(serverNameProblem("my-server", "-")).toMatch(/holds/)
  })

  it("tools.yaml: the separator (default __) and server names are checked, naming the place", () => {
    const plain = toolsConfigFrom({ servers: { s: { command: "x" } } })
    expect(Result.isSuccess(plain) && plain.success.separator).toBe("__")
    const dash = toolsConfigFrom({ separator: "-", servers: { s: { command: "x" } } })
    expect(Result.isSuccess(dash) && dash.success.separator).toBe("-")
    const dot = toolsConfigFrom({ separator: "." })
    expect(Result.isFailure(dot) && dot.failure.message).toMatch(/separator: .*'_' and '-'/)
    const clash = toolsConfigFrom({ servers: { web__search: { command: "x" } } })
    expect(Result.isFailure(clash) && clash.failure.message).toMatch(/servers\.web__search: server name/)
  })
})

const serverName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/)
const separator = fc.constantFrom("__", "_", "-", "--", "_-")
const toolName = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.\-/ ]{1,80}$/),
  fc.string({ minLength: 1, maxLength: 100, unit: "binary" }),
)

describe("offered tool names, fuzzed", () => {
  test.prop(
    [
      separator,
      fc.uniqueArray(serverName, { minLength: 1, maxLength: 4 }),
      fc.array(toolName, { maxLength: 6 }),
    ],
    { numRuns: 1000 },
  )(
    "every name is a valid OpenAI name and leads back to exactly its tool; the server reads back",
    (sep, candidates, tools) => {
      const servers = candidates.filter((s) => serverNameProblem(s, sep) === undefined)
      const refs = servers.flatMap((server) => tools.map((tool) => ({ server, tool })))
      const table = toolNameTable(refs, sep)
      const distinct = new Set(refs.map((r) => JSON.stringify([r.server, r.tool])))
      let offered = 0
      for (const key of distinct) {
        const [server, tool] = JSON.parse(key) as [string, string]
        const name = publicToolName(server, tool, sep)
        expect(name).toMatch(OPENAI_FUNCTION_NAME)
        const back = table.byName.get(name)
        if (back === undefined) expect(table.collisions.get(name)).toContain(`${server}.${tool}`)
        else {
          offered++
          expect(back).toEqual({ server, tool })
        }
        // A name whose server part survives the cut reads back to its server.
        if (`${server}${sep}`.length <= 55) expect(serverOfToolName(name, sep, servers)?.server).toBe(server)
      }
      expect(table.byName.size).toBe(offered)
    },
  )
})
