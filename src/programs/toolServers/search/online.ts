/**
 * The online search providers — Serper, Google Programmable Search (CSE), Bing Web Search and Jina
 * Search — as request/response mappings over `fetch`. Each endpoint is injectable so tests point
 * them at a local server imitating the API's response shape. Keys travel in headers where the API
 * allows (Google CSE takes it in the query string); errors never carry a key or a request URL.
 */
import { normalizeHit, ProviderError, redact, type SearchHit, type SearchProvider } from "./provider.ts"

export type OnlineProviderName = "serper" | "google" | "bing" | "jina"

export const ONLINE_PROVIDERS: ReadonlyArray<OnlineProviderName> = ["serper", "google", "bing", "jina"]

export const DEFAULT_ENDPOINTS: Readonly<Record<OnlineProviderName, string>> = {
  serper: "https://google.serper.dev/search",
  google: "https://www.googleapis.com/customsearch/v1",
  bing: "https://api.bing.microsoft.com/v7.0/search",
  jina: "https://s.jina.ai/",
}

/** The environment variables each online provider needs. */
export const PROVIDER_ENV_KEYS: Readonly<Record<OnlineProviderName, ReadonlyArray<string>>> = {
  serper: ["SERPER_API_KEY"],
  google: ["GOOGLE_API_KEY", "GOOGLE_CSE_ID"],
  bing: ["BING_API_KEY"],
  jina: ["JINA_API_KEY"],
}

export interface HttpProviderConfig {
  readonly apiKey: string
  /** The full endpoint URL (default: the public API); tests use a local server. */
  readonly endpoint?: string
  readonly fetch?: typeof fetch
}

const errorCode = (error: unknown): string => {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  if (cause && typeof cause.code === "string") return cause.code
  if (cause && typeof cause.message === "string") return cause.message
  return error instanceof Error ? error.name : "unknown error"
}

/** The message of an API's error body (`{error: {message}}`, `{message}`…) or its first characters. */
const errorExcerpt = (body: string): string => {
  let text = body
  try {
    const json: unknown = JSON.parse(body)
    if (typeof json === "object" && json !== null) {
      const j = json as Record<string, unknown>
      const nested =
        typeof j.error === "object" && j.error !== null ? (j.error as Record<string, unknown>) : {}
      const message = nested.message ?? j.readableMessage ?? j.message ?? j.error
      if (typeof message === "string") text = message
    }
  } catch {
    // not JSON: keep the raw text
  }
  const collapsed = text.replace(/\s+/g, " ").trim()
  return collapsed.length > 200 ? `${collapsed.slice(0, 197)}...` : collapsed
}

const requestJson = async (
  provider: string,
  secrets: ReadonlyArray<string>,
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  signal: AbortSignal,
): Promise<Record<string, unknown>> => {
  let response: Response
  let body: string
  try {
    response = await fetchFn(url, { ...init, signal, redirect: "follow" })
    body = await response.text()
  } catch (error) {
    if (signal.aborted) throw new ProviderError(provider, "request aborted")
    throw new ProviderError(provider, `request failed (${redact(errorCode(error), secrets)})`)
  }
  if (!response.ok) {
    const excerpt = redact(errorExcerpt(body), secrets)
    throw new ProviderError(provider, `HTTP ${response.status}${excerpt === "" ? "" : `: ${excerpt}`}`)
  }
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    throw new ProviderError(provider, "response is not JSON")
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ProviderError(provider, "unexpected response shape (not a JSON object)")
  }
  return json as Record<string, unknown>
}

const records = (u: unknown): ReadonlyArray<Record<string, unknown>> =>
  Array.isArray(u)
    ? u.filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x))
    : []

const hits = (items: ReadonlyArray<SearchHit | undefined>, n: number): ReadonlyArray<SearchHit> =>
  items.filter((h): h is SearchHit => h !== undefined).slice(0, n)

