/**
 * Running the deep-research tool servers (`search`, `fetch_url`) as MCP servers on stdio, and
 * their configuration: a plain JSON object (from a file or a flag) is decoded with errors naming the
 * field, then turned into server options by loading the corpus (relative to a base directory) and
 * reading API keys from the environment — keys never appear in configuration.
 *
 * search:    { providers?: ["serper"|"google"|"bing"|"jina"|"offline", …], corpusPath?, endpoints?,
 *              numResults?, maxNumResults?, maxQueries?, cooldownMs?, timeoutMs?, blockList?,
 *              extraBlockList? }
 * fetch_url: { offline?, corpusPath?, pageSize?, timeoutMs?, maxBytes?, maxRedirects?, blockList?,
 *              extraBlockList?, userAgent?, cacheEntries? }
 * `blockList` replaces the default answer-leak list; `extraBlockList` adds to it.
 */
import * as path from "node:path"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { compileBlockList, DEFAULT_BLOCK_LIST } from "./blockList/blockList.ts"
import { type Corpus, loadCorpus } from "./corpus/corpus.ts"
import {
  type Decoded,
  decodeBoolean,
  decodeInteger,
  decodeNonEmptyString,
  decodeStringArray,
  describe,
  fail,
  isRecord,
  ok,
  rejectUnknownFields,
} from "./decoding/decode.ts"
import { createFetchUrlServer, type FetchUrlServerOptions } from "./fetchUrl/server.ts"
import { ONLINE_PROVIDERS, type OnlineProviderName } from "./search/online.ts"
import {
  createSearchServer,
  resolveSearchProviders,
  SEARCH_PROVIDER_NAMES,
  type SearchProviderName,
  type SearchServerOptions,
} from "./search/server.ts"

export type ToolServerName = "search" | "fetch_url"

export const TOOL_SERVER_NAMES: ReadonlyArray<ToolServerName> = ["search", "fetch_url"]

export interface SearchServerConfig {
  readonly providers?: ReadonlyArray<SearchProviderName>
  readonly corpusPath?: string
  readonly endpoints?: Partial<Readonly<Record<OnlineProviderName, string>>>
  readonly numResults?: number
  readonly maxNumResults?: number
  readonly maxQueries?: number
  readonly cooldownMs?: number
  readonly timeoutMs?: number
  readonly blockList?: ReadonlyArray<string>
  readonly extraBlockList?: ReadonlyArray<string>
}

export interface FetchUrlServerConfig {
  readonly offline?: boolean
  readonly corpusPath?: string
  readonly pageSize?: number
  readonly timeoutMs?: number
  readonly maxBytes?: number
  readonly maxRedirects?: number
  readonly blockList?: ReadonlyArray<string>
  readonly extraBlockList?: ReadonlyArray<string>
  readonly userAgent?: string
  readonly cacheEntries?: number
}

export type ToolServerConfig =
  | { readonly name: "search"; readonly config: SearchServerConfig }
  | { readonly name: "fetch_url"; readonly config: FetchUrlServerConfig }

export interface ToolServerOptionsByName {
  readonly search: SearchServerOptions
  readonly fetch_url: FetchUrlServerOptions
}

export type ToolServerOptions =
  | { readonly name: "search"; readonly options: SearchServerOptions }
  | { readonly name: "fetch_url"; readonly options: FetchUrlServerOptions }

const MAX_MS = 24 * 3600 * 1000

type Field<A> = (where: string, u: unknown) => Decoded<A>

const integer =
  (min: number, max: number): Field<number> =>
  (where, u) =>
    decodeInteger(where, u, { min, max })

const nonEmptyString: Field<string> = (where, u) => decodeNonEmptyString(where, u)

const blockRules: Field<ReadonlyArray<string>> = (where, u) => {
  const list = decodeStringArray(where, u)
  if (!list.ok) return list
  for (const [i, rule] of list.value.entries()) {
    const compiled = compileBlockList([rule])
    if (!compiled.ok) return fail(`${where}[${i}]: ${compiled.error}`)
  }
  return list
}

const providerList: Field<ReadonlyArray<SearchProviderName>> = (where, u) => {
  const list = decodeStringArray(where, u)
  if (!list.ok) return list
  const out: SearchProviderName[] = []
  for (const [i, name] of list.value.entries()) {
    const known = SEARCH_PROVIDER_NAMES.find((p) => p === name.trim().toLowerCase())
    if (known === undefined) {
      return fail(
        `${where}[${i}]: unknown provider ${describe(name)}; known: ${SEARCH_PROVIDER_NAMES.join(", ")}`,
      )
    }
    if (out.includes(known)) return fail(`${where}[${i}]: provider "${known}" is listed twice`)
    out.push(known)
  }
  if (out.length === 0) return fail(`${where} must list at least one provider`)
  return ok(out)
}

