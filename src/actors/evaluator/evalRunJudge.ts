/**
 * The eval driver's judge: `makeJudge` behind a cache in the log. Every judgement a judge model
 * made is recorded as `JudgeVerdictRecorded` on `ev.judge.<cacheKey>` (the content hash of
 * benchmark profile, judge model, question, ground truth, prediction and template version), and
 * that subject is read before the judge is asked again: the same judgement is never asked twice,
 * across runs and restarts. A cached raw response is parsed again when the parser has changed
 * since. A judgement whose call failed (the judge was unreachable) is not a cache hit: it is asked
 * again next time. Judgements of the same key in flight at once share one call. An entry of a
 * judge's subject that does not decode is kept (`undecodable`) for the run to name, not skipped
 * silently.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { EventOf } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { Clock } from "../../runtime/clock.ts"
import {
  type JudgeResult,
  type JudgeSettings,
  judgeCacheKey,
  makeJudge,
  parseJudgeVerdict,
} from "./scoring/judge.ts"
import {
  JUDGE_TEMPLATES,
  type JudgeInput,
  type JudgeProfile,
  xbenchExactMatch,
} from "./scoring/judgeTemplates.ts"
import { PARSER_VERSION, type Verdict } from "./scoring/verdictParsers.ts"

export interface JudgeCacheStats {
  /** Judgements asked of the judge model (each may be several calls: a retry of an unparseable verdict). */
  readonly asked: number
  /** Judgements answered from the log (or from a judgement in flight with the same key). */
  readonly cached: number
}

export interface CachedJudge {
  /** Judges through the cache; the log's failure is the caller's to handle. */
  readonly judge: (profile: JudgeProfile, input: JudgeInput) => Effect.Effect<JudgeResult, LogUnavailable>
  readonly stats: () => JudgeCacheStats
  /** Entries of the judges' subjects read so far that did not decode, by position. */
  readonly undecodable: () => ReadonlyArray<UndecodableEvent>
}

type Recorded = EventOf<"JudgeVerdictRecorded">

/** A recorded judgement whose call failed has fewer responses than attempts; it is asked again. */
const usable = (e: Recorded): boolean => e.attempts > 0 && e.responses.length >= e.attempts

/** The judgement a recorded verdict stands for; its responses are parsed again under a newer parser. */
const fromRecord = (profile: JudgeProfile, e: Recorded): JudgeResult => {
  const base = {
    method: "judge" as const,
    profile,
    judgeModel: e.judgeModel,
    promptHash: e.promptHash,
    temperature: e.temperature,
    templateVersion: e.templateVersion,
    attempts: e.attempts,
    responses: e.responses,
  }
  if (e.parserVersion === PARSER_VERSION) {
    const verdict: Verdict | undefined =
      e.verdict === "judge_failed"
        ? undefined
        : { verdict: e.verdict, ...(e.confidence === undefined ? {} : { confidence: e.confidence }) }
    return {
      ...base,
      outcome: e.verdict,
      parserVersion: e.parserVersion,
      ...(verdict === undefined ? {} : { verdict }),
      ...(e.confidence === undefined ? {} : { confidence: e.confidence }),
      ...(e.failure === undefined ? {} : { failure: { kind: "unparseable" as const, message: e.failure } }),
    }
  }
  const parsed = e.responses
    .map((r) => parseJudgeVerdict(profile, r))
    .find((v) => v.verdict !== "unparseable")
  if (parsed === undefined || parsed.verdict === "unparseable")
    return {
      ...base,
      outcome: "judge_failed",
      parserVersion: PARSER_VERSION,
      failure: {
        kind: "unparseable",
        message: `no verdict could be read from the recorded responses (parser ${PARSER_VERSION})`,
      },
    }
  return {
    ...base,
    outcome: parsed.verdict,
    parserVersion: PARSER_VERSION,
    verdict: parsed,
    ...(parsed.confidence === undefined ? {} : { confidence: parsed.confidence }),
  }
}