/** Serper: POST {q, num} with `X-API-KEY`; results in `organic[]` as {title, link, snippet}. */
export const serperProvider = (config: HttpProviderConfig): SearchProvider => {
  const secrets = [config.apiKey]
  const fetchFn = config.fetch ?? fetch
  return {
    name: "serper",
    secrets,
    search: async (query, n, signal) => {
      const json = await requestJson(
        "serper",
        secrets,
        fetchFn,
        config.endpoint ?? DEFAULT_ENDPOINTS.serper,
        {
          method: "POST",
          headers: { "X-API-KEY": config.apiKey, "Content-Type": "application/json" },
          body: JSON.stringify({ q: query, num: n }),
        },
        signal,
      )
      return hits(
        records(json.organic).map((r) => normalizeHit(r.title, r.link, r.snippet)),
        n,
      )
    },
  }
}

/** Google CSE: GET ?key&cx&q&num (≤ 10); results in `items[]` as {title, link, snippet}. */
export const googleProvider = (config: HttpProviderConfig & { readonly cseId: string }): SearchProvider => {
  const secrets = [config.apiKey, config.cseId]
  const fetchFn = config.fetch ?? fetch
  return {
    name: "google",
    secrets,
    search: async (query, n, signal) => {
      const url = new URL(config.endpoint ?? DEFAULT_ENDPOINTS.google)
      url.searchParams.set("key", config.apiKey)
      url.searchParams.set("cx", config.cseId)
      url.searchParams.set("q", query)
      url.searchParams.set("num", String(Math.min(n, 10)))
      const json = await requestJson("google", secrets, fetchFn, url.href, { method: "GET" }, signal)
      return hits(
        records(json.items).map((r) => normalizeHit(r.title, r.link, r.snippet)),
        n,
      )
    },
  }
}

/** Bing Web Search v7: GET ?q&count with `Ocp-Apim-Subscription-Key`; `webPages.value[]` {name, url, snippet}. */
export const bingProvider = (config: HttpProviderConfig): SearchProvider => {
  const secrets = [config.apiKey]
  const fetchFn = config.fetch ?? fetch
  return {
    name: "bing",
    secrets,
    search: async (query, n, signal) => {
      const url = new URL(config.endpoint ?? DEFAULT_ENDPOINTS.bing)
      url.searchParams.set("q", query)
      url.searchParams.set("count", String(Math.min(n, 50)))
      url.searchParams.set("textDecorations", "false")
      url.searchParams.set("textFormat", "Raw")
      const json = await requestJson(
        "bing",
        secrets,
        fetchFn,
        url.href,
        { method: "GET", headers: { "Ocp-Apim-Subscription-Key": config.apiKey } },
        signal,
      )
      const webPages = json.webPages
      const value =
        typeof webPages === "object" && webPages !== null ? (webPages as Record<string, unknown>).value : []
      return hits(
        records(value).map((r) => normalizeHit(r.name, r.url, r.snippet)),
        n,
      )
    },
  }
}

/** Jina Search: GET ?q with a Bearer key and `Accept: application/json`; `data[]` {title, url, description}. */
export const jinaProvider = (config: HttpProviderConfig): SearchProvider => {
  const secrets = [config.apiKey]
  const fetchFn = config.fetch ?? fetch
  return {
    name: "jina",
    secrets,
    search: async (query, n, signal) => {
      const url = new URL(config.endpoint ?? DEFAULT_ENDPOINTS.jina)
      url.searchParams.set("q", query)
      const json = await requestJson(
        "jina",
        secrets,
        fetchFn,
        url.href,
        {
          method: "GET",
          headers: {
            Authorization: `Bearer ${config.apiKey}`,
            Accept: "application/json",
            "X-Respond-With": "no-content",
          },
        },
        signal,
      )
      return hits(
        records(json.data).map((r) =>
          normalizeHit(r.title, r.url, typeof r.description === "string" ? r.description : r.content),
        ),
        n,
      )
    },
  }
}
