/**
 * The online search providers against local servers imitating each API (Serper, Google CSE, Bing,
 * Jina): the request each sends (method, key header or parameter, query, count) and the mapping of
 * its response shape to normalized hits; then failover and cool-down on the search tool with an
 * injected clock (500 → next provider; the failed one skipped until its cool-down elapses; a probe
 * when all are cooling down; timeouts), provider choice from env keys, and API keys never echoed.
 */
import { afterEach, describe, expect, it } from "vitest"
import { parseCorpus } from "../../../src/programs/toolServers/corpus/corpus.ts"
import {
  bingProvider,
  googleProvider,
  jinaProvider,
  serperProvider,
} from "../../../src/programs/toolServers/search/online.ts"
import type { SearchProvider } from "../../../src/programs/toolServers/search/provider.ts"
import { createSearchTool, resolveSearchProviders } from "../../../src/programs/toolServers/search/server.ts"
import { type RecordedRequest, sendJson, serverPool } from "./localHttp.ts"

const servers = serverPool()
afterEach(() => servers.closeAll())

const signal = () => new AbortController().signal
const KEY = "sk-test-SECRET-123456"

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }): string =>
  r.content.map((c) => (c.type === "text" ? (c.text ?? "") : "")).join("\n")

const query = (r: RecordedRequest) => new URL(r.url, "http://x").searchParams

