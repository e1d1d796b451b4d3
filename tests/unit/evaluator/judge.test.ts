/**
 * The judge over a fake port: verdicts, one retry of an unparseable verdict then `judge_failed`,
 * call failures, what every result records (model, prompt hash, temperature, versions), xbench's
 * exact-match shortcut, the cache key, the templates, and the scorers on top.
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, it } from "vitest"
import {
  JudgeCallError,
  type JudgePort,
  judgeCacheKey,
  makeJudge,
  promptHash,
} from "../../../src/actors/evaluator/scoring/judge.ts"
import {
  JUDGE_PROFILES,
  JUDGE_TEMPLATES,
  type JudgeMessage,
  xbenchExactMatch,
} from "../../../src/actors/evaluator/scoring/judgeTemplates.ts"
import { scoreAnswer } from "../../../src/actors/evaluator/scoring/scorers.ts"
import { PARSER_VERSION } from "../../../src/actors/evaluator/scoring/verdictParsers.ts"

/** A port that answers from a list and records what it was sent. */
const fakePort = (replies: ReadonlyArray<string | JudgeCallError>) => {
  const calls: Array<{ messages: ReadonlyArray<JudgeMessage>; temperature: number }> = []
  const port: JudgePort = {
    complete: (messages, { temperature }) =>
      Effect.suspend(() => {
        const reply = replies[calls.length] ?? "no more replies"
        calls.push({ messages, temperature })
        return typeof reply === "string" ? Effect.succeed(reply) : Effect.fail(reply)
      }),
  }
  return { port, calls }
}

const input = { question: "Which city hosts the Louvre?", truth: "Paris", prediction: "It is Paris." }

describe("makeJudge", () => {
  it("returns the verdict with the model, prompt hash, temperature and versions", async () => {
    const { port, calls } = fakePort([
      "extracted_final_answer: Paris\nreasoning: same\n**correct:** yes\nconfidence: 90%",
    ])
    const result = await Effect.runPromise(
      makeJudge({ model: "judge-x", port, temperature: 0.3 })("hle", input),
    )
    const sent = JUDGE_TEMPLATES.hle.render(input)
    expect(result).toMatchObject({
      outcome: "correct",
      method: "judge",
      profile: "hle",
      confidence: 90,
      judgeModel: "judge-x",
      temperature: 0.3,
      templateVersion: "hle/1",
      parserVersion: PARSER_VERSION,
      attempts: 1,
    })
    expect(result.promptHash).toBe(
      createHash("sha256")
        .update(JSON.stringify(sent.map((m) => ({ role: m.role, content: m.content }))))
        .digest("hex"),
    )
    expect(result.promptHash).toBe(promptHash(calls[0]!.messages))
    expect(calls).toHaveLength(1)
    expect(calls[0]!.temperature).toBe(0.3)
  })

  it("retries an unparseable verdict once and uses the second", async () => {
    const { port, calls } = fakePort(["I think it is fine.", "GRADE: INCORRECT"])
    const result = await Effect.runPromise(makeJudge({ model: "j", port })("webwalkerqa", input))
    expect(result).toMatchObject({ outcome: "incorrect", attempts: 2, temperature: 0 })
    expect(result.responses).toEqual(["I think it is fine.", "GRADE: INCORRECT"])
    expect(calls).toHaveLength(2)
  })

  it("records judge_failed after a second unparseable verdict, never a guess", async () => {
    const { port, calls } = fakePort(["hmm", "still hmm", "correct: yes"])
    const result = await Effect.runPromise(makeJudge({ model: "j", port })("browsecomp", input))
    expect(result).toMatchObject({
      outcome: "judge_failed",
      attempts: 2,
      verdict: { verdict: "unparseable" },
      failure: { kind: "unparseable" },
    })
    expect(result.failure?.message).toContain(PARSER_VERSION)
    expect(calls).toHaveLength(2)
  })

  it("records a failed call as judge_failed and does not fail the effect", async () => {
    const { port } = fakePort([new JudgeCallError({ model: "j", reason: "HTTP 503" })])
    const exit = await Effect.runPromiseExit(makeJudge({ model: "j", port })("frames", input))
    expect(Exit.isSuccess(exit)).toBe(true)
    if (Exit.isSuccess(exit))
      expect(exit.value).toMatchObject({
        outcome: "judge_failed",
        attempts: 1,
        failure: { kind: "call", message: "judge model j: HTTP 503" },
      })
  })

  it("scores xbench by exact match after 最终答案 without calling the judge", async () => {
    const { port, calls } = fakePort(["结论: 错误"])
    const judge = makeJudge({ model: "j", port })
    const exact = await Effect.runPromise(
      judge("xbench", { question: "q", truth: "湖人", prediction: "分析……\n最终答案：**湖人**\n" }),
    )
    expect(exact).toMatchObject({ outcome: "correct", method: "exact", attempts: 0 })
    expect(calls).toHaveLength(0)
    const judged = await Effect.runPromise(
      judge("xbench", { question: "q", truth: "湖人", prediction: "最终答案: 洛杉矶湖人队" }),
    )
    expect(judged).toMatchObject({ outcome: "incorrect", method: "judge" })
    expect(calls).toHaveLength(1)
  })
})

