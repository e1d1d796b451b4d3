/**
 * The `search` MCP server: one tool, `search`, taking `{query: string | string[], num_results?}`
 * and returning for each query the normalized hits (title, url, snippet) as text and as structured
 * content. Providers come from the options in order — named ones are built from API keys in the
 * environment (skipped when a key is missing) or given as objects — with failover and cool-down
 * (see failover.ts). Hits on the answer-leak block list are dropped and counted.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import { type BlockList, compileBlockList, DEFAULT_BLOCK_LIST } from "../blockList/blockList.ts"
import type { Corpus } from "../corpus/corpus.ts"
import { DEFAULT_SEARCH_LIMITS, decodeSearchArgs, type SearchLimits } from "./args.ts"
import { createFailover, type ProviderStatus } from "./failover.ts"
import { offlineProvider } from "./offline.ts"
import {
  bingProvider,
  googleProvider,
  jinaProvider,
  ONLINE_PROVIDERS,
  type OnlineProviderName,
  PROVIDER_ENV_KEYS,
  serperProvider,
} from "./online.ts"
import type { SearchHit, SearchProvider } from "./provider.ts"

export type SearchProviderName = OnlineProviderName | "offline"

export const SEARCH_PROVIDER_NAMES: ReadonlyArray<SearchProviderName> = [...ONLINE_PROVIDERS, "offline"]

export interface SearchServerOptions {
  /**
   * Providers in failover order: names (built from `env` keys, `corpus`, `endpoints`) or provider
   * objects. Default: every online provider whose keys are set, then `offline` when a corpus is given.
   */
  readonly providers?: ReadonlyArray<SearchProviderName | SearchProvider>
  /** Where API keys are read (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** The corpus of the `offline` provider. */
  readonly corpus?: Corpus
  /** Endpoint URL per online provider (default: the public API). */
  readonly endpoints?: Partial<Readonly<Record<OnlineProviderName, string>>>
  readonly fetch?: typeof fetch
  /** Results per query when the call does not say (default 5). */
  readonly defaultNumResults?: number
  /** Cap on num_results (default 20). */
  readonly maxNumResults?: number
  /** Queries per call (default 5). */
  readonly maxQueries?: number
  /** How long a failed provider is skipped (default 300 000 ms). */
  readonly cooldownMs?: number
  /** Per provider request (default 20 000 ms). */
  readonly timeoutMs?: number
  /** Clock for cool-downs (default Date.now). */
  readonly now?: () => number
  /** Answer-leak rules (default DEFAULT_BLOCK_LIST); hits matching one are dropped. */
  readonly blockList?: ReadonlyArray<string>
  /** The MCP server name (default "rollout-search"). */
  readonly serverName?: string
}

export interface ResolvedProviders {
  readonly providers: ReadonlyArray<SearchProvider>
  /** Named providers left out, with the reason (a missing key or corpus). */
  readonly skipped: ReadonlyArray<{ readonly name: SearchProviderName; readonly reason: string }>
}

const envValue = (env: Readonly<Record<string, string | undefined>>, key: string): string | undefined => {
  const v = env[key]?.trim()
  return v === undefined || v === "" ? undefined : v
}

