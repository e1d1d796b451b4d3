/**
 * What the CLI prints from outside text: `terminalText` lets no control character through (fuzzed
 * with arbitrary strings, full Unicode included) and changes nothing else; tables escape their
 * cells; the damage lines name counts and positions the way a reader can act on.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { damageLines, positionList, undecodableLine } from "../../src/cli/terminal/damageReport.ts"
import { UndecodableEvent } from "../../src/events/codec.ts"
import { table, terminalText } from "../../src/projections/terminalText.ts"
import { summarizeUndecodable } from "../../src/projections/undecodable.ts"

/** Whatever could drive a terminal: C0, DEL, C1, line separators, bidi controls. */
const unsafe = (code: number) =>
  code < 0x20 ||
  (code >= 0x7f && code <= 0x9f) ||
  [0x2028, 0x2029, 0x200e, 0x200f].includes(code) ||
  (code >= 0x202a && code <= 0x202e) ||
  (code >= 0x2066 && code <= 0x2069)

const unsafeIn = (text: string, allowed: ReadonlyArray<number> = []) =>
  [...text].map((c) => c.charCodeAt(0)).filter((c) => unsafe(c) && !allowed.includes(c))

const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.array(fc.integer({ min: 0, max: 0x9f }), { maxLength: 40 }).map((cs) => String.fromCharCode(...cs)),
  fc.string({ maxLength: 30 }).map((s) => `\u001b[31m${s}\u001b]0;title\u0007\r\u202e`),
)

describe("terminalText", () => {
  it("lets no control character through, and keeps only newlines and tabs when multiline", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(unsafeIn(terminalText(text))).toEqual([])
        expect(unsafeIn(terminalText(text, { multiline: true }), [0x0a, 0x09])).toEqual([])
      }),
      { numRuns: 2000 },
    )
  })

  it("leaves text without control characters as it is, and shows each one as a visible escape", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), (text) => {
        fc.pre(unsafeIn(text).length === 0)
        expect(terminalText(text)).toBe(text)
      }),
    )
    expect(terminalText("a\u001b[31mred\u0007\n\tz\u202e\u0085")).toBe(
      "a\\x1b[31mred\\x07\\n\\tz\\u202e\\x85",
    )
    expect(terminalText("line one\nline\ttwo\r", { multiline: true })).toBe("line one\nline\ttwo\\r")
  })

  it("is what tables print: one cell stays one inert line", () => {
    const out = table(["run", "status"], [["r\u001b[2J1", "done\nforged row"]])
    expect(out.split("\n")).toHaveLength(2)
    expect(out).toContain("r\\x1b[2J1")
    expect(unsafeIn(out, [0x0a])).toEqual([])
  })
})

describe("damage lines", () => {
  it("list positions, at most ten, and say how many more", () => {
    expect(positionList(1, [418])).toBe("position 418")
    expect(positionList(2, [418, 419])).toBe("positions 418 and 419")
    expect(positionList(12, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])).toBe(
      "positions 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more",
    )
    expect(positionList(3, [7])).toBe("positions 7 and 2 more")
    expect(positionList(3, [])).toBe("positions not known to this run")
  })

  it("count distinct positions in order, with the largest count known", () => {
    const s = summarizeUndecodable([{ position: 9 }, { position: 3 }, { position: 9 }], 0, [3, 5])
    expect(s).toEqual({ count: 3, positions: [3, 5, 9] })
    expect(summarizeUndecodable([], 4).count).toBe(4)
  })

  it("escape what came from the log", () => {
    const broken = new UndecodableEvent({
      position: 418,
      subject: "x\u001b[31m",
      stage: "envelope",
      reason: "invalid JSON: \u001b[31mgarbage",
    })
    const line = undecodableLine("rebuild", { count: 1, positions: [418] }, { first: broken })!
    expect(line).toContain("1 entry could not be decoded and was skipped: position 418")
    expect(unsafeIn(line)).toEqual([])
    const lines = damageLines(
      {
        undecodable: 2,
        undecodablePositions: [3, 418],
        tornTail: {
          offset: 100,
          bytes: 7,
          position: 420,
          subject: "ns.ev.run.\u001b]0;x\u0007",
          type: "RunFinished",
        },
        cuts: [],
      },
      "/data/log/ns/events.ndjson",
    )
    expect(lines).toHaveLength(2)
    expect(lines[0]).toBe(
      "log damage: 2 lines of /data/log/ns/events.ndjson do not decode: positions 3 and 418",
    )
    expect(lines[1]).toContain(
      "incomplete line of 7 bytes at offset 100 (it would be position 420, a RunFinished on",
    )
    for (const l of lines) expect(unsafeIn(l)).toEqual([])
    expect(damageLines({ undecodable: 0, undecodablePositions: [], cuts: [] }, "/x")).toEqual([])
  })
})
