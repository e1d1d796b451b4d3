/**
 * The invariants of REFERENCE §3 over random groups and random profile parameters (fast-check):
 * an infrastructure failure (or a judge that gave no verdict, a cancelled or timed-out episode)
 * never carries an advantage and changes nobody else's; no FORMAT_ERROR or REPEAT turn has A > 0
 * and no FAILED turn trains; no zero-variance group is emitted (agentcpm, dapo); the sign clip holds
 * (agentcpm); the decision depends neither on the order of the samples nor on the order of their
 * turns, and is a plain, repeatable value; counts agree with the samples; and each profile's own
 * rules (balance, reserve, masking) hold on what it keeps.
 */
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decideGroup } from "../../src/projections/rewards/decideGroup.ts"
import { dropReasons } from "../../src/projections/rewards/dropReasons.ts"
import type { GroupDecision, KeptSample } from "../../src/projections/rewards/groupDecision.ts"
import type { GroupSample } from "../../src/projections/rewards/groupSamples.ts"
import { decodeRewardConfig, type RewardConfig } from "../../src/projections/rewards/rewardConfig.ts"

// Mostly answered (as in a healthy run), every other end state present.
const outcome = fc.oneof(
  { arbitrary: fc.constant<GroupSample["outcome"]>("answered"), weight: 12 },
  {
    arbitrary: fc.constantFrom<GroupSample["outcome"]>(
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
  { arbitrary: fc.constantFrom<GroupSample["verdict"]>("correct", "incorrect"), weight: 9 },
  { arbitrary: fc.constant<GroupSample["verdict"]>("judge_failed"), weight: 1 },
)
const flagSets = [
  [],
  [],
  [],
  [],
  ["FORMAT_ERROR"],
  ["REPEAT"],
  ["FAILED"],
  ["TOOL_FAILED"],
  ["FORMAT_ERROR", "REPEAT"],
]
const turnFlags = fc.constantFrom(...flagSets)
// Mostly several turns; sometimes 0 or 1 (a quick answer, or a failure before the first).
const turns = fc.oneof(
  { arbitrary: fc.array(turnFlags, { minLength: 2, maxLength: 6 }), weight: 5 },
  { arbitrary: fc.array(turnFlags, { maxLength: 1 }), weight: 1 },
)

// Scores mostly 0 and 1 (as judges give), some decimals and halves (ties with 0.5, rounding residue).
const score = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1), weight: 6 },
  { arbitrary: fc.constantFrom(0.5, 0.1, 0.2, 0.3, 0.6, 0.95), weight: 2 },
  { arbitrary: fc.double({ min: 0, max: 1, noNaN: true }), weight: 1 },
)

const body = fc.record({
  outcome,
  verdict,
  score,
  turns,
  // A narrow range, so that equal lengths (and the tie-breaks) are common.
  tokens: fc.integer({ min: 0, max: 20 }),
})

const group: fc.Arbitrary<GroupSample[]> = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 })
  .chain((ids) =>
    fc.tuple(fc.constant(ids), fc.array(body, { minLength: ids.length, maxLength: ids.length })),
  )
  .map(([ids, bodies]) =>
    ids.map((sampleId, i) => {
      const b = bodies[i]!
      return {
        sampleId,
        outcome: b.outcome,
        verdict: b.verdict,
        score: b.score,
        turns: b.turns.map((flags, turn) => ({ turn: turn * 2 + 1, flags: [...flags] as never })),
        tokens: b.tokens,
      }
    }),
  )

// The spec's classification, written out here rather than read from the code under test.
const exclusionOf = (sample: GroupSample): string | undefined => {
  if (sample.outcome === "model_error" || sample.outcome === "tool_infrastructure_error")
    return "infrastructure"
  if (sample.outcome === "cancelled") return "cancelled"
  if (sample.outcome === "timeout") return "timeout"
  if (sample.verdict === "judge_failed") return "judge_failed"
  return undefined
}
const isTruncated = (sample: GroupSample): boolean =>
  sample.outcome === "turns_limit" || sample.outcome === "context_limit"
/** No answer (a limit, repetition) is a 0 whatever the scorer said. */
const effectiveScore = (sample: GroupSample): number => (sample.outcome === "answered" ? sample.score : 0)

const decoded = (data: unknown): RewardConfig => Result.getOrThrow(decodeRewardConfig(data))

const agentcpmConfig = fc
  .record({
    varianceThreshold: fc.constantFrom(0, 0.05, 0.1, 0.1, 0.5, 1),
    balanced: fc.boolean(),
    minTurns: fc.integer({ min: 0, max: 3 }),
    reserveContextErrorCount: fc.integer({ min: 0, max: 3 }),
    advScaling: fc.constantFrom(1, 1, 0.5, 2, 3.7),
    efficientRewarding: fc.boolean(),
    efficientSpread: fc.constantFrom(0, 0.2, 0.2, 0.5),
  })
  .map((params) => decoded({ profile: "agentcpm", ...params }))
