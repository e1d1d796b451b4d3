/** Answer extraction and repetition counting: the last answer wins, thinking is ignored, truncation is not an answer. */

import { fc, test } from "@fast-check/vitest"
import * as HashMap from "effect/HashMap"
import { describe, expect, it } from "vitest"
import {
  afterThinking,
  countRepeats,
  extractAnswer,
  lastAnswerTag,
  lastBoxed,
} from "../../src/actors/agent/answer.ts"

describe("answer extraction", () => {
  it("takes the last complete <answer> after the last </think>", () => {
    expect(lastAnswerTag("<answer>1</answer> then <answer> 2 </answer>")).toBe("2")
    expect(lastAnswerTag("<think><answer>draft</answer></think>no answer here")).toBeUndefined()
    expect(lastAnswerTag("<think>x</think><answer>Paris</answer>")).toBe("Paris")
    expect(lastAnswerTag("<answer>cut off")).toBeUndefined()
    expect(lastAnswerTag("<answer>a</answer><answer>unclosed")).toBe("a")
  })

  it("balances braces in \\boxed{} and skips an unclosed last one", () => {
    expect(lastBoxed("x = \\boxed{\\frac{1}{2}}")).toBe("\\frac{1}{2}")
    expect(lastBoxed("\\boxed{3} and \\boxed{4")).toBe("3")
    expect(lastBoxed("nothing")).toBeUndefined()
  })

  it("applies the style's precedence", () => {
    expect(extractAnswer("\\boxed{7}", "answer_tag")).toBeUndefined()
    expect(extractAnswer("\\boxed{7}", "boxed")).toBe("7")
    expect(extractAnswer("<answer>8</answer> \\boxed{7}", "boxed")).toBe("8")
    expect(extractAnswer("<think>hmm</think>  Berlin ", "plain")).toBe("Berlin")
    expect(extractAnswer("<think>hmm</think>   ", "plain")).toBeUndefined()
  })

  test.prop([
    fc.string(),
    fc.constantFrom("answer_tag", "boxed", "plain") as fc.Arbitrary<"answer_tag" | "boxed" | "plain">,
  ])("never throws on any text", (text, style) => {
    extractAnswer(text, style)
    afterThinking(text)
  })

  test.prop([fc.string().filter((s) => !s.includes("<") && !s.includes(">")), fc.string()])(
    "an answer tag appended last is always the one returned",
    (answer, before) => {
      expect(extractAnswer(`${before}</think><answer>${answer}</answer>`, "answer_tag")).toBe(answer.trim())
    },
  )
})

describe("repetition", () => {
  it("counts normalized content and ignores empty turns", () => {
    let state = HashMap.empty<string, number>()
    const counts: number[] = []
    for (const c of ["a  b", "a b", " a\nb ", "", "c"]) {
      const r = countRepeats(state, c)
      state = r.seen
      counts.push(r.count)
    }
    expect(counts).toEqual([1, 2, 3, 0, 1])
  })
})
