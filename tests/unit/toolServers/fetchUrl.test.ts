/**
 * fetch_url against a local node:http server: HTML to Markdown with the title, links made absolute
 * and scripts dropped; plain text and JSON as they are; pagination ("Page i of n", the next page from
 * the cache); purpose echoed; timeout, size cap (declared and streamed), HTTP errors, unsupported
 * content types; the block list on the URL and on redirect targets; offline corpus mode. Every
 * failure is an `isError` result naming the URL and the reason.
 */
import { afterEach, describe, expect, it } from "vitest"
import { parseCorpus } from "../../../src/programs/toolServers/corpus/corpus.ts"
import { createFetchUrlTool } from "../../../src/programs/toolServers/fetchUrl/server.ts"
import { serverPool } from "./localHttp.ts"

const servers = serverPool()
afterEach(() => servers.closeAll())

const textOf = (r: { content: ReadonlyArray<{ type: string; text?: string }> }): string =>
  r.content.map((c) => (c.type === "text" ? (c.text ?? "") : "")).join("\n")

interface Structured {
  url: string
  finalUrl: string
  title: string
  contentType: string
  source: string
  purpose?: string
  page: number
  pages: number
  totalChars: number
  content: string
}
const structured = (r: { structuredContent?: unknown }) => r.structuredContent as Structured

const ARTICLE = `<!DOCTYPE html><html><head><title>Skerrow Lighthouse | Lake Guide</title>
<style>body{color:red}</style><script>var tracking = "SCRIPT-TEXT";</script></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Skerrow Lighthouse</h1>
<p>The tower is <strong>31 metres</strong> tall and was first lit in 1861. It was designed by
<a href="/people/corve">Matthias Corve</a>.</p>
${Array.from({ length: 8 }, (_, i) => `<p>Paragraph ${i + 1} about the keepers, the lens, the island and the storms on the lake in the nineteenth century.</p>`).join("\n")}
<table><tr><th>Year</th><th>Event</th></tr><tr><td>1974</td><td>Automated</td></tr></table>
</article><footer>Copyright footer</footer></body></html>`

const site = () =>
  servers.start((req, res) => {
    const path = req.url
    if (path === "/article") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      res.end(ARTICLE)
    } else if (path === "/text") {
      res.writeHead(200, { "content-type": "text/plain" })
      res.end("line one\nline two\n")
    } else if (path === "/json") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end('{"a": [1, 2, 3]}')
    } else if (path === "/long") {
      res.writeHead(200, { "content-type": "text/plain" })
      res.end(Array.from({ length: 50 }, (_, i) => `Paragraph ${i} ${"lorem ipsum ".repeat(8)}`).join("\n\n"))
    } else if (path === "/latin1") {
      res.writeHead(200, { "content-type": "text/plain; charset=iso-8859-1" })
      res.end(Buffer.from([0x63, 0x61, 0x66, 0xe9]))
    } else if (path === "/sniff") {
      res.writeHead(200)
      res.end("<html><head><title>Sniffed</title></head><body><p>No content type here.</p></body></html>")
    } else if (path === "/pdf") {
      res.writeHead(200, { "content-type": "application/pdf" })
      res.end("%PDF-1.4")
    } else if (path === "/binary") {
      res.writeHead(200, { "content-type": "application/octet-stream" })
      res.end(Buffer.from([1, 0, 2, 0, 3]))
    } else if (path === "/big") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "5000" })
      res.end("x".repeat(5000))
    } else if (path === "/chunked-big") {
      res.writeHead(200, { "content-type": "text/plain" })
      for (let i = 0; i < 10; i++) res.write("y".repeat(1000))
      res.end()
    } else if (path === "/hang") {
      // never answers
    } else if (path === "/slow-body") {
      res.writeHead(200, { "content-type": "text/plain" })
      res.write("partial")
    } else if (path === "/missing") {
      res.writeHead(404, { "content-type": "text/html" })
      res.end("<h1>Not here</h1>")
    } else if (path === "/redirect") {
      res.writeHead(302, { location: "/text" })
      res.end()
    } else if (path === "/redirect-leak") {
      res.writeHead(301, { location: "https://huggingface.co/datasets/gaia-benchmark/GAIA" })
      res.end()
    } else if (path === "/loop") {
      res.writeHead(302, { location: "/loop" })
      res.end()
    } else {
      res.writeHead(500)
      res.end()
    }
  })

