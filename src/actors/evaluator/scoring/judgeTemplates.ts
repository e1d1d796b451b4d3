/**
 * LLM-judge prompts, one profile per benchmark, written here in our own words after each
 * benchmark's official grading rules, plus `agentcpm`, a lenient profile for custom data. Each
 * template has a version (part of the judge cache key and of every recorded verdict) and names the
 * verdict format its parser reads (`verdictParsers.ts`). Change a template's wording → bump its
 * version.
 *
 * - hle, browsecomp, browsecomp-zh, agentcpm: labelled lines, `correct: yes|no`, and (HLE-style)
 *   `extracted_final_answer`, `reasoning`, `confidence`; BrowseComp-ZH is asked in Chinese.
 * - xbench: Chinese, `最终答案` / `解释` / `结论: 正确|错误`; an exact match of the response's
 *   final answer with the ground truth is scored before any judge call (`xbenchExactMatch`).
 * - frames: is the ground truth present in the response? `Decision: TRUE|FALSE`.
 * - webwalkerqa: chain-of-thought QA grading ending in `GRADE: CORRECT|INCORRECT`.
 * - seal-0: SimpleQA-style `GRADE: CORRECT|INCORRECT|NOT_ATTEMPTED` (not attempted is wrong).
 */

export const JUDGE_PROFILES = [
  "hle",
  "browsecomp",
  "browsecomp-zh",
  "xbench",
  "frames",
  "webwalkerqa",
  "seal-0",
  "agentcpm",
] as const
export type JudgeProfile = (typeof JUDGE_PROFILES)[number]

export const isJudgeProfile = (name: string): name is JudgeProfile =>
  (JUDGE_PROFILES as ReadonlyArray<string>).includes(name)

/** The verdict formats the parsers know. */
export type VerdictFormat = "correct-yes-no" | "xbench-conclusion" | "true-false" | "grade" | "simpleqa-grade"

export interface JudgeMessage {
  readonly role: "system" | "user"
  readonly content: string
}

export interface JudgeInput {
  readonly question: string
  /** The ground truth. */
  readonly truth: string
  /** The agent's final answer. */
  readonly prediction: string
}

export interface JudgeTemplate {
  readonly profile: JudgeProfile
  readonly version: string
  readonly format: VerdictFormat
  readonly render: (input: JudgeInput) => ReadonlyArray<JudgeMessage>
}

const user = (content: string): ReadonlyArray<JudgeMessage> => [{ role: "user", content: content.trim() }]

/** The HLE-style English grading prompt (HLE and BrowseComp differ only in their opening). */
const labelledEnglish = (opening: string) => (input: JudgeInput) =>
  user(`
${opening}

[question]: ${input.question}

[response]: ${input.prediction}

[correct_answer]: ${input.truth}

Write your judgement as exactly these four labelled lines, in this order:

extracted_final_answer: the final answer that [response] gives, copied as written. Write None if [response] gives no final answer.

reasoning: a few sentences on whether extracted_final_answer and [correct_answer] say the same thing. Compare the two answers only: do not solve the question yourself, do not add background, and do not argue for any answer other than [correct_answer].

correct: yes if extracted_final_answer is equivalent to [correct_answer], or for a numerical answer lies within a small rounding margin of it; no in every other case (a different answer, an ambiguous or partial one, or none at all).

confidence: the confidence between 0% and 100% that [response] itself states; 100% if it states none.
`)

const hle: JudgeTemplate = {
  profile: "hle",
  version: "hle/1",
  format: "correct-yes-no",
  render: labelledEnglish(
    "You grade one response to an exam question against the question's reference answer, which is precise and unambiguous.",
  ),
}

const browsecomp: JudgeTemplate = {
  profile: "browsecomp",
  version: "browsecomp/1",
  format: "correct-yes-no",
  render: labelledEnglish(
    "Decide whether the [response] below answers the [question] correctly, judged only against the precise and unambiguous [correct_answer].",
  ),
}

const browsecompZh: JudgeTemplate = {
  profile: "browsecomp-zh",
  version: "browsecomp-zh/1",
  format: "correct-yes-no",
  render: (input) =>
    user(`
请依据下面给出的、精确且无歧义的[correct_answer]，判断[response]对[question]的回答是否正确。

[question]: ${input.question}

[response]: ${input.prediction}

[correct_answer]: ${input.truth}

请严格按以下四行输出你的判断，字段名保持英文，顺序不变：

extracted_final_answer: 从[response]中原样摘出的最终答案；若[response]没有给出明确的最终答案，填写 None。

reasoning: 用几句话说明 extracted_final_answer 与[correct_answer]是否一致。只比较两个答案本身：不要自己重新解题，不要补充背景，也不要为任何与[correct_answer]不同的答案辩护。

correct: 若 extracted_final_answer 与[correct_answer]等价（数值题允许很小的舍入误差；中英文写法、大小写和标点的差别不算不一致），填写 yes；其余情况（答案不同、含糊、只对一部分或没有答案）一律填写 no。

confidence: [response]中自己给出的置信度（0% 到 100%）；若没有给出，填写 100%。
`),
}

