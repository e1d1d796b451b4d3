/**
 * The evaluator's decider, given(events).when(input).then(events), with no I/O: starting a run and
 * resuming it (a resume with other options is refused), scoring a sample (refused before the
 * start, for a sample not in the run, and for one scored already), and finishing (how the run
 * ended, and no second `RunFinished` from a resume that ran nothing). Properties: a resume never
 * re-runs a scored sample, and the order in which the run's events arrive does not change the state.
 */
import { fc, test } from "@fast-check/vitest"
import * as HashMap from "effect/HashMap"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { defaultPolicy } from "../../src/actors/agent/decider.ts"
import {
  decide,
  type EvaluationInput,
  type EvaluationState,
  evolve,
  initial,
  pendingSamples,
  runSamples,
  scoredSamples,
  scoreOf,
} from "../../src/actors/evaluator/decider.ts"
import { type RunDescription, runStartedEvent } from "../../src/actors/evaluator/runDescription.ts"
import type { DomainEvent, Envelope, EventOf } from "../../src/events/schema.ts"

const describeRun = (taskIds: ReadonlyArray<string>, k: number, model = "agent"): RunDescription => ({
  runId: "r1",
  model,
  benchmark: "custom",
  k,
  tasks: taskIds.map((taskId) => ({ taskId })),
  scorer: "gaia",
  judgeModel: undefined,
  policy: defaultPolicy,
  concurrency: 4,
  limit: undefined,
  extra: undefined,
})

const at = (event: DomainEvent, position: number): Envelope => ({
  eventId: `e${position}`,
  position,
  subject: "t.ev.run.r1",
  schemaVersion: 1,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "r1",
  causationId: `e${position}`,
  actor: "evaluator",
  event,
})

/** The events in log order, at positions 1, 2, … */
const given = (events: ReadonlyArray<DomainEvent>): EvaluationState =>
  events.reduce((s, e, i) => evolve(s, at(e, i + 1)), initial)

const scored = (
  taskId: string,
  sample: number,
  verdict: EventOf<"SampleScored">["verdict"] = "correct",
): EventOf<"SampleScored"> => ({
  type: "SampleScored",
  runId: "r1",
  taskId,
  sampleIndex: sample,
  episodeId: `r1/${taskId}/${sample}`,
  scorer: "gaia",
  verdict,
  score: verdict === "correct" ? 1 : 0,
})

const score = (
  taskId: string,
  sample: number,
  verdict: EventOf<"SampleScored">["verdict"] = "correct",
): EvaluationInput => {
  const { type: _type, runId: _runId, sampleIndex, ...rest } = scored(taskId, sample, verdict)
  return { kind: "score", sample: sampleIndex, ...rest }
}

const finish = (
  attempted: number,
  reachedModel: number,
  gaveUp: ReadonlyArray<{ taskId: string; sample: number; reason: string }> = [],
  reasons: ReadonlyArray<readonly [string, number]> = [],
): EvaluationInput => ({ kind: "finish", attempted, reachedModel, gaveUp, reasons })

const started = runStartedEvent(describeRun(["a", "b"], 2))

describe("starting and resuming a run", () => {
  it("given an empty stream, when started, then RunStarted records the run, and every sample is pending", () => {
    const events = Result.getOrThrow(decide(initial, { kind: "start", run: describeRun(["a", "b"], 2) }))
    expect(events).toEqual([started])
    const state = given(events)
    expect(pendingSamples(state)).toEqual([
      { taskId: "a", sample: 0 },
      { taskId: "b", sample: 0 },
      { taskId: "a", sample: 1 },
      { taskId: "b", sample: 1 },
    ])
    expect(scoredSamples(state)).toEqual([])
  })

  it("given a started run, when started again with the same options, then nothing is written (a resume)", () => {
    expect(decide(given([started]), { kind: "start", run: describeRun(["a", "b"], 2) })).toEqual(
      Result.succeed([]),
    )
  })

  it("given a started run, when started with another model or other tasks, then it is refused, saying why", () => {
    const other = decide(given([started]), { kind: "start", run: describeRun(["a", "b"], 2, "other") })
    expect(other).toEqual(
      Result.fail({
        kind: "mismatch",
        reason: "it was started with model agent, not other; use another run id",
      }),
    )
    const fewer = decide(given([started]), { kind: "start", run: describeRun(["a"], 2) })
    expect(Result.isFailure(fewer) && fewer.failure.kind).toBe("mismatch")
  })

  it("given two RunStarted, the first in the log describes the run", () => {
    const later = runStartedEvent(describeRun(["c"], 1))
    const state = given([started, later])
    expect(state.started?.event).toEqual(started)
    expect(runSamples(state)).toHaveLength(4)
  })
})

