/**
 * `rollout judge parse --benchmark <name>`: reads a judge's raw response on stdin and prints the
 * verdict the parser reads from it, as one JSON object `{verdict, confidence, …}` — for checking
 * the parser against real judge outputs.
 */
import * as Effect from "effect/Effect"
import { judgeProfileFor } from "../../actors/evaluator/datasets/benchmarks.ts"
import { parseJudgeVerdict } from "../../actors/evaluator/scoring/judge.ts"
import { JUDGE_PROFILES } from "../../actors/evaluator/scoring/judgeTemplates.ts"
import { PARSER_VERSION } from "../../actors/evaluator/scoring/verdictParsers.ts"
import { type GlobalOptions, printJson, UsageError } from "../terminal/invocation.ts"

export interface JudgeParseOptions {
  readonly benchmark: string
  readonly json?: boolean
}

const readStdin = (): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    process.stdin.on("data", (chunk: Buffer) => chunks.push(chunk))
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    process.stdin.on("error", reject)
  })

export const judgeParseCommand = (_global: GlobalOptions, options: JudgeParseOptions) =>
  Effect.gen(function* () {
    const profile = judgeProfileFor(options.benchmark)
    if (profile === undefined)
      return yield* Effect.fail(
        new UsageError(
          options.benchmark.startsWith("gaia")
            ? `${options.benchmark} is scored by exact match, not by a judge`
            : `no judge for "${options.benchmark}"; name a benchmark or one of the judge profiles: ${JUDGE_PROFILES.join(", ")}`,
        ),
      )
    if (process.stdin.isTTY === true)
      process.stderr.write("reading the judge's response from stdin (end with Ctrl-D)\n")
    const response = yield* Effect.tryPromise({
      try: readStdin,
      catch: (error) =>
        new UsageError(`cannot read stdin: ${error instanceof Error ? error.message : String(error)}`),
    })
    const verdict = parseJudgeVerdict(profile, response)
    printJson({
      benchmark: options.benchmark,
      profile,
      verdict: verdict.verdict,
      confidence: verdict.confidence ?? null,
      ...(verdict.notAttempted === true ? { notAttempted: true } : {}),
      parserVersion: PARSER_VERSION,
    })
  })