const xbench: JudgeTemplate = {
  profile: "xbench",
  version: "xbench/1",
  format: "xbench-conclusion",
  render: (input) =>
    user(`
你是一名严谨的评分助手。请以[正确答案]为准，判断[回答]对[原问题]的作答是否正确。

[原问题]: ${input.question}

[正确答案]: ${input.truth}

[回答]: ${input.prediction}

请按以下三行格式给出判断：

最终答案: 从[回答]中摘出的最终答案；若[回答]没有明确的最终答案，写"无"。

解释: 说明[最终答案]与[正确答案]之间是否存在实质差异。只比较答案：不要重新解题，不要评论题目背景，也不要为与[正确答案]不同的答案辩护。

结论: 若[最终答案]与[正确答案]一致（数值题允许可接受的微小误差），写"正确"；否则（不一致、有歧义、不等价或没有作答）写"错误"。
`),
}

const frames: JudgeTemplate = {
  profile: "frames",
  version: "frames/1",
  format: "true-false",
  render: (input) =>
    user(`
You check whether a response to a question contains the ground-truth answer.

Question: ${input.question}

Response: ${input.prediction}

Ground-truth answer: ${input.truth}

The response counts if the facts of the ground-truth answer are present in it, in any wording; extra correct detail does not matter. It does not count if it contradicts the ground truth, leaves it out, or hedges between several answers.

Reply with two lines:
Explanation: one or two sentences.
Decision: TRUE if the ground-truth answer is present in the response, FALSE otherwise.
`),
}

const webwalkerqa: JudgeTemplate = {
  profile: "webwalkerqa",
  version: "webwalkerqa/1",
  format: "grade",
  render: (input) =>
    user(`
You are a teacher grading a student's answer to a question against the reference answer.

QUESTION: ${input.question}

STUDENT ANSWER: ${input.prediction}

REFERENCE ANSWER: ${input.truth}

Grade factual accuracy only. Differences of wording, punctuation and length do not matter, and an answer with more information than the reference is fine as long as nothing in it contradicts the reference. Think it through in a few sentences, then end with a final line that is exactly
GRADE: CORRECT
or
GRADE: INCORRECT
`),
}

const seal0: JudgeTemplate = {
  profile: "seal-0",
  version: "seal-0/1",
  format: "simpleqa-grade",
  render: (input) =>
    user(`
Grade a predicted answer against the gold target as CORRECT, INCORRECT or NOT_ATTEMPTED.

- CORRECT: the prediction gives the key information of the gold target and contradicts none of it. Hedging is acceptable if the gold target is still clearly given. Spelling, capitalisation and wording do not matter; a number must match the gold target to the precision the gold target uses.
- INCORRECT: the prediction states something that contradicts the gold target, or offers several candidate answers that do not all agree with it.
- NOT_ATTEMPTED: the prediction neither gives the key information of the gold target nor contradicts it (for example it says it does not know, or asks for more context).

The gold target may describe a fact that changes over time: grade against the gold target as given, not against what you believe is true today.

Question: ${input.question}

Gold target: ${input.truth}

Predicted answer: ${input.prediction}

Reply with one line: GRADE: CORRECT, GRADE: INCORRECT or GRADE: NOT_ATTEMPTED.
`),
}

const agentcpm: JudgeTemplate = {
  profile: "agentcpm",
  version: "agentcpm/1",
  format: "correct-yes-no",
  render: (input) =>
    user(`
You judge whether a research agent's final answer to a question is right, given the reference answer. Be lenient about form and strict about substance.

Accept an answer that means the same as the reference: other wording, synonyms, aliases, abbreviations, a translation, extra correct detail, equivalent units or formats (dates, numbers in words), and rounding consistent with the question.
Reject an answer that names a different entity or value, lists several candidates, gets only some parts right when the question asks for all of them, or does not answer.

Question: ${input.question}

Reference answer: ${input.truth}

Agent's answer: ${input.prediction}

Reply with two lines:
reasoning: one or two sentences.
correct: yes or no
`),
}

export const JUDGE_TEMPLATES: { readonly [P in JudgeProfile]: JudgeTemplate } = {
  hle,
  browsecomp,
  "browsecomp-zh": browsecompZh,
  xbench,
  frames,
  webwalkerqa,
  "seal-0": seal0,
  agentcpm,
}

/** The label of the final answer in an xbench-style response. */
const FINAL_ANSWER = /最终答案\s*[:：]?/g

/**
 * xbench's shortcut before any judge call: the response's final answer (the rest of the line after
 * its last `最终答案`, or the whole response when it has none), trimmed and stripped of markdown
 * emphasis, equals the ground truth exactly → correct.
 */
export const xbenchExactMatch = (prediction: string, truth: string): boolean => {
  let candidate = prediction
  let last: RegExpExecArray | null = null
  for (const match of prediction.matchAll(FINAL_ANSWER)) last = match
  if (last !== null) candidate = prediction.slice(last.index + last[0].length).split(/\r?\n/)[0] ?? ""
  const clean = (text: string) => text.replace(/\*\*|__|`/g, "").trim()
  const answer = clean(candidate)
  return answer !== "" && answer === clean(truth)
}