const endpointMap: Field<Partial<Record<OnlineProviderName, string>>> = (where, u) => {
  if (!isRecord(u)) return fail(`${where} must be an object {provider: url}, got ${describe(u)}`)
  const out: Partial<Record<OnlineProviderName, string>> = {}
  for (const [key, value] of Object.entries(u)) {
    const name = ONLINE_PROVIDERS.find((p) => p === key)
    if (name === undefined)
      return fail(`${where}.${key}: unknown provider; known: ${ONLINE_PROVIDERS.join(", ")}`)
    if (typeof value !== "string") return fail(`${where}.${key} must be a URL string, got ${describe(value)}`)
    try {
      const url = new URL(value)
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error()
    } catch {
      return fail(`${where}.${key} must be an http(s) URL, got ${describe(value)}`)
    }
    out[name] = value
  }
  return ok(out)
}

/**
 * Decodes the fields of `record` by `spec` into an object with only the fields present;
 * the first failure wins, named `<where>.<field>`.
 */
const decodeFields = <S extends Record<string, Field<unknown>>>(
  where: string,
  record: Record<string, unknown>,
  spec: S,
): Decoded<{ -readonly [K in keyof S]?: S[K] extends Field<infer A> ? A : never }> => {
  const unknownField = rejectUnknownFields(where, record, Object.keys(spec))
  if (!unknownField.ok) return unknownField
  const out: Record<string, unknown> = {}
  for (const [key, decode] of Object.entries(spec)) {
    const value = record[key]
    if (value === undefined || value === null) continue
    const decoded = decode(`${where}.${key}`, value)
    if (!decoded.ok) return decoded
    out[key] = decoded.value
  }
  return ok(out as { -readonly [K in keyof S]?: S[K] extends Field<infer A> ? A : never })
}

export const decodeSearchServerConfig = (json: unknown): Decoded<SearchServerConfig> => {
  const record = json === undefined || json === null ? {} : json
  if (!isRecord(record)) return fail(`search options must be a JSON object, got ${describe(record)}`)
  const decoded = decodeFields("search options", record, {
    providers: providerList,
    corpusPath: nonEmptyString,
    endpoints: endpointMap,
    numResults: integer(1, 100),
    maxNumResults: integer(1, 100),
    maxQueries: integer(1, 50),
    cooldownMs: integer(0, MAX_MS),
    timeoutMs: integer(1, MAX_MS),
    blockList: blockRules,
    extraBlockList: blockRules,
  })
  if (!decoded.ok) return decoded
  const c = decoded.value
  if (c.providers?.includes("offline") && c.corpusPath === undefined) {
    return fail(`search options.providers: "offline" needs search options.corpusPath`)
  }
  if (c.numResults !== undefined && c.maxNumResults !== undefined && c.numResults > c.maxNumResults) {
    return fail(
      `search options.numResults (${c.numResults}) exceeds search options.maxNumResults (${c.maxNumResults})`,
    )
  }
  return ok(c)
}

export const decodeFetchUrlServerConfig = (json: unknown): Decoded<FetchUrlServerConfig> => {
  const record = json === undefined || json === null ? {} : json
  if (!isRecord(record)) return fail(`fetch_url options must be a JSON object, got ${describe(record)}`)
  const decoded = decodeFields("fetch_url options", record, {
    offline: (where, u) => decodeBoolean(where, u),
    corpusPath: nonEmptyString,
    pageSize: integer(100, 10_000_000),
    timeoutMs: integer(1, MAX_MS),
    maxBytes: integer(1, 1024 * 1024 * 1024),
    maxRedirects: integer(0, 50),
    blockList: blockRules,
    extraBlockList: blockRules,
    userAgent: nonEmptyString,
    cacheEntries: integer(0, 10_000),
  })
  if (!decoded.ok) return decoded
  if (decoded.value.offline === true && decoded.value.corpusPath === undefined) {
    return fail("fetch_url options.offline: offline mode needs fetch_url options.corpusPath")
  }
  return decoded
}

/** Decodes a server name and its JSON options (undefined or null means all defaults). */
export const decodeToolServerConfig = (name: unknown, json: unknown): Decoded<ToolServerConfig> => {
  if (name === "search") {
    const config = decodeSearchServerConfig(json)
    return config.ok ? ok({ name, config: config.value }) : config
  }
  if (name === "fetch_url") {
    const config = decodeFetchUrlServerConfig(json)
    return config.ok ? ok({ name, config: config.value }) : config
  }
  return fail(`unknown tool server ${describe(name)}; known: ${TOOL_SERVER_NAMES.join(", ")}`)
}

export interface ToolServerContext {
  /** Where API keys are read (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Relative corpus paths resolve against it (default the working directory). */
  readonly baseDir?: string
}

const blockListOf = (config: {
  readonly blockList?: ReadonlyArray<string>
  readonly extraBlockList?: ReadonlyArray<string>
}): ReadonlyArray<string> => [...(config.blockList ?? DEFAULT_BLOCK_LIST), ...(config.extraBlockList ?? [])]

/** The configured corpus, if any, its path resolved against the context's base directory. */
const corpusOf = async (
  corpusPath: string | undefined,
  context: ToolServerContext,
): Promise<Corpus | undefined> =>
  corpusPath === undefined
    ? undefined
    : loadCorpus(path.resolve(context.baseDir ?? process.cwd(), corpusPath))

