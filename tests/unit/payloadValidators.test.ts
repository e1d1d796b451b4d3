/**
 * The fast payload checks (ajv over the JSON Schema Effect derives) must give the Effect Schema's
 * verdict: on payloads sampled from every event schema, and on those payloads with one field
 * replaced by an arbitrary JSON value, removed, or added.
 */
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { payloadCheck } from "../../src/events/payloadValidators.ts"
import { type EventType, eventSchemas } from "../../src/events/schema.ts"

const types = Object.keys(eventSchemas) as EventType[]

const effectVerdict = (type: EventType, value: unknown): boolean =>
  Result.isSuccess(Schema.decodeUnknownResult(eventSchemas[type] as Schema.Codec<unknown, unknown>)(value))

/** Sampled payloads as they come back from the log: through JSON. */
const samples = (type: EventType, count: number): ReadonlyArray<Record<string, unknown>> =>
  Effect.runSync(
    Arbitrary.sampleEffect(Arbitrary.schema(eventSchemas[type] as Schema.Top), { count, seed: 7 }),
  ).map((v) => JSON.parse(JSON.stringify(v)) as Record<string, unknown>)

/** Every path to a value inside `value` (object keys and array indices). */
const pathsOf = (
  value: unknown,
  prefix: ReadonlyArray<string | number> = [],
): Array<Array<string | number>> => {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...pathsOf(v, [...prefix, i])])
  if (typeof value === "object" && value !== null)
    return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])])
  return []
}

type Mutation =
  | { readonly kind: "set"; readonly value: unknown }
  | { readonly kind: "delete" }
  | { readonly kind: "add"; readonly key: string; readonly value: unknown }

const mutate = (root: unknown, path: ReadonlyArray<string | number>, m: Mutation): unknown => {
  const copy = structuredClone(root) as Record<string | number, unknown>
  let parent: Record<string | number, unknown> = copy
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>
  const last = path[path.length - 1]!
  if (m.kind === "set") parent[last] = m.value
  else if (m.kind === "delete") {
    if (Array.isArray(parent)) parent.splice(last as number, 1)
    else delete parent[last]
  } else {
    const target = parent[last]
    if (typeof target === "object" && target !== null && !Array.isArray(target))
      (target as Record<string, unknown>)[m.key] = m.value
  }
  return copy
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    value: fc.oneof(
      fc.integer({ min: -3, max: 3 }),
      fc.double(),
      fc.constantFrom("", "x", "0".repeat(64), "ab".repeat(32)),
    ),
  }),
  fc.constant({ kind: "delete" as const }),
  fc.record({
    kind: fc.constant("add" as const),
    key: fc.string({ maxLength: 8 }),
    value: fc.jsonValue({ maxDepth: 1 }),
  }),
)

describe("payload checks compiled from the event schemas", () => {
  it.each(types)("%s: accepts what the Effect Schema accepts", (type) => {
    for (const value of samples(type, 40)) {
      expect({ type, value, ajv: payloadCheck(type)(value) }).toEqual({
        type,
        value,
        ajv: effectVerdict(type, value),
      })
    }
  })

  it.each(types)("%s: gives the Effect Schema's verdict on mutated payloads", (type) => {
    const base = samples(type, 20)
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.nat(), mutation, (which, at, m) => {
        const value = base[which]!
        const paths = pathsOf(value)
        // Through JSON, as a stored payload comes back: no Infinity, NaN or undefined survives that.
        const mutated = JSON.parse(
          JSON.stringify(paths.length === 0 ? value : mutate(value, paths[at % paths.length]!, m)),
        ) as unknown
        expect({ mutated, ajv: payloadCheck(type)(mutated) }).toEqual({
          mutated,
          ajv: effectVerdict(type, mutated),
        })
      }),
      { numRuns: 300 },
    )
  })
})
