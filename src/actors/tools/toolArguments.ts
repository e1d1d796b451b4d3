/**
 * Tool arguments as models write them: an object as is, or a string read as JSON, then JSON5
 * (models write single quotes, trailing commas, unquoted keys), then checked against the tool's
 * input JSON Schema. Arguments the schema refuses are coerced by that schema where a model's
 * intent is plain: a numeric string where a number is wanted (`"2"`, never `"2x"`), `"true"` or
 * `"false"` where a boolean is wanted, a single value (or a JSON array written as a string) where
 * an array is wanted. A coercion is kept only when the whole coerced object passes the schema, and
 * every one is reported (path, from, to) so the call's event can say so. A failure is a message
 * meant for the model: which tool, what is wrong, where.
 */
import { Ajv, type ValidateFunction } from "ajv"
import JSON5 from "json5"

/** One argument read differently from how it was written. `path` is a JSON Pointer into the arguments. */
export interface Coercion {
  readonly path: string
  readonly from: unknown
  readonly to: unknown
}

export type ParsedArguments =
  | {
      readonly ok: true
      readonly value: Record<string, unknown>
      /** Present (non-empty) only when the schema refused the arguments as written. */
      readonly coerced?: ReadonlyArray<Coercion>
    }
  | { readonly ok: false; readonly message: string }

const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false })
const compiled = new WeakMap<object, ValidateFunction | string>()

const validatorFor = (schema: object): ValidateFunction | string => {
  let v: ValidateFunction | string | undefined = compiled.get(schema)
  if (v === undefined) {
    try {
      v = ajv.compile(schema)
    } catch (error) {
      v = `the tool's input schema does not compile (${(error as Error).message}); arguments are not checked`
    }
    compiled.set(schema, v)
  }
  return v
}

// --- Coercion by schema ---------------------------------------------------------------------

type JsonType = "string" | "number" | "integer" | "boolean" | "null" | "object" | "array"
/** The JSON types a position admits; `undefined` when the schema says nothing (anything goes). */
type Admitted = ReadonlySet<JsonType> | undefined

const JSON_TYPES: ReadonlySet<string> = new Set([
  "string",
  "number",
  "integer",
  "boolean",
  "null",
  "object",
  "array",
])

/** `$ref` chains and nested combinators deeper than this are treated as "anything" (cycles end here). */
const MAX_SCHEMA_DEPTH = 32

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const own = (record: unknown, key: string): unknown =>
  isPlainObject(record) && Object.hasOwn(record, key) ? record[key] : undefined

const typeOf = (value: unknown): JsonType | undefined => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "array"
  switch (typeof value) {
    case "string":
      return "string"
    case "boolean":
      return "boolean"
    case "number":
      return Number.isInteger(value) ? "integer" : "number"
    case "object":
      return "object"
    default:
      return undefined
  }
}

const fits = (value: unknown, admitted: Admitted): boolean => {
  if (admitted === undefined) return true
  const t = typeOf(value)
  if (t === undefined) return false
  return admitted.has(t) || (t === "integer" && admitted.has("number"))
}

/** A local `$ref` (`#`, `#/$defs/x`, `#/definitions/x`) resolved in the root schema; else undefined. */
const resolveRef = (root: unknown, ref: string): unknown => {
  if (!ref.startsWith("#")) return undefined
  let target: unknown = root
  const pointer = ref.slice(1)
  if (pointer === "") return root
  if (!pointer.startsWith("/")) return undefined
  for (const raw of pointer.slice(1).split("/")) {
    let token: string
    try {
      token = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~")
    } catch {
      return undefined
    }
    target = Array.isArray(target) ? target[Number(token)] : own(target, token)
    if (target === undefined) return undefined
  }
  return target
}

const intersect = (a: Admitted, b: Admitted): Admitted => {
  if (a === undefined) return b
  if (b === undefined) return a
  const out = new Set<JsonType>()
  for (const t of a) {
    if (b.has(t)) out.add(t)
    else if (t === "integer" && b.has("number")) out.add("integer")
  }
  if (a.has("number") && b.has("integer")) out.add("integer")
  return out
}

