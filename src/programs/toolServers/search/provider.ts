/**
 * What a search provider is to the search server: a name and one query → normalized hits call
 * that honours an abort signal. Provider failures are `ProviderError`s whose message is already
 * safe to show (no API key, no request URL carrying one).
 */

/** One normalized search result. */
export interface SearchHit {
  readonly title: string
  readonly url: string
  readonly snippet: string
}

export interface SearchProvider {
  /** Shown in results and errors: "serper", "google", "bing", "jina", "offline" or a custom name. */
  readonly name: string
  readonly search: (
    query: string,
    numResults: number,
    signal: AbortSignal,
  ) => Promise<ReadonlyArray<SearchHit>>
  /** Strings that must never appear in results or errors (API keys); redacted if they do. */
  readonly secrets?: ReadonlyArray<string>
}

export class ProviderError extends Error {
  constructor(
    readonly provider: string,
    message: string,
  ) {
    super(`${provider}: ${message}`)
    this.name = "ProviderError"
  }
}

/** Replaces every occurrence of each secret (of 4+ characters) by `[redacted]`. */
export const redact = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length < 4) continue
    out = out.split(secret).join("[redacted]")
    const encoded = encodeURIComponent(secret)
    if (encoded !== secret) out = out.split(encoded).join("[redacted]")
  }
  return out
}

const collapse = (s: string): string => s.replace(/\s+/g, " ").trim()

/** Title and snippet with whitespace collapsed and the snippet capped; hits without a URL dropped. */
export const normalizeHit = (title: unknown, url: unknown, snippet: unknown): SearchHit | undefined => {
  if (typeof url !== "string" || url.trim() === "") return undefined
  const t = typeof title === "string" ? collapse(title) : ""
  const s = typeof snippet === "string" ? collapse(snippet) : ""
  return {
    title: t === "" ? url.trim() : t,
    url: url.trim(),
    snippet: s.length > 500 ? `${s.slice(0, 497)}...` : s,
  }
}
