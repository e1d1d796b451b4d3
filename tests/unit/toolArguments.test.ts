/**
 * Tool arguments as models write them, coerced by the tool's input schema: numeric strings where
 * numbers are wanted (never `"2x"`), `"true"`/`"false"` where booleans are, a single value (or a
 * JSON array written as a string) where a list is; each coercion reported; nothing coerced into a
 * value the schema refuses. Fuzzed over generated schemas and values: never throws, idempotent,
 * valid input untouched (same reference), input never mutated, every kept coercion passes.
 */
import { fc, test } from "@fast-check/vitest"
import { Ajv } from "ajv"
import { describe, expect, it } from "vitest"
import { argumentPath, coerceToSchema, parseToolArguments } from "../../src/actors/tools/toolArguments.ts"

const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false })
const accepts = (schema: object, value: unknown): boolean => ajv.validate(schema, value) === true

const search = {
  type: "object",
  properties: {
    query: { type: "string" },
    num_results: { type: "integer", minimum: 1, maximum: 20 },
    exact: { type: "boolean" },
    urls: { type: "array", items: { type: "string" } },
    ids: { type: "array", items: { type: "integer" } },
    // What pydantic writes for Optional[float].
    threshold: { anyOf: [{ type: "number" }, { type: "null" }] },
    label: { type: ["string", "number"] },
  },
  required: ["query"],
  additionalProperties: false,
}

