/** The reader takes three numbers from each JetStream reply subject; both subject forms, and junk. */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { deliveryOf } from "../../src/events/log/jetStreamReplay.ts"

const seq = fc.nat({ max: 999_999_999_999_999 })
const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/)

describe("deliveryOf", () => {
  it("reads the 9-token form", () => {
    fc.assert(
      fc.property(
        token,
        token,
        seq,
        seq,
        seq,
        seq,
        seq,
        (stream, consumer, delivered, sseq, dseq, ts, pending) => {
          const reply = `$JS.ACK.${stream}.${consumer}.${delivered}.${sseq}.${dseq}.${ts}.${pending}`
          expect(deliveryOf(reply)).toEqual({ sseq, dseq, pending })
        },
      ),
    )
  })

  it("reads the 12-token form with domain, account hash and a random token", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("_", "hub"),
        token,
        token,
        token,
        seq,
        seq,
        seq,
        seq,
        token,
        (domain, hash, stream, consumer, sseq, dseq, ts, pending, random) => {
          const reply = `$JS.ACK.${domain}.${hash}.${stream}.${consumer}.1.${sseq}.${dseq}.${ts}.${pending}.${random}`
          expect(deliveryOf(reply)).toEqual({ sseq, dseq, pending })
        },
      ),
    )
  })

  it("refuses anything else without throwing", () => {
    for (const junk of [
      "",
      "$JS.ACK",
      "$JS.ACK.s.c.1.2.3",
      "$JS.ACK.s.c.1.x.3.4.5",
      "_INBOX.a.b.c.d.e.f.g.h",
      "$JS.ACK.s.c.1.2..4.5",
    ])
      expect(deliveryOf(junk)).toBeUndefined()
    fc.assert(
      fc.property(fc.string(), (s) => {
        const read = deliveryOf(s)
        if (read !== undefined) expect(Number.isSafeInteger(read.sseq)).toBe(true)
      }),
      { numRuns: 2000 },
    )
  })
})
