/**
 * The training-step plan, given/when/then: groups fill steps in the order they complete and a step
 * closes at its size in groups or trained tokens, or at the end of the run; a group with no kept
 * sample counts its drops and not toward the size; stale samples are dropped (policy drop) or
 * their stale tokens masked (policy mask); a kept turn without its token-exact record drops the
 * sample; epochs of one task are separate groups; and the status view (groups started, batches
 * published and consumed, the trainer's report, the versions live on the endpoints) with consumed
 * steps' details pruned. The projection is registered.
 */
import { describe, expect, it } from "vitest"
import { projectionRegistry } from "../../../src/app/projections.ts"
import type { DomainEvent } from "../../../src/events/schema.ts"
import {
  applyBatchPlan,
  type BatchesState,
  initialBatches,
} from "../../../src/projections/batches/batchPlan.ts"
import { closedStep, publishableSteps, runPlan } from "../../../src/projections/batches/queries.ts"
import {
  envelopes,
  episodeEvents,
  episodeOf,
  foldPlan,
  groupOf,
  MODEL,
  RUN,
  runStarted,
  type SampleSpec,
  type TurnSpec,
  type WorldSpec,
} from "./rlWorld.ts"

const turn = (overrides: Partial<TurnSpec> = {}): TurnSpec => ({
  sampled: 3,
  extra: 1,
  exact: true,
  flags: [],
  drift: false,
  reset: false,
  version: 0,
  splitAt: 0,
  temperature: 1,
  ...overrides,
})
const sample = (score: number, turns: ReadonlyArray<TurnSpec> = [turn()]): SampleSpec => ({
  outcome: "answered",
  verdict: score > 0 ? "correct" : "incorrect",
  score,
  turns,
})

const world = (overrides: Partial<WorldSpec>): WorldSpec => ({
  k: 2,
  batch: { groups: 2 },
  staleness: { maxLag: 4, policy: "drop" },
  rewards: { profile: "grpo" },
  groups: [],
  ...overrides,
})

/** Every group's episodes one after the other, in group order. */
const groupsInOrder = (w: WorldSpec): DomainEvent[] =>
  w.groups.flatMap((group, g) => group.samples.flatMap((s, i) => episodeEvents(g, i, group.task, s)))

const finished: DomainEvent = { type: "RunFinished", runId: RUN, status: "completed" }

const planOf = (state: BatchesState) => {
  const plan = runPlan(state, RUN)
  if (plan === undefined) throw new Error("no plan for the run")
  return plan
}

describe("batches: steps fill with whole groups in completion order", () => {
  it("closes a step at its size in groups; the run's end closes the rest", () => {
    // Given an RL run of groups of 2, two groups a step
    const w = world({ groups: [0, 1, 2].map(() => ({ task: "t", samples: [sample(1), sample(0)] })) })
    // When three groups complete, then the run finishes
    const before = foldPlan([runStarted(w), ...groupsInOrder(w)])
    const after = foldPlan([runStarted(w), ...groupsInOrder(w), finished])
    // Then step 0 holds the first two groups and step 1 the third, closed by the run's end
    expect(planOf(before).steps.map((s) => [s.step, s.groups, s.samples, s.closedBy])).toEqual([
      [0, 2, 4, "groups"],
    ])
    expect(planOf(before).open).toMatchObject({ step: 1, groups: 1, samples: 2, closedBy: null })
    expect(closedStep(before, RUN, 0)?.groups).toEqual([groupOf(0), groupOf(1)])
    expect(planOf(after).steps.map((s) => [s.step, s.groups, s.closedBy])).toEqual([
      [0, 2, "groups"],
      [1, 1, "run_finished"],
    ])
    expect(planOf(after).open.samples).toBe(0)
    expect(publishableSteps(after, RUN)).toEqual([0, 1])
  })

  it("orders groups by completion, not by start", () => {
    const w = world({
      batch: { groups: 1 },
      groups: [0, 1].map(() => ({ task: "t", samples: [sample(1), sample(0)] })),
    })
    const g0 = w.groups[0]!.samples.flatMap((s, i) => episodeEvents(0, i, "t", s))
    const g1 = w.groups[1]!.samples.flatMap((s, i) => episodeEvents(1, i, "t", s))
    const state = foldPlan([runStarted(w), ...g1, ...g0])
    expect(closedStep(state, RUN, 0)?.groups).toEqual([groupOf(1)])
    expect(closedStep(state, RUN, 1)?.groups).toEqual([groupOf(0)])
  })

  it("counts a dropped group's samples and does not count the group toward the size", () => {
    // Given dapo, whose zero-variance filter drops a group whose scores are all equal
    const w = world({
      batch: { groups: 1 },
      rewards: { profile: "dapo" },
      groups: [
        { task: "t", samples: [sample(1), sample(1)] },
        { task: "t", samples: [sample(1), sample(0)] },
      ],
    })
    const state = foldPlan([runStarted(w), ...groupsInOrder(w)])
    const plan = planOf(state)
    expect(plan.steps).toHaveLength(1)
    expect(plan.steps[0]).toMatchObject({ groups: 1, samples: 2 })
    expect(plan.steps[0]!.drops.zero_variance_group).toBe(2)
    expect(closedStep(state, RUN, 0)?.placedGroups).toBe(2)
  })

  it("closes a step when its trained tokens reach the budget", () => {
    const w = world({
      batch: { tokens: 7 },
      groups: [0, 1].map(() => ({ task: "t", samples: [sample(1), sample(0)] })),
    })
    const g0 = w.groups[0]!.samples.flatMap((s, i) => episodeEvents(0, i, "t", s))
    const first = foldPlan([runStarted(w), ...g0])
    expect(planOf(first).open).toMatchObject({ trainedTokens: 6, closedBy: null })
    const both = foldPlan([runStarted(w), ...groupsInOrder(w)])
    expect(planOf(both).steps.map((s) => [s.trainedTokens, s.closedBy])).toEqual([[12, "tokens"]])
  })
})