const grpoConfig = fc.constantFrom(1e-6, 1e-3, 0.5).map((epsilon) => decoded({ profile: "grpo", epsilon }))
const dapoConfig = fc
  .record({
    epsilon: fc.constantFrom(1e-6, 1e-3),
    zeroVarianceTolerance: fc.constantFrom(0, 0, 0.1, 0.5),
    overlongInStatistics: fc.boolean(),
  })
  .map((params) => decoded({ profile: "dapo", ...params }))
const anyConfig = fc.oneof(agentcpmConfig, grpoConfig, dapoConfig)

const decide = (config: RewardConfig, samples: ReadonlyArray<GroupSample>): GroupDecision =>
  Result.getOrThrow(decideGroup(config, samples))

const keptSamples = (decision: GroupDecision): KeptSample[] =>
  decision.samples.filter((sample): sample is KeptSample => sample.kept)

const byId = (samples: ReadonlyArray<GroupSample>) => new Map(samples.map((s) => [s.sampleId, s]))

/** A random permutation of `items`, drawn from `order` (a list of random keys). */
const permute = <T>(items: ReadonlyArray<T>, keys: ReadonlyArray<number>): T[] =>
  items
    .map((item, i) => ({ item, key: keys[i % Math.max(1, keys.length)]! + i / 1000 }))
    .sort((a, b) => a.key - b.key)
    .map(({ item }) => item)

const runs = { numRuns: 1000 }

describe("every profile", () => {
  it("decides every sample exactly once, in canonical order, with counts that agree", () => {
    fc.assert(
      fc.property(anyConfig, group, (config, samples) => {
        const d = decide(config, samples)
        expect(d.profile).toBe(config.profile)
        expect(d.samples.map((s) => s.sampleId)).toEqual(samples.map((s) => s.sampleId).sort())
        const reasons = d.samples.flatMap((s) => (s.kept ? [] : [s.reason]))
        for (const reason of reasons) expect(dropReasons).toContain(reason)
        expect(d.kept + Object.values(d.droppedSamples).reduce((a, b) => a + b, 0)).toBe(samples.length)
        const kept = keptSamples(d)
        expect(d.kept).toBe(kept.length)
        expect(d.keptTurns).toBe(kept.reduce((n, s) => n + s.turns.length, 0))
        expect(Object.values(d.droppedTurns).reduce((a, b) => a + b, 0)).toBe(
          kept.reduce((n, s) => n + s.droppedTurns.length, 0),
        )
        const input = byId(samples)
        for (const s of kept) {
          // Every turn of a kept sample is accounted for once: trained or dropped with a reason.
          const all = [...s.turns.map((t) => t.turn), ...s.droppedTurns.map((t) => t.turn)].sort(
            (a, b) => a - b,
          )
          expect(all).toEqual(input.get(s.sampleId)!.turns.map((t) => t.turn))
          expect(s.turns.length).toBeGreaterThan(0)
          for (const t of s.turns) expect(Number.isFinite(t.advantage)).toBe(true)
          expect(s.score).toBe(effectiveScore(input.get(s.sampleId)!))
        }
        // `stale` and `drift` are decided elsewhere; no profile makes them up.
        expect(d.droppedSamples.stale + d.droppedSamples.drift).toBe(0)
      }),
      runs,
    )
  })

  it("never gives an advantage to an infrastructure failure, a failed judge, a cancelled or timed-out episode", () => {
    fc.assert(
      fc.property(anyConfig, group, (config, samples) => {
        const d = decide(config, samples)
        const input = byId(samples)
        for (const s of d.samples) {
          const exclusion = exclusionOf(input.get(s.sampleId)!)
          if (exclusion !== undefined)
            expect(s).toEqual({ sampleId: s.sampleId, kept: false, reason: exclusion })
        }
        // Model 5xx and tool infrastructure are always `infrastructure`.
        for (const sample of samples)
          if (sample.outcome === "model_error" || sample.outcome === "tool_infrastructure_error")
            expect(d.samples.find((s) => s.sampleId === sample.sampleId)).toMatchObject({
              kept: false,
              reason: "infrastructure",
            })
      }),
      runs,
    )
  })

  it("lets an excluded sample change nobody else's decision: not its score, turns or length, not its presence", () => {
    fc.assert(
      fc.property(anyConfig, group, score, fc.nat(20), (config, samples, otherScore, otherTokens) => {
        const excluded = new Set(samples.filter((s) => exclusionOf(s) !== undefined).map((s) => s.sampleId))
        fc.pre(excluded.size > 0)
        const d = decide(config, samples)
        const altered = samples.map((s) =>
          excluded.has(s.sampleId) ? { ...s, score: otherScore, tokens: otherTokens, turns: [] } : s,
        )
        expect(decide(config, altered)).toEqual(d)
        const rest = samples.filter((s) => !excluded.has(s.sampleId))
        fc.pre(rest.length > 0)
        const without = decide(config, rest)
        expect(without.samples).toEqual(d.samples.filter((s) => !excluded.has(s.sampleId)))
        expect(without.baseline).toEqual(d.baseline)
        expect(without.groupDropped).toEqual(d.groupDropped)
      }),
      runs,
    )
  })

  it("never trains a FAILED turn, nor a FORMAT_ERROR or REPEAT turn with A > 0", () => {
    fc.assert(
      fc.property(anyConfig, group, (config, samples) => {
        const d = decide(config, samples)
        const input = byId(samples)
        for (const s of keptSamples(d)) {
          const flags = new Map(input.get(s.sampleId)!.turns.map((t) => [t.turn, t.flags]))
          for (const t of s.turns) {
            const f = flags.get(t.turn)!
            expect(f).not.toContain("FAILED")
            if (f.includes("FORMAT_ERROR") || f.includes("REPEAT")) expect(t.advantage).toBeLessThanOrEqual(0)
          }
          for (const t of s.droppedTurns) {
            if (t.reason === "failed_turn") expect(flags.get(t.turn)).toContain("FAILED")
            if (t.reason === "format_error") expect(flags.get(t.turn)).toContain("FORMAT_ERROR")
            if (t.reason === "repeat") expect(flags.get(t.turn)).toContain("REPEAT")
          }
        }
      }),
      runs,
    )
  })

  it("does not depend on the order of the samples nor of their turns", () => {
    fc.assert(
      fc.property(
        anyConfig,
        group,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 12 }),
        (config, samples, keys) => {
          const shuffled = permute(samples, keys).map((s) => ({
            ...s,
            turns: permute(s.turns, [...keys].reverse()),
          }))
          expect(decide(config, shuffled)).toEqual(decide(config, samples))
        },
      ),
      runs,
    )
  })

  it("is a plain value: the same on a copy of its input, and through JSON", () => {
    fc.assert(
      fc.property(anyConfig, group, (config, samples) => {
        const d = decide(config, samples)
        const copy = JSON.parse(JSON.stringify(samples)) as GroupSample[]
        expect(decide(config, copy)).toEqual(d)
        expect(JSON.parse(JSON.stringify(d))).toEqual(d)
      }),
      runs,
    )
  })
})

