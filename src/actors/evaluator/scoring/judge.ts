/**
 * The LLM judge: renders a profile's prompt, calls a judge model through a port, parses the
 * verdict, retries once when it is unparseable and otherwise records `judge_failed` — counted and
 * reported, never silently wrong. Every result names the judge model, the SHA-256 of the exact
 * prompt, the temperature, the template version and the parser version. xbench's exact-match
 * shortcut scores before any call.
 *
 * The port is a plain function so that tests can fake it; in the runtime it is the inference pool
 * (`poolJudgePort`).
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import {
  JUDGE_TEMPLATES,
  type JudgeInput,
  type JudgeMessage,
  type JudgeProfile,
  xbenchExactMatch,
} from "./judgeTemplates.ts"
import { PARSER_VERSION, parseVerdict, type Verdict } from "./verdictParsers.ts"

/** The judge model could not be called (after whatever retries the port makes itself). */
export class JudgeCallError extends Schema.TaggedError<JudgeCallError>()("JudgeCallError", {
  model: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `judge model ${this.model}: ${this.reason}`
  }
}

export interface JudgePort {
  readonly complete: (
    messages: ReadonlyArray<JudgeMessage>,
    options: { readonly temperature: number },
  ) => Effect.Effect<string, JudgeCallError>
}

export interface JudgeSettings {
  /** The judge model's name, recorded with every verdict. */
  readonly model: string
  readonly port: JudgePort
  /** Default 0. */
  readonly temperature?: number
}

export interface JudgeResult {
  /** `judge_failed`: the call failed, or the verdict stayed unparseable after one retry. */
  readonly outcome: "correct" | "incorrect" | "judge_failed"
  /** `exact`: decided without a judge call (xbench's exact match). */
  readonly method: "exact" | "judge"
  readonly profile: JudgeProfile
  /** The last parsed verdict (absent for `exact`, or when the call failed before any). */
  readonly verdict?: Verdict
  readonly confidence?: number
  readonly judgeModel: string
  /** SHA-256 (hex) of the exact prompt: the JSON of the messages sent. */
  readonly promptHash: string
  readonly temperature: number
  readonly templateVersion: string
  readonly parserVersion: string
  /** Judge calls made (0 for `exact`). */
  readonly attempts: number
  /** The judge's raw responses, in order. */
  readonly responses: ReadonlyArray<string>
  readonly failure?: { readonly kind: "call" | "unparseable"; readonly message: string }
}

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex")

/** SHA-256 (hex) of the exact prompt, i.e. of the JSON of the messages. */
export const promptHash = (messages: ReadonlyArray<JudgeMessage>): string =>
  sha256(JSON.stringify(messages.map((m) => ({ role: m.role, content: m.content }))))

/**
 * A content-hash key for caching a judge's response: the same benchmark, judge model, question,
 * ground truth, prediction and template version give the same key. Cache the raw response and
 * parse it again on a hit, so a parser change (PARSER_VERSION) needs no new judge calls.
 */
export const judgeCacheKey = (
  benchmark: string,
  model: string,
  question: string,
  truth: string,
  prediction: string,
  templateVersion: string,
): string =>
  sha256(JSON.stringify(["judge-cache/1", benchmark, model, question, truth, prediction, templateVersion]))

/** Parses a judge's raw response with the verdict parser of the profile's template. */
export const parseJudgeVerdict = (profile: JudgeProfile, response: string): Verdict =>
  parseVerdict(JUDGE_TEMPLATES[profile].format, response)

/** The attempts per judgement: the first call and one retry of an unparseable verdict. */
const MAX_ATTEMPTS = 2

export type Judge = (profile: JudgeProfile, input: JudgeInput) => Effect.Effect<JudgeResult>

/** A judge over a port. The effect never fails: a failed judgement is a `judge_failed` result. */
export const makeJudge =
  (settings: JudgeSettings): Judge =>
  (profile, input) =>
    Effect.gen(function* () {
      const template = JUDGE_TEMPLATES[profile]
      const messages = template.render(input)
      const temperature = settings.temperature ?? 0
      const base = {
        profile,
        judgeModel: settings.model,
        promptHash: promptHash(messages),
        temperature,
        templateVersion: template.version,
        parserVersion: PARSER_VERSION,
      }
      if (profile === "xbench" && xbenchExactMatch(input.prediction, input.truth))
        return {
          ...base,
          outcome: "correct",
          method: "exact",
          attempts: 0,
          responses: [],
        } satisfies JudgeResult
      const responses: Array<string> = []
      let verdict: Verdict | undefined
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const response = yield* Effect.result(settings.port.complete(messages, { temperature }))
        if (response._tag === "Failure")
          return {
            ...base,
            outcome: "judge_failed",
            method: "judge",
            ...(verdict === undefined ? {} : { verdict }),
            attempts: attempt,
            responses,
            failure: { kind: "call", message: response.failure.message },
          } satisfies JudgeResult
        responses.push(response.success)
        verdict = parseVerdict(template.format, response.success)
        if (verdict.verdict !== "unparseable")
          return {
            ...base,
            outcome: verdict.verdict,
            method: "judge",
            verdict,
            ...(verdict.confidence === undefined ? {} : { confidence: verdict.confidence }),
            attempts: attempt,
            responses,
          } satisfies JudgeResult
      }
      return {
        ...base,
        outcome: "judge_failed",
        method: "judge",
        ...(verdict === undefined ? {} : { verdict }),
        attempts: MAX_ATTEMPTS,
        responses,
        failure: {
          kind: "unparseable",
          message: `no verdict could be read from the judge's response after ${MAX_ATTEMPTS} attempts (parser ${PARSER_VERSION})`,
        },
      } satisfies JudgeResult
    })