describe("batches: per-token staleness at the step a group lands in", () => {
  it("drops a sample with a token older than η (policy drop), and a group left empty does not count", () => {
    // Given η = 0: step s trains only tokens of version s
    const w = world({
      batch: { groups: 1 },
      staleness: { maxLag: 0, policy: "drop" },
      groups: [
        { task: "t", samples: [sample(1), sample(0)] },
        { task: "t", samples: [sample(1), sample(0)] },
        { task: "t", samples: [sample(1, [turn({ version: 1 })]), sample(0, [turn({ version: 1 })])] },
      ],
    })
    const state = foldPlan([runStarted(w), ...groupsInOrder(w)])
    const plan = planOf(state)
    // Then group 1 (version 0) reaches step 1, is dropped as stale, and group 2 fills step 1
    expect(plan.steps.map((s) => [s.step, s.samples, s.drops.stale, s.lags])).toEqual([
      [0, 2, 0, [{ lag: 0, tokens: 6 }]],
      [1, 2, 2, [{ lag: 0, tokens: 6 }]],
    ])
    expect(closedStep(state, RUN, 1)?.groups).toEqual([groupOf(2)])
  })

  it("masks only the stale tokens under policy mask", () => {
    const w = world({
      batch: { groups: 1 },
      staleness: { maxLag: 0, policy: "mask" },
      groups: [
        { task: "t", samples: [sample(1), sample(0)] },
        { task: "t", samples: [sample(1, [turn({ sampled: 4 })]), sample(0, [turn({ sampled: 4 })])] },
      ],
    })
    // Group 1's tokens 0-1 came from version 0 and 2-3 from version 1 (an update mid-request)
    const events = groupsInOrder(w).map((e) =>
      e.type === "ModelResponded" && e.episodeId.includes("/g1/")
        ? {
            ...e,
            weightVersions: [
              { version: "0", start: 0, end: 2 },
              { version: "1", start: 2, end: 4 },
            ],
          }
        : e,
    )
    const state = foldPlan([runStarted(w), ...events])
    const step1 = closedStep(state, RUN, 1)!
    expect(step1.samples.map((s) => s.masked)).toEqual([
      [{ turn: 1, start: 0, end: 2 }],
      [{ turn: 1, start: 0, end: 2 }],
    ])
    expect(step1.trainedTokens).toBe(4)
    expect(step1.lags).toEqual([{ lag: 0, tokens: 4 }])
  })
})

describe("batches: what cannot be trained token-exactly is dropped with a reason", () => {
  it("drops a sample whose kept turn has no token ids (no_token_ids)", () => {
    const w = world({
      batch: { groups: 1 },
      groups: [{ task: "t", samples: [sample(1, [turn({ exact: false })]), sample(0)] }],
    })
    const plan = planOf(foldPlan([runStarted(w), ...groupsInOrder(w)]))
    expect(plan.steps[0]).toMatchObject({ samples: 1 })
    expect(plan.steps[0]!.drops.no_token_ids).toBe(1)
  })

  it("drops a sample whose versions are not the run's (bad_versions)", () => {
    const w = world({ batch: { groups: 1 }, groups: [{ task: "t", samples: [sample(1), sample(0)] }] })
    const events = groupsInOrder(w).map((e) =>
      e.type === "ModelResponded" && e.episodeId === episodeOf(0, 0)
        ? { ...e, weightVersions: [{ version: "v7", start: 0, end: 3 }] }
        : e,
    )
    const plan = planOf(foldPlan([runStarted(w), ...events]))
    expect(plan.steps[0]!.drops.bad_versions).toBe(1)
    expect(plan.steps[0]!.samples).toBe(1)
  })
})

