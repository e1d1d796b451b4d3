/**
 * Decoding and conversion that must be total: the tools' argument decoders, the servers' JSON
 * option decoder (errors name the field), HTML → Markdown, pagination and the block list. Examples
 * pin the behaviour; fast-check properties show none of them throws on arbitrary input.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  compileBlockList,
  DEFAULT_BLOCK_LIST,
  defaultBlockList,
} from "../../../src/programs/toolServers/blockList/blockList.ts"
import { decodeFetchUrlArgs } from "../../../src/programs/toolServers/fetchUrl/args.ts"
import { htmlToMarkdown, stripTags } from "../../../src/programs/toolServers/fetchUrl/html.ts"
import { paginate } from "../../../src/programs/toolServers/fetchUrl/paginate.ts"
import { decodeSearchArgs } from "../../../src/programs/toolServers/search/args.ts"
import { decodeToolServerConfig, loadToolServerOptions } from "../../../src/programs/toolServers/serve.ts"

const error = (r: { ok: boolean; error?: string }) => (r.ok ? "(decoded)" : r.error)

describe("search arguments", () => {
  it("accepts a query or a list, trims and de-duplicates, parses JSON and JSON5 strings", () => {
    expect(decodeSearchArgs({ query: "  lake   orrin " })).toEqual({
      ok: true,
      value: { queries: ["lake orrin"], numResults: 5 },
    })
    expect(decodeSearchArgs({ query: ["a", " ", "b", "a"], num_results: "3" })).toEqual({
      ok: true,
      value: { queries: ["a", "b"], numResults: 3 },
    })
    expect(decodeSearchArgs('{"query": "x", "num_results": 100}')).toEqual({
      ok: true,
      value: { queries: ["x"], numResults: 20 },
    })
    expect(decodeSearchArgs("{query: 'x',}")).toEqual({ ok: true, value: { queries: ["x"], numResults: 5 } })
  })

  it("names the problem", () => {
    expect(error(decodeSearchArgs({}))).toBe("query must be a string or an array of strings, got undefined")
    expect(error(decodeSearchArgs({ query: [1] }))).toBe("query[0] must be a string, got 1")
    expect(error(decodeSearchArgs({ query: "x", num_results: 0 }))).toBe(
      "num_results must be at least 1, got 0",
    )
    expect(error(decodeSearchArgs({ query: "x", num_results: 2.5 }))).toBe(
      "num_results must be an integer, got 2.5",
    )
    expect(error(decodeSearchArgs({ query: ["a", "b", "c", "d", "e", "f"] }))).toBe(
      "at most 5 queries per call, got 6",
    )
    expect(error(decodeSearchArgs("not json"))).toBe(
      'search arguments must be an object {query, num_results?}, got "not json"',
    )
    expect(error(decodeSearchArgs({ query: "x".repeat(1001) }))).toBe(
      "query is too long (1001 characters; at most 1000)",
    )
  })

  test.prop([fc.string()])("never throws on an arbitrary string", (s) => {
    expect(typeof decodeSearchArgs(s).ok).toBe("boolean")
  })
  test.prop([fc.anything()])("never throws on an arbitrary value", (u) => {
    expect(typeof decodeSearchArgs(u).ok).toBe("boolean")
    expect(typeof decodeSearchArgs({ query: u, num_results: u }).ok).toBe("boolean")
  })
})

describe("fetch_url arguments", () => {
  it("adds https:// to a bare host, trims the purpose, accepts a numeric page string", () => {
    expect(decodeFetchUrlArgs({ url: "example.com/a b", purpose: "  why ", page: "2" })).toEqual({
      ok: true,
      value: { url: "https://example.com/a%20b", purpose: "why", page: 2 },
    })
    expect(decodeFetchUrlArgs({ url: "http://x.example", purpose: " " })).toEqual({
      ok: true,
      value: { url: "http://x.example/", page: 1 },
    })
  })

  it("names the problem", () => {
    expect(error(decodeFetchUrlArgs({ url: "javascript:alert(1)" }))).toBe(
      "url must be an http or https URL, got a javascript: URL",
    )
    expect(error(decodeFetchUrlArgs({ url: "https://" }))).toBe('url is not a valid URL: "https://"')
    expect(error(decodeFetchUrlArgs({ url: "https://x.example", purpose: 3 }))).toBe(
      "purpose must be a string, got 3",
    )
    expect(error(decodeFetchUrlArgs({ url: "https://x.example", page: "two" }))).toBe(
      'page must be an integer, got "two"',
    )
  })

  test.prop([fc.string()])("never throws on an arbitrary string", (s) => {
    expect(typeof decodeFetchUrlArgs(s).ok).toBe("boolean")
    expect(typeof decodeFetchUrlArgs({ url: s, purpose: s, page: s }).ok).toBe("boolean")
  })
  test.prop([fc.anything()])("never throws on an arbitrary value", (u) => {
    expect(typeof decodeFetchUrlArgs(u).ok).toBe("boolean")
    expect(typeof decodeFetchUrlArgs({ url: u, purpose: u, page: u }).ok).toBe("boolean")
  })
})

describe("server options from JSON", () => {
  it("decodes a full search and fetch_url configuration; nothing means defaults", () => {
    expect(
      decodeToolServerConfig("search", {
        providers: ["Serper", "offline"],
        corpusPath: "data/demo/corpus.jsonl",
        endpoints: { serper: "http://127.0.0.1:1/search" },
        numResults: 3,
        cooldownMs: 0,
        extraBlockList: ["example.com/answers"],
      }),
    ).toEqual({
      ok: true,
      value: {
        name: "search",
        config: {
          providers: ["serper", "offline"],
          corpusPath: "data/demo/corpus.jsonl",
          endpoints: { serper: "http://127.0.0.1:1/search" },
          numResults: 3,
          cooldownMs: 0,
          extraBlockList: ["example.com/answers"],
        },
      },
    })
    expect(
      decodeToolServerConfig("fetch_url", { offline: true, corpusPath: "c.jsonl", pageSize: 500 }),
    ).toEqual({
      ok: true,
      value: { name: "fetch_url", config: { offline: true, corpusPath: "c.jsonl", pageSize: 500 } },
    })
    expect(decodeToolServerConfig("fetch_url", null)).toEqual({
      ok: true,
      value: { name: "fetch_url", config: {} },
    })
  })

  it("errors name the field", () => {
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      ["mcp", {}, 'unknown tool server "mcp"; known: search, fetch_url'],
      ["search", [], "search options must be a JSON object, got an array"],
      [
        "search",
        { provider: ["serper"] },
        'search options: unknown field "provider" (did you mean "providers"?); known fields: providers, corpusPath, endpoints, numResults, maxNumResults, maxQueries, cooldownMs, timeoutMs, blockList, extraBlockList',
      ],
      [
        "search",
        { providers: ["duckduckgo"] },
        'search options.providers[0]: unknown provider "duckduckgo"; known: serper, google, bing, jina, offline',
      ],
      [
        "search",
        { providers: ["bing", "bing"] },
        'search options.providers[1]: provider "bing" is listed twice',
      ],
      [
        "search",
        { providers: ["offline"] },
        'search options.providers: "offline" needs search options.corpusPath',
      ],
      ["search", { numResults: "many" }, 'search options.numResults must be an integer, got "many"'],
      [
        "search",
        { endpoints: { serper: "not a url" } },
        'search options.endpoints.serper must be an http(s) URL, got "not a url"',
      ],
      [
        "search",
        { endpoints: { yahoo: "http://x" } },
        "search options.endpoints.yahoo: unknown provider; known: serper, google, bing, jina",
      ],
      [
        "search",
        { blockList: ["ok.example", ""] },
        "search options.blockList[1]: a block-list rule must not be empty",
      ],
      ["fetch_url", { pageSize: 10 }, "fetch_url options.pageSize must be between 100 and 10000000, got 10"],
      ["fetch_url", { offline: "yes" }, 'fetch_url options.offline must be true or false, got "yes"'],
      [
        "fetch_url",
        { offline: true },
        "fetch_url options.offline: offline mode needs fetch_url options.corpusPath",
      ],
      ["fetch_url", { corpusPath: "" }, 'fetch_url options.corpusPath must be a non-empty string, got ""'],
    ]
    for (const [name, json, message] of cases) expect(error(decodeToolServerConfig(name, json))).toBe(message)
  })

  it("loads the corpus relative to the base directory and appends extra block-list rules", async () => {
    const config = decodeToolServerConfig("fetch_url", {
      offline: true,
      corpusPath: "data/demo/corpus.jsonl",
      extraBlockList: ["example.com/answers"],
    })
    if (!config.ok) throw new Error(config.error)
    const loaded = await loadToolServerOptions(config.value, { baseDir: process.cwd() })
    if (loaded.name !== "fetch_url") throw new Error("wrong server")
    expect(loaded.options.corpus?.documents.length).toBeGreaterThan(20)
    expect(loaded.options.blockList).toEqual([...DEFAULT_BLOCK_LIST, "example.com/answers"])
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-toolservers-"))
    try {
      const missing = decodeToolServerConfig("search", { corpusPath: "nope.jsonl" })
      if (!missing.ok) throw new Error(missing.error)
      await expect(loadToolServerOptions(missing.value, { baseDir: dir })).rejects.toThrow(
        `cannot read corpus ${path.join(dir, "nope.jsonl")}: no such file`,
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test.prop([fc.string(), fc.anything()])("never throws on arbitrary names and values", (name, json) => {
    expect(typeof decodeToolServerConfig(name, json).ok).toBe("boolean")
    expect(typeof decodeToolServerConfig("search", json).ok).toBe("boolean")
    expect(typeof decodeToolServerConfig("fetch_url", json).ok).toBe("boolean")
  })
  test.prop([
    fc.dictionary(
      fc.constantFrom(
        "providers",
        "corpusPath",
        "blockList",
        "pageSize",
        "offline",
        "endpoints",
        "timeoutMs",
      ),
      fc.jsonValue(),
    ),
  ])("never throws on arbitrary known fields", (json) => {
    expect(typeof decodeToolServerConfig("search", json).ok).toBe("boolean")
    expect(typeof decodeToolServerConfig("fetch_url", json).ok).toBe("boolean")
  })
})

describe("HTML to Markdown", () => {
  it("keeps headings, lists, emphasis and links of a fragment; strips scripts; decodes entities", () => {
    const r = htmlToMarkdown(
      "<h2>Facts</h2><ul><li>one &amp; two</li><li><em>three</em></li></ul><script>bad()</script><p><a href='x'>rel</a></p>",
      "https://ex.example/dir/page",
    )
    expect(r.markdown).toContain("## Facts")
    expect(r.markdown).toMatch(/\* one & two/)
    expect(r.markdown).toContain("_three_")
    expect(r.markdown).toContain("[rel](https://ex.example/dir/x)")
    expect(r.markdown).not.toContain("bad()")
  })

  it("stripTags is the last resort: text only, entities decoded", () => {
    expect(stripTags("<p>a&lt;b</p><script>x</script><div>c&#233;</div>")).toBe("a<b\n c\u00e9")
  })

  const htmlish = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          "<p>",
          "</p>",
          "<div class='x'>",
          "</div>",
          "<a href='",
          "'>",
          "</a>",
          "<script>",
          "</script>",
          "<style>",
          "<table><tr><td>",
          "</td></tr></table>",
          "&amp;",
          "&#x1F600;",
          "&#99999999;",
          "<!--",
          "-->",
          "<html>",
          "<head>",
          "<title>",
          "</title>",
          "<body>",
          "<br/>",
          "<img src=x>",
          "<article>",
          "<h1>",
          "<pre><code>",
          "<",
          ">",
          "\u0000",
        ),
        fc.string(),
      ),
      { maxLength: 30 },
    )
    .map((parts) => parts.join(""))

  test.prop([fc.string()])("never throws on an arbitrary string", (s) => {
    const r = htmlToMarkdown(s, "https://ex.example/")
    expect(typeof r.markdown).toBe("string")
    expect(typeof r.title).toBe("string")
  })
  test.prop([htmlish, fc.option(fc.string(), { nil: undefined })])(
    "never throws on arbitrary tag soup, with any base URL",
    (s, base) => {
      expect(typeof htmlToMarkdown(s, base).markdown).toBe("string")
      expect(typeof stripTags(s)).toBe("string")
    },
  )
})

describe("pagination", () => {
  it("breaks at paragraphs when it can", () => {
    const text = `${"a".repeat(80)}\n\n${"b".repeat(80)}\n\n${"c".repeat(30)}`
    expect(paginate(text, 100)).toEqual([`${"a".repeat(80)}\n\n`, `${"b".repeat(80)}\n\n`, "c".repeat(30)])
    expect(paginate("", 10)).toEqual([""])
  })

  test.prop([fc.string({ unit: "grapheme", maxLength: 500 }), fc.integer({ min: 1, max: 120 })])(
    "pages join back to the text, none is empty or over the size, no surrogate pair is split",
    (text, size) => {
      const pages = paginate(text, size)
      expect(pages.join("")).toBe(text)
      for (const page of pages) {
        expect(page.length).toBeLessThanOrEqual(size)
        if (text !== "") expect(page.length).toBeGreaterThan(0)
        if (size > 1) expect(/[\uD800-\uDBFF]$/.test(page)).toBe(false)
      }
    },
  )
})

describe("block list", () => {
  const list = defaultBlockList()

  it("matches host and subdomains, path prefixes at segment boundaries, globs, encoded paths", () => {
    expect(list.match("https://huggingface.co/datasets")).toBe("huggingface.co/datasets")
    expect(list.match("https://www.HuggingFace.co/datasets/cais/hle?x=1")).toBe("huggingface.co/datasets")
    expect(list.match("https://huggingface.co/%64atasets/x")).toBe("huggingface.co/datasets")
    expect(list.match("https://huggingface.co//datasets/x")).toBe("huggingface.co/datasets")
    expect(list.match("https://huggingface.co/datasetsfoo")).toBeUndefined()
    expect(list.match("https://huggingface.co/models/x")).toBeUndefined()
    expect(list.match("https://github.com/openai/simple-evals-fork")).toBeUndefined()
    expect(list.match("https://github.com/OpenAI/Simple-Evals/tree/main")).toBe(
      "github.com/openai/simple-evals",
    )
    expect(list.match("https://mirror.example/files/browse_comp_test_set.csv")).toBe(
      "*/*browse_comp_test_set*",
    )
    expect(list.match("https://example.com/?q=huggingface.co/datasets")).toBeUndefined()
    expect(list.match("not a url")).toBeUndefined()
  })

  it("rejects rules without a host, or with a query", () => {
    expect(error(compileBlockList(["/x"]))).toBe('block-list rule "/x" has no host (use "*" for any host)')
    expect(error(compileBlockList(["a.example/x?y"]))).toBe(
      'block-list rule "a.example/x?y" must be host[/path] without spaces, query or fragment',
    )
    expect(compileBlockList(["https://A.example/Path/"]).ok).toBe(true)
  })

  test.prop([fc.string(), fc.webUrl()])("never throws matching arbitrary strings and URLs", (s, url) => {
    expect(() => list.match(s)).not.toThrow()
    expect(() => list.match(url)).not.toThrow()
    expect(typeof compileBlockList([s]).ok).toBe("boolean")
  })
})