describe("agentcpm", () => {
  it("emits no zero-variance group; keeps the sign of the outcome on every turn; never a turn at 0", () => {
    fc.assert(
      fc.property(agentcpmConfig, group, (config, samples) => {
        if (config.profile !== "agentcpm") throw new Error("agentcpm expected")
        const d = decide(config, samples)
        const input = byId(samples)
        if (d.kept > 0) {
          expect(d.baseline).not.toBeNull()
          const scores = d.baseline!.members.map((id) => effectiveScore(input.get(id)!))
          const range = Math.max(...scores) - Math.min(...scores)
          expect(scores.length).toBeGreaterThanOrEqual(2)
          expect(range).toBeGreaterThan(1e-12)
          expect(range - config.varianceThreshold).toBeGreaterThan(-1e-12)
        }
        for (const s of keptSamples(d)) {
          expect(d.baseline!.members).toContain(s.sampleId)
          for (const t of s.turns) {
            if (s.score <= 0.5) expect(t.advantage).toBeLessThan(0)
            else expect(t.advantage).toBeGreaterThan(0)
          }
        }
        if (d.groupDropped !== null) expect(d.kept).toBe(0)
      }),
      runs,
    )
  })

  it("keeps its baseline clean: no truncation beyond the reserve, no quick correct answer, balanced when asked", () => {
    fc.assert(
      fc.property(agentcpmConfig, group, (config, samples) => {
        if (config.profile !== "agentcpm") throw new Error("agentcpm expected")
        const d = decide(config, samples)
        const input = byId(samples)
        const members = (d.baseline?.members ?? []).map((id) => input.get(id)!)
        for (const m of members) {
          expect(exclusionOf(m)).toBeUndefined()
          if (effectiveScore(m) > 0) expect(m.turns.length).toBeGreaterThan(config.minTurns)
        }
        expect(members.filter(isTruncated).length).toBeLessThanOrEqual(config.reserveContextErrorCount)
        if (config.balanced && members.length > 0) {
          const wrong = members.filter((m) => effectiveScore(m) === 0).length
          const right = members.length - wrong
          expect(wrong).toBeLessThanOrEqual(right + 1)
          expect(right).toBeLessThanOrEqual(wrong + 2)
        }
        // The trim and the reserve keep the shortest: nothing trimmed is shorter than a member of its kind.
        for (const s of d.samples) {
          if (s.kept || s.reason !== "balanced_trim") continue
          const trimmed = input.get(s.sampleId)!
          const wrongKind = effectiveScore(trimmed) === 0
          for (const m of members.filter((x) => (effectiveScore(x) === 0) === wrongKind))
            expect(m.tokens).toBeLessThanOrEqual(trimmed.tokens)
        }
      }),
      runs,
    )
  })

  it("without efficient rewarding or clipping, the members' advantages sum to 0 (leave-one-out)", () => {
    fc.assert(
      fc.property(group, (samples) => {
        const config = decoded({ profile: "agentcpm", balanced: false })
        // All answered in several plain turns, so that every member is kept unless clipped.
        const plain = samples.map((s) => ({
          ...s,
          outcome: "answered" as const,
          verdict: "correct" as const,
          turns: [
            { turn: 0, flags: [] },
            { turn: 1, flags: [] },
          ],
        }))
        const d = decide(config, plain)
        fc.pre(d.baseline !== null)
        const input = byId(plain)
        const members = d.baseline!.members.map((id) => input.get(id)!)
        const total = members.reduce((a, m) => a + m.score, 0)
        const k = members.length
        // Reconstruct the unclipped leave-one-out advantages from the kept ones; their sum is 0.
        let sum = 0
        for (const m of members) sum += m.score - (total - m.score) / (k - 1)
        expect(Math.abs(sum)).toBeLessThan(1e-9)
        for (const s of keptSamples(d)) {
          const m = input.get(s.sampleId)!
          expect(s.advantage).toBeCloseTo(m.score - (total - m.score) / (k - 1), 9)
        }
      }),
      runs,
    )
  })
})