const union = (parts: ReadonlyArray<Admitted>): Admitted => {
  const out = new Set<JsonType>()
  for (const p of parts) {
    if (p === undefined) return undefined
    for (const t of p) out.add(t)
  }
  return out
}

/** The JSON types a schema admits, from `type`, `enum`, `const`, `allOf`, `anyOf`, `oneOf` and `$ref`. */
const admittedBy = (schema: unknown, root: unknown, depth = 0): Admitted => {
  if (schema === false) return new Set()
  if (!isPlainObject(schema) || depth > MAX_SCHEMA_DEPTH) return undefined
  let admitted: Admitted
  const type = own(schema, "type")
  const names = typeof type === "string" ? [type] : Array.isArray(type) ? type : undefined
  if (names !== undefined)
    admitted = new Set(names.filter((n): n is JsonType => typeof n === "string" && JSON_TYPES.has(n)))
  const values = Array.isArray(own(schema, "enum"))
    ? (own(schema, "enum") as unknown[])
    : Object.hasOwn(schema, "const")
      ? [schema.const]
      : undefined
  if (values !== undefined)
    admitted = intersect(admitted, new Set(values.map(typeOf).filter((t): t is JsonType => t !== undefined)))
  const ref = own(schema, "$ref")
  if (typeof ref === "string")
    admitted = intersect(admitted, admittedBy(resolveRef(root, ref), root, depth + 1))
  const allOf = own(schema, "allOf")
  if (Array.isArray(allOf))
    for (const part of allOf) admitted = intersect(admitted, admittedBy(part, root, depth + 1))
  for (const key of ["anyOf", "oneOf"]) {
    const branches = own(schema, key)
    if (Array.isArray(branches))
      admitted = intersect(admitted, union(branches.map((b) => admittedBy(b, root, depth + 1))))
  }
  return admitted
}

const conjunction = (parts: ReadonlyArray<unknown>): unknown =>
  parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : { allOf: parts }

/**
 * The schema that applies to one member of a container (a property of an object, an item of an
 * array), gathered through `$ref`, `allOf` (all apply), `anyOf`/`oneOf` (branches that admit the
 * container's type; a branch that says nothing about the member makes it "anything").
 */
const memberSchema = (
  schema: unknown,
  root: unknown,
  container: "object" | "array",
  direct: (schema: Record<string, unknown>) => unknown,
  depth = 0,
): unknown => {
  if (!isPlainObject(schema) || depth > MAX_SCHEMA_DEPTH) return undefined
  const parts: unknown[] = []
  const here = direct(schema)
  if (here !== undefined) parts.push(here)
  const ref = own(schema, "$ref")
  if (typeof ref === "string") {
    const inner = memberSchema(resolveRef(root, ref), root, container, direct, depth + 1)
    if (inner !== undefined) parts.push(inner)
  }
  const allOf = own(schema, "allOf")
  if (Array.isArray(allOf))
    for (const part of allOf) {
      const inner = memberSchema(part, root, container, direct, depth + 1)
      if (inner !== undefined) parts.push(inner)
    }
  for (const key of ["anyOf", "oneOf"]) {
    const branches = own(schema, key)
    if (!Array.isArray(branches)) continue
    const live = branches.filter((b) => {
      const admitted = admittedBy(b, root, depth + 1)
      return admitted === undefined || admitted.has(container)
    })
    if (live.length === 0) continue
    const inner = live.map((b) => memberSchema(b, root, container, direct, depth + 1) ?? true)
    parts.push(inner.length === 1 ? inner[0] : { anyOf: inner })
  }
  return conjunction(parts)
}

