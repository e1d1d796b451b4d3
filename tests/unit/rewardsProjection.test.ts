/**
 * The `rewards` projection over random runs (fast-check): each group's decision is exactly
 * `decideGroup` of the samples its events describe, under the run's profile; the state does not
 * depend on how the events of different episodes interleave; a redelivered event (at its own
 * position, or appended again) changes nothing; folding in chunks with a JSON checkpoint between
 * them equals one fold; and no infrastructure failure (or failed judge) ever carries a non-zero
 * advantage. Plus examples: an incomplete group waits, a bad `rewards` section is reported, a
 * score outside [0, 1] is refused with the reason, and the registry knows the projection.
 */
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { projectionRegistry } from "../../src/app/projections.ts"
import type { DomainEvent, Envelope, EventOf } from "../../src/events/schema.ts"
import {
  advance,
  decodeState,
  encodeState,
  type Folded,
  findNonJson,
  foldAll,
  initialFolded,
} from "../../src/projections/projection.ts"
import { decideGroup } from "../../src/projections/rewards/decideGroup.ts"
import type { GroupSample } from "../../src/projections/rewards/groupSamples.ts"
import { groupRewards, runRewards } from "../../src/projections/rewards/queries.ts"
import { decodeRewardConfig, defaultRewardConfig } from "../../src/projections/rewards/rewardConfig.ts"
import { type RewardsState, rewards } from "../../src/projections/rewards/rewardsProjection.ts"

type Outcome = EventOf<"EpisodeFinished">["outcome"]
type Flag = EventOf<"TurnAssessed">["flags"][number]

const outcome = fc.oneof(
  { arbitrary: fc.constant<Outcome>("answered"), weight: 10 },
  {
    arbitrary: fc.constantFrom<Outcome>(
      "turns_limit",
      "context_limit",
      "repetition",
      "model_error",
      "tool_infrastructure_error",
      "cancelled",
      "timeout",
    ),
    weight: 5,
  },
)
const verdict = fc.oneof(
  { arbitrary: fc.constantFrom<"correct" | "incorrect">("correct", "incorrect"), weight: 9 },
  { arbitrary: fc.constant<"judge_failed">("judge_failed"), weight: 1 },
)
const score = fc.oneof(fc.constantFrom(0, 1, 0.5), fc.double({ min: 0, max: 1, noNaN: true }))
const flagOrder: ReadonlyArray<Flag> = ["FORMAT_ERROR", "REPEAT", "TOOL_FAILED", "FAILED"]

interface TurnSpec {
  readonly sampled: number
  readonly usage: number
  readonly exact: boolean
  readonly flags: ReadonlyArray<Flag>
}
interface SampleSpec {
  readonly outcome: Outcome
  readonly verdict: "correct" | "incorrect" | "judge_failed"
  readonly score: number
  readonly turns: ReadonlyArray<TurnSpec>
  /** False: the episode never gets its SampleScored (its group stays incomplete). */
  readonly scored: boolean
}
interface RunSpec {
  readonly k: number
  readonly tasks: number
  readonly rewards: unknown
  readonly samples: ReadonlyArray<SampleSpec>
}

const turnSpec: fc.Arbitrary<TurnSpec> = fc.record({
  sampled: fc.nat(60),
  usage: fc.nat(60),
  exact: fc.boolean(),
  flags: fc.oneof(
    { arbitrary: fc.constant([]), weight: 3 },
    { arbitrary: fc.subarray([...flagOrder]), weight: 1 },
  ),
})
const sampleSpec: fc.Arbitrary<SampleSpec> = fc.record({
  outcome,
  verdict,
  score,
  turns: fc.array(turnSpec, { maxLength: 4 }),
  scored: fc.oneof(
    { arbitrary: fc.constant(true), weight: 12 },
    { arbitrary: fc.constant(false), weight: 1 },
  ),
})
const runSpec: fc.Arbitrary<RunSpec> = fc
  .record({
    k: fc.integer({ min: 1, max: 4 }),
    tasks: fc.integer({ min: 1, max: 3 }),
    rewards: fc.constantFrom<unknown>(
      undefined,
      { profile: "agentcpm", balanced: false },
      { profile: "grpo" },
      { profile: "dapo" },
    ),
  })
  .chain((run) =>
    fc
      .array(sampleSpec, { minLength: run.k * run.tasks, maxLength: run.k * run.tasks })
      .map((samples) => ({ ...run, samples })),
  )