describe("scoring a sample", () => {
  it("given an empty stream, when a sample is scored, then it is refused: the run has not started", () => {
    expect(decide(initial, score("a", 0))).toEqual(
      Result.fail({ kind: "not_started", reason: "the run has not started" }),
    )
  })

  it("given a started run, when a sample is scored, then SampleScored records its verdict and score", () => {
    expect(decide(given([started]), score("b", 1, "incorrect"))).toEqual(
      Result.succeed([scored("b", 1, "incorrect")]),
    )
  })

  it("given a started run, when a task it did not list or a sample beyond k is scored, then it is refused", () => {
    const state = given([started])
    for (const input of [score("zz", 0), score("a", 2), score("a", -1)]) {
      const decided = decide(state, input)
      expect(Result.isFailure(decided) && decided.failure.kind).toBe("not_in_run")
    }
  })

  it("given a scored sample, when it is scored again, then it is refused, and a resume skips it", () => {
    const state = given([started, scored("a", 0)])
    expect(decide(state, score("a", 0, "incorrect"))).toEqual(
      Result.fail({ kind: "already_scored", reason: "sample a#0 is scored already" }),
    )
    expect(pendingSamples(state)).not.toContainEqual({ taskId: "a", sample: 0 })
    expect(scoredSamples(state)).toEqual([{ taskId: "a", sample: 0 }])
  })

  it("given two scores of one sample, the later in the log stands, folded in either order", () => {
    const first = scored("a", 0, "correct")
    const second = scored("a", 0, "judge_failed")
    const inOrder = [at(started, 1), at(first, 2), at(second, 3)]
    for (const order of [inOrder, [inOrder[0]!, inOrder[2]!, inOrder[1]!]]) {
      const state = order.reduce(evolve, initial)
      expect(scoreOf(state, "a", 0)?.verdict).toBe("judge_failed")
    }
  })

  it("folding the same entry twice (a redelivery) changes nothing", () => {
    const once = [
      at(started, 1),
      at(scored("a", 0), 2),
      at({ type: "RunFinished", runId: "r1", status: "completed" }, 3),
    ]
    const twice = [...once, ...once].reduce(evolve, initial)
    expect(view(twice)).toEqual(view(once.reduce(evolve, initial)))
  })
})

describe("finishing a run", () => {
  it("given a run whose samples all ran, when finished, then it completed", () => {
    expect(decide(given([started]), finish(4, 4))).toEqual(
      Result.succeed([{ type: "RunFinished", runId: "r1", status: "completed" }]),
    )
  })

  it("given samples that could not run, when finished, then it failed, naming how many and the first", () => {
    const gaveUp = [
      { taskId: "a", sample: 1, reason: "stuck" },
      { taskId: "b", sample: 1, reason: "gone" },
    ]
    expect(decide(given([started]), finish(4, 2, gaveUp))).toEqual(
      Result.succeed([
        {
          type: "RunFinished",
          runId: "r1",
          status: "failed",
          reason: "2 sample(s) could not run to an end; first: a#1: stuck",
        },
      ]),
    )
  })

  it("given no tried sample reached the model, when finished, then it failed with the reasons counted", () => {
    const reasons = [["model: connection refused at http://127.0.0.1:9/v1", 3] as const]
    expect(decide(given([started]), finish(3, 0, [], reasons))).toEqual(
      Result.succeed([
        {
          type: "RunFinished",
          runId: "r1",
          status: "failed",
          reason:
            "no sample reached model agent (3 tried): model: connection refused at http://127.0.0.1:9/v1 ×3",
        },
      ]),
    )
  })

  it("given a finished run, when a resume that ran nothing finishes, then nothing is written; one that ran something finishes again", () => {
    const done = given([started, { type: "RunFinished", runId: "r1", status: "completed" }])
    expect(decide(done, finish(0, 0))).toEqual(Result.succeed([]))
    expect(decide(done, finish(1, 1))).toEqual(
      Result.succeed([{ type: "RunFinished", runId: "r1", status: "completed" }]),
    )
    expect(decide(given([]), finish(0, 0))).toEqual(
      Result.fail({ kind: "not_started", reason: "the run has not started" }),
    )
  })
})

