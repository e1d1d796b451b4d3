/**
 * The trainer bridge's pure decisions, given(events).when(request).then(answer): what `next`
 * hands out and what an acknowledgement records (once, in order, 409 for a step never handed
 * out), when the run counts as finished (410), which weight versions may be published, and the
 * parsing of every request, each refusal naming its field. fast-check drives the parsers with
 * arbitrary queries and bodies (they never throw; what they accept is what the API allows) and
 * the fold with shuffled and repeated events (the same state whatever the order of redelivery).
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import {
  type BatchOf,
  type BridgeState,
  canonicalIntegerOf,
  decideAck,
  decideWeights,
  evolveBridge,
  initialBridgeState,
  lowestUnacknowledged,
  nextAnswer,
  parseMetricsBody,
  parseNextBody,
  parseNextQuery,
  parseStepSegment,
  parseWeightsBody,
} from "../../../src/actors/trainer/bridgeState.ts"
import type { DomainEvent } from "../../../src/events/schema.ts"

const RUN = "rl-run"

const published = (step: number, runId = RUN): BatchOf => ({
  type: "BatchPublished",
  runId,
  step,
  hash: step.toString(16).padStart(64, "0"),
  blob: { sha256: step.toString(16).padStart(64, "0"), bytes: 8 },
  groups: [`g${step}`],
  samples: 8,
  sequences: 8,
  tokens: 100,
  trainedTokens: 40,
  lags: [{ lag: 0, tokens: 40 }],
  drops: {},
})
const consumed = (step: number): DomainEvent => ({ type: "BatchConsumed", runId: RUN, step })
const weights = (version: string, endpoint?: string): DomainEvent => ({
  type: "WeightsPublished",
  model: "policy",
  version,
  ...(endpoint === undefined ? {} : { endpoint }),
})
const finished: DomainEvent = { type: "RunFinished", runId: RUN, status: "completed" }

const given = (events: ReadonlyArray<DomainEvent>): BridgeState =>
  events.reduce(evolveBridge, initialBridgeState(RUN))

const refusalOf = <A>(result: Result.Result<A, { status: number; error: string }>) => {
  if (Result.isSuccess(result)) throw new Error(`expected a refusal, got ${JSON.stringify(result.success)}`)
  return result.failure
}

describe("next and acknowledgements", () => {
  it("given nothing published, when next, then it waits for step 0", () => {
    expect(nextAnswer(given([]))).toEqual({ kind: "wait", step: 0 })
  })

  it("given steps 0 and 1 published, when next, then step 0; when 0 is acknowledged, then BatchConsumed and next is step 1", () => {
    const state = given([published(0), published(1)])
    expect(nextAnswer(state)).toEqual({ kind: "batch", batch: published(0) })
    const ack = decideAck(state, 0, "trainer-a")
    expect(ack).toEqual(
      Result.succeed([{ type: "BatchConsumed", runId: RUN, step: 0, trainer: "trainer-a" }]),
    )
    const after = given([published(0), published(1), ...Result.getOrThrow(ack)])
    expect(nextAnswer(after)).toEqual({ kind: "batch", batch: published(1) })
  })

  it("given step 0 acknowledged, when it is acknowledged again (a redelivery, a restarted trainer), then nothing is recorded", () => {
    const state = given([published(0), published(1), consumed(0)])
    expect(decideAck(state, 0)).toEqual(Result.succeed([]))
    expect(lowestUnacknowledged(state)).toBe(1)
  })

  it("given step 0 handed out, when the trainer acknowledges step 1 (skipping 0), then 409 naming the step to hand out", () => {
    const refusal = refusalOf(decideAck(given([published(0), published(1)]), 1))
    expect(refusal.status).toBe(409)
    expect(refusal.error).toContain("ack=1")
    expect(refusal.error).toContain("next step to hand out is 0")
  })

  it("given nothing published, when step 0 is acknowledged, then 409: it was never handed out", () => {
    const refusal = refusalOf(decideAck(given([]), 0))
    expect(refusal).toEqual({ status: 409, error: expect.stringContaining("not published yet") })
  })

  it("given the run finished with every batch acknowledged, when next, then finished; with one left, that batch", () => {
    expect(nextAnswer(given([published(0), consumed(0), finished]))).toEqual({ kind: "finished" })
    expect(nextAnswer(given([published(0), published(1), consumed(0), finished]))).toEqual({
      kind: "batch",
      batch: published(1),
    })
    // A run that finished with nothing published is finished at once.
    expect(nextAnswer(given([finished]))).toEqual({ kind: "finished" })
  })

  it("given events of another run, then nothing changes", () => {
    const state = given([published(0, "other"), { type: "BatchConsumed", runId: "other", step: 0 }])
    expect(state.published.size).toBe(0)
    expect(state.acknowledged.size).toBe(0)
  })

  it("given a second BatchPublished for a step, then the first one stays the batch", () => {
    const again = { ...published(0), hash: "f".repeat(64) }
    expect(given([published(0), again]).published.get(0)).toEqual(published(0))
  })
})

describe("weight versions", () => {
  it("given a new run (version 0), when version 1 is published, then WeightsPublished 1", () => {
    expect(decideWeights(given([]), "policy", 1)).toEqual(
      Result.succeed({ kind: "publish", event: { type: "WeightsPublished", model: "policy", version: "1" } }),
    )
  })

  it("given version 3 published, when 3 comes again, then a repeat (nothing recorded); when 2 or 0, then 400 naming version", () => {
    const state = given([weights("1"), weights("3")])
    expect(state.lastVersion).toBe(3)
    expect(decideWeights(state, "policy", 3)).toEqual(Result.succeed({ kind: "repeat" }))
    for (const version of [2, 0]) {
      const refusal = refusalOf(decideWeights(state, "policy", version))
      expect(refusal.status).toBe(400)
      expect(refusal.error).toMatch(/^version: .* not greater than the last published version 3/)
    }
    expect(refusalOf(decideWeights(given([]), "policy", 0)).status).toBe(400)
  })

  it("given an endpoint's own version report or a non-canonical version, then the bridge's last version is unchanged", () => {
    expect(given([weights("7", "http://127.0.0.1:1/v1"), weights("07"), weights("v8")]).lastVersion).toBe(0)
  })
})

describe("request parsing", () => {
  it("parses next's query: ack, wait (default 30 s, at most 60 s), trainer", () => {
    expect(parseNextQuery(new URLSearchParams(""))).toEqual(Result.succeed({ waitMs: 30_000 }))
    expect(parseNextQuery(new URLSearchParams("ack=4&wait=2.5&trainer=t1"))).toEqual(
      Result.succeed({ ack: 4, waitMs: 2500, trainer: "t1" }),
    )
    expect(parseNextQuery(new URLSearchParams("wait=600"))).toEqual(Result.succeed({ waitMs: 60_000 }))
  })

  it.each([
    ["ack=-1", /^ack: "-1" is not a step/],
    ["ack=01", /^ack: "01" is not a step/],
    ["ack=1e3", /^ack: /],
    ["ack=", /^ack: /],
    ["wait=soon", /^wait: "soon" is not a number of seconds/],
    ["wait=-2", /^wait: /],
    ["ack=1&ack=2", /^ack: given more than once/],
    ["acks=1", /^"acks": unknown parameter/],
    ["trainer=", /^trainer: /],
    ["trainer=a%0Ab", /^trainer: /],
  ])("refuses next?%s naming the field", (query, pattern) => {
    const refusal = refusalOf(parseNextQuery(new URLSearchParams(query)))
    expect(refusal.status).toBe(400)
    expect(refusal.error).toMatch(pattern)
  })

  it("parses next's NATS body like its query", () => {
    expect(parseNextBody({ ack: 2, wait: 1 })).toEqual(Result.succeed({ ack: 2, waitMs: 1000 }))
    expect(parseNextBody(undefined)).toEqual(Result.succeed({ waitMs: 30_000 }))
    expect(refusalOf(parseNextBody({ ack: 1.5 })).error).toMatch(/^ack: /)
    expect(refusalOf(parseNextBody({ ack: true })).error).toMatch(/^ack: must be a number/)
    expect(refusalOf(parseNextBody([1])).error).toMatch(/^body: /)
    expect(refusalOf(parseNextBody({ step: 1 })).error).toMatch(/^"step": unknown field/)
  })

  it("parses a step path segment", () => {
    expect(parseStepSegment("12")).toEqual(Result.succeed(12))
    expect(refusalOf(parseStepSegment("%ZZ")).error).toMatch(/^step: /)
    expect(refusalOf(parseStepSegment("1.0")).error).toMatch(/^step: "1.0" is not a step/)
  })

  it("parses weights: version as a number or canonical text, path, optional checksum; each error names its field", () => {
    expect(parseWeightsBody({ version: 3, path: "/ckpt/3" })).toEqual(
      Result.succeed({ version: 3, path: "/ckpt/3" }),
    )
    expect(parseWeightsBody({ version: "3", path: "/ckpt/3", checksum: "abc" })).toEqual(
      Result.succeed({ version: 3, path: "/ckpt/3", checksum: "abc" }),
    )
    expect(refusalOf(parseWeightsBody({ version: "03", path: "/p" })).error).toMatch(
      /^version: "03" is not a weight version/,
    )
    expect(refusalOf(parseWeightsBody({ version: -1, path: "/p" })).error).toMatch(/^version: /)
    expect(refusalOf(parseWeightsBody({ version: 1.5, path: "/p" })).error).toMatch(/^version: /)
    expect(refusalOf(parseWeightsBody({ version: 1 })).error).toMatch(/^path: /)
    expect(refusalOf(parseWeightsBody({ version: 1, path: "  " })).error).toMatch(/^path: must not be blank/)
    expect(refusalOf(parseWeightsBody({ version: 1, path: "/p", extra: 1 })).error).toBe(
      '["extra"]: unknown field',
    )
    expect(refusalOf(parseWeightsBody("x")).error).toMatch(/^body: /)
  })

  it("parses metrics into TrainerStepReported; a bad metric names its path", () => {
    expect(parseMetricsBody(RUN, { step: 2, version: 3, metrics: { loss: 0.5 } })).toEqual(
      Result.succeed({
        type: "TrainerStepReported",
        runId: RUN,
        step: 2,
        version: "3",
        metrics: { loss: 0.5 },
        ratioByLag: [],
      }),
    )
    expect(
      refusalOf(parseMetricsBody(RUN, { step: 2, version: 3, metrics: { loss: "high" } })).error,
    ).toMatch(/^metrics\.loss: Expected number/)
    expect(
      refusalOf(
        parseMetricsBody(RUN, {
          step: 2,
          version: 3,
          metrics: {},
          ratioByLag: [{ lag: 0, tokens: 1, meanRatio: null }],
        }),
      ).error,
    ).toMatch(/^ratioByLag\[0\]\.meanRatio: /)
    expect(refusalOf(parseMetricsBody(RUN, { step: -1, version: 3, metrics: {} })).error).toMatch(/^step: /)
    expect(refusalOf(parseMetricsBody(RUN, { step: 1, version: "x", metrics: {} })).error).toMatch(
      /^version: /,
    )
  })

  it("canonical integers are decimal text without sign, leading zeros or exponent, up to 2^53 − 1", () => {
    expect(["0", "1", "42", "9007199254740991"].map(canonicalIntegerOf)).toEqual([0, 1, 42, 9007199254740991])
    expect(["", "00", "-1", "+1", "1e2", " 1", "1.0", "9007199254740992"].map(canonicalIntegerOf)).toEqual(
      Array(8).fill(undefined),
    )
  })
})

/** A refusal starts with the field it names: a known one (with its path) or a quoted unknown key. */
const FIELD_FIRST =
  /^(body|ack|wait|trainer|step|version|path|checksum|metrics|ratioByLag|"(?:[^"\\]|\\.)*"|\["(?:[^"\\]|\\.)*"\])[^ ]*: \S/