const RUN = "r1"
const taskOf = (i: number) => `t${i}`
const episodeOf = (task: number, sample: number) => `${RUN}/t${task}/${sample}`

/** The run's events as streams: one for the run, one per episode (in the order an episode writes). */
const streamsOf = (run: RunSpec): DomainEvent[][] => {
  const runStream: DomainEvent[] = [
    {
      type: "RunStarted",
      runId: RUN,
      kind: "rl",
      model: "m",
      k: run.k,
      ...(run.rewards === undefined ? {} : { config: { rewards: run.rewards } as never }),
    },
  ]
  const streams = [runStream]
  for (let t = 0; t < run.tasks; t++)
    for (let s = 0; s < run.k; s++) {
      const spec = run.samples[t * run.k + s]!
      const episodeId = episodeOf(t, s)
      const events: DomainEvent[] = [
        {
          type: "EpisodeStarted",
          episodeId,
          runId: RUN,
          taskId: taskOf(t),
          sampleIndex: s,
          question: "q",
          model: "m",
          maxTurns: 10,
        },
      ]
      spec.turns.forEach((turn, i) => {
        events.push({
          type: "ModelResponded",
          episodeId,
          turn: i + 1,
          requestId: `${episodeId}/model/${i + 1}`,
          endpoint: "e",
          latencyMs: 1,
          finishReason: "stop",
          content: "",
          usage: { promptTokens: 10, completionTokens: turn.exact ? turn.usage : turn.sampled },
          ...(turn.exact ? { tokenIds: Array.from({ length: turn.sampled }, (_, id) => id) } : {}),
        })
        if (turn.flags.length > 0)
          events.push({ type: "TurnAssessed", episodeId, turn: i + 1, flags: turn.flags })
      })
      events.push({ type: "EpisodeFinished", episodeId, outcome: spec.outcome, turns: spec.turns.length })
      if (spec.scored)
        events.push({
          type: "SampleScored",
          runId: RUN,
          taskId: taskOf(t),
          sampleIndex: s,
          episodeId,
          scorer: "gaia",
          verdict: spec.verdict,
          score: spec.score,
        })
      streams.push(events)
    }
  return streams
}

/** One interleaving of the streams, each kept in its own order, chosen by `picks`. */
const interleave = (streams: ReadonlyArray<ReadonlyArray<DomainEvent>>, picks: ReadonlyArray<number>) => {
  const queues = streams.map((s) => [...s])
  const out: DomainEvent[] = []
  let i = 0
  for (;;) {
    const open = queues.filter((q) => q.length > 0)
    if (open.length === 0) return out
    out.push(open[(picks[i++ % Math.max(1, picks.length)] ?? 0) % open.length]!.shift()!)
  }
}

