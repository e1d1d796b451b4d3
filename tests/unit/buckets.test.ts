/** The bucketed record behaves like a plain immutable record, and never changes a version it was given. */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  type Buckets,
  bucketGet,
  bucketSet,
  bucketValues,
  emptyBuckets,
} from "../../src/projections/buckets.ts"

describe("buckets", () => {
  it("matches a plain record under any sequence of sets and removals", () => {
    const op = fc.record({
      key: fc.oneof(
        fc.constantFrom("a", "b", "__proto__", "constructor", "ep-1"),
        fc.string({ maxLength: 6 }),
      ),
      value: fc.option(fc.integer(), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        let buckets: Buckets<number> = emptyBuckets
        const model = new Map<string, number>()
        for (const { key, value } of ops) {
          const before = JSON.stringify(buckets)
          const previous = buckets
          buckets = bucketSet(buckets, key, value)
          expect(JSON.stringify(previous)).toBe(before)
          if (value === undefined) model.delete(key)
          else model.set(key, value)
          expect(bucketGet(buckets, key)).toBe(value)
        }
        expect([...bucketValues(buckets)].sort()).toEqual([...model.values()].sort())
        for (const [k, v] of model) expect(bucketGet(buckets, k)).toBe(v)
        // Plain JSON, so a checkpoint stores it as it is; no empty buckets are kept.
        expect(JSON.parse(JSON.stringify(buckets))).toEqual(buckets)
        for (const bucket of Object.values(buckets)) expect(Object.keys(bucket).length).toBeGreaterThan(0)
      }),
      { numRuns: 500 },
    )
  })

  it("keeps an entry named __proto__ when a neighbour in its bucket is removed", () => {
    let buckets: Buckets<number> = bucketSet(emptyBuckets, "__proto__", 1)
    for (let i = 0; i < 64; i++) buckets = bucketSet(bucketSet(buckets, `k${i}`, 2), `k${i}`, undefined)
    expect(bucketGet(buckets, "__proto__")).toBe(1)
    expect(bucketValues(buckets)).toEqual([1])
  })
})