describe("batches: epochs, other runs, status", () => {
  it("keeps two epochs of one task apart as two groups", () => {
    const w = world({
      batch: { groups: 1 },
      groups: [
        { task: "same", samples: [sample(1), sample(0)] },
        { task: "same", samples: [sample(0), sample(1)] },
      ],
    })
    const state = foldPlan([runStarted(w), ...groupsInOrder(w)])
    expect(planOf(state).steps.map((s) => s.samples)).toEqual([2, 2])
    expect(closedStep(state, RUN, 1)?.samples.map((s) => s.episode)).toEqual([
      episodeOf(1, 0),
      episodeOf(1, 1),
    ])
  })

  it("ignores evaluation runs and keeps nothing of their episodes", () => {
    const w = world({ groups: [{ task: "t", samples: [sample(1), sample(0)] }] })
    const evalRun = { ...runStarted(w), kind: "eval" } as DomainEvent
    const state = foldPlan([evalRun, ...groupsInOrder(w)])
    expect(state).toEqual(initialBatches)
  })

  it("shows groups started, batches published and consumed, the trainer's report and live versions", () => {
    const w = world({
      batch: { groups: 1 },
      groups: [0, 1].map(() => ({ task: "t", samples: [sample(1), sample(0)] })),
    })
    const blob = { sha256: "a".repeat(64), bytes: 10 }
    const events: DomainEvent[] = [
      runStarted(w),
      ...[0, 1, 2].map(
        (g): DomainEvent => ({
          type: "GroupStarted",
          runId: RUN,
          group: groupOf(g),
          taskId: "t",
          epoch: g,
          samples: 2,
          version: "0",
        }),
      ),
      ...groupsInOrder(w),
      {
        type: "BatchPublished",
        runId: RUN,
        step: 0,
        hash: blob.sha256,
        blob,
        groups: [groupOf(0)],
        samples: 2,
        sequences: 2,
        tokens: 16,
        trainedTokens: 6,
        lags: [{ lag: 0, tokens: 6 }],
        drops: {},
      },
      { type: "BatchConsumed", runId: RUN, step: 0 },
      {
        type: "TrainerStepReported",
        runId: RUN,
        step: 0,
        version: "1",
        metrics: { loss: 0.5 },
        ratioByLag: [{ lag: 0, tokens: 6, meanRatio: 1 }],
      },
      { type: "WeightsPublished", model: MODEL, version: "1" },
      { type: "EndpointWeightsUpdated", model: MODEL, endpoint: "http://e1", version: "1", ok: true, ms: 5 },
      {
        type: "EndpointWeightsUpdated",
        model: MODEL,
        endpoint: "http://e2",
        version: "1",
        ok: false,
        error: "load",
        ms: 5,
      },
      { type: "EndpointWeightsUpdated", model: "other", endpoint: "http://x", version: "9", ok: true, ms: 5 },
    ]
    const state = envelopes(events).reduce(applyBatchPlan, initialBatches)
    const plan = planOf(state)
    expect(plan.groups.started).toBe(3)
    expect(plan.groups.completed).toBe(2)
    expect(plan.groups.inFlight.map((g) => [g.group, g.epoch, g.version])).toEqual([[groupOf(2), 2, "0"]])
    expect(plan.published).toEqual([0])
    expect(plan.consumed).toEqual([0])
    expect(plan.unconsumed).toBe(0)
    expect(plan.publishable).toEqual([1])
    expect(plan.steps[0]).toMatchObject({ consumed: true, published: { hash: blob.sha256, blob } })
    expect(plan.lastReport).toMatchObject({ step: 0, version: "1", metrics: { loss: 0.5 } })
    expect(plan.versions).toEqual({
      endpoints: { "http://e1": { version: "1", ok: true }, "http://e2": { version: null, ok: false } },
      announced: "1",
    })
    // The consumed step keeps its summary; its per-sample details are pruned
    expect(closedStep(state, RUN, 0)).toMatchObject({ pruned: true, samples: [], sampleCount: 2 })
    expect(closedStep(state, RUN, 1)).toMatchObject({ pruned: false, sampleCount: 2 })
    // And the episodes of placed groups are gone from the state
    expect(Object.keys(state.rewards.episodes)).toEqual([])
    expect(Object.keys(state.tokens)).toEqual([])
  })

  it("refuses a bad batch section, naming it, and plans nothing", () => {
    const w = world({ groups: [{ task: "t", samples: [sample(1), sample(0)] }] })
    const bad = { ...runStarted(w), config: { batch: { groups: 0 } } } as DomainEvent
    const plan = planOf(foldPlan([bad, ...groupsInOrder(w), finished]))
    expect(plan.configError).toMatch(/^batch: /)
    expect(plan.steps).toEqual([])
  })

  it("is registered as the batches projection", () => {
    expect(projectionRegistry.get("batches")?.name).toBe("batches")
  })
})
