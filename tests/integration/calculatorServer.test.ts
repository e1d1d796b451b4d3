/**
 * The calculator MCP server as AgentDock runs it: the built entry on stdio, as a child process,
 * through the official MCP client — the tool is listed with its schema, an expression answers its
 * value alone, a bad one an error result naming the column; and data/calc/tools.yaml declares it
 * (as `rollout mcp-server calculator`, the same server).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const entry = path.resolve("dist/src/programs/toolServers/calculator/main.js")
let client: Client

beforeAll(async () => {
  expect(fs.existsSync(entry), "run `npm run build` first (npm test does)").toBe(true)
  client = new Client({ name: "rollout-calculator-test", version: "0.0.0" })
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [entry], stderr: "pipe" }))
})
afterAll(async () => {
  await client?.close()
})

describe("the calculator MCP server on stdio", () => {
  it("lists one tool taking an expression", async () => {
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name)).toEqual(["calculator"])
    expect(tools[0]?.inputSchema.required).toEqual(["expression"])
  })

  it("answers the value alone, and an error result for a bad expression", async () => {
    expect(await client.callTool({ name: "calculator", arguments: { expression: "275*307" } })).toMatchObject(
      {
        content: [{ type: "text", text: "84425" }],
      },
    )
    const bad = await client.callTool({ name: "calculator", arguments: { expression: "2**3" } })
    expect(bad.isError).toBe(true)
    expect((bad.content as Array<{ text: string }>)[0]?.text).toBe(
      'error at column 3 of the expression: expected a number, found "*"',
    )
  })

  it("is declared in data/calc/tools.yaml through the CLI's `mcp-server calculator`", () => {
    const text = fs.readFileSync("data/calc/tools.yaml", "utf8")
    expect(text).toMatch(
      /\n {2}calculator:\n {4}command: node\n {4}args: \[bin\/rollout\.js, mcp-server, calculator\]/,
    )
  })
})
