/**
 * The `fetch_url` MCP server: one tool, `fetch_url`, taking `{url, purpose?, page?}` and returning
 * one page of the document's readable text ("Page i of n") with its metadata — the purpose echoed
 * back for the runtime's refinement — as text and as structured content. URLs on the answer-leak
 * block list are refused; URLs of the corpus (when given) are served from it without network, and
 * in offline mode nothing else is served. Converted documents are cached briefly so the following
 * pages of one document do not fetch it again. Every failure is a tool error (`isError: true`)
 * naming the URL and the reason.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import { type BlockList, compileBlockList, DEFAULT_BLOCK_LIST } from "../blockList/blockList.ts"
import type { Corpus } from "../corpus/corpus.ts"
import { decodeFetchUrlArgs } from "./args.ts"
import { FetchError, type FetchedDocument, fetchDocument } from "./fetchDocument.ts"
import { paginate } from "./paginate.ts"

export interface FetchUrlServerOptions {
  /** Documents served by URL without network (their `url` field). */
  readonly corpus?: Corpus
  /** Serve only corpus URLs; never touch the network (needs `corpus`). Default false. */
  readonly offline?: boolean
  /** Characters per page (default 10 000). */
  readonly pageSize?: number
  /** For the whole exchange including the body (default 30 000 ms). */
  readonly timeoutMs?: number
  /** Largest response body read (default 5 MiB). */
  readonly maxBytes?: number
  /** Default 5. */
  readonly maxRedirects?: number
  /** Answer-leak rules (default DEFAULT_BLOCK_LIST). */
  readonly blockList?: ReadonlyArray<string>
  readonly userAgent?: string
  readonly fetch?: typeof fetch
  /** Converted documents kept for later pages (default 32; 0 disables). */
  readonly cacheEntries?: number
  /** How long a cached document is reused (default 600 000 ms). */
  readonly cacheTtlMs?: number
  /** Clock for the cache (default Date.now). */
  readonly now?: () => number
  /** The MCP server name (default "rollout-fetch-url"). */
  readonly serverName?: string
}

export const DEFAULT_USER_AGENT = "rollout-fetch-url/0.1 (research agent tool)"

export interface FetchUrlTool {
  /** Runs one `fetch_url` call on raw arguments; errors come back as `isError` results. */
  readonly call: (args: unknown) => Promise<CallToolResult>
  readonly pageSize: number
}

const failure = (url: string, reason: string): CallToolResult => ({
  isError: true,
  content: [{ type: "text", text: `fetch_url failed for ${url}: ${reason}` }],
})

const positiveInt = (name: string, value: number | undefined, fallback: number, min = 1): number => {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v < min) {
    throw new Error(`fetch_url server: ${name} must be an integer ≥ ${min}, got ${v}`)
  }
  return v
}

