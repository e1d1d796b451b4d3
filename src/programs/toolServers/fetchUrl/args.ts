/**
 * Decoding of the `fetch_url` tool's arguments: `{url, purpose?, page?}`. Total (never throws): a
 * JSON or JSON5 string is parsed first; a URL without a scheme gets `https://`; only http(s) URLs
 * pass; page is 1-based (numeric strings accepted).
 */
import {
  type Decoded,
  decodeInteger,
  describe,
  fail,
  isRecord,
  ok,
  parseLenient,
} from "../decoding/decode.ts"

export interface FetchUrlArgs {
  readonly url: string
  readonly purpose?: string
  readonly page: number
}

/** An absolute http(s) URL from what a model wrote (`example.com/x` becomes `https://example.com/x`). */
export const decodeHttpUrl = (field: string, u: unknown): Decoded<string> => {
  if (typeof u !== "string" || u.trim() === "")
    return fail(`${field} must be a non-empty string, got ${describe(u)}`)
  const raw = u.trim()
  const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(raw) ? raw : `https://${raw.replace(/^\/\//, "")}`
  let parsed: URL
  try {
    parsed = new URL(withScheme)
  } catch {
    return fail(`${field} is not a valid URL: ${describe(raw)}`)
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return fail(`${field} must be an http or https URL, got a ${parsed.protocol} URL`)
  }
  if (parsed.hostname === "") return fail(`${field} has no host: ${describe(raw)}`)
  return ok(parsed.href)
}

export const decodeFetchUrlArgs = (input: unknown): Decoded<FetchUrlArgs> => {
  const args = parseLenient(input)
  if (!isRecord(args))
    return fail(`fetch_url arguments must be an object {url, purpose?, page?}, got ${describe(args)}`)
  const url = decodeHttpUrl("url", args.url)
  if (!url.ok) return url
  let purpose: string | undefined
  if (args.purpose !== undefined && args.purpose !== null) {
    if (typeof args.purpose !== "string")
      return fail(`purpose must be a string, got ${describe(args.purpose)}`)
    const trimmed = args.purpose.trim()
    if (trimmed !== "") purpose = trimmed
  }
  let page = 1
  if (args.page !== undefined && args.page !== null) {
    const p = decodeInteger("page", args.page, { min: 1, max: Number.MAX_SAFE_INTEGER })
    if (!p.ok) return p
    page = p.value
  }
  return ok({ url: url.value, page, ...(purpose === undefined ? {} : { purpose }) })
}