/** Builds the provider list from the options (names → providers; missing keys → skipped). */
export const resolveSearchProviders = (options: SearchServerOptions): ResolvedProviders => {
  const env = options.env ?? process.env
  const order: ReadonlyArray<SearchProviderName | SearchProvider> = options.providers ?? [
    ...ONLINE_PROVIDERS.filter((name) =>
      PROVIDER_ENV_KEYS[name].every((k) => envValue(env, k) !== undefined),
    ),
    ...(options.corpus !== undefined ? (["offline"] as const) : []),
  ]
  const providers: SearchProvider[] = []
  const skipped: Array<{ name: SearchProviderName; reason: string }> = []
  const http = (name: OnlineProviderName) => ({
    ...(options.endpoints?.[name] !== undefined ? { endpoint: options.endpoints[name] } : {}),
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
  })
  for (const entry of order) {
    if (typeof entry !== "string") {
      providers.push(entry)
      continue
    }
    if (entry === "offline") {
      if (options.corpus === undefined) skipped.push({ name: entry, reason: "no corpus given" })
      else providers.push(offlineProvider(options.corpus))
      continue
    }
    const missing = PROVIDER_ENV_KEYS[entry].filter((k) => envValue(env, k) === undefined)
    if (missing.length > 0) {
      skipped.push({ name: entry, reason: `${missing.join(" and ")} not set` })
      continue
    }
    const key = (k: string) => envValue(env, k) ?? ""
    switch (entry) {
      case "serper":
        providers.push(serperProvider({ apiKey: key("SERPER_API_KEY"), ...http(entry) }))
        break
      case "google":
        providers.push(
          googleProvider({ apiKey: key("GOOGLE_API_KEY"), cseId: key("GOOGLE_CSE_ID"), ...http(entry) }),
        )
        break
      case "bing":
        providers.push(bingProvider({ apiKey: key("BING_API_KEY"), ...http(entry) }))
        break
      case "jina":
        providers.push(jinaProvider({ apiKey: key("JINA_API_KEY"), ...http(entry) }))
        break
    }
  }
  return { providers, skipped }
}

export interface QueryResult {
  readonly query: string
  readonly provider?: string
  readonly results: ReadonlyArray<SearchHit>
  /** Hits dropped by the answer-leak block list. */
  readonly blocked?: number
  /** Providers that failed before one answered. */
  readonly failures?: ReadonlyArray<string>
  readonly error?: string
}

export interface SearchTool {
  /** Runs one `search` call on raw arguments; errors come back as `isError` results. */
  readonly call: (args: unknown) => Promise<CallToolResult>
  readonly providers: ReadonlyArray<string>
  readonly limits: SearchLimits
  readonly skipped: ResolvedProviders["skipped"]
  readonly status: () => ReadonlyArray<ProviderStatus>
}

const formatQuery = (r: QueryResult): string => {
  const head = `## Search results for "${r.query}"${r.provider === undefined ? "" : ` (${r.provider})`}`
  if (r.error !== undefined) return `## Search failed for "${r.query}": ${r.error}`
  const lines = [head]
  if (r.results.length === 0) lines.push("No results.")
  r.results.forEach((hit, i) => {
    lines.push(`${i + 1}. ${hit.title}`, `   URL: ${hit.url}`)
    if (hit.snippet !== "") lines.push(`   ${hit.snippet}`)
  })
  if (r.blocked !== undefined && r.blocked > 0) {
    lines.push(`(${r.blocked} result${r.blocked === 1 ? "" : "s"} removed by the answer-leak block list)`)
  }
  return lines.join("\n")
}

const positive = (name: string, value: number | undefined, fallback: number): number => {
  const v = value ?? fallback
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`search server: ${name} must be a positive number, got ${v}`)
  return v
}