describe("coercion by the tool's schema", () => {
  it('reads {"num_results": "2"} as 2 and says so', () => {
    const r = parseToolArguments("search__search", { query: "q", num_results: "2" }, search)
    expect(r).toEqual({
      ok: true,
      value: { query: "q", num_results: 2 },
      coerced: [{ path: "/num_results", from: "2", to: 2 }],
    })
  })

  it("reads booleans, single values as lists, lists written as strings, and optional numbers", () => {
    const r = parseToolArguments(
      "s.t",
      '{"query": "q", "exact": "True", "urls": "https://a.example", "ids": "[3, 4]", "threshold": "0.5"}',
      search,
    )
    expect(r).toEqual({
      ok: true,
      value: { query: "q", exact: true, urls: ["https://a.example"], ids: [3, 4], threshold: 0.5 },
      coerced: [
        { path: "/exact", from: "True", to: true },
        { path: "/urls", from: "https://a.example", to: ["https://a.example"] },
        { path: "/ids", from: "[3, 4]", to: [3, 4] },
        { path: "/threshold", from: "0.5", to: 0.5 },
      ],
    })
    // A single value becomes a one-item list read by the items' schema.
    expect(parseToolArguments("s.t", { query: "q", ids: "7" }, search)).toMatchObject({
      ok: true,
      value: { ids: [7] },
      coerced: [{ path: "/ids", from: "7", to: [7] }],
    })
    expect(parseToolArguments("s.t", { query: "q", ids: ["1", 2] }, search)).toMatchObject({
      ok: true,
      value: { ids: [1, 2] },
      coerced: [{ path: "/ids/0", from: "1", to: 1 }],
    })
  })

  it("leaves arguments the schema accepts alone, and strings where strings are allowed", () => {
    const args = { query: "2", label: "2", urls: ["x"] }
    const r = parseToolArguments("s.t", args, search)
    expect(r).toEqual({ ok: true, value: args })
    expect(r.ok && r.value).toBe(args)
    expect(coerceToSchema(search, args).value).toBe(args)
  })

  it("refuses what is not plainly a number or a boolean, naming the place", () => {
    for (const bad of [
      "2x",
      "0x10",
      " 2",
      "2 ",
      "",
      "Infinity",
      "NaN",
      "1e999",
      "007",
      "+2",
      "2.",
      "1_000",
    ]) {
      const r = parseToolArguments("search__search", { query: "q", num_results: bad }, search)
      expect(r, bad).toEqual({
        ok: false,
        message: "invalid arguments for search__search: arguments.num_results must be integer",
      })
    }
    expect(parseToolArguments("s.t", { query: "q", num_results: "2.5" }, search)).toMatchObject({ ok: false })
    expect(parseToolArguments("s.t", { query: "q", exact: "yes" }, search)).toMatchObject({ ok: false })
    expect(parseToolArguments("s.t", { query: "q", exact: "1" }, search)).toMatchObject({ ok: false })
    // A long integer would lose digits as a double.
    const long = parseToolArguments("s.t", { query: "q", ids: ["12345678901234567890"] }, search)
    expect(long).toMatchObject({ ok: false })
    // Numbers are not turned into strings (that was never asked), nor null into a list.
    expect(parseToolArguments("s.t", { query: 2 }, search)).toMatchObject({ ok: false })
    expect(parseToolArguments("s.t", { query: "q", urls: null }, search)).toMatchObject({ ok: false })
  })

  it("keeps no coercion whose result the schema refuses, and says what reading it would leave", () => {
    const r = parseToolArguments("s.t", { query: "q", num_results: "0" }, search)
    expect(r).toEqual({
      ok: false,
      message:
        'invalid arguments for s.t: arguments.num_results must be >= 1 (after reading arguments.num_results "0" as 0)',
    })
    // Another problem beside a coercible one: the call is refused, nothing coerced.
    const other = parseToolArguments("s.t", { query: "q", num_results: "3", nope: 1 }, search)
    expect(other).toMatchObject({ ok: false, message: expect.stringContaining("(nope)") })
    expect(coerceToSchema(search, { query: "q", num_results: "3", nope: 1 })).toEqual({
      value: { query: "q", num_results: "3", nope: 1 },
      coerced: [],
    })
  })

  it("follows $ref, allOf, enum and additionalProperties", () => {
    const schema = {
      type: "object",
      $defs: { count: { type: "integer" }, mode: { enum: [1, 2, 3] } },
      properties: { n: { $ref: "#/$defs/count" }, mode: { $ref: "#/$defs/mode" }, flag: {} },
      allOf: [{ properties: { flag: { type: "boolean" }, n: { maximum: 10 } } }],
      additionalProperties: { type: "number" },
    }
    expect(coerceToSchema(schema, { n: "4", mode: "2", flag: "false", other: "-1.5e2" })).toEqual({
      value: { n: 4, mode: 2, flag: false, other: -150 },
      coerced: [
        { path: "/n", from: "4", to: 4 },
        { path: "/mode", from: "2", to: 2 },
        { path: "/flag", from: "false", to: false },
        { path: "/other", from: "-1.5e2", to: -150 },
      ],
    })
    // allOf's maximum applies too: 40 would be refused, so "40" stays as written.
    expect(coerceToSchema(schema, { n: "40" })).toEqual({ value: { n: "40" }, coerced: [] })
  })

  it("keeps a key named __proto__ a key", () => {
    const schema = { type: "object", additionalProperties: { type: "integer" } }
    const value = JSON.parse('{"__proto__": "5", "a": "1"}') as Record<string, unknown>
    const r = coerceToSchema(schema, value)
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype)
    expect(Object.hasOwn(r.value as object, "__proto__")).toBe(true)
    expect((r.value as Record<string, unknown>).a).toBe(1)
    expect(r.coerced.map((c) => c.path)).toEqual(["/__proto__", "/a"])
  })

  it("writes paths as the messages do", () => {
    expect(argumentPath("")).toBe("arguments")
    expect(argumentPath("/a/0/b~1c~0d")).toBe("arguments.a.0.b/c~d")
  })
})

// --- Fuzzing ------------------------------------------------------------------------------------

const keys = fc.constantFrom("a", "b", "n", "list", "__proto__", "x/y")

/**
 * Schemas built from the keywords the coercion reads; a `$ref` points at the root's `$defs.d`,
 * itself a schema without references.
 */