const propertySchema = (schema: unknown, root: unknown, key: string): unknown =>
  memberSchema(schema, root, "object", (s) => {
    const declared = own(own(s, "properties"), key)
    if (declared !== undefined) return declared
    const patterns = own(s, "patternProperties")
    if (isPlainObject(patterns)) {
      const matching: unknown[] = []
      for (const [pattern, sub] of Object.entries(patterns)) {
        try {
          if (new RegExp(pattern, "u").test(key)) matching.push(sub)
        } catch {
          // A pattern JavaScript cannot read: ajv refused the schema already, or ignores it.
        }
      }
      if (matching.length > 0) return conjunction(matching)
    }
    const additional = own(s, "additionalProperties")
    return typeof additional === "boolean" || isPlainObject(additional) ? additional : undefined
  })

const itemSchema = (schema: unknown, root: unknown, index: number): unknown =>
  memberSchema(schema, root, "array", (s) => {
    const prefix = Array.isArray(own(s, "prefixItems")) ? (own(s, "prefixItems") as unknown[]) : undefined
    const items = own(s, "items")
    const tuple = prefix ?? (Array.isArray(items) ? items : undefined)
    if (tuple !== undefined && index < tuple.length) return tuple[index]
    const rest = prefix !== undefined ? items : Array.isArray(items) ? own(s, "additionalItems") : items
    return typeof rest === "boolean" || isPlainObject(rest) ? rest : undefined
  })

/** A JSON number as JSON writes it, nothing else: no `2x`, no `0x10`, no spaces, no `Infinity`. */
const NUMBER_LITERAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/

const numberFrom = (text: string, admitted: ReadonlySet<JsonType>): number | undefined => {
  if (!NUMBER_LITERAL.test(text)) return undefined
  const n = Number(text)
  if (!Number.isFinite(n)) return undefined
  // A long integer literal would lose digits as a double: the string is what the model meant.
  if (/^-?[0-9]+$/.test(text) && !Number.isSafeInteger(n)) return undefined
  if (admitted.has("number")) return n
  return admitted.has("integer") && Number.isInteger(n) ? n : undefined
}

const pointerToken = (key: string | number): string => String(key).replace(/~/g, "~0").replace(/\//g, "~1")

/**
 * The value at one position read by its schema, with every change pushed onto `out`. Leaves what
 * already has an admitted type alone; descends into objects and arrays.
 */
const coerceAt = (
  schema: unknown,
  root: unknown,
  value: unknown,
  path: string,
  out: Coercion[],
  depth: number,
): unknown => {
  if (depth > MAX_SCHEMA_DEPTH * 4) return value
  const admitted = admittedBy(schema, root)
  if (admitted !== undefined && !fits(value, admitted)) {
    let to: unknown
    let changed = false
    if (typeof value === "string") {
      const n = admitted.has("number") || admitted.has("integer") ? numberFrom(value, admitted) : undefined
      if (n !== undefined) {
        to = n
        changed = true
      } else if (admitted.has("boolean") && /^(true|false)$/i.test(value)) {
        to = value.toLowerCase() === "true"
        changed = true
      }
    }
    if (!changed && admitted.has("array") && value !== null && value !== undefined) {
      // `"[\"a\", \"b\"]"` is a list written as a string; wrapping it would keep the brackets.
      let list: unknown[] = [value]
      if (typeof value === "string" && value.trimStart().startsWith("[")) {
        try {
          const parsed: unknown = JSON.parse(value)
          if (Array.isArray(parsed)) list = parsed
        } catch {
          // Not JSON: one string item.
        }
      }
      // The items are read by the items' schema; the whole change is reported once, here.
      to = coerceAt(schema, root, list, path, [], depth + 1)
      changed = true
    }
    if (changed) {
      out.push({ path, from: value, to })
      return to
    }
    return value
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    value.forEach((item, i) => {
      const next = coerceAt(itemSchema(schema, root, i), root, item, `${path}/${i}`, out, depth + 1)
      if (next !== item) {
        copy ??= [...value]
        copy[i] = next
      }
    })
    return copy ?? value
  }
  if (isPlainObject(value)) {
    let changed = false
    const entries = Object.entries(value).map(([key, member]): [string, unknown] => {
      const next = coerceAt(
        propertySchema(schema, root, key),
        root,
        member,
        `${path}/${pointerToken(key)}`,
        out,
        depth + 1,
      )
      if (next !== member) changed = true
      return [key, next]
    })
    // fromEntries defines keys (a key named __proto__ stays a key, not the prototype).
    return changed ? Object.fromEntries(entries) : value
  }
  return value
}

/** The coercions a schema suggests for a value, applied, whether or not the result passes. */
const coercionCandidate = (
  schema: object,
  value: unknown,
): { readonly value: unknown; readonly coerced: ReadonlyArray<Coercion> } => {
  const coerced: Coercion[] = []
  const next = coerceAt(schema, schema, value, "", coerced, 0)
  return { value: next, coerced }
}

/**
 * Coerces `value` by `schema` (see the module's comment). Pure: never throws, leaves a value the
 * schema accepts untouched (same reference, nothing coerced), returns a coerced value only when the
 * schema accepts it (else the value as given), and coercing its own result changes nothing.
 */
export const coerceToSchema = (
  schema: object,
  value: unknown,
): { readonly value: unknown; readonly coerced: ReadonlyArray<Coercion> } => {
  const validate = validatorFor(schema)
  if (typeof validate === "string" || validate(value)) return { value, coerced: [] }
  const candidate = coercionCandidate(schema, value)
  if (candidate.coerced.length === 0 || !validate(candidate.value)) return { value, coerced: [] }
  return candidate
}

// --- Parsing --------------------------------------------------------------------------------

const asObject = (tool: string, raw: unknown): ParsedArguments => {
  if (raw === undefined || raw === null || raw === "") return { ok: true, value: {} }
  let value = raw
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw)
    } catch {
      try {
        value = JSON5.parse(raw)
      } catch (error) {
        return {
          ok: false,
          message: `arguments of ${tool} are not valid JSON or JSON5: ${(error as Error).message}`,
        }
      }
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return {
      ok: false,
      message: `arguments of ${tool} must be a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`,
    }
  return { ok: true, value: value as Record<string, unknown> }
}

