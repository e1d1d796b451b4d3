/**
 * Decoding of the `search` tool's arguments: `{query: string | string[], num_results?: number}`.
 * Total (never throws): a JSON or JSON5 string is parsed first; queries are trimmed, empty ones
 * dropped and duplicates removed; num_results is capped to the server's maximum.
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

export interface SearchLimits {
  readonly defaultNumResults: number
  readonly maxNumResults: number
  readonly maxQueries: number
  readonly maxQueryChars: number
}

export const DEFAULT_SEARCH_LIMITS: SearchLimits = {
  defaultNumResults: 5,
  maxNumResults: 20,
  maxQueries: 5,
  maxQueryChars: 1000,
}

export interface SearchArgs {
  readonly queries: ReadonlyArray<string>
  readonly numResults: number
}

export const decodeSearchArgs = (
  input: unknown,
  limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
): Decoded<SearchArgs> => {
  const args = parseLenient(input)
  if (!isRecord(args))
    return fail(`search arguments must be an object {query, num_results?}, got ${describe(args)}`)
  const raw = args.query
  const list = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw : undefined
  if (list === undefined) {
    return fail(`query must be a string or an array of strings, got ${describe(raw)}`)
  }
  const queries: string[] = []
  for (const [i, q] of list.entries()) {
    if (typeof q !== "string") return fail(`query[${i}] must be a string, got ${describe(q)}`)
    const trimmed = q.replace(/\s+/g, " ").trim()
    if (trimmed === "" || queries.includes(trimmed)) continue
    if (trimmed.length > limits.maxQueryChars) {
      return fail(`query is too long (${trimmed.length} characters; at most ${limits.maxQueryChars})`)
    }
    queries.push(trimmed)
  }
  if (queries.length === 0) return fail("query must contain at least one non-empty search query")
  if (queries.length > limits.maxQueries) {
    return fail(`at most ${limits.maxQueries} queries per call, got ${queries.length}`)
  }
  if (args.num_results === undefined || args.num_results === null) {
    return ok({ queries, numResults: limits.defaultNumResults })
  }
  const n = decodeInteger("num_results", args.num_results, { min: 1, max: Number.MAX_SAFE_INTEGER })
  if (!n.ok) return n
  return ok({ queries, numResults: Math.min(n.value, limits.maxNumResults) })
}