const schemaOf = (withRefs: boolean) =>
  fc.letrec<{ schema: object }>((tie) => ({
    schema: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constantFrom<object>(
        { type: "string" },
        { type: "number" },
        { type: "integer" },
        { type: "integer", minimum: 1 },
        { type: "number", maximum: 10 },
        { type: "boolean" },
        { type: "null" },
        { type: ["integer", "null"] },
        { type: ["string", "number"] },
        { type: ["boolean", "array"] },
        { enum: [1, 2, "three"] },
        { const: true },
        {},
        ...(withRefs ? [{ $ref: "#/$defs/d" }] : []),
      ),
      tie("schema").map((items) => ({ type: "array", items })),
      fc
        .tuple(tie("schema"), fc.integer({ min: 0, max: 3 }))
        .map(([items, maxItems]) => ({ type: "array", items, maxItems })),
      fc
        .tuple(fc.dictionary(keys, tie("schema"), { maxKeys: 3 }), fc.boolean(), fc.boolean())
        .map(([properties, closed, requireAll]) => ({
          type: "object",
          properties,
          ...(closed ? { additionalProperties: false } : {}),
          ...(requireAll ? { required: Object.keys(properties) } : {}),
        })),
      fc.array(tie("schema"), { minLength: 1, maxLength: 3 }).map((anyOf) => ({ anyOf })),
      fc.array(tie("schema"), { minLength: 1, maxLength: 2 }).map((allOf) => ({ allOf })),
    ),
  })).schema

const schemaArb = fc
  .tuple(schemaOf(true), schemaOf(false))
  .map(([body, d]) => ({ ...body, $defs: { d } }) as object)

/** Values near what models write: numeric and boolean strings, lists as strings, plain JSON. */
const valueArb = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(
      "2",
      "2x",
      "-0.5",
      "1e3",
      "0",
      "007",
      " 3",
      "true",
      "False",
      "yes",
      "[1, 2]",
      '["a"]',
      "[",
      "",
      "null",
      "12345678901234567890",
    ),
    fc.jsonValue({ maxDepth: 1 }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(keys, tie("value"), { maxKeys: 3 }),
  ),
}))

const NUMBER_LITERAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/

describe("coercion, fuzzed", () => {
  test.prop([schemaArb, valueArb.value], { numRuns: 1000 })(
    "never throws, never mutates, leaves valid values alone, keeps only accepted results, is idempotent",
    (schema, value) => {
      const before = structuredClone(value)
      const r = coerceToSchema(schema, value)
      expect(value).toEqual(before)
      if (accepts(schema, value)) {
        expect(r.value).toBe(value)
        expect(r.coerced).toEqual([])
      }
      if (r.coerced.length > 0) expect(accepts(schema, r.value)).toBe(true)
      else expect(r.value).toBe(value)
      const again = coerceToSchema(schema, r.value)
      expect(again.value).toEqual(r.value)
      expect(again.coerced).toEqual([])
      for (const c of r.coerced) {
        if (typeof c.to === "number") {
          expect(typeof c.from).toBe("string")
          expect(c.from as string).toMatch(NUMBER_LITERAL)
          expect(Number(c.from)).toBe(c.to)
        } else if (typeof c.to === "boolean") expect(c.from as string).toMatch(/^(true|false)$/i)
        else expect(Array.isArray(c.to)).toBe(true)
      }
    },
  )

  test.prop([schemaArb, fc.oneof(valueArb.value, fc.string(), fc.anything())], { numRuns: 1000 })(
    "parseToolArguments never throws and every accepted value passes the schema",
    (schema, raw) => {
      const objectSchema = {
        type: "object",
        properties: { a: schema, b: schema },
        $defs: (schema as { $defs: unknown }).$defs,
      }
      const r = parseToolArguments("s.t", raw, objectSchema)
      if (r.ok) expect(accepts(objectSchema, r.value)).toBe(true)
      else expect(r.message).toMatch(/s\.t/)
    },
  )
})
