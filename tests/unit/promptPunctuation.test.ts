/**
 * The question as the prompts show it: the agent's task message closes the sentence with a period
 * only when the question does not already end in a sentence mark (no "France?."), and every judge
 * template carries the question verbatim on its own line, adding no punctuation of its own.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { taskPrompt } from "../../src/actors/agent/episodeState.ts"
import { JUDGE_PROFILES, JUDGE_TEMPLATES } from "../../src/actors/evaluator/scoring/judgeTemplates.ts"

const PREFIX = "Your task is to answer the user's question: "
const MARKS = [".", "?", "!", "。", "？", "！", "…"]

/** One line of question text, as benchmarks hold them (no surrounding blanks). */
const line = fc
  .string({ minLength: 1 })
  .map((s) => s.replace(/\s+/g, " ").trim())
  .filter((s) => s !== "")

describe("the agent's task message", () => {
  it("keeps the question's own mark and adds a period only where there is none", () => {
    expect(taskPrompt("What is the capital of France?")).toBe(`${PREFIX}What is the capital of France?`)
    expect(taskPrompt("哪支球队夺冠？")).toBe(`${PREFIX}哪支球队夺冠？`)
    expect(taskPrompt("Name the river")).toBe(`${PREFIX}Name the river.`)
    expect(taskPrompt("Name the river\n")).toBe(`${PREFIX}Name the river.`)
  })

  test.prop([line, fc.constantFrom(...MARKS)])("never doubles a sentence mark", (text, mark) => {
    const question = `${text}${mark}`
    expect(taskPrompt(question)).toBe(`${PREFIX}${question}`)
  })

  test.prop([line.filter((s) => !MARKS.some((m) => s.endsWith(m)))])(
    "ends an unpunctuated question with a period",
    (question) => {
      expect(taskPrompt(question)).toBe(`${PREFIX}${question}.`)
    },
  )
})

describe("judge prompts", () => {
  test.prop([line.map((s) => `${s}?`), fc.constantFrom(...JUDGE_PROFILES)])(
    "show the question as given, followed by the end of its line",
    (question, profile) => {
      const text = JUDGE_TEMPLATES[profile]
        .render({ question, truth: "Paris", prediction: "<answer>Paris</answer>" })
        .map((m) => m.content)
        .join("\n")
      expect(text).toContain(`${question}\n`)
      expect(text).not.toContain(`${question}.`)
      expect(text).not.toContain(`${question}。`)
    },
  )
})