/** `/a/0/b~1c` as the messages write it: `arguments.a.0.b/c`. */
export const argumentPath = (pointer: string): string =>
  pointer === ""
    ? "arguments"
    : `arguments${pointer
        .split("/")
        .slice(1)
        .map((t) => `.${t.replace(/~1/g, "/").replace(/~0/g, "~")}`)
        .join("")}`

const problemsOf = (validate: ValidateFunction): string =>
  (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => {
      const extra =
        e.keyword === "additionalProperties"
          ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})`
          : e.keyword === "enum"
            ? ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`
            : ""
      return `${argumentPath(e.instancePath)} ${e.message ?? "is invalid"}${extra}`
    })
    .join("; ")

/**
 * Parses, coerces and validates; `schema` is the tool's `inputSchema` (absent = no check). When a
 * coercion was tried and the result still fails, the message gives the remaining problems and
 * says how the arguments were read.
 */
export const parseToolArguments = (
  tool: string,
  raw: unknown,
  schema: object | undefined,
): ParsedArguments => {
  const parsed = asObject(tool, raw)
  if (!parsed.ok || schema === undefined) return parsed
  const validate = validatorFor(schema)
  if (typeof validate === "string" || validate(parsed.value)) return parsed
  const candidate = coercionCandidate(schema, parsed.value)
  if (candidate.coerced.length === 0)
    return { ok: false, message: `invalid arguments for ${tool}: ${problemsOf(validate)}` }
  if (validate(candidate.value))
    return { ok: true, value: candidate.value as Record<string, unknown>, coerced: candidate.coerced }
  const readAs = candidate.coerced
    .slice(0, 5)
    .map((c) => `${argumentPath(c.path)} ${JSON.stringify(c.from)} as ${JSON.stringify(c.to)}`)
    .join(", ")
  return {
    ok: false,
    message: `invalid arguments for ${tool}: ${problemsOf(validate)} (after reading ${readAs})`,
  }
}