/** The search server's options from its configuration, the corpus it names and the key environment. */
const searchServerOptions = (
  c: SearchServerConfig,
  corpus: Corpus | undefined,
  context: ToolServerContext,
): SearchServerOptions => ({
  blockList: blockListOf(c),
  ...(c.providers !== undefined ? { providers: c.providers } : {}),
  ...(corpus !== undefined ? { corpus } : {}),
  ...(context.env !== undefined ? { env: context.env } : {}),
  ...(c.endpoints !== undefined ? { endpoints: c.endpoints } : {}),
  ...(c.numResults !== undefined ? { defaultNumResults: c.numResults } : {}),
  ...(c.maxNumResults !== undefined ? { maxNumResults: c.maxNumResults } : {}),
  ...(c.maxQueries !== undefined ? { maxQueries: c.maxQueries } : {}),
  ...(c.cooldownMs !== undefined ? { cooldownMs: c.cooldownMs } : {}),
  ...(c.timeoutMs !== undefined ? { timeoutMs: c.timeoutMs } : {}),
})

/** The fetch_url server's options from its configuration and the corpus it names. */
const fetchUrlServerOptions = (
  c: FetchUrlServerConfig,
  corpus: Corpus | undefined,
): FetchUrlServerOptions => ({
  blockList: blockListOf(c),
  ...(corpus !== undefined ? { corpus } : {}),
  ...(c.offline !== undefined ? { offline: c.offline } : {}),
  ...(c.pageSize !== undefined ? { pageSize: c.pageSize } : {}),
  ...(c.timeoutMs !== undefined ? { timeoutMs: c.timeoutMs } : {}),
  ...(c.maxBytes !== undefined ? { maxBytes: c.maxBytes } : {}),
  ...(c.maxRedirects !== undefined ? { maxRedirects: c.maxRedirects } : {}),
  ...(c.userAgent !== undefined ? { userAgent: c.userAgent } : {}),
  ...(c.cacheEntries !== undefined ? { cacheEntries: c.cacheEntries } : {}),
})

/** Server options from a decoded configuration: loads the corpus; rejects naming the corpus path. */
export const loadToolServerOptions = async (
  config: ToolServerConfig,
  context: ToolServerContext = {},
): Promise<ToolServerOptions> => {
  const corpus = await corpusOf(config.config.corpusPath, context)
  return config.name === "search"
    ? { name: "search", options: searchServerOptions(config.config, corpus, context) }
    : { name: "fetch_url", options: fetchUrlServerOptions(config.config, corpus) }
}

/** The MCP server for a name (throws when the options are unusable, e.g. no search provider). */
export const createToolServer = (server: ToolServerOptions): McpServer =>
  server.name === "search" ? createSearchServer(server.options) : createFetchUrlServer(server.options)

export interface RunningToolServer {
  readonly server: McpServer
  /** Closes the server and its transport (also done when stdin ends). */
  readonly close: () => Promise<void>
}

/** Connects the named server to this process's stdin/stdout; resolves once it is listening. */
export const serveStdio = async <N extends ToolServerName>(
  name: N,
  options: ToolServerOptionsByName[N],
): Promise<RunningToolServer> => {
  const server = createToolServer({ name, options } as ToolServerOptions)
  const transport = new StdioServerTransport()
  await server.connect(transport)
  return { server, close: closeAtStdinEnd(server) }
}

/** Closes `server` when stdin ends; returns the same close for the caller, effective once. */
const closeAtStdinEnd = (server: McpServer): (() => Promise<void>) => {
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    process.stdin.off("end", onEnd)
    await server.close()
  }
  const onEnd = () => {
    void close()
  }
  process.stdin.on("end", onEnd)
  return close
}

/** What the ready line says about a server: the search providers used and skipped, or fetch_url's mode. */
const readyDetail = (loaded: ToolServerOptions): string => {
  if (loaded.name === "search") {
    const resolved = resolveSearchProviders(loaded.options)
    const skipped = resolved.skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")
    return (
      `providers ${resolved.providers.map((p) => p.name).join(", ") || "(none)"}` +
      (skipped === "" ? "" : ` (skipped ${skipped})`)
    )
  }
  return loaded.options.offline === true ? "offline (corpus only)" : "online"
}

/**
 * What `rollout mcp-server <name>` does: decode the JSON options, load them, serve on stdio and
 * write one ready line (providers used and skipped) to stderr. Rejects with an Error whose message
 * names the field, the corpus path or the missing provider keys.
 */
export const serveStdioFromConfig = async (
  name: unknown,
  json: unknown,
  context: ToolServerContext & { readonly log?: (line: string) => void } = {},
): Promise<RunningToolServer> => {
  const log = context.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const config = decodeToolServerConfig(name, json)
  if (!config.ok) throw new Error(config.error)
  const loaded = await loadToolServerOptions(config.value, context)
  const detail = readyDetail(loaded)
  const running =
    loaded.name === "search"
      ? await serveStdio("search", loaded.options)
      : await serveStdio("fetch_url", loaded.options)
  log(`${loaded.name} MCP server ready on stdio: ${detail}`)
  return running
}