/** The `fetch_url` tool without the MCP layer (the server wraps it); throws on unusable options. */
export const createFetchUrlTool = (options: FetchUrlServerOptions = {}): FetchUrlTool => {
  const offline = options.offline ?? false
  if (offline && options.corpus === undefined) {
    throw new Error("fetch_url server: offline mode needs a corpus (corpusPath)")
  }
  const compiled = compileBlockList(options.blockList ?? DEFAULT_BLOCK_LIST)
  if (!compiled.ok) throw new Error(`fetch_url server: blockList: ${compiled.error}`)
  const blockList: BlockList = compiled.value
  const pageSize = positiveInt("pageSize", options.pageSize, 10_000, 100)
  const fetchOptions = {
    timeoutMs: positiveInt("timeoutMs", options.timeoutMs, 30_000),
    maxBytes: positiveInt("maxBytes", options.maxBytes, 5 * 1024 * 1024),
    maxRedirects: positiveInt("maxRedirects", options.maxRedirects, 5, 0),
    userAgent: options.userAgent ?? DEFAULT_USER_AGENT,
    blockList,
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
  }
  const cacheEntries = positiveInt("cacheEntries", options.cacheEntries, 32, 0)
  const cacheTtlMs = positiveInt("cacheTtlMs", options.cacheTtlMs, 600_000, 0)
  const now = options.now ?? Date.now
  const cache = new Map<string, { readonly doc: FetchedDocument; readonly at: number }>()

  const fromCorpus = (url: string): FetchedDocument | undefined => {
    const doc = options.corpus?.byUrl(url)
    return doc === undefined
      ? undefined
      : {
          url,
          finalUrl: doc.url,
          contentType: "text/plain",
          title: doc.title,
          text: doc.text,
          source: "corpus",
        }
  }

  const load = async (url: string): Promise<FetchedDocument> => {
    const cached = cache.get(url)
    if (cached !== undefined && now() - cached.at <= cacheTtlMs) {
      cache.delete(url)
      cache.set(url, cached)
      return cached.doc
    }
    const doc = await fetchDocument(url, fetchOptions)
    if (cacheEntries > 0) {
      cache.delete(url)
      cache.set(url, { doc, at: now() })
      while (cache.size > cacheEntries) {
        const oldest = cache.keys().next().value
        if (oldest === undefined) break
        cache.delete(oldest)
      }
    }
    return doc
  }

  const call = async (input: unknown): Promise<CallToolResult> => {
    const decoded = decodeFetchUrlArgs(input)
    if (!decoded.ok) {
      const raw = typeof input === "object" && input !== null ? (input as { url?: unknown }).url : undefined
      return failure(typeof raw === "string" && raw.trim() !== "" ? raw.trim() : "(no url)", decoded.error)
    }
    const { url, page, purpose } = decoded.value
    const rule = blockList.match(url)
    if (rule !== undefined) {
      return failure(url, `refused by the answer-leak block list (rule ${rule})`)
    }
    let doc = fromCorpus(url)
    if (doc === undefined) {
      if (offline) return failure(url, "offline mode: the URL is not in the local corpus")
      try {
        doc = await load(url)
      } catch (error) {
        return failure(
          url,
          error instanceof FetchError ? error.reason : `unexpected error (${String(error)})`,
        )
      }
    }
    const pages = paginate(doc.text, pageSize)
    if (page > pages.length) {
      return failure(
        url,
        `page ${page} is out of range: the document has ${pages.length} page${pages.length === 1 ? "" : "s"}`,
      )
    }
    const content = pages[page - 1] ?? ""
    const header = [
      `URL: ${doc.finalUrl}`,
      ...(doc.title === "" ? [] : [`Title: ${doc.title}`]),
      ...(purpose === undefined ? [] : [`Purpose: ${purpose}`]),
      `Page ${page} of ${pages.length} (${doc.text.length} characters in all)`,
    ].join("\n")
    const footer =
      page < pages.length
        ? `\n\n[This was page ${page} of ${pages.length}; call fetch_url with page ${page + 1} for more.]`
        : ""
    return {
      content: [
        { type: "text", text: `${header}\n\n${content === "" ? "(empty document)" : content}${footer}` },
      ],
      structuredContent: {
        url,
        finalUrl: doc.finalUrl,
        title: doc.title,
        contentType: doc.contentType,
        source: doc.source,
        ...(purpose === undefined ? {} : { purpose }),
        page,
        pages: pages.length,
        totalChars: doc.text.length,
        content,
      },
    }
  }

  return { call, pageSize }
}

export const fetchUrlOutputSchema = z.object({
  url: z.string(),
  finalUrl: z.string(),
  title: z.string(),
  contentType: z.string(),
  source: z.enum(["network", "corpus"]),
  purpose: z.string().optional(),
  page: z.number().int(),
  pages: z.number().int(),
  totalChars: z.number().int(),
  content: z.string(),
})

export const FETCH_URL_TOOL_DESCRIPTION =
  "Fetch a web page or text document and return its readable content as Markdown, one page at a " +
  "time. Say what you are looking for in `purpose`; ask for later pages with `page`."

/** The MCP server with the `fetch_url` tool; throws on unusable options. */
export const createFetchUrlServer = (options: FetchUrlServerOptions = {}): McpServer => {
  const tool = createFetchUrlTool(options)
  const server = new McpServer({ name: options.serverName ?? "rollout-fetch-url", version: "0.1.0" })
  server.registerTool(
    "fetch_url",
    {
      description: FETCH_URL_TOOL_DESCRIPTION,
      inputSchema: {
        url: z.string().describe("The http(s) URL to read"),
        purpose: z.string().optional().describe("What you want to learn from the page"),
        page: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe(`Which page of the document (1-based, ${tool.pageSize} characters each; default 1)`),
      },
      outputSchema: fetchUrlOutputSchema,
      annotations: { readOnlyHint: true, openWorldHint: true },
    },
    (args) => tool.call(args),
  )
  return server
}
