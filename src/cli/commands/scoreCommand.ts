/**
 * `rollout score --scorer <name> --pred=<text> --truth=<text>`: scores one answer. `gaia` is an
 * exact rule and needs nothing else; the judge scorers ask the judge model named by
 * `--judge-model` (a model of `models.yaml`, called through the inference pool). Without one, a
 * judge scorer exits with code 2 and says so (xbench's exact match still decides without a judge).
 * Write values that may be empty or start with `-` as `--pred=<text>`.
 */
import * as Effect from "effect/Effect"
import { makeJudge } from "../../actors/evaluator/scoring/judge.ts"
import {
  isScorerName,
  type JudgeRequired,
  needsJudge,
  SCORER_NAMES,
  type ScoreResult,
  scoreAnswer,
} from "../../actors/evaluator/scoring/scorers.ts"
import { loadModelsConfig } from "../../actors/inference/modelsConfig.ts"
import { poolJudge } from "../../app/evaluation.ts"
import { type GlobalOptions, printJson, UsageError } from "../terminal/invocation.ts"

export interface ScoreOptions {
  readonly scorer: string
  readonly pred: string
  readonly truth: string
  readonly question?: string
  readonly judgeModel?: string
  readonly temperature?: string
  readonly json?: boolean
}

/** The exit code of a judge scorer run without a judge model. */
export const NEEDS_JUDGE_EXIT_CODE = 2

const report = (result: ScoreResult, json: boolean): void => {
  const judge = result.judge
  if (json) {
    printJson({
      scorer: result.scorer,
      correct: result.correct,
      status: result.status,
      method: result.method,
      ...(result.mode === undefined ? {} : { mode: result.mode }),
      ...(result.reason === undefined ? {} : { reason: result.reason }),
      ...(judge === undefined || judge.method === "exact"
        ? {}
        : {
            judge: {
              model: judge.judgeModel,
              outcome: judge.outcome,
              verdict: judge.verdict?.verdict ?? null,
              confidence: judge.confidence ?? null,
              attempts: judge.attempts,
              promptHash: judge.promptHash,
              temperature: judge.temperature,
              templateVersion: judge.templateVersion,
              parserVersion: judge.parserVersion,
            },
          }),
    })
    return
  }
  const verdict = result.status === "judge_failed" ? "judge failed" : result.correct ? "correct" : "wrong"
  const how =
    result.mode !== undefined
      ? `${result.mode} mode`
      : result.method === "exact"
        ? "exact match"
        : `judge ${judge?.judgeModel}`
  process.stdout.write(
    `${verdict} (${result.scorer}, ${how})${result.reason === undefined ? "" : `: ${result.reason}`}\n`,
  )
}

export const scoreCommand = (global: GlobalOptions, options: ScoreOptions) =>
  Effect.gen(function* () {
    const scorer = options.scorer
    if (!isScorerName(scorer))
      return yield* Effect.fail(
        new UsageError(`unknown scorer "${scorer}"; scorers: ${SCORER_NAMES.join(", ")}`),
      )
    let temperature: number | undefined
    if (options.temperature !== undefined) {
      temperature = Number(options.temperature)
      if (options.temperature.trim() === "" || !Number.isFinite(temperature) || temperature < 0)
        return yield* Effect.fail(
          new UsageError(`--temperature must be a number ≥ 0, got "${options.temperature}"`),
        )
    }
    const input = {
      truth: options.truth,
      prediction: options.pred,
      ...(options.question === undefined ? {} : { question: options.question }),
    }
    const judgeModel = options.judgeModel
    const scored =
      judgeModel === undefined || !needsJudge(scorer)
        ? scoreAnswer(scorer, input)
        : Effect.scoped(
            Effect.gen(function* () {
              const models = yield* loadModelsConfig({ dir: global.config ?? "config" })
              const judge = makeJudge({
                model: judgeModel,
                port: yield* poolJudge(models, judgeModel),
                ...(temperature === undefined ? {} : { temperature }),
              })
              return yield* scoreAnswer(scorer, input, judge)
            }),
          )
    const result = yield* scored.pipe(
      Effect.catchTag("JudgeRequired", (error: JudgeRequired) =>
        Effect.sync(() => {
          process.stderr.write(
            `rollout: the ${error.scorer} scorer needs a judge model: pass --judge-model <name> (a model in ${
              global.config ?? "config"
            }/models.yaml); only gaia scores without one\n`,
          )
          process.exitCode = NEEDS_JUDGE_EXIT_CODE
          return undefined
        }),
      ),
    )
    if (result === undefined) return
    report(result, options.json === true)
    if (result.status === "judge_failed") {
      process.stderr.write(
        `rollout: the judge gave no usable verdict: ${result.reason ?? "unknown reason"}\n`,
      )
      process.exitCode = 1
    }
  })