describe("dapo", () => {
  it("emits no zero-variance group and never trains a truncated sample", () => {
    fc.assert(
      fc.property(dapoConfig, group, (config, samples) => {
        if (config.profile !== "dapo") throw new Error("dapo expected")
        const d = decide(config, samples)
        const input = byId(samples)
        for (const s of keptSamples(d)) expect(isTruncated(input.get(s.sampleId)!)).toBe(false)
        if (d.kept > 0) {
          const scores = d.baseline!.members.map((id) => effectiveScore(input.get(id)!))
          expect(Math.max(...scores) - Math.min(...scores) - config.zeroVarianceTolerance).toBeGreaterThan(0)
        }
        // Truncated samples are in the statistics exactly when configured so (and the group was not dropped).
        if (d.baseline !== null) {
          const truncated = samples.filter((s) => exclusionOf(s) === undefined && isTruncated(s))
          for (const t of truncated)
            expect(d.baseline.members.includes(t.sampleId)).toBe(config.overlongInStatistics)
        }
      }),
      runs,
    )
  })
})

describe("grpo and dapo", () => {
  it("rank advantages as their scores: a higher score never has a lower advantage; equal scores, equal advantages", () => {
    fc.assert(
      fc.property(fc.oneof(grpoConfig, dapoConfig), group, (config, samples) => {
        const kept = keptSamples(decide(config, samples))
        for (const a of kept)
          for (const b of kept) {
            if (a.score === b.score) expect(a.advantage).toBe(b.advantage)
            if (a.score > b.score) expect(a.advantage).toBeGreaterThanOrEqual(b.advantage)
          }
      }),
      runs,
    )
  })

  it("grpo keeps every sample that was not excluded and has a trainable turn; its advantages centre on 0", () => {
    fc.assert(
      fc.property(grpoConfig, group, (config, samples) => {
        const d = decide(config, samples)
        const pool = samples.filter((s) => exclusionOf(s) === undefined)
        expect(d.baseline?.members ?? []).toEqual(pool.map((s) => s.sampleId).sort())
        for (const s of d.samples)
          if (!s.kept && exclusionOf(byId(samples).get(s.sampleId)!) === undefined)
            expect(["failed_turn", "format_error", "repeat", "too_few_turns"]).toContain(s.reason)
        const kept = keptSamples(d)
        if (kept.length === pool.length && pool.length > 0) {
          const sum = kept.reduce((a, s) => a + s.advantage, 0)
          expect(Math.abs(sum)).toBeLessThan(1e-6)
        }
      }),
      runs,
    )
  })
})
