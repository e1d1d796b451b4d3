/**
 * Verdict parsing on what real judges write: markdown, quotes, JSON, thinking blocks, reasoning
 * about "incorrect" before the verdict, Chinese verdicts, bare verdicts; `incorrect` is never read
 * as `correct`, the last verdict wins, and nothing ever throws.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { parseJudgeVerdict } from "../../../src/actors/evaluator/scoring/judge.ts"
import { JUDGE_PROFILES, type VerdictFormat } from "../../../src/actors/evaluator/scoring/judgeTemplates.ts"
import { PARSER_VERSION, parseVerdict } from "../../../src/actors/evaluator/scoring/verdictParsers.ts"

const v = (format: VerdictFormat, text: string) => parseVerdict(format, text)

describe("correct: yes/no (HLE, BrowseComp, BrowseComp-ZH, agentcpm)", () => {
  it.each([
    ["correct: yes", "correct"],
    ["correct: no", "incorrect"],
    ["**Correct:** yes", "correct"],
    ["**Correct**: No", "incorrect"],
    ["__correct__: YES.", "correct"],
    ["- correct: `yes`", "correct"],
    ["### Correct: yes", "correct"],
    ["> correct: no", "incorrect"],
    ['correct: "yes"', "correct"],
    ["correct: 'no'", "incorrect"],
    ["“correct”: “yes”", "correct"],
    ['{"extracted_final_answer": "Paris", "correct": "yes", "confidence": 90}', "correct"],
    ["correct = yes", "correct"],
    ["correct: (yes)", "correct"],
    ["Correct: no (the year differs)", "incorrect"],
    ["Correct? yes", "unparseable"],
    ["correct：是", "correct"],
    ["是否正确：否", "incorrect"],
    ["correct: yesterday", "unparseable"],
    ["correct: Yes, the extracted answer matches.", "correct"],
    ["incorrect: yes", "unparseable"],
    ["The answer is incorrect: no doubt about it.", "unparseable"],
    ["yes", "correct"],
    ["No.", "incorrect"],
    ["Incorrect", "incorrect"],
    ["", "unparseable"],
    ["I cannot decide.", "unparseable"],
  ] as const)("%j → %s", (text, verdict) => {
    expect(v("correct-yes-no", text).verdict).toBe(verdict)
  })

  it("reads the conclusion after reasoning that mentions incorrect", () => {
    const text = [
      "extracted_final_answer: 1轮",
      "reasoning: At first glance the response might look incorrect: it says '1 round' rather than 1轮,",
      "but incorrect formatting does not matter here; the answers are equivalent.",
      "correct: yes",
      "confidence: 85%",
    ].join("\n")
    expect(v("correct-yes-no", text)).toEqual({ verdict: "correct", confidence: 85 })
  })

  it("takes the last verdict line when the judge changes its mind", () => {
    expect(v("correct-yes-no", "correct: yes\nWait, the year differs.\ncorrect: no").verdict).toBe(
      "incorrect",
    )
    expect(v("correct-yes-no", "correct: no\n\nOn reflection:\n**correct:** yes").verdict).toBe("correct")
  })

  it("prefers a verdict at a line start to one inside a sentence", () => {
    expect(v("correct-yes-no", "correct: no\nI first thought correct: yes but no.").verdict).toBe("incorrect")
  })

  it("finds a verdict inside a sentence only with a word boundary before correct", () => {
    expect(v("correct-yes-no", "My final judgement, correct: yes").verdict).toBe("correct")
    expect(v("correct-yes-no", "My final judgement, incorrect: yes").verdict).toBe("unparseable")
  })

  it("ignores what the judge wrote while thinking", () => {
    const text =
      "<think>maybe correct: yes? no, the year is wrong</think>\nreasoning: wrong year\ncorrect: no"
    expect(v("correct-yes-no", text).verdict).toBe("incorrect")
    expect(v("correct-yes-no", "<think>correct: yes</think>").verdict).toBe("unparseable")
  })

  it("reads the confidence as percent, a fraction as percent, and drops nonsense", () => {
    expect(v("correct-yes-no", "correct: yes\nconfidence: 100").confidence).toBe(100)
    expect(v("correct-yes-no", "correct: yes\n**Confidence:** 72.5 %").confidence).toBe(72.5)
    expect(v("correct-yes-no", "correct: yes\nconfidence: 0.85").confidence).toBe(85)
    expect(v("correct-yes-no", "correct: yes\n置信度：60%").confidence).toBe(60)
    expect(v("correct-yes-no", "correct: yes\nconfidence: 250%").confidence).toBeUndefined()
    expect(v("correct-yes-no", "correct: yes")).toEqual({ verdict: "correct" })
  })
})

describe("xbench: 结论: 正确/错误", () => {
  it.each([
    ["最终答案: 湖人\n解释: 一致。\n结论: 正确", "correct"],
    ["最终答案：湖人\n解释：不一致。\n结论：错误", "incorrect"],
    ["**结论**：正确", "correct"],
    ["结论: 【正确】", "correct"],
    ["结论：不正确", "incorrect"],
    ["结论 正确", "correct"],
    ["解释: 答案不正确，但格式正确。\n结论: 错误", "incorrect"],
    ["解释: 看起来错误，其实正确。", "unparseable"],
    ["Conclusion: correct", "correct"],
    ["正确", "correct"],
    ["结论: 正确\n复核后\n结论: 错误", "incorrect"],
  ] as const)("%j → %s", (text, verdict) => {
    expect(v("xbench-conclusion", text).verdict).toBe(verdict)
  })
})

describe("FRAMES: TRUE/FALSE", () => {
  it.each([
    ["Explanation: the response names James Buchanan.\nDecision: TRUE", "correct"],
    ["Explanation: it says Lincoln, which is not true.\nDecision: FALSE", "incorrect"],
    ["**Decision:** True", "correct"],
    ["TRUE", "correct"],
    ["false.", "incorrect"],
    ["Explanation: true to the facts, but incomplete.", "unparseable"],
    ["Decision: TRUEish", "unparseable"],
  ] as const)("%j → %s", (text, verdict) => {
    expect(v("true-false", text).verdict).toBe(verdict)
  })
})

describe("WebWalkerQA: GRADE: CORRECT/INCORRECT", () => {
  it.each([
    ["The student says five votes; the reference says five.\nGRADE: CORRECT", "correct"],
    ["GRADE: INCORRECT", "incorrect"],
    ["Grade: incorrect", "incorrect"],
    ["**GRADE:** CORRECT", "correct"],
    ["The answer is correct in spirit but the date is INCORRECT.\nGRADE: INCORRECT", "incorrect"],
    ["CORRECT", "correct"],
    ["INCORRECT.", "incorrect"],
    ["The answer seems correct.", "unparseable"],
  ] as const)("%j → %s", (text, verdict) => {
    expect(v("grade", text).verdict).toBe(verdict)
  })
})

describe("Seal-0: CORRECT/INCORRECT/NOT_ATTEMPTED", () => {
  it("reads the three grades, as words or letters; not attempted is wrong and marked", () => {
    expect(v("simpleqa-grade", "GRADE: CORRECT")).toEqual({ verdict: "correct" })
    expect(v("simpleqa-grade", "GRADE: INCORRECT")).toEqual({ verdict: "incorrect" })
    expect(v("simpleqa-grade", "GRADE: NOT_ATTEMPTED")).toEqual({ verdict: "incorrect", notAttempted: true })
    expect(v("simpleqa-grade", "grade: not attempted")).toEqual({ verdict: "incorrect", notAttempted: true })
    expect(v("simpleqa-grade", "A")).toEqual({ verdict: "correct" })
    expect(v("simpleqa-grade", "B")).toEqual({ verdict: "incorrect" })
    expect(v("simpleqa-grade", "C")).toEqual({ verdict: "incorrect", notAttempted: true })
    expect(v("simpleqa-grade", "A careful look shows it is right.").verdict).toBe("unparseable")
  })
})

describe("parsers by benchmark", () => {
  it("use each profile's own format", () => {
    expect(parseJudgeVerdict("hle", "correct: yes").verdict).toBe("correct")
    expect(parseJudgeVerdict("browsecomp-zh", "correct: 否").verdict).toBe("incorrect")
    expect(parseJudgeVerdict("xbench", "结论: 正确").verdict).toBe("correct")
    expect(parseJudgeVerdict("frames", "Decision: FALSE").verdict).toBe("incorrect")
    expect(parseJudgeVerdict("webwalkerqa", "GRADE: CORRECT").verdict).toBe("correct")
    expect(parseJudgeVerdict("seal-0", "GRADE: NOT_ATTEMPTED").notAttempted).toBe(true)
    expect(parseJudgeVerdict("agentcpm", "reasoning: same person\ncorrect: yes").verdict).toBe("correct")
    expect(PARSER_VERSION).toMatch(/^verdict-parser\/\d+$/)
  })

  const junk = fc.array(
    fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom(
        "correct",
        "incorrect",
        ":",
        "：",
        "yes",
        "no",
        "**",
        "\n",
        "GRADE",
        "结论",
        "正确",
        "错误",
        "</think>",
        "<think>",
        "confidence: 9",
        "%",
        "TRUE",
        "NOT_ATTEMPTED",
        '"',
        "- ",
      ),
    ),
    { maxLength: 20 },
  )
  test.prop(
    [
      fc.constantFrom(...JUDGE_PROFILES),
      fc.oneof(
        junk.map((p) => p.join("")),
        fc.string({ unit: "binary", maxLength: 300 }),
      ),
    ],
    {
      numRuns: 1000,
    },
  )("never throw and always return a known verdict", (profile, text) => {
    const verdict = parseJudgeVerdict(profile, text)
    expect(["correct", "incorrect", "unparseable"]).toContain(verdict.verdict)
    if (verdict.confidence !== undefined) expect(verdict.confidence).toBeGreaterThanOrEqual(0)
  })

  test.prop([fc.string({ maxLength: 60 }).filter((s) => !/correct|yes|true|是|正确|对/i.test(s))], {
    numRuns: 500,
  })("never read incorrect as correct", (noise) => {
    for (const text of [`${noise}\nincorrect: yes`, `incorrect ${noise}`, `correct: no\n${noise} incorrect`])
      expect(parseVerdict("correct-yes-no", text).verdict).not.toBe("correct")
    expect(parseVerdict("grade", `${noise}\nGRADE: INCORRECT`).verdict).toBe("incorrect")
  })
})