const envelope = (event: DomainEvent, position: number): Envelope => ({
  eventId: `e${position}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "c",
  causationId: "x",
  actor: "test",
  position,
  subject: "episodeId" in event ? `ev.episode.${event.episodeId}` : `ev.run.${RUN}`,
  schemaVersion: 1,
  event,
})
const positioned = (events: ReadonlyArray<DomainEvent>): Envelope[] =>
  events.map((e, i) => envelope(e, i + 1))

/** What `decideGroup` says about task t, from the specs directly; undefined while incomplete. */
const expectedDecision = (run: RunSpec, t: number) => {
  const specs = run.samples.slice(t * run.k, (t + 1) * run.k)
  if (specs.some((s) => !s.scored)) return undefined
  const config =
    run.rewards === undefined ? defaultRewardConfig : Result.getOrThrow(decodeRewardConfig(run.rewards))
  const samples: GroupSample[] = specs.map((spec, s) => ({
    sampleId: episodeOf(t, s),
    outcome: spec.outcome,
    verdict: spec.verdict,
    score: spec.score,
    turns: spec.turns.map((turn, i) => ({ turn: i + 1, flags: turn.flags })),
    tokens: spec.turns.reduce((sum, turn) => sum + turn.sampled, 0),
  }))
  return JSON.parse(JSON.stringify(Result.getOrThrow(decideGroup(config, samples))))
}

const picks = fc.array(fc.nat(1000), { minLength: 1, maxLength: 200 })
const fold = (envelopes: ReadonlyArray<Envelope>): RewardsState => foldAll(rewards, envelopes)

describe("rewards projection (properties)", () => {
  it("decides every complete group as decideGroup does, whatever the interleaving of episodes", () => {
    fc.assert(
      fc.property(runSpec, picks, picks, (run, a, b) => {
        const streams = streamsOf(run)
        const one = fold(positioned(interleave(streams, a)))
        const other = fold(positioned(interleave(streams, b)))
        expect(other).toEqual(one)
        for (let t = 0; t < run.tasks; t++)
          expect(groupRewards(one, RUN, taskOf(t))).toEqual(expectedDecision(run, t))
        const summary = runRewards(one, RUN)!
        const complete = Array.from({ length: run.tasks }, (_, t) => t).filter(
          (t) => expectedDecision(run, t) !== undefined,
        )
        expect(summary.decided.length).toBe(complete.length)
        expect(summary.pending.length).toBe(run.tasks - complete.length)
        expect(summary.refused).toEqual([])
      }),
      { numRuns: 150 },
    )
  })

  it("a redelivered event changes nothing, at its own position or appended again", () => {
    fc.assert(
      fc.property(runSpec, picks, fc.array(fc.nat(), { minLength: 1, maxLength: 10 }), (run, a, again) => {
        const envelopes = positioned(interleave(streamsOf(run), a))
        const once = fold(envelopes)
        // The same entries delivered twice (the runner skips positions it has passed)...
        const redelivered: Envelope[] = []
        for (const e of envelopes) {
          redelivered.push(e)
          if (again.includes(e.position % 11)) redelivered.push(e)
        }
        expect(fold(redelivered)).toEqual(once)
        // ...and events written to the log a second time, at later positions.
        const appended = [
          ...envelopes,
          ...again.map((n, i) => envelope(envelopes[n % envelopes.length]!.event, envelopes.length + i + 1)),
        ]
        expect(fold(appended)).toEqual(once)
      }),
      { numRuns: 150 },
    )
  })

  it("folding in chunks through a JSON checkpoint equals one fold", () => {
    fc.assert(
      fc.property(runSpec, picks, fc.array(fc.nat(40), { maxLength: 6 }), (run, a, cuts) => {
        const envelopes = positioned(interleave(streamsOf(run), a))
        const whole = fold(envelopes)
        expect(findNonJson(whole)).toBeUndefined()
        const bounds = [
          ...new Set([0, ...cuts.map((c) => c % (envelopes.length + 1)), envelopes.length]),
        ].sort((x, y) => x - y)
        let folded: Folded<RewardsState> = initialFolded(rewards)
        for (let i = 1; i < bounds.length; i++) {
          const chunk = envelopes.slice(bounds[i - 1], bounds[i])
          folded = advance(rewards, folded, chunk).folded
          const saved = JSON.parse(JSON.stringify(Result.getOrThrow(encodeState(rewards, folded.state))))
          folded = { ...folded, state: Result.getOrThrow(decodeState(rewards, saved)) }
        }
        expect(folded.state).toEqual(whole)
        expect(folded.position).toBe(envelopes.length)
      }),
      { numRuns: 150 },
    )
  })

  it("no infrastructure failure or failed judge ever carries a non-zero advantage", () => {
    fc.assert(
      fc.property(runSpec, picks, (run, a) => {
        const state = fold(positioned(interleave(streamsOf(run), a)))
        for (let t = 0; t < run.tasks; t++) {
          const decision = groupRewards(state, RUN, taskOf(t))
          if (decision === undefined) continue
          for (let s = 0; s < run.k; s++) {
            const spec = run.samples[t * run.k + s]!
            const failed =
              spec.outcome === "model_error" ||
              spec.outcome === "tool_infrastructure_error" ||
              spec.verdict === "judge_failed"
            if (!failed) continue
            const sample = decision.samples.find((d) => d.sampleId === episodeOf(t, s))
            expect(sample).toBeDefined()
            if (sample === undefined) continue
            if (sample.kept) {
              expect(sample.advantage).toBe(0)
              expect(sample.turns.every((turn) => turn.advantage === 0)).toBe(true)
            }
          }
        }
      }),
      { numRuns: 200 },
    )
  })
})

describe("rewards projection (examples)", () => {
  const streams = streamsOf({
    k: 2,
    tasks: 1,
    rewards: undefined,
    samples: [
      {
        outcome: "answered",
        verdict: "correct",
        score: 1,
        turns: [{ sampled: 5, usage: 5, exact: false, flags: [] }],
        scored: true,
      },
      { outcome: "answered", verdict: "incorrect", score: 0, turns: [], scored: true },
    ],
  })
  const all = streams.flat()

  it("a group waits until all k samples are scored, then is decided with the default agentcpm profile", () => {
    const withoutLast = fold(positioned(all.slice(0, -1)))
    expect(runRewards(withoutLast, RUN)).toMatchObject({ profile: "agentcpm", decided: [], pending: ["t0"] })
    const complete = runRewards(fold(positioned(all)), RUN)!
    expect(complete.decided.map((g) => g.taskId)).toEqual(["t0"])
    expect(complete.pending).toEqual([])
    const samples = complete.decided[0]!.decision.samples
    expect(complete.keptSamples + Object.values(complete.droppedSamples).reduce((x, y) => x + y, 0)).toBe(
      samples.length,
    )
  })

  it("a bad rewards section is reported and decides no group", () => {
    const bad = all.map((e) =>
      e.type === "RunStarted" ? { ...e, config: { rewards: { profile: "ppo" } } as never } : e,
    )
    const summary = runRewards(fold(positioned(bad)), RUN)!
    expect(summary.configError).toMatch(/^rewards: /)
    expect(summary.decided).toEqual([])
    expect(summary.pending).toEqual(["t0"])
  })

  it("a score outside [0, 1] is refused with decideGroup's reason", () => {
    const bad = all.map((e) => (e.type === "SampleScored" && e.sampleIndex === 0 ? { ...e, score: 3 } : e))
    const summary = runRewards(fold(positioned(bad)), RUN)!
    expect(summary.decided).toEqual([])
    expect(summary.refused).toHaveLength(1)
    expect(summary.refused[0]!.error).toMatch(/^reward group: /)
  })

  it("keys groups by the events' group, so a task sampled again in a later epoch is a new group", () => {
    // Given the same task sampled in two epochs, each as its own group of k = 2
    const epoch = (group: string, offset: number): DomainEvent[] =>
      all.flatMap((e): DomainEvent[] => {
        if (e.type === "RunStarted") return []
        if (!("episodeId" in e)) return [e]
        const episodeId = `${e.episodeId}@${group}`
        if (e.type === "EpisodeStarted") return [{ ...e, episodeId, group }]
        if (e.type === "SampleScored") return [{ ...e, episodeId, group, score: Math.abs(e.score - offset) }]
        return [{ ...e, episodeId }]
      })
    const first = epoch("t0-e0", 0)
    const second = epoch("t0-e1", 1)
    const start = all.filter((e) => e.type === "RunStarted")
    // When only the first epoch is complete, then only its group is decided
    const partial = runRewards(fold(positioned([...start, ...first, ...second.slice(0, -1)])), RUN)!
    expect(partial.decided.map((g) => g.decision.samples.map((d) => d.sampleId))).toEqual([
      [`${episodeOf(0, 0)}@t0-e0`, `${episodeOf(0, 1)}@t0-e0`],
    ])
    expect(partial.pending).toEqual(["t0"])
    // When both are complete, each group is decided on its own samples (scores mirrored)
    const state = fold(positioned([...start, ...first, ...second]))
    const e0 = groupRewards(state, RUN, "t0-e0")!
    const e1 = groupRewards(state, RUN, "t0-e1")!
    expect(e0.samples.map((d) => d.sampleId)).toEqual([
      `${episodeOf(0, 0)}@t0-e0`,
      `${episodeOf(0, 1)}@t0-e0`,
    ])
    expect(e1.samples.map((d) => d.sampleId)).toEqual([
      `${episodeOf(0, 0)}@t0-e1`,
      `${episodeOf(0, 1)}@t0-e1`,
    ])
    expect(groupRewards(state, RUN, "t0")).toBeUndefined()
    expect(runRewards(state, RUN)!.decided.map((g) => g.taskId)).toEqual(["t0", "t0"])
  })

  it("takes k from an RL config's groupSize when RunStarted gives none", () => {
    const noK = all.map((e) => {
      if (e.type !== "RunStarted") return e
      const { k: _k, ...rest } = e
      return { ...rest, config: { groupSize: 2 } as never }
    })
    expect(runRewards(fold(positioned(noK)), RUN)).toMatchObject({ k: 2, pending: [] })
  })

  it("is registered, and an unknown run has no rewards", () => {
    expect(projectionRegistry.get("rewards")).toBe(rewards)
    expect(runRewards(fold(positioned(all)), "nope")).toBeUndefined()
  })
})
