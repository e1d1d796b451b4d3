/**
 * The ack inbox reads the common JetStream ack from its bytes without JSON.parse. Whatever it
 * answers must be what JSON.parse would say, and anything unusual must fall through (undefined).
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { storedAck } from "../../src/events/log/ackInbox.ts"

const bytes = (s: string) => new TextEncoder().encode(s)

/** An ack as nats-server writes it: stream, seq, and sometimes domain and duplicate, in that order. */
const ack = fc.record(
  {
    stream: fc.string({ maxLength: 12 }),
    seq: fc.oneof(fc.nat({ max: 999_999_999_999_999 }), fc.nat({ max: Number.MAX_SAFE_INTEGER })),
    domain: fc.string({ maxLength: 6 }),
    duplicate: fc.boolean(),
  },
  { requiredKeys: ["stream", "seq"] },
)

describe("storedAck", () => {
  it("reads what nats-server 2.9 sends, spaces included", () => {
    expect(storedAck(bytes('{"stream":"S", "seq":1}'))).toEqual({ seq: 1, duplicate: false })
    expect(storedAck(bytes('{"stream":"S", "seq":1,"duplicate": true}'))).toEqual({ seq: 1, duplicate: true })
  })

  it("reads seq and duplicate as JSON.parse does (sequences of 16 digits and more go to JSON.parse)", () => {
    // Spaces after separators in any place JSON allows them, as servers of other versions may write.
    const spaced = (json: string, spaces: ReadonlyArray<boolean>) => {
      let n = 0
      return json.replace(/([:,])/g, (sep) => (spaces[n++ % spaces.length] ? `${sep} ` : sep))
    }
    fc.assert(
      fc.property(ack, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (a, spaces) => {
        const text = spaced(JSON.stringify(a), spaces)
        if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(a)) return // a space went inside a string
        const read = storedAck(bytes(text))
        if (a.seq >= 1e15) expect(read).toBeUndefined()
        else expect(read).toEqual({ seq: a.seq, duplicate: a.duplicate === true })
      }),
      { numRuns: 2000 },
    )
  })

  it("hands errors and shapes it does not know to JSON.parse (undefined)", () => {
    expect(
      storedAck(bytes('{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}')),
    ).toBeUndefined()
    expect(storedAck(bytes('{"stream":"S"}'))).toBeUndefined()
    expect(storedAck(bytes('{"stream":"S","seq":}'))).toBeUndefined()
    expect(storedAck(bytes('{"stream":"S","seq":1.5}'))).toBeUndefined()
    expect(storedAck(bytes('{"stream":"S","seq":12345678901234567}'))).toBeUndefined()
  })

  it("never throws, and whatever it reads from arbitrary bytes agrees with JSON.parse where that parses", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (s) => {
        const read = storedAck(bytes(s))
        if (read === undefined) return
        let parsed: unknown
        try {
          parsed = JSON.parse(s)
        } catch {
          return // not JSON: never sent by a server; only "does not throw" matters here
        }
        if (typeof parsed === "object" && parsed !== null && "seq" in parsed)
          expect(read.seq).toBe((parsed as { seq: unknown }).seq)
      }),
      { numRuns: 3000 },
    )
  })

  it("reads a sub-array at its offset", () => {
    const whole = bytes('xx{"stream":"S","seq":42,"duplicate":true}yy')
    expect(storedAck(whole.subarray(2, whole.length - 2))).toEqual({ seq: 42, duplicate: true })
  })
})