describe("online providers: request and response mapping", () => {
  it("serper: POST {q, num} with X-API-KEY; organic[] → hits", async () => {
    const s = await servers.start((_req, res) =>
      sendJson(res, 200, {
        searchParameters: { q: "lake" },
        organic: [
          { title: "  Lake\n Orrin ", link: "https://a.example/lake", snippet: "A lake.", position: 1 },
          { title: "No link" },
          { title: "Second", link: "https://a.example/2", snippet: "x", position: 2 },
        ],
      }),
    )
    const hits = await serperProvider({ apiKey: KEY, endpoint: `${s.url}/search` }).search(
      "lake",
      5,
      signal(),
    )
    expect(hits).toEqual([
      { title: "Lake Orrin", url: "https://a.example/lake", snippet: "A lake." },
      { title: "Second", url: "https://a.example/2", snippet: "x" },
    ])
    const req = s.requests[0]!
    expect(req.method).toBe("POST")
    expect(req.url).toBe("/search")
    expect(req.headers["x-api-key"]).toBe(KEY)
    expect(JSON.parse(req.body)).toEqual({ q: "lake", num: 5 })
  })

  it("google: GET ?key&cx&q&num (≤ 10); items[] → hits; no items → no hits", async () => {
    let empty = false
    const s = await servers.start((_req, res) =>
      sendJson(
        res,
        200,
        empty
          ? { kind: "customsearch#search" }
          : { items: [{ title: "G", link: "https://g.example/", snippet: "s" }] },
      ),
    )
    const p = googleProvider({ apiKey: KEY, cseId: "cse-1", endpoint: `${s.url}/customsearch/v1` })
    expect(await p.search("orrin lake", 15, signal())).toEqual([
      { title: "G", url: "https://g.example/", snippet: "s" },
    ])
    const q = query(s.requests[0]!)
    expect(s.requests[0]!.url.startsWith("/customsearch/v1?")).toBe(true)
    expect([q.get("key"), q.get("cx"), q.get("q"), q.get("num")]).toEqual([KEY, "cse-1", "orrin lake", "10"])
    empty = true
    expect(await p.search("nothing", 5, signal())).toEqual([])
  })

  it("bing: GET ?q&count with Ocp-Apim-Subscription-Key; webPages.value[] {name, url, snippet} → hits", async () => {
    const s = await servers.start((_req, res) =>
      sendJson(res, 200, {
        _type: "SearchResponse",
        webPages: { value: [{ name: "B", url: "https://b.example/x", snippet: "bing snippet" }] },
      }),
    )
    const hits = await bingProvider({ apiKey: KEY, endpoint: `${s.url}/v7.0/search` }).search(
      "q",
      3,
      signal(),
    )
    expect(hits).toEqual([{ title: "B", url: "https://b.example/x", snippet: "bing snippet" }])
    const req = s.requests[0]!
    expect(req.headers["ocp-apim-subscription-key"]).toBe(KEY)
    expect([query(req).get("q"), query(req).get("count")]).toEqual(["q", "3"])
  })

  it("jina: GET ?q with a Bearer key and Accept JSON; data[] {title, url, description} → hits, cut to n", async () => {
    const s = await servers.start((_req, res) =>
      sendJson(res, 200, {
        code: 200,
        data: [
          { title: "J1", url: "https://j.example/1", description: "d1", content: "" },
          { title: "J2", url: "https://j.example/2", content: "only content" },
          { title: "J3", url: "https://j.example/3", description: "d3" },
        ],
      }),
    )
    const hits = await jinaProvider({ apiKey: KEY, endpoint: `${s.url}/` }).search("jina q", 2, signal())
    expect(hits).toEqual([
      { title: "J1", url: "https://j.example/1", snippet: "d1" },
      { title: "J2", url: "https://j.example/2", snippet: "only content" },
    ])
    const req = s.requests[0]!
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`)
    expect(req.headers.accept).toBe("application/json")
    expect(query(req).get("q")).toBe("jina q")
  })

  it("HTTP errors name the provider and status; non-JSON and refused connections are errors", async () => {
    const s = await servers.start((req, res) => {
      if (req.url.startsWith("/html")) {
        res.writeHead(200, { "content-type": "text/html" })
        res.end("<html>not json</html>")
      } else sendJson(res, 403, { error: { code: 403, message: "quota exceeded" } })
    })
    await expect(
      serperProvider({ apiKey: KEY, endpoint: `${s.url}/x` }).search("q", 1, signal()),
    ).rejects.toThrow("serper: HTTP 403: quota exceeded")
    await expect(
      bingProvider({ apiKey: KEY, endpoint: `${s.url}/html` }).search("q", 1, signal()),
    ).rejects.toThrow("bing: response is not JSON")
    const closed = await servers.start(() => undefined)
    await closed.close()
    await expect(
      jinaProvider({ apiKey: KEY, endpoint: closed.url }).search("q", 1, signal()),
    ).rejects.toThrow(/^jina: request failed \(ECONNREFUSED\)/)
  })
})

const serperShape = (title: string) => ({
  organic: [{ title, link: `https://r.example/${title}`, snippet: title }],
})
const googleShape = (title: string) => ({
  items: [{ title, link: `https://r.example/${title}`, snippet: title }],
})

describe("failover and cool-down (injected clock)", () => {
  it("a 500 from the first provider fails over to the second; the first is skipped until its cool-down ends", async () => {
    let serperHealthy = false
    const serper = await servers.start((_req, res) =>
      serperHealthy
        ? sendJson(res, 200, serperShape("from-serper"))
        : sendJson(res, 500, { message: "boom" }),
    )
    const google = await servers.start((_req, res) => sendJson(res, 200, googleShape("from-google")))
    let now = 1_000_000
    const tool = createSearchTool({
      providers: ["serper", "google"],
      env: { SERPER_API_KEY: KEY, GOOGLE_API_KEY: "g-key-000", GOOGLE_CSE_ID: "cx-000" },
      endpoints: { serper: serper.url, google: google.url },
      cooldownMs: 60_000,
      now: () => now,
    })

    const first = await tool.call({ query: "one" })
    expect(first.isError).toBeUndefined()
    expect(first.structuredContent).toEqual({
      searches: [
        {
          query: "one",
          provider: "google",
          results: [{ title: "from-google", url: "https://r.example/from-google", snippet: "from-google" }],
          failures: ["serper: HTTP 500: boom"],
        },
      ],
    })
    expect(serper.requests).toHaveLength(1)
    expect(tool.status()[0]).toMatchObject({ name: "serper", coolingDownUntil: now + 60_000 })

    now += 59_999
    const second = await tool.call({ query: "two" })
    expect((second.structuredContent as { searches: [{ provider: string }] }).searches[0].provider).toBe(
      "google",
    )
    expect(serper.requests).toHaveLength(1)

    serperHealthy = true
    now += 1
    const third = await tool.call({ query: "three" })
    expect((third.structuredContent as { searches: [{ provider: string }] }).searches[0].provider).toBe(
      "serper",
    )
    expect(serper.requests).toHaveLength(2)
    expect(google.requests).toHaveLength(2)
    expect(tool.status()[0]).toEqual({ name: "serper" })
  })

  it("when every provider is cooling down, the one whose cool-down ends first is probed; all failing is an error", async () => {
    const down = await servers.start((_req, res) => sendJson(res, 503, { message: "down" }))
    let now = 0
    const tool = createSearchTool({
      providers: ["serper", "bing"],
      env: { SERPER_API_KEY: KEY, BING_API_KEY: "bing-key-000" },
      endpoints: { serper: down.url, bing: down.url },
      cooldownMs: 10_000,
      now: () => now,
    })
    const failed = await tool.call({ query: "q" })
    expect(failed.isError).toBe(true)
    expect(textOf(failed)).toContain(
      "every search provider failed: serper: HTTP 503: down; bing: HTTP 503: down",
    )
    expect(down.requests).toHaveLength(2)
    now += 1000
    const probed = await tool.call({ query: "q" })
    expect(probed.isError).toBe(true)
    expect(down.requests).toHaveLength(3)
    expect(textOf(probed)).toContain("serper: HTTP 503: down; bing cooling down for 9 s")
  })

  it("a provider that does not answer in time fails over as a timeout", async () => {
    const hang = await servers.start(() => undefined)
    const google = await servers.start((_req, res) => sendJson(res, 200, googleShape("ok")))
    const tool = createSearchTool({
      providers: ["jina", "google"],
      env: { JINA_API_KEY: KEY, GOOGLE_API_KEY: "g-key-000", GOOGLE_CSE_ID: "cx-000" },
      endpoints: { jina: hang.url, google: google.url },
      timeoutMs: 150,
    })
    const r = await tool.call({ query: "slow" })
    expect(r.structuredContent).toMatchObject({
      searches: [{ provider: "google", failures: ["jina: timed out after 150 ms"] }],
    })
  })

  it("a custom provider that ignores the abort signal still times out", async () => {
    const stuck: SearchProvider = { name: "stuck", search: () => new Promise(() => undefined) }
    const ok: SearchProvider = {
      name: "ok",
      search: async () => [{ title: "t", url: "https://o.example", snippet: "" }],
    }
    const tool = createSearchTool({ providers: [stuck, ok], timeoutMs: 50 })
    const r = await tool.call({ query: "x" })
    expect(r.structuredContent).toMatchObject({
      searches: [{ provider: "ok", failures: ["stuck: timed out after 50 ms"] }],
    })
  })

  it("API keys never appear in results or errors, even when an API echoes them", async () => {
    const echo = await servers.start((req, res) => {
      const key = String(req.headers["x-api-key"] ?? query(req).get("key") ?? "")
      if (req.method === "POST") sendJson(res, 401, { message: `invalid key ${key}` })
      else
        sendJson(res, 200, {
          items: [{ title: `t ${key}`, link: `https://e.example/?k=${key}`, snippet: key }],
        })
    })
    const tool = createSearchTool({
      providers: ["serper", "google"],
      env: { SERPER_API_KEY: KEY, GOOGLE_API_KEY: "GOOGLEKEY-987", GOOGLE_CSE_ID: "cx-000" },
      endpoints: { serper: echo.url, google: echo.url },
    })
    const r = await tool.call({ query: "leak?" })
    const all = JSON.stringify(r)
    expect(all).not.toContain(KEY)
    expect(all).not.toContain("GOOGLEKEY-987")
    expect(all).toContain("serper: HTTP 401: invalid key [redacted]")
  })
})

describe("provider choice", () => {
  const corpus = parseCorpus(
    JSON.stringify({ id: "a", url: "https://c.invalid/a", title: "A", text: "alpha" }),
  )
  if (!corpus.ok) throw new Error(corpus.error)

  it("by default: online providers with keys in env, in the standard order, then offline with a corpus", () => {
    const r = resolveSearchProviders({
      env: { BING_API_KEY: "b", SERPER_API_KEY: "s" },
      corpus: corpus.value,
    })
    expect(r.providers.map((p) => p.name)).toEqual(["serper", "bing", "offline"])
  })

  it("an explicit order is kept; providers without keys or corpus are skipped with the reason", () => {
    const r = resolveSearchProviders({
      providers: ["offline", "google", "jina"],
      env: { GOOGLE_API_KEY: "g", JINA_API_KEY: "  " },
    })
    expect(r.providers.map((p) => p.name)).toEqual([])
    expect(r.skipped).toEqual([
      { name: "offline", reason: "no corpus given" },
      { name: "google", reason: "GOOGLE_CSE_ID not set" },
      { name: "jina", reason: "JINA_API_KEY not set" },
    ])
    expect(() => createSearchTool({ providers: ["google"], env: {} })).toThrow(
      /no search provider available \(google: GOOGLE_API_KEY and GOOGLE_CSE_ID not set\)/,
    )
  })

  it("offline search through the tool: several queries, num_results, and the block list on hits", async () => {
    const docs = [
      { id: "a", url: "https://c.invalid/a", title: "Alpha", text: "alpha beta" },
      { id: "b", url: "https://huggingface.co/datasets/x/answers", title: "Leak", text: "alpha answers" },
      { id: "c", url: "https://c.invalid/c", title: "Gamma", text: "gamma alpha" },
    ]
    const c = parseCorpus(docs.map((d) => JSON.stringify(d)).join("\n"))
    if (!c.ok) throw new Error(c.error)
    const tool = createSearchTool({ corpus: c.value, env: {} })
    const r = await tool.call({ query: ["alpha", "  gamma ", "alpha"], num_results: "5" })
    const searches = (
      r.structuredContent as { searches: Array<{ query: string; results: unknown[]; blocked?: number }> }
    ).searches
    expect(searches.map((s) => s.query)).toEqual(["alpha", "gamma"])
    expect(searches[0]?.results).toHaveLength(2)
    expect(searches[0]?.blocked).toBe(1)
    expect(textOf(r)).toContain("(1 result removed by the answer-leak block list)")
    expect(textOf(r)).toContain('## Search results for "alpha" (offline)\n1. ')
    const bad = await tool.call({ query: [] })
    expect(bad.isError).toBe(true)
    expect(textOf(bad)).toBe("search: query must contain at least one non-empty search query")
  })
})
