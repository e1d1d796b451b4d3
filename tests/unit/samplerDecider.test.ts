/**
 * The sampler's pure core: the seeded task order, the fold of the run's stream, and the three
 * brakes on starting a group (episodes in flight, unconsumed batches, staleness), given/when/then,
 * with fast-check for the shuffle and the staleness bound.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  abandonGroup,
  epochOrder,
  evolveSampler,
  groupAt,
  groupIdOf,
  initialSampler,
  liveVersion,
  mayStartGroup,
  openGroups,
  type PlanView,
  type SamplerLimits,
  type SamplerState,
  samplingDone,
  unscoredSamples,
} from "../../src/actors/sampler/decider.ts"
import type { DomainEvent, Envelope } from "../../src/events/schema.ts"

let position = 0
const envelope = (event: DomainEvent): Envelope => {
  position++
  return {
    eventId: `e${position}`,
    recordedAt: "2026-12-07T00:00:00.000Z",
    correlationId: "run",
    causationId: "run",
    actor: "test",
    position,
    subject: "ev.run.r",
    schemaVersion: 1,
    event,
  }
}
const fold = (events: ReadonlyArray<DomainEvent>, state: SamplerState = initialSampler("r")) =>
  events.reduce((s, e) => evolveSampler(s, envelope(e)), state)

const started: DomainEvent = { type: "RunStarted", runId: "r", kind: "rl", model: "policy", k: 2 }
const group = (index: number, version = "0"): DomainEvent => ({
  type: "GroupStarted",
  runId: "r",
  group: groupIdOf(index),
  taskId: `t${index}`,
  epoch: 0,
  samples: 2,
  version,
})
const scored = (index: number, sample: number): DomainEvent => ({
  type: "SampleScored",
  runId: "r",
  taskId: `t${index}`,
  sampleIndex: sample,
  group: groupIdOf(index),
  episodeId: `r/${groupIdOf(index)}/${sample}`,
  scorer: "gaia",
  verdict: "correct",
  score: 1,
})
const limits: SamplerLimits = {
  groupSize: 2,
  concurrency: 4,
  batchGroups: 1,
  maxLag: 1,
  maxUnconsumedBatches: 2,
  totalGroups: 10,
  steps: undefined,
}
const noPlan: PlanView = { groupsInSteps: 0, stepsClosed: 0 }

describe("the seeded task order", () => {
  it("is a permutation of the tasks, the same for the same seed and epoch", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { maxLength: 40 }),
        fc.integer(),
        fc.nat(20),
        (ids, seed, epoch) => {
          const order = epochOrder(ids, seed, epoch)
          expect([...order].sort()).toEqual([...ids].sort())
          expect(epochOrder(ids, seed, epoch)).toEqual(order)
        },
      ),
    )
  })

  it("differs between epochs and seeds (for a set large enough to tell)", () => {
    const ids = Array.from({ length: 30 }, (_, i) => `task-${i}`)
    expect(epochOrder(ids, 0, 0)).not.toEqual(epochOrder(ids, 0, 1))
    expect(epochOrder(ids, 0, 0)).not.toEqual(epochOrder(ids, 1, 0))
  })

  it("gives each task once per epoch, epoch after epoch", () => {
    const ids = ["a", "b", "c"]
    const drawn = Array.from({ length: 9 }, (_, i) => groupAt(ids, 7, i))
    for (let epoch = 0; epoch < 3; epoch++) {
      const inEpoch = drawn.filter((g) => g.epoch === epoch).map((g) => g.taskId)
      expect(inEpoch.sort()).toEqual(ids)
    }
  })

  it("names groups so that they sort in start order", () => {
    expect(groupIdOf(9) < groupIdOf(10)).toBe(true)
    expect(groupIdOf(0)).toBe("g000000")
  })
})

describe("the run's stream, folded", () => {
  it("given a started group, when one of two samples is scored, then the group is open with one sample left", () => {
    const state = fold([started, group(0), scored(0, 1)])
    expect(openGroups(state).map((g) => g.group)).toEqual(["g000000"])
    expect(unscoredSamples(state, openGroups(state)[0]!)).toEqual([0])
  })

  it("given every sample scored, the group is closed; a redelivered event changes nothing", () => {
    const state = fold([started, group(0), scored(0, 0), scored(0, 1)])
    expect(openGroups(state)).toEqual([])
    expect(fold([group(0), scored(0, 0)], state)).toEqual(state)
  })

  it("ignores events of other runs and failed weight updates; takes the lowest version an endpoint serves", () => {
    const other: DomainEvent = { type: "BatchPublished", ...batch(0), runId: "other" }
    const updates: DomainEvent[] = [
      { type: "EndpointWeightsUpdated", model: "policy", endpoint: "a", version: "3", ok: true, ms: 1 },
      { type: "EndpointWeightsUpdated", model: "policy", endpoint: "b", version: "2", ok: true, ms: 1 },
      { type: "EndpointWeightsUpdated", model: "policy", endpoint: "b", version: "5", ok: false, ms: 1 },
      { type: "EndpointWeightsUpdated", model: "judge", endpoint: "c", version: "0", ok: true, ms: 1 },
    ]
    const state = fold([started, other, ...updates])
    expect(state.published).toEqual([])
    expect(liveVersion(state)).toBe(2)
  })
})

describe("the versions the brake counts", () => {
  it("leave out an endpoint once it is ejected, and take it back at its next update", () => {
    const updated = (endpoint: string, version: string): DomainEvent => ({
      type: "EndpointWeightsUpdated",
      model: "policy",
      endpoint,
      version,
      ok: true,
      ms: 1,
    })
    let state = fold([started, updated("a", "3"), updated("b", "1")])
    expect(liveVersion(state)).toBe(1)
    state = fold(
      [{ type: "EndpointEjected", model: "policy", endpoint: "b", reason: "down", failures: 3 }],
      state,
    )
    expect(liveVersion(state)).toBe(3)
    state = fold([updated("b", "4")], state)
    expect(liveVersion(state)).toBe(3)
  })

  it("ignore updates recorded before the run started (an earlier run's)", () => {
    const early: DomainEvent = {
      type: "EndpointWeightsUpdated",
      model: "policy",
      endpoint: "old",
      version: "9",
      ok: true,
      ms: 1,
    }
    expect(liveVersion(fold([early, started]))).toBe(0)
  })
})

const batch = (step: number) => ({
  runId: "r",
  step,
  hash: "h",
  blob: { sha256: "0".repeat(64), bytes: 1 },
  groups: [],
  samples: 0,
  sequences: 0,
  tokens: 0,
  trainedTokens: 0,
  lags: [],
  drops: {},
})

describe("whether a group may start", () => {
  it("given room everywhere, a group starts", () => {
    expect(mayStartGroup(fold([started]), limits, noPlan)).toEqual({ start: true })
  })

  it("given as many episodes in flight as the concurrency allows, it waits", () => {
    const state = fold([started, group(0), group(1)])
    expect(mayStartGroup(state, limits, noPlan)).toEqual({ start: false, why: "concurrency" })
  })

  it("given maxUnconsumedBatches published and not acknowledged, it waits for the trainer", () => {
    const state = fold([
      started,
      { type: "BatchPublished", ...batch(0) },
      { type: "BatchPublished", ...batch(1) },
    ])
    expect(mayStartGroup(state, limits, noPlan)).toEqual({ start: false, why: "back_pressure" })
    const acked = fold([{ type: "BatchConsumed", runId: "r", step: 0 }], state)
    expect(mayStartGroup(acked, limits, noPlan)).toEqual({ start: true })
  })

  it("given (v + η + 1)·B groups in steps or in flight, it waits for a newer version", () => {
    // v = 0, η = 1, B = 1: two groups at most.
    const state = fold([started, group(0), scored(0, 0), scored(0, 1)])
    expect(mayStartGroup(state, limits, { groupsInSteps: 2, stepsClosed: 2 })).toEqual({
      start: false,
      why: "staleness",
    })
    const updated = fold(
      [{ type: "EndpointWeightsUpdated", model: "policy", endpoint: "a", version: "1", ok: true, ms: 1 }],
      state,
    )
    expect(mayStartGroup(updated, limits, { groupsInSteps: 2, stepsClosed: 2 })).toEqual({ start: true })
  })

  it("given a group in flight since an older version, the bound counts from its version", () => {
    // v = 3 live, but group 0 started under version 0 and is still running: (0 + 1 + 1)·1 = 2.
    const state = fold([
      started,
      group(0, "0"),
      { type: "EndpointWeightsUpdated", model: "policy", endpoint: "a", version: "3", ok: true, ms: 1 },
    ])
    expect(mayStartGroup(state, limits, { groupsInSteps: 1, stepsClosed: 1 })).toEqual({
      start: false,
      why: "staleness",
    })
    // Once it is scored, the live version sets the bound again: (3 + 1 + 1)·1 = 5.
    const done = fold([scored(0, 0), scored(0, 1)], state)
    expect(mayStartGroup(done, limits, { groupsInSteps: 2, stepsClosed: 2 })).toEqual({ start: true })
  })

  it("given a group given up on, it is not open: it holds no brake and keeps no run from ending", () => {
    // Group 0 started under version 0 with one sample never run to an end; the live version is 3.
    const state = fold([
      started,
      group(0, "0"),
      scored(0, 0),
      { type: "EndpointWeightsUpdated", model: "policy", endpoint: "a", version: "3", ok: true, ms: 1 },
    ])
    const one = { ...limits, totalGroups: 1 }
    expect(mayStartGroup(state, limits, { groupsInSteps: 1, stepsClosed: 1 })).toEqual({
      start: false,
      why: "staleness",
    })
    expect(samplingDone(state, one, noPlan)).toBe(false)
    const gaveUp = abandonGroup(state, groupIdOf(0))
    expect(openGroups(gaveUp)).toEqual([])
    expect(mayStartGroup(gaveUp, limits, { groupsInSteps: 1, stepsClosed: 1 })).toEqual({ start: true })
    expect(samplingDone(gaveUp, one, noPlan)).toBe(true)
    // Later events keep it given up on; giving up twice changes nothing.
    expect(fold([scored(0, 1)], gaveUp).abandoned).toEqual([groupIdOf(0)])
    expect(abandonGroup(gaveUp, groupIdOf(0))).toBe(gaveUp)
  })

  it("η = 0 is synchronous: one step's groups, then nothing until the update", () => {
    const sync = { ...limits, maxLag: 0, batchGroups: 2, concurrency: 8 }
    let state = fold([started, group(0)])
    expect(mayStartGroup(state, sync, noPlan).start).toBe(true)
    state = fold([group(1)], state)
    expect(mayStartGroup(state, sync, noPlan)).toEqual({ start: false, why: "staleness" })
  })

  it("never lets groups that may still enter a step pass (v + η + 1)·B (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.nat(6),
        fc.nat(4),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(30),
        fc.nat(8),
        (version, maxLag, batchGroups, inSteps, inFlight) => {
          const l = { ...limits, maxLag, batchGroups, concurrency: 1000, totalGroups: 1000 }
          const events: DomainEvent[] = [started]
          for (let i = 0; i < inFlight; i++) events.push(group(i))
          events.push({
            type: "EndpointWeightsUpdated",
            model: "policy",
            endpoint: "a",
            version: String(version),
            ok: true,
            ms: 1,
          })
          const verdict = mayStartGroup(fold(events), l, { groupsInSteps: inSteps, stepsClosed: 0 })
          if (verdict.start)
            expect(inSteps + inFlight + 1).toBeLessThanOrEqual((version + maxLag + 1) * batchGroups)
        },
      ),
    )
  })

  it("stops at the end of the task set or at the steps asked for", () => {
    const state = fold([started, group(0), scored(0, 0), scored(0, 1)])
    expect(mayStartGroup(state, { ...limits, totalGroups: 1 }, noPlan)).toEqual({ start: false, why: "done" })
    expect(samplingDone(state, { ...limits, totalGroups: 1 }, noPlan)).toBe(true)
    const capped = { ...limits, steps: 1 }
    expect(mayStartGroup(state, capped, { groupsInSteps: 1, stepsClosed: 1 })).toEqual({
      start: false,
      why: "done",
    })
    expect(samplingDone(state, capped, { groupsInSteps: 1, stepsClosed: 1 })).toBe(true)
    expect(samplingDone(fold([group(1)], state), capped, { groupsInSteps: 1, stepsClosed: 1 })).toBe(false)
  })
})