describe("fetch_url over HTTP", () => {
  it("turns an article into Markdown with title, absolute links and a table; drops scripts and styles", async () => {
    const s = await site()
    const tool = createFetchUrlTool()
    const r = await tool.call({ url: `${s.url}/article`, purpose: "height of the tower" })
    expect(r.isError).toBeUndefined()
    const out = structured(r)
    expect(out).toMatchObject({
      url: `${s.url}/article`,
      finalUrl: `${s.url}/article`,
      title: "Skerrow Lighthouse | Lake Guide",
      contentType: "text/html",
      source: "network",
      purpose: "height of the tower",
      page: 1,
      pages: 1,
    })
    expect(out.content).toContain("**31 metres**")
    expect(out.content).toContain(`[Matthias Corve](${s.url}/people/corve)`)
    expect(out.content).toMatch(/\| *Year *\| *Event *\|/)
    expect(out.content).not.toContain("SCRIPT-TEXT")
    expect(out.content).not.toContain("color:red")
    const text = textOf(r)
    expect(text).toContain(
      `URL: ${s.url}/article\nTitle: Skerrow Lighthouse | Lake Guide\nPurpose: height of the tower\n`,
    )
    expect(text).toContain("Page 1 of 1")
  })

  it("passes plain text and JSON through, honours the charset, sniffs HTML without a content type", async () => {
    const s = await site()
    const tool = createFetchUrlTool()
    expect(structured(await tool.call({ url: `${s.url}/text` }))).toMatchObject({
      content: "line one\nline two\n",
      contentType: "text/plain",
      title: "",
    })
    expect(structured(await tool.call({ url: `${s.url}/json` })).content).toBe('{"a": [1, 2, 3]}')
    expect(structured(await tool.call({ url: `${s.url}/latin1` })).content).toBe("café")
    const sniffed = structured(await tool.call({ url: `${s.url}/sniff` }))
    expect(sniffed.title).toBe("Sniffed")
    expect(sniffed.content).toBe("No content type here.")
  })

  it("paginates: page i of n, pages join back to the document, later pages come from the cache", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ pageSize: 1000 })
    const first = await tool.call({ url: `${s.url}/long`, page: 1 })
    const { pages, totalChars } = structured(first)
    expect(pages).toBeGreaterThan(3)
    expect(textOf(first)).toContain(`Page 1 of ${pages}`)
    expect(textOf(first)).toContain(`[This was page 1 of ${pages}; call fetch_url with page 2 for more.]`)
    const contents = [structured(first).content]
    for (let page = 2; page <= pages; page++) {
      const r = await tool.call({ url: `${s.url}/long`, page })
      expect(structured(r).page).toBe(page)
      expect(structured(r).content.length).toBeLessThanOrEqual(1000)
      contents.push(structured(r).content)
    }
    expect(contents.join("").length).toBe(totalChars)
    expect(contents[1]?.startsWith("Paragraph")).toBe(true)
    expect(s.requests.filter((r) => r.url === "/long")).toHaveLength(1)
    const beyond = await tool.call({ url: `${s.url}/long`, page: pages + 1 })
    expect(beyond.isError).toBe(true)
    expect(textOf(beyond)).toBe(
      `fetch_url failed for ${s.url}/long: page ${pages + 1} is out of range: the document has ${pages} pages`,
    )
  })

  it("follows redirects and reports the final URL; too many redirects is an error", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ maxRedirects: 3 })
    expect(structured(await tool.call({ url: `${s.url}/redirect` }))).toMatchObject({
      url: `${s.url}/redirect`,
      finalUrl: `${s.url}/text`,
    })
    const loop = await tool.call({ url: `${s.url}/loop` })
    expect(textOf(loop)).toBe(`fetch_url failed for ${s.url}/loop: more than 3 redirects`)
  })

  it("times out on a server that never answers and on a body that never ends", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ timeoutMs: 150 })
    const hang = await tool.call({ url: `${s.url}/hang` })
    expect(hang.isError).toBe(true)
    expect(textOf(hang)).toBe(`fetch_url failed for ${s.url}/hang: timed out after 150 ms`)
    expect(textOf(await tool.call({ url: `${s.url}/slow-body` }))).toBe(
      `fetch_url failed for ${s.url}/slow-body: timed out after 150 ms`,
    )
  })

  it("refuses bodies over the size cap, declared or streamed", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ maxBytes: 4096 })
    expect(textOf(await tool.call({ url: `${s.url}/big` }))).toBe(
      `fetch_url failed for ${s.url}/big: the response (5000 bytes) exceeds the size cap of 4096 bytes`,
    )
    expect(textOf(await tool.call({ url: `${s.url}/chunked-big` }))).toBe(
      `fetch_url failed for ${s.url}/chunked-big: the response exceeds the size cap of 4096 bytes`,
    )
  })

  it("names HTTP errors, unsupported types, binary content and refused connections", async () => {
    const s = await site()
    const tool = createFetchUrlTool()
    expect(textOf(await tool.call({ url: `${s.url}/missing` }))).toBe(
      `fetch_url failed for ${s.url}/missing: HTTP 404 Not Found`,
    )
    expect(textOf(await tool.call({ url: `${s.url}/pdf` }))).toBe(
      `fetch_url failed for ${s.url}/pdf: unsupported content type application/pdf (HTML, text and JSON are read)`,
    )
    expect(textOf(await tool.call({ url: `${s.url}/binary` }))).toBe(
      `fetch_url failed for ${s.url}/binary: binary content (application/octet-stream) is not read`,
    )
    const closed = await servers.start(() => undefined)
    await closed.close()
    const refused = await tool.call({ url: `${closed.url}/x` })
    expect(refused.isError).toBe(true)
    expect(textOf(refused)).toBe(`fetch_url failed for ${closed.url}/x: the request failed (ECONNREFUSED)`)
  })

  it("rejects bad arguments with a tool error naming the field", async () => {
    const tool = createFetchUrlTool()
    expect(textOf(await tool.call({ url: "ftp://example.com/x" }))).toBe(
      "fetch_url failed for ftp://example.com/x: url must be an http or https URL, got a ftp: URL",
    )
    expect(textOf(await tool.call({ url: "https://example.com", page: 0 }))).toBe(
      "fetch_url failed for https://example.com: page must be at least 1, got 0",
    )
    expect(textOf(await tool.call({}))).toBe(
      "fetch_url failed for (no url): url must be a non-empty string, got undefined",
    )
  })
})

