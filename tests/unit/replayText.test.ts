/**
 * What `rollout replay` shows a reader: latencies rounded to what a person can use, and a failed
 * `--verify` reduced to the fields where the recorded and the re-driven event differ (a property:
 * no differences exactly when the two are the same canonical JSON, and each difference names a
 * path whose values really differ).
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { describeEvent, eventDifferences, formatMs } from "../../src/actors/agent/replay.ts"

/** The value at `path` (`a.b[2].c`) of a JSON value, or undefined where there is none. */
const at = (value: unknown, path: string): unknown => {
  if (path === "") return value
  let current: unknown = value
  for (const part of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
    if (current === null || typeof current !== "object") return undefined
    const key = part.startsWith("[") ? Number(part.slice(1, -1)) : part
    current = Object.hasOwn(current, key) ? (current as Record<string | number, unknown>)[key] : undefined
  }
  return current
}

/** JSON with object keys sorted: the oracle for "the same value". */
const canonical = (value: unknown): string | undefined =>
  JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  )

/** JSON objects whose keys are plain names, as event fields are (paths split on `.` and `[`). */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(null, true, false, 0, 1, "", "a"),
    fc.integer(),
    fc.string(),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,6}$/), tie("value"), { maxKeys: 4 }),
  ),
})).value

describe("replay latencies", () => {
  it("rounds measured latencies to what a reader can use", () => {
    expect(formatMs(73.47890699999971)).toBe("73 ms")
    expect(formatMs(0.4321)).toBe("0.4 ms")
    expect(formatMs(9.96)).toBe("10 ms")
    expect(formatMs(9999.7)).toBe("10.0 s")
    expect(formatMs(61_234)).toBe("61.2 s")
    expect(formatMs(0)).toBe("0.0 ms")
  })

  test.prop([fc.double({ min: 0, max: 1e7, noNaN: true })])("never prints a long fraction", (ms) => {
    expect(formatMs(ms)).toMatch(/^\d+(\.\d)? (ms|s)$/)
  })

  it("shows a model response's latency rounded in the terminal view", () => {
    const line = describeEvent({
      type: "ModelResponded",
      episodeId: "e",
      turn: 1,
      requestId: "r",
      endpoint: "http://127.0.0.1:8000/v1",
      latencyMs: 73.47890699999971,
      finishReason: "stop",
      content: "<answer>Paris</answer>",
      usage: { promptTokens: 10, completionTokens: 3 },
    } as Parameters<typeof describeEvent>[0])
    expect(line).toContain("in 73 ms,")
    expect(line).not.toContain("73.4")
  })
})

describe("verify's differences", () => {
  it("names the one field a tampered event changed", () => {
    const recorded = { type: "EpisodeFinished", outcome: "answered", answer: "Lyon", turns: 3 }
    const redriven = { turns: 3, answer: "Paris", outcome: "answered", type: "EpisodeFinished" }
    expect(eventDifferences(recorded, redriven)).toEqual([
      { path: "answer", recorded: "Lyon", redriven: "Paris" },
    ])
    expect(
      eventDifferences({ calls: [{ args: { q: "a" } }] }, { calls: [{ args: { q: "b" } }, { args: {} }] }),
    ).toEqual([
      { path: "calls[0].args.q", recorded: "a", redriven: "b" },
      { path: "calls[1]", recorded: undefined, redriven: { args: {} } },
    ])
    expect(eventDifferences("x", 1)).toEqual([{ path: "", recorded: "x", redriven: 1 }])
  })

  test.prop([jsonValue])("a value has no differences with itself or a reordered copy", (value) => {
    const reordered = JSON.parse(JSON.stringify(value), (_key, v: unknown) =>
      typeof v === "object" && v !== null && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).reverse())
        : v,
    )
    expect(eventDifferences(value, value)).toEqual([])
    expect(eventDifferences(value, reordered)).toEqual([])
  })

  test.prop([jsonValue, jsonValue])(
    "differences exist exactly when the values differ, at paths that differ",
    (a, b) => {
      const differences = eventDifferences(a, b)
      const same = canonical(a) === canonical(b)
      if (same) expect(differences).toEqual([])
      else expect(differences.length).toBeGreaterThan(0)
      for (const d of differences) {
        expect(d.recorded).toEqual(at(a, d.path))
        expect(d.redriven).toEqual(at(b, d.path))
        expect(canonical(d.recorded)).not.toBe(canonical(d.redriven))
      }
    },
  )
})
