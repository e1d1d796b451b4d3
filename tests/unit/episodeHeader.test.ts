/**
 * The `x-rollout-episode` header the inference pool names an episode with: any episode id (any
 * non-empty string, so dataset task ids of any script) becomes a valid HTTP header value that
 * decodes back to it, ordinary ids are sent readable, and a header that was sent twice, empty, or
 * with a broken `%` sequence is refused with a message naming the header. Generated ids are fuzzed
 * with fast-check.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  EPISODE_HEADER,
  episodeHeaderValue,
  parseEpisodeHeader,
} from "../../src/actors/inference/episodeHeader.ts"

/** What HTTP allows in a header value without quoting: visible ASCII, no leading or trailing space. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/

describe("the episode header", () => {
  test.prop([fc.string({ unit: "grapheme", minLength: 1 })])(
    "turns any well-formed episode id into visible ASCII that decodes back to it",
    (episodeId) => {
      const value = episodeHeaderValue(episodeId)
      expect(value).toMatch(VISIBLE_ASCII)
      expect(parseEpisodeHeader([value])).toEqual({ ok: true, episodeId })
    },
  )

  test.prop([fc.string({ unit: "binary", minLength: 1 })])(
    "sends any string, lone surrogates included, as a value the server can read",
    (episodeId) => {
      const value = episodeHeaderValue(episodeId)
      expect(value).toMatch(VISIBLE_ASCII)
      expect(parseEpisodeHeader([value]).ok).toBe(true)
      expect(episodeHeaderValue(episodeId)).toBe(value)
    },
  )

  it("sends an ordinary id as it is, and escapes only what a header cannot carry", () => {
    expect(episodeHeaderValue("demo-20261207T185825/demo-q07/3")).toBe("demo-20261207T185825/demo-q07/3")
    expect(episodeHeaderValue("run/task 1/0")).toBe("run/task%201/0")
    expect(episodeHeaderValue("run/100%/0")).toBe("run/100%25/0")
    expect(episodeHeaderValue("run/Müller/0")).toBe("run/M%C3%BCller/0")
    expect(episodeHeaderValue("a\r\nb")).toBe("a%0D%0Ab")
  })

  it("reads no header as no episode, and refuses a repeated, empty or badly encoded one by name", () => {
    expect(parseEpisodeHeader(undefined)).toEqual({ ok: true, episodeId: undefined })
    expect(parseEpisodeHeader([])).toEqual({ ok: true, episodeId: undefined })
    for (const values of [["a", "b"], [""], ["  "], ["run/%E0%A4%A"], ["100%"], ["%C3%28"]]) {
      const parsed = parseEpisodeHeader(values)
      expect(parsed.ok, JSON.stringify(values)).toBe(false)
      if (!parsed.ok) expect(parsed.message).toContain(EPISODE_HEADER)
    }
    expect(parseEpisodeHeader(["a", "b"])).toMatchObject({ message: expect.stringContaining("2 times") })
    expect(parseEpisodeHeader(["100%"])).toMatchObject({ message: expect.stringContaining('"100%"') })
  })
})
