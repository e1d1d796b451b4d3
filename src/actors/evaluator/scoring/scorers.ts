/**
 * Scorers by name: `gaia` (exact match, no model) and one LLM-judge scorer per judge profile. A
 * missing answer is wrong without asking anyone (an episode's end state is an outcome, never a
 * string sent to a judge). A judge scorer without a judge fails with `JudgeRequired`, except when
 * xbench's exact match already decides.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type GaiaMode, gaiaScore } from "./gaiaScorer.ts"
import type { Judge, JudgeResult } from "./judge.ts"
import { isJudgeProfile, JUDGE_PROFILES, type JudgeProfile, xbenchExactMatch } from "./judgeTemplates.ts"

export const SCORER_NAMES = ["gaia", ...JUDGE_PROFILES] as const
export type ScorerName = (typeof SCORER_NAMES)[number]

export const isScorerName = (name: string): name is ScorerName =>
  (SCORER_NAMES as ReadonlyArray<string>).includes(name)

/** True for scorers that ask an LLM judge. */
export const needsJudge = (scorer: ScorerName): scorer is JudgeProfile => isJudgeProfile(scorer)

export class JudgeRequired extends Schema.TaggedError<JudgeRequired>()("JudgeRequired", {
  scorer: Schema.String,
}) {
  override get message(): string {
    return `the ${this.scorer} scorer needs a judge model (an LLM judge decides this benchmark's answers); configure one`
  }
}

export interface ScoreInput {
  readonly question?: string
  readonly truth: string
  /** The agent's final answer; undefined when the episode ended without one. */
  readonly prediction: string | undefined
}

export interface ScoreResult {
  readonly scorer: ScorerName
  readonly correct: boolean
  /** `judge_failed`: the judge gave no usable verdict (counted apart, scored as wrong). */
  readonly status: "scored" | "judge_failed"
  /** `exact`: decided by rule, without a judge call. */
  readonly method: "exact" | "judge"
  readonly reason?: string
  /** The GAIA comparison mode. */
  readonly mode?: GaiaMode
  readonly judge?: JudgeResult
}

export const scoreAnswer = (
  scorer: ScorerName,
  input: ScoreInput,
  judge?: Judge,
): Effect.Effect<ScoreResult, JudgeRequired> =>
  Effect.gen(function* () {
    if (scorer === "gaia") {
      const score = gaiaScore(input.prediction, input.truth)
      return {
        scorer,
        correct: score.correct,
        status: "scored",
        method: "exact",
        mode: score.mode,
        ...(score.reason === undefined ? {} : { reason: score.reason }),
      } satisfies ScoreResult
    }
    if (input.prediction === undefined)
      return {
        scorer,
        correct: false,
        status: "scored",
        method: "exact",
        reason: "no answer",
      } satisfies ScoreResult
    if (judge === undefined) {
      if (scorer === "xbench" && xbenchExactMatch(input.prediction, input.truth))
        return {
          scorer,
          correct: true,
          status: "scored",
          method: "exact",
          reason: "the final answer equals the ground truth",
        } satisfies ScoreResult
      return yield* new JudgeRequired({ scorer })
    }
    const result = yield* judge(scorer, {
      question: input.question ?? "",
      truth: input.truth,
      prediction: input.prediction,
    })
    return {
      scorer,
      correct: result.outcome === "correct",
      status: result.outcome === "judge_failed" ? "judge_failed" : "scored",
      method: result.method,
      ...(result.failure === undefined ? {} : { reason: result.failure.message }),
      judge: result,
    } satisfies ScoreResult
  })
