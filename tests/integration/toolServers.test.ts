/**
 * The deep-research tool servers through a real MCP client: `search` (offline BM25 over the demo
 * corpus behind a failing local Serper imitation) and `fetch_url` (a local site) over an in-memory
 * transport — tool listing with input and output schemas, structured results the client validates,
 * tool errors, schema violations — and both served on stdio by a child process started from the
 * compiled build (`npm run build`; npm test does), including a bad configuration that exits with
 * an error naming the field. Only 127.0.0.1 is contacted.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { loadCorpus } from "../../src/programs/toolServers/corpus/corpus.ts"
import { createFetchUrlServer } from "../../src/programs/toolServers/fetchUrl/server.ts"
import { createSearchServer } from "../../src/programs/toolServers/search/server.ts"
import { sendJson, serverPool } from "../unit/toolServers/localHttp.ts"

const servers = serverPool()
const clients: Client[] = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  await servers.closeAll()
})

const connect = async (server: McpServer): Promise<Client> => {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(serverSide)
  const client = new Client({ name: "rollout-test", version: "0.0.0" })
  await client.connect(clientSide)
  clients.push(client)
  return client
}

type ToolResult = Awaited<ReturnType<Client["callTool"]>>
const textOf = (r: ToolResult): string =>
  (r.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? "").join("\n")

interface SearchOut {
  searches: Array<{ query: string; provider?: string; results: Array<{ url: string }>; failures?: string[] }>
}

describe("the search server through an MCP client (in memory)", () => {
  it("lists the tool with schemas and answers from the offline provider after the online one fails", async () => {
    const failing = await servers.start((_req, res) => sendJson(res, 500, { message: "upstream down" }))
    const corpus = await loadCorpus(path.resolve("data/demo/corpus.jsonl"))
    const client = await connect(
      createSearchServer({
        providers: ["serper", "offline"],
        env: { SERPER_API_KEY: "serper-key-for-test" },
        endpoints: { serper: failing.url },
        corpus,
      }),
    )
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name)).toEqual(["search"])
    const tool = tools[0]!
    expect(Object.keys(tool.inputSchema.properties ?? {})).toEqual(["query", "num_results"])
    expect(tool.inputSchema.required).toEqual(["query"])
    expect(tool.outputSchema?.properties).toHaveProperty("searches")

    const r = await client.callTool({
      name: "search",
      arguments: { query: ["Maun Viaduct arches", "Mira Solberg chess"], num_results: 2 },
    })
    expect(r.isError).toBeFalsy()
    const out = r.structuredContent as unknown as SearchOut
    expect(out.searches.map((s) => [s.provider, s.results[0]?.url, s.results.length])).toEqual([
      ["offline", "https://demo.rollout.invalid/maun-viaduct", 2],
      ["offline", "https://demo.rollout.invalid/harrowmere-chess-club", 1],
    ])
    expect(out.searches[0]?.failures).toEqual(["serper: HTTP 500: upstream down"])
    expect(textOf(r)).toContain('## Search results for "Maun Viaduct arches" (offline)')
    expect(JSON.stringify(r)).not.toContain("serper-key-for-test")
  })

  it("reports bad arguments as tool errors", async () => {
    const corpus = await loadCorpus(path.resolve("data/demo/corpus.jsonl"))
    const client = await connect(createSearchServer({ providers: ["offline"], corpus }))
    const wrongType = await client.callTool({ name: "search", arguments: { query: 42 } })
    expect(wrongType.isError).toBe(true)
    expect(textOf(wrongType)).toContain("Input validation error")
    const empty = await client.callTool({ name: "search", arguments: { query: "   " } })
    expect(empty.isError).toBe(true)
    expect(textOf(empty)).toBe("search: query must contain at least one non-empty search query")
  })
})

describe("the fetch_url server through an MCP client (in memory)", () => {
  it("fetches a page as Markdown with pagination and the purpose; errors are tool errors naming the URL", async () => {
    const site = await servers.start((req, res) => {
      if (req.url === "/page") {
        res.writeHead(200, { "content-type": "text/html" })
        res.end(
          `<html><head><title>Ferry</title></head><body><main><h2>Timetable</h2>${"<p>The ferry crosses the lake in 50 minutes.</p>".repeat(40)}</main></body></html>`,
        )
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    const client = await connect(createFetchUrlServer({ pageSize: 500 }))
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name)).toEqual(["fetch_url"])
    expect(Object.keys(tools[0]?.inputSchema.properties ?? {})).toEqual(["url", "purpose", "page"])

    const r = await client.callTool({
      name: "fetch_url",
      arguments: { url: `${site.url}/page`, purpose: "crossing time", page: 2 },
    })
    expect(r.isError).toBeFalsy()
    expect(r.structuredContent).toMatchObject({
      title: "Ferry",
      purpose: "crossing time",
      page: 2,
      source: "network",
    })
    const pages = (r.structuredContent as { pages: number }).pages
    expect(pages).toBeGreaterThan(2)
    expect(textOf(r)).toContain(`Page 2 of ${pages}`)

    const missing = await client.callTool({ name: "fetch_url", arguments: { url: `${site.url}/gone` } })
    expect(missing.isError).toBe(true)
    expect(textOf(missing)).toBe(`fetch_url failed for ${site.url}/gone: HTTP 404 Not Found`)
    const blocked = await client.callTool({
      name: "fetch_url",
      arguments: { url: "https://huggingface.co/datasets/xbench/DeepSearch" },
    })
    expect(blocked.isError).toBe(true)
    expect(textOf(blocked)).toContain("refused by the answer-leak block list")
  })
})

const entry = path.resolve("tests/support/toolServerMain.mjs")
const built = path.resolve("dist/src/programs/toolServers/serve.js")

describe("the tool servers on stdio (child process from the build)", () => {
  beforeAll(() => {
    expect(fs.existsSync(built), "run `npm run build` first (npm test does)").toBe(true)
  })

  const stdioClient = async (
    name: string,
    options: unknown,
  ): Promise<{ client: Client; stderr: () => string }> => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [entry, name, JSON.stringify(options)],
      cwd: process.cwd(),
      stderr: "pipe",
    })
    let stderr = ""
    transport.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const client = new Client({ name: "rollout-stdio-test", version: "0.0.0" })
    await client.connect(transport)
    clients.push(client)
    return { client, stderr: () => stderr }
  }

  it("search: offline BM25 over the demo corpus", async () => {
    const { client, stderr } = await stdioClient("search", {
      providers: ["offline"],
      corpusPath: "data/demo/corpus.jsonl",
    })
    const r = await client.callTool({ name: "search", arguments: { query: "Skerrow Lighthouse first lit" } })
    expect(r.isError).toBeFalsy()
    const out = r.structuredContent as unknown as SearchOut
    expect(out.searches[0]?.results[0]?.url).toBe("https://demo.rollout.invalid/skerrow-lighthouse")
    expect(stderr()).toContain("search MCP server ready on stdio: providers offline")
  })

  it("fetch_url: offline mode serves a corpus document and refuses anything else", async () => {
    const { client } = await stdioClient("fetch_url", { offline: true, corpusPath: "data/demo/corpus.jsonl" })
    const r = await client.callTool({
      name: "fetch_url",
      arguments: { url: "https://demo.rollout.invalid/maun-viaduct", purpose: "number of arches" },
    })
    expect(r.isError).toBeFalsy()
    expect(r.structuredContent).toMatchObject({
      title: "Maun Viaduct",
      source: "corpus",
      purpose: "number of arches",
    })
    expect(textOf(r)).toContain("19 arches")
    const other = await client.callTool({ name: "fetch_url", arguments: { url: "https://example.com/" } })
    expect(other.isError).toBe(true)
    expect(textOf(other)).toContain("offline mode: the URL is not in the local corpus")
  })

  it("a bad configuration exits with an error naming the field", async () => {
    const run = promisify(execFile)
    const failure = await run(process.execPath, [
      entry,
      "fetch_url",
      JSON.stringify({ pageSize: "big" }),
    ]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    )
    expect(failure?.code).toBe(2)
    expect(failure?.stderr).toContain('tool server: fetch_url options.pageSize must be an integer, got "big"')
  })
})