/** The `search` tool without the MCP layer (the server wraps it); throws on unusable options. */
export const createSearchTool = (options: SearchServerOptions = {}): SearchTool => {
  const resolved = resolveSearchProviders(options)
  if (resolved.providers.length === 0) {
    const why = resolved.skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")
    throw new Error(
      "search server: no search provider available" +
        (why === "" ? "" : ` (${why})`) +
        "; set SERPER_API_KEY, GOOGLE_API_KEY + GOOGLE_CSE_ID, BING_API_KEY or JINA_API_KEY, or give a corpus",
    )
  }
  const maxNumResults = Math.floor(
    positive("maxNumResults", options.maxNumResults, DEFAULT_SEARCH_LIMITS.maxNumResults),
  )
  const limits: SearchLimits = {
    defaultNumResults: Math.min(
      maxNumResults,
      Math.floor(
        positive("defaultNumResults", options.defaultNumResults, DEFAULT_SEARCH_LIMITS.defaultNumResults),
      ),
    ),
    maxNumResults,
    maxQueries: Math.floor(positive("maxQueries", options.maxQueries, DEFAULT_SEARCH_LIMITS.maxQueries)),
    maxQueryChars: DEFAULT_SEARCH_LIMITS.maxQueryChars,
  }
  const compiled = compileBlockList(options.blockList ?? DEFAULT_BLOCK_LIST)
  if (!compiled.ok) throw new Error(`search server: blockList: ${compiled.error}`)
  const blockList: BlockList = compiled.value
  const failover = createFailover(resolved.providers, {
    cooldownMs: options.cooldownMs ?? 300_000,
    timeoutMs: positive("timeoutMs", options.timeoutMs, 20_000),
    now: options.now ?? Date.now,
  })

  const runQuery = async (query: string, n: number): Promise<QueryResult> => {
    const outcome = await failover.search(query, n)
    if (!outcome.ok) {
      return {
        query,
        results: [],
        error: outcome.error,
        ...(outcome.failures.length > 0 ? { failures: outcome.failures } : {}),
      }
    }
    const seen = new Set<string>()
    let blocked = 0
    const results: SearchHit[] = []
    for (const hit of outcome.hits) {
      if (seen.has(hit.url)) continue
      seen.add(hit.url)
      if (blockList.match(hit.url) !== undefined) blocked += 1
      else results.push(hit)
    }
    return {
      query,
      provider: outcome.provider,
      results: results.slice(0, n),
      ...(blocked > 0 ? { blocked } : {}),
      ...(outcome.failures.length > 0 ? { failures: outcome.failures } : {}),
    }
  }

  const call = async (args: unknown): Promise<CallToolResult> => {
    const decoded = decodeSearchArgs(args, limits)
    if (!decoded.ok) return { isError: true, content: [{ type: "text", text: `search: ${decoded.error}` }] }
    const { queries, numResults } = decoded.value
    const searches = await Promise.all(queries.map((q) => runQuery(q, numResults)))
    const text = searches.map(formatQuery).join("\n\n")
    if (searches.every((s) => s.error !== undefined)) {
      return { isError: true, content: [{ type: "text", text }] }
    }
    return { content: [{ type: "text", text }], structuredContent: { searches } }
  }

  return {
    call,
    limits,
    providers: resolved.providers.map((p) => p.name),
    skipped: resolved.skipped,
    status: failover.status,
  }
}

const hitSchema = z.object({ title: z.string(), url: z.string(), snippet: z.string() })

export const searchOutputSchema = z.object({
  searches: z.array(
    z.object({
      query: z.string(),
      provider: z.string().optional(),
      results: z.array(hitSchema),
      blocked: z.number().int().optional(),
      failures: z.array(z.string()).optional(),
      error: z.string().optional(),
    }),
  ),
})

export const SEARCH_TOOL_DESCRIPTION =
  "Search the web. Give one query or a list of queries; for each, returns the top results " +
  "(title, URL and snippet). Read a result in full with fetch_url."

/** The MCP server with the `search` tool; throws when no provider is available or options are invalid. */
export const createSearchServer = (options: SearchServerOptions = {}): McpServer => {
  const tool = createSearchTool(options)
  const server = new McpServer({ name: options.serverName ?? "rollout-search", version: "0.1.0" })
  server.registerTool(
    "search",
    {
      description: SEARCH_TOOL_DESCRIPTION,
      inputSchema: {
        query: z
          .union([z.string(), z.array(z.string())])
          .describe("A search query, or a list of queries searched separately"),
        num_results: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe(
            `Results per query (default ${tool.limits.defaultNumResults}, capped at ${tool.limits.maxNumResults})`,
          ),
      },
      outputSchema: searchOutputSchema,
      annotations: { readOnlyHint: true, openWorldHint: true },
    },
    (args) => tool.call(args),
  )
  return server
}
