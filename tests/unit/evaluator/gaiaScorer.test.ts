/**
 * GAIA's exact-match scorer on the traps of a naive port. Every expectation was checked against
 * the official Python `question_scorer`, except the two places where we deliberately differ (a
 * missing answer, and an unparseable answer against a ground truth of "inf"), marked below.
 */
import { describe, expect, it } from "vitest"
import { gaiaScore, normalizeGaiaString } from "../../../src/actors/evaluator/scoring/gaiaScorer.ts"

const score = (prediction: string | undefined, truth: string) => gaiaScore(prediction, truth)

describe("GAIA scorer: number mode", () => {
  it.each([
    ["$1,000", "1000", true],
    ["1000 dollars", "1000", false],
    ["1_000", "1000", true],
    ["١٠٠٠", "1000", true],
    ["１２", "12", true],
    ["0x64", "100", false],
    ["", "0", false],
    [" 12 ", "12", true],
    ["12%", "12", true],
    ["$ 5", "5", true],
    ["1e3", "1000", true],
    ["3", "3.0", true],
    ["0.1", "1e-1", true],
    ["-0", "0", true],
    ["1 000", "1000", false],
    ["inf", "inf", true],
    ["nan", "nan", false],
    ["5", " 5 ", true],
  ] as const)("answer %j against %j → %s", (prediction, truth, correct) => {
    const result = score(prediction, truth)
    expect(result.mode).toBe("number")
    expect(result.correct).toBe(correct)
  })

  it("scores an answer that is not a number as wrong even against inf (the official code says right)", () => {
    expect(score("garbage", "inf")).toEqual({
      correct: false,
      mode: "number",
      reason: "the answer is not a number",
    })
  })

  it("scores a missing answer as wrong (the official code compares the string None)", () => {
    expect(score(undefined, "0")).toMatchObject({ correct: false, reason: "no answer" })
    expect(score(undefined, "None")).toMatchObject({ correct: false, mode: "string", reason: "no answer" })
    expect(score("None", "None").correct).toBe(true)
  })
})

describe("GAIA scorer: list mode", () => {
  it("takes a ground truth with a comma or semicolon as a list, even a number with a thousands comma", () => {
    expect(score("1000", "1,000")).toMatchObject({ correct: false, mode: "list" })
    expect(score("1,000", "1,000")).toMatchObject({ correct: true, mode: "list" })
  })

  it.each([
    ["a; b, c", "A,B;C", true],
    ["1.0, 2", "1,2", true],
    ["2, 1", "1,2", false],
    ["1, 2, 3", "1,2", false],
    ["St. Louis, x", "St Louis, x", false],
    ["St. Louis, x", "st.louis,X", true],
    ["$3, apples", "3, apples", true],
  ] as const)("answer %j against %j → %s", (prediction, truth, correct) => {
    expect(score(prediction, truth)).toMatchObject({ correct, mode: "list" })
  })

  it("says why lists of different lengths are wrong", () => {
    expect(score("a", "a;b").reason).toBe("the answer has 1 item(s), the ground truth 2")
  })
})

describe("GAIA scorer: string mode", () => {
  it.each([
    ["Hello, World!", "hello world", true],
    ["a\u00a0b", "ab", true],
    ["a\u001cb", "ab", true],
    ["a\ufeffb", "ab", false],
    ["café。", "café", false],
    ["Ｐａｒｉｓ", "paris", false],
    ["İstanbul", "i̇stanbul", true],
    ["right", "wrong", false],
  ] as const)("answer %j against %j → %s", (prediction, truth, correct) => {
    expect(score(prediction, truth)).toMatchObject({ correct, mode: "string" })
  })

  it("removes Python's whitespace and only ASCII punctuation", () => {
    expect(normalizeGaiaString(" A-b_c\u3000D。 ", true)).toBe("abcd。")
    expect(normalizeGaiaString(" A-b ", false)).toBe("a-b")
  })
})
