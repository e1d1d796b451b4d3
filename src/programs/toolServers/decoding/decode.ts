/**
 * Small total decoders shared by the tool servers (search, fetch_url), their corpus, block list and
 * option decoder: each takes an unknown value and returns a result naming the offending field,
 * never throwing; and the lenient parse of a tool's arguments as a model wrote them.
 */
import JSON5 from "json5"

export type Decoded<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly error: string }

export const ok = <A>(value: A): Decoded<A> => ({ ok: true, value })
export const fail = <A = never>(error: string): Decoded<A> => ({ ok: false, error })

export const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** A short description of a value for error messages (never the value itself when it is long). */
export const describe = (u: unknown): string => {
  if (u === null) return "null"
  if (Array.isArray(u)) return "an array"
  switch (typeof u) {
    case "string":
      return u.length <= 40 ? JSON.stringify(u) : `a string of ${u.length} characters`
    case "number":
      return Number.isFinite(u) ? String(u) : "a non-finite number"
    case "object":
      return "an object"
    default:
      return typeof u
  }
}

/** An integer within [min, max]; numeric strings are accepted (models write "5"). */
export const decodeInteger = (
  field: string,
  u: unknown,
  bounds: { readonly min: number; readonly max: number },
): Decoded<number> => {
  const n = typeof u === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(u) ? Number(u) : u
  if (typeof n !== "number" || !Number.isFinite(n) || !Number.isInteger(n)) {
    return fail(`${field} must be an integer, got ${describe(u)}`)
  }
  if (n < bounds.min || n > bounds.max) {
    return fail(
      bounds.max === Number.MAX_SAFE_INTEGER
        ? `${field} must be at least ${bounds.min}, got ${n}`
        : `${field} must be between ${bounds.min} and ${bounds.max}, got ${n}`,
    )
  }
  return ok(n)
}

export const decodeString = (field: string, u: unknown): Decoded<string> =>
  typeof u === "string" ? ok(u) : fail(`${field} must be a string, got ${describe(u)}`)

export const decodeNonEmptyString = (field: string, u: unknown): Decoded<string> =>
  typeof u === "string" && u.trim() !== ""
    ? ok(u.trim())
    : fail(`${field} must be a non-empty string, got ${describe(u)}`)

export const decodeBoolean = (field: string, u: unknown): Decoded<boolean> =>
  typeof u === "boolean" ? ok(u) : fail(`${field} must be true or false, got ${describe(u)}`)

export const decodeStringArray = (field: string, u: unknown): Decoded<ReadonlyArray<string>> => {
  if (!Array.isArray(u)) return fail(`${field} must be an array of strings, got ${describe(u)}`)
  const out: string[] = []
  for (const [i, item] of u.entries()) {
    if (typeof item !== "string") return fail(`${field}[${i}] must be a string, got ${describe(item)}`)
    out.push(item)
  }
  return ok(out)
}

/** The fields of `record` not in `known`, as an error naming the first (with a close match when any). */
export const rejectUnknownFields = (
  where: string,
  record: Record<string, unknown>,
  known: ReadonlyArray<string>,
): Decoded<void> => {
  const unknown = Object.keys(record).filter((k) => !known.includes(k))
  const first = unknown[0]
  if (first === undefined) return ok(undefined)
  const close = known.find((k) => k.toLowerCase().startsWith(first.toLowerCase().slice(0, 4)))
  return fail(
    `${where}: unknown field "${first}"` +
      (close === undefined ? "" : ` (did you mean "${close}"?)`) +
      `; known fields: ${known.join(", ")}`,
  )
}

/** A JSON (then JSON5) object from a string; other values pass through. */
export const parseLenient = (input: unknown): unknown => {
  if (typeof input !== "string") return input
  try {
    return JSON.parse(input)
  } catch {
    try {
      return JSON5.parse(input)
    } catch {
      return input
    }
  }
}
