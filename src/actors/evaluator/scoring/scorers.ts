/**
 * Scorers by name: `gaia` (exact match, no model) and one LLM-judge scorer per judge profile. A
 * missing answer is wrong without asking anyone (an episode's end state is an outcome, never a
 * string sent to a judge). A judge scorer without a judge fails with `JudgeRequired`, except when
 * xbench's exact match already decides. This is the one scoring path: `rollout score` and the eval
 * run both score through `scoreAnswer`, a judgement becomes a score in `scoreOfJudgement` only, and
 * a score becomes what `SampleScored` records in `sampleScore` only.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { EventOf } from "../../../events/schema.ts"
import { type GaiaMode, gaiaScore } from "./gaiaScorer.ts"
import type { JudgeResult } from "./judge.ts"
import {
  isJudgeProfile,
  JUDGE_PROFILES,
  type JudgeInput,
  type JudgeProfile,
  xbenchExactMatch,
} from "./judgeTemplates.ts"

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

/**
 * A judge as scoring calls it: a plain `Judge` never fails; the eval run's judge, which keeps its
 * judgements in the log, fails when the log does.
 */
export type JudgeWith<E> = (profile: JudgeProfile, input: JudgeInput) => Effect.Effect<JudgeResult, E>

/** A judgement as a score: `judge_failed` is counted apart and scored as wrong. */
export const scoreOfJudgement = (scorer: ScorerName, result: JudgeResult): ScoreResult => ({
  scorer,
  correct: result.outcome === "correct",
  status: result.outcome === "judge_failed" ? "judge_failed" : "scored",
  method: result.method,
  ...(result.failure === undefined ? {} : { reason: result.failure.message }),
  judge: result,
})

/** What a `SampleScored` records of a score: the verdict, and 1 for a correct answer, else 0. */
export const sampleScore = (
  result: ScoreResult,
): { readonly verdict: EventOf<"SampleScored">["verdict"]; readonly score: number } => {
  const verdict = result.status === "judge_failed" ? "judge_failed" : result.correct ? "correct" : "incorrect"
  return { verdict, score: verdict === "correct" ? 1 : 0 }
}

export const scoreAnswer = <E = never>(
  scorer: ScorerName,
  input: ScoreInput,
  judge?: JudgeWith<E>,
): Effect.Effect<ScoreResult, JudgeRequired | E> =>
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
    return scoreOfJudgement(scorer, result)
  })