describe("xbenchExactMatch", () => {
  it.each([
    ["最终答案: 42", "42", true],
    ["最终答案：42", "42", true],
    ["最终答案:42\n解释: …", "42", true],
    ["先写最终答案: 41，更正后最终答案: 42", "42", true],
    ["最终答案: 42", "43", false],
    ["42", "42", true],
    ["The answer is 42", "42", false],
    ["最终答案:\n42", "42", false],
    ["", "", false],
  ] as const)("%j vs %j → %s", (prediction, truth, match) => {
    expect(xbenchExactMatch(prediction, truth)).toBe(match)
  })
})

describe("judgeCacheKey", () => {
  it("is a content hash of all six parts, unambiguous where they meet", () => {
    const key = judgeCacheKey("hle", "m", "q", "t", "p", "hle/1")
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(judgeCacheKey("hle", "m", "q", "t", "p", "hle/1")).toBe(key)
    expect(judgeCacheKey("hle", "m", "q", "t", "p", "hle/2")).not.toBe(key)
    expect(judgeCacheKey("hle", "m2", "q", "t", "p", "hle/1")).not.toBe(key)
    expect(judgeCacheKey("hle", "m", "q", "tp", "", "hle/1")).not.toBe(
      judgeCacheKey("hle", "m", "q", "t", "p", "hle/1"),
    )
  })
})

describe("judge templates", () => {
  it("exist for every profile, show question, truth and prediction, and name their verdict format", () => {
    for (const profile of JUDGE_PROFILES) {
      const template = JUDGE_TEMPLATES[profile]
      expect(template.version).toBe(`${profile}/1`)
      const text = template
        .render({ question: "QUESTION-MARK", truth: "TRUTH-MARK", prediction: "PREDICTION-MARK" })
        .map((m) => m.content)
        .join("\n")
      for (const mark of ["QUESTION-MARK", "TRUTH-MARK", "PREDICTION-MARK"]) expect(text).toContain(mark)
    }
    const content = (p: (typeof JUDGE_PROFILES)[number]) =>
      JUDGE_TEMPLATES[p]
        .render(input)
        .map((m) => m.content)
        .join("\n")
    expect(content("hle")).toMatch(/^extracted_final_answer:/m)
    expect(content("hle")).toMatch(/^confidence:/m)
    expect(content("browsecomp-zh")).toContain("请依据")
    expect(content("xbench")).toMatch(/^结论:/m)
    expect(content("frames")).toContain("Decision: TRUE")
    expect(content("webwalkerqa")).toContain("GRADE: INCORRECT")
    expect(content("seal-0")).toContain("NOT_ATTEMPTED")
    expect(content("agentcpm")).toMatch(/^correct: yes or no$/m)
  })
})

describe("scoreAnswer", () => {
  it("scores gaia without a judge", async () => {
    const result = await Effect.runPromise(scoreAnswer("gaia", { truth: "1000", prediction: "$1,000" }))
    expect(result).toEqual({
      scorer: "gaia",
      correct: true,
      status: "scored",
      method: "exact",
      mode: "number",
    })
  })

  it("fails with JudgeRequired for a judge scorer without a judge, unless xbench's exact match decides", async () => {
    const exit = await Effect.runPromiseExit(scoreAnswer("hle", { truth: "a", prediction: "b" }))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const reason = exit.cause.reasons[0]
      expect(reason?._tag === "Fail" && reason.error._tag).toBe("JudgeRequired")
      expect(reason?._tag === "Fail" && reason.error.message).toMatch(/the hle scorer needs a judge model/)
    }
    const exact = await Effect.runPromise(scoreAnswer("xbench", { truth: "42", prediction: "最终答案: 42" }))
    expect(exact).toMatchObject({ correct: true, method: "exact" })
  })

  it("scores a missing answer as wrong without asking the judge", async () => {
    const { port, calls } = fakePort(["correct: yes"])
    const result = await Effect.runPromise(
      scoreAnswer("browsecomp", { truth: "a", prediction: undefined }, makeJudge({ model: "j", port })),
    )
    expect(result).toMatchObject({ correct: false, status: "scored", reason: "no answer" })
    expect(calls).toHaveLength(0)
  })

  it("passes the judge's result through, judge failures counted apart", async () => {
    const ok = fakePort(["Decision: TRUE"])
    const scored = await Effect.runPromise(
      scoreAnswer(
        "frames",
        { question: "q", truth: "a", prediction: "a" },
        makeJudge({ model: "j", port: ok.port }),
      ),
    )
    expect(scored).toMatchObject({
      correct: true,
      status: "scored",
      method: "judge",
      judge: { judgeModel: "j" },
    })
    const bad = fakePort(["?", "?"])
    const failed = await Effect.runPromise(
      scoreAnswer(
        "frames",
        { question: "q", truth: "a", prediction: "a" },
        makeJudge({ model: "j", port: bad.port }),
      ),
    )
    expect(failed).toMatchObject({ correct: false, status: "judge_failed" })
  })
})