describe("properties", () => {
  const queryText = fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom("ack", "wait", "trainer"), fc.string({ maxLength: 8 })),
      fc.oneof(fc.nat().map(String), fc.string({ maxLength: 12 }), fc.double().map(String)),
    ),
    { maxLength: 5 },
  )

  test.prop([queryText])("next's query parser never throws; what it accepts is in range", (pairs) => {
    const result = parseNextQuery(new URLSearchParams(pairs))
    if (Result.isSuccess(result)) {
      const { ack, waitMs } = result.success
      expect(waitMs).toBeGreaterThanOrEqual(0)
      expect(waitMs).toBeLessThanOrEqual(60_000)
      if (ack !== undefined) expect(Number.isSafeInteger(ack) && ack >= 0).toBe(true)
    } else {
      expect(result.failure.status).toBe(400)
      expect(result.failure.error).toMatch(/^("(?:[^"\\]|\\.)*"|ack|wait|trainer): /)
    }
  })

  test.prop([fc.anything(), fc.string()])(
    "body parsers never throw and name a field in every refusal",
    (body, segment) => {
      const results: ReadonlyArray<Result.Result<unknown, { status: number; error: string }>> = [
        parseWeightsBody(body),
        parseMetricsBody(RUN, body),
        parseNextBody(body),
        parseStepSegment(segment),
      ]
      for (const result of results) {
        if (Result.isFailure(result)) {
          expect(result.failure.status).toBe(400)
          expect(result.failure.error).toMatch(FIELD_FIRST)
        }
      }
    },
  )

  test.prop([
    fc.record({
      version: fc.oneof(fc.integer({ min: -5, max: 1000 }), fc.string({ maxLength: 6 })),
      path: fc.oneof(fc.string({ maxLength: 10 }), fc.constant("/ckpt")),
    }),
  ])(
    "weights: accepted exactly when version is a non-negative integer (or its canonical text) and path not blank",
    (body) => {
      const result = parseWeightsBody(body)
      const version = typeof body.version === "number" ? body.version : canonicalIntegerOf(body.version)
      const valid = version !== undefined && version >= 0 && body.path.trim() !== ""
      expect(Result.isSuccess(result)).toBe(valid)
      if (Result.isSuccess(result)) expect(result.success.version).toBe(version)
    },
  )

  test.prop([fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }), fc.infiniteStream(fc.nat())])(
    "the fold is the same whatever the order of events and however often each is redelivered",
    (batches, acks, draws) => {
      const events: Array<DomainEvent> = [
        ...Array.from({ length: batches }, (_, i) => published(i)),
        ...Array.from({ length: Math.min(acks, batches) }, (_, i) => consumed(i)),
        weights(String(acks)),
      ]
      const iterator = draws[Symbol.iterator]()
      const draw = (n: number) => (iterator.next().value as number) % n
      const shuffled = [...events, ...events.filter(() => draw(2) === 0)]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = draw(i + 1)
        ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
      }
      const a = given(events)
      const b = given(shuffled)
      expect([...b.published.keys()].sort()).toEqual([...a.published.keys()].sort())
      expect([...b.acknowledged].sort()).toEqual([...a.acknowledged].sort())
      expect(b.lastVersion).toBe(a.lastVersion)
      expect(lowestUnacknowledged(b)).toBe(Math.min(acks, batches))
    },
  )

  test.prop([fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 30 })])(
    "acknowledging arbitrary steps records each step at most once, in order, never one not handed out",
    (attempts) => {
      let state = given([0, 1, 2, 3, 4].map((s) => published(s)))
      const recorded: Array<number> = []
      for (const step of attempts) {
        const handedOut = lowestUnacknowledged(state)
        const decided = decideAck(state, step)
        if (Result.isFailure(decided)) {
          expect(decided.failure.status).toBe(409)
          expect(step === handedOut && state.published.has(step)).toBe(false)
          continue
        }
        for (const event of decided.success) {
          recorded.push(event.step)
          state = evolveBridge(state, event)
        }
      }
      expect(recorded).toEqual(recorded.map((_, i) => i))
    },
  )
})