const toEvent = (cacheKey: string, benchmark: string, r: JudgeResult): Recorded => ({
  type: "JudgeVerdictRecorded",
  cacheKey,
  benchmark,
  judgeModel: r.judgeModel,
  promptHash: r.promptHash,
  temperature: r.temperature,
  templateVersion: r.templateVersion,
  parserVersion: r.parserVersion,
  verdict: r.outcome,
  ...(r.confidence === undefined ? {} : { confidence: r.confidence }),
  attempts: r.attempts,
  responses: r.responses,
  ...(r.failure === undefined ? {} : { failure: r.failure.message }),
})

/**
 * A judge that looks in the log before it asks `settings`' model and records what it was told.
 * `benchmark` names the benchmark in the recorded events; `clock` stamps them.
 */
export const makeCachedJudge = (
  log: EventLogShape,
  settings: JudgeSettings,
  options: { readonly benchmark: string; readonly clock: Clock; readonly correlationId: string },
): CachedJudge => {
  const inner = makeJudge(settings)
  const inFlight = new Map<string, Deferred.Deferred<JudgeResult, LogUnavailable>>()
  let asked = 0
  let cached = 0
  const broken = new Map<number, UndecodableEvent>()

  /** The recorded judgements of a key, in order, and the subject's last position. */
  const recorded = (subject: string) =>
    Effect.map(
      foldEvents(log, { filter: subject }, [] as Recorded[], (events, { event }) => {
        if (event.type === "JudgeVerdictRecorded") events.push(event)
        return events
      }),
      ({ state, last, undecodable }) => {
        for (const u of undecodable) broken.set(u.position, u)
        return { events: state, last }
      },
    )

  const judgeOnce = (profile: JudgeProfile, input: JudgeInput, cacheKey: string) =>
    Effect.gen(function* () {
      const subject = entitySubject(log.namespace, "judge", cacheKey)
      const { events, last } = yield* recorded(subject)
      const hit = events.filter(usable).at(-1)
      if (hit !== undefined) {
        cached++
        return fromRecord(profile, hit)
      }
      asked++
      const result = yield* inner(profile, input)
      const eventId = `judge/${cacheKey}/${events.length}`
      // Another process recording the same judgement first is no error: both verdicts stand.
      yield* log
        .append(
          subject,
          [
            {
              eventId,
              recordedAt: options.clock.iso(),
              correlationId: options.correlationId,
              causationId: eventId,
              actor: "evaluator",
              event: toEvent(cacheKey, options.benchmark, result),
            },
          ],
          { expectedLastPosition: last },
        )
        .pipe(
          Effect.catchTag("ConcurrencyConflict", () => Effect.void),
          Effect.catchTag("InvalidEvent", (e) => Effect.die(e)),
        )
      return result
    })

  const judge = (profile: JudgeProfile, input: JudgeInput): Effect.Effect<JudgeResult, LogUnavailable> =>
    Effect.gen(function* () {
      // xbench's exact match decides without a judge call: nothing to cache.
      if (profile === "xbench" && xbenchExactMatch(input.prediction, input.truth))
        return yield* inner(profile, input)
      const cacheKey = judgeCacheKey(
        profile,
        settings.model,
        input.question,
        input.truth,
        input.prediction,
        JUDGE_TEMPLATES[profile].version,
      )
      const pending = inFlight.get(cacheKey)
      if (pending !== undefined) {
        cached++
        return yield* Deferred.await(pending)
      }
      const deferred = Deferred.makeUnsafe<JudgeResult, LogUnavailable>()
      inFlight.set(cacheKey, deferred)
      return yield* judgeOnce(profile, input, cacheKey).pipe(
        Effect.onExit((exit) =>
          Effect.andThen(
            Deferred.done(deferred, exit),
            Effect.sync(() => {
              inFlight.delete(cacheKey)
            }),
          ),
        ),
      )
    })

  return {
    judge,
    stats: () => ({ asked, cached }),
    undecodable: () => [...broken.values()].sort((a, b) => a.position - b.position),
  }
}