/** The state as plain data (the scored map sorted by key), to compare states. */
const view = (state: EvaluationState) => ({
  started: state.started,
  tasks: state.tasks,
  k: state.k,
  finished: state.finished,
  scored: HashMap.toEntries(state.scored).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
})

/** A run: unique task ids, k, and some of its samples scored (some twice), then maybe finished. */
const runArb = fc
  .record({
    taskIds: fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }),
    k: fc.integer({ min: 1, max: 4 }),
    finished: fc.nat({ max: 2 }),
  })
  .chain(({ taskIds, k, finished }) => {
    const samples = taskIds.flatMap((taskId) =>
      Array.from({ length: k }, (_, sample) => ({ taskId, sample })),
    )
    return fc.record({
      taskIds: fc.constant(taskIds),
      k: fc.constant(k),
      finished: fc.constant(finished),
      scores: fc.array(
        fc.record({
          at: fc.constantFrom(...samples),
          verdict: fc.constantFrom("correct" as const, "incorrect" as const, "judge_failed" as const),
        }),
        { maxLength: samples.length * 2 },
      ),
    })
  })

type RunCase = typeof runArb extends fc.Arbitrary<infer T> ? T : never

/** The run's events in log order. */
const eventsOf = (run: RunCase): DomainEvent[] => [
  runStartedEvent(describeRun(run.taskIds, run.k)),
  ...run.scores.map((s) => scored(s.at.taskId, s.at.sample, s.verdict)),
  ...Array.from(
    { length: run.finished },
    (): DomainEvent => ({ type: "RunFinished", runId: "r1", status: "completed" }),
  ),
]

describe("properties", () => {
  test.prop([runArb])("a resume never re-runs a scored sample, and runs every other one", (run) => {
    const state = given(eventsOf(run))
    // The resume with the same options writes nothing new.
    expect(decide(state, { kind: "start", run: describeRun(run.taskIds, run.k) })).toEqual(Result.succeed([]))
    const key = (s: { taskId: string; sample: number }) => JSON.stringify([s.taskId, s.sample])
    const pending = new Set(pendingSamples(state).map(key))
    const done = new Set(run.scores.map((s) => key(s.at)))
    for (const p of pending) expect(done.has(p)).toBe(false)
    expect(pending.size + done.size).toBe(run.taskIds.length * run.k)
    for (const p of pendingSamples(state))
      expect(Result.isSuccess(decide(state, score(p.taskId, p.sample)))).toBe(true)
    for (const s of run.scores) {
      const decided = decide(state, score(s.at.taskId, s.at.sample))
      expect(Result.isFailure(decided) && decided.failure.kind).toBe("already_scored")
    }
  })

  /** A run's envelopes at positions 1, 2, … and the same in an arbitrary arrival order. */
  const arrivals = runArb.chain((run) => {
    const envelopes = eventsOf(run).map((e, i) => at(e, i + 1))
    return fc.record({
      envelopes: fc.constant(envelopes),
      arrived: fc.shuffledSubarray(envelopes, { minLength: envelopes.length, maxLength: envelopes.length }),
    })
  })

  test.prop([arrivals])(
    "the order in which the run's events arrive does not change the state",
    ({ envelopes, arrived }) => {
      expect(view(arrived.reduce(evolve, initial))).toEqual(view(envelopes.reduce(evolve, initial)))
    },
  )
})