describe("the answer-leak block list", () => {
  it("refuses dataset hubs and benchmark repositories by host and path, before any request", async () => {
    const tool = createFetchUrlTool({ fetch: () => Promise.reject(new Error("must not fetch")) })
    for (const [url, rule] of [
      [
        "https://huggingface.co/datasets/gaia-benchmark/GAIA/resolve/main/2023/validation/metadata.jsonl",
        "huggingface.co/datasets",
      ],
      [
        "https://github.com/openai/simple-evals/blob/main/browsecomp_eval.py",
        "github.com/openai/simple-evals",
      ],
      [
        "https://openaipublic.blob.core.windows.net/simple-evals/browse_comp_test_set.csv",
        "openaipublic.blob.core.windows.net/simple-evals",
      ],
      ["https://r.jina.ai/https://huggingface.co/datasets/cais/hle", "*/*huggingface.co/datasets"],
    ] as const) {
      const r = await tool.call({ url })
      expect(r.isError).toBe(true)
      expect(textOf(r)).toBe(
        `fetch_url failed for ${url}: refused by the answer-leak block list (rule ${rule})`,
      )
    }
  })

  it("refuses a redirect into the block list", async () => {
    const s = await site()
    const r = await createFetchUrlTool().call({ url: `${s.url}/redirect-leak` })
    expect(textOf(r)).toBe(
      `fetch_url failed for ${s.url}/redirect-leak: redirected to https://huggingface.co/datasets/gaia-benchmark/GAIA, which the answer-leak block list refuses (rule huggingface.co/datasets)`,
    )
  })

  it("is configurable: custom rules replace the default", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ blockList: ["127.0.0.1/text"] })
    expect(textOf(await tool.call({ url: `${s.url}/text` }))).toContain(
      "refused by the answer-leak block list (rule 127.0.0.1/text)",
    )
    expect((await tool.call({ url: `${s.url}/json` })).isError).toBeUndefined()
    expect(() => createFetchUrlTool({ blockList: ["/path-only"] })).toThrow(
      /blockList: block-list rule "\/path-only" has no host/,
    )
  })
})

describe("offline corpus mode", () => {
  const corpus = parseCorpus(
    [
      { id: "a", url: "https://demo.rollout.invalid/a", title: "Doc A", text: "Alpha text. ".repeat(30) },
      { id: "b", url: "https://demo.rollout.invalid/b", title: "Doc B", text: "Beta text." },
    ]
      .map((d) => JSON.stringify(d))
      .join("\n"),
  )
  if (!corpus.ok) throw new Error(corpus.error)

  it("serves corpus URLs without network (fragment and trailing slash ignored), paginated", async () => {
    const tool = createFetchUrlTool({
      corpus: corpus.value,
      offline: true,
      pageSize: 100,
      fetch: () => Promise.reject(new Error("must not fetch")),
    })
    const r = await tool.call({ url: "https://demo.rollout.invalid/a/#section", purpose: "alpha", page: 2 })
    expect(structured(r)).toMatchObject({
      finalUrl: "https://demo.rollout.invalid/a",
      title: "Doc A",
      source: "corpus",
      purpose: "alpha",
      page: 2,
      pages: 4,
    })
    expect(textOf(r)).toContain("Page 2 of 4")
    const miss = await tool.call({ url: "https://example.com/elsewhere" })
    expect(textOf(miss)).toBe(
      "fetch_url failed for https://example.com/elsewhere: offline mode: the URL is not in the local corpus",
    )
  })

  it("without offline, corpus URLs come from the corpus and others from the network", async () => {
    const s = await site()
    const tool = createFetchUrlTool({ corpus: corpus.value })
    expect(structured(await tool.call({ url: "https://demo.rollout.invalid/b" })).content).toBe("Beta text.")
    expect(structured(await tool.call({ url: `${s.url}/text` })).source).toBe("network")
  })

  it("offline mode without a corpus is a configuration error", () => {
    expect(() => createFetchUrlTool({ offline: true })).toThrow(
      "fetch_url server: offline mode needs a corpus",
    )
  })
})
