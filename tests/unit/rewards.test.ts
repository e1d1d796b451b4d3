/**
 * The reward profiles on groups worked out by hand (given a group, when a profile decides it, then
 * these samples stay with these advantages and these go for these reasons), the profile config's
 * defaults and errors, and the group contract's errors. The invariants over random groups are in
 * rewardsProperties.test.ts.
 */
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { decideGroup } from "../../src/projections/rewards/decideGroup.ts"
import { addCounts, countReasons, noDrops } from "../../src/projections/rewards/dropReasons.ts"
import type {
  GroupDecision,
  KeptSample,
  SampleDecision,
} from "../../src/projections/rewards/groupDecision.ts"
import type { GroupSample } from "../../src/projections/rewards/groupSamples.ts"
import { decodeRewardConfig, type RewardConfig } from "../../src/projections/rewards/rewardConfig.ts"

type Flag = "FORMAT_ERROR" | "REPEAT" | "TOOL_FAILED" | "FAILED"

/** A sample; by default answered, judged by its score, 3 plain turns, 100 tokens. */
const sample = (
  sampleId: string,
  score: number,
  options: {
    outcome?: GroupSample["outcome"]
    verdict?: GroupSample["verdict"]
    turns?: number | ReadonlyArray<ReadonlyArray<Flag>>
    tokens?: number
  } = {},
): GroupSample => {
  const turns = options.turns ?? 3
  const flags = typeof turns === "number" ? Array.from({ length: turns }, () => []) : turns
  return {
    sampleId,
    outcome: options.outcome ?? "answered",
    verdict: options.verdict ?? (score > 0 ? "correct" : "incorrect"),
    score,
    turns: flags.map((f, turn) => ({ turn, flags: [...f] })),
    tokens: options.tokens ?? 100,
  }
}

const config = (data: unknown): RewardConfig => Result.getOrThrow(decodeRewardConfig(data))
const agentcpm = config({ profile: "agentcpm" })
const grpo = config({ profile: "grpo" })
const dapo = config({ profile: "dapo" })

const decide = (profile: RewardConfig, samples: ReadonlyArray<GroupSample>): GroupDecision =>
  Result.getOrThrow(decideGroup(profile, samples))

const byId = (decision: GroupDecision, id: string): SampleDecision => {
  const found = decision.samples.find((s) => s.sampleId === id)
  if (found === undefined) throw new Error(`no decision for ${id}`)
  return found
}

const kept = (decision: GroupDecision, id: string): KeptSample => {
  const found = byId(decision, id)
  if (!found.kept) throw new Error(`${id} was dropped (${found.reason})`)
  return found
}

const reasonOf = (decision: GroupDecision, id: string): string => {
  const found = byId(decision, id)
  return found.kept ? "kept" : found.reason
}

/** Only the reasons that occurred, for readable expectations. */
const nonZero = (counts: Readonly<Record<string, number>>) =>
  Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0))

/**
 * The brief's group of 8: two right, six wrong, every one answered in 3 turns; lengths chosen so
 * that "the shortest" picks other samples than the first ones listed.
 */
const eight = [
  sample("s1", 1, { tokens: 500 }),
  sample("s2", 1, { tokens: 900 }),
  sample("s3", 0, { tokens: 800 }),
  sample("s4", 0, { tokens: 700 }),
  sample("s5", 0, { tokens: 600 }),
  sample("s6", 0, { tokens: 400 }),
  sample("s7", 0, { tokens: 300 }),
  sample("s8", 0, { tokens: 200 }),
]

describe("a group of 8 scored [1,1,0,0,0,0,0,0]", () => {
  it("agentcpm (balanced): min = min(6 wrong, 2 right) = 2; the 3 shortest wrong and both right stay; leave-one-out", () => {
    const d = decide(agentcpm, eight)
    expect(d.groupDropped).toBeNull()
    // Right: 1 − mean(1, 0, 0, 0) = 0.75; wrong: 0 − mean(1, 1, 0, 0) = −0.5.
    for (const id of ["s1", "s2"]) {
      expect(kept(d, id).advantage).toBe(0.75)
      expect(kept(d, id).turns).toEqual([0, 1, 2].map((turn) => ({ turn, advantage: 0.75 })))
    }
    for (const id of ["s6", "s7", "s8"]) expect(kept(d, id).advantage).toBe(-0.5)
    for (const id of ["s3", "s4", "s5"]) expect(reasonOf(d, id)).toBe("balanced_trim")
    expect(d.baseline).toEqual({ members: ["s1", "s2", "s6", "s7", "s8"], mean: 0.4, std: null })
    expect(d.kept).toBe(5)
    expect(d.keptTurns).toBe(15)
    expect(nonZero(d.droppedSamples)).toEqual({ balanced_trim: 3 })
    expect(nonZero(d.droppedTurns)).toEqual({})
  })

  it("agentcpm without balanced mode: right 1 − 1/7, wrong 0 − 2/7, all 8 kept", () => {
    const d = decide(config({ profile: "agentcpm", balanced: false }), eight)
    expect(d.kept).toBe(8)
    expect(kept(d, "s1").advantage).toBeCloseTo(6 / 7, 12)
    expect(kept(d, "s3").advantage).toBeCloseTo(-2 / 7, 12)
    expect(d.baseline?.mean).toBe(0.25)
  })

  it("agentcpm scales by advScaling", () => {
    const d = decide(config({ profile: "agentcpm", advScaling: 2 }), eight)
    expect(kept(d, "s1").turns[0]!.advantage).toBe(1.5)
    expect(kept(d, "s8").turns[0]!.advantage).toBe(-1)
  })

  it("grpo: (score − 0.25) / (sqrt(1.5 / 7) + 1e-6), every sample kept", () => {
    const d = decide(grpo, eight)
    const std = Math.sqrt(1.5 / 7) // 0.4629100…
    expect(d.baseline?.std).toBeCloseTo(std, 12)
    expect(kept(d, "s1").advantage).toBeCloseTo(1.620185, 5)
    expect(kept(d, "s8").advantage).toBeCloseTo(-0.540062, 5)
    expect(kept(d, "s2").advantage).toBeCloseTo(0.75 / (std + 1e-6), 12)
    expect(d.kept).toBe(8)
    expect(nonZero(d.droppedSamples)).toEqual({})
  })

  it("dapo: the same as grpo when nothing is truncated and the scores differ", () => {
    const d = decide(dapo, eight)
    const g = decide(grpo, eight)
    expect(d.samples).toEqual(g.samples)
    expect(d.baseline).toEqual(g.baseline)
  })
})

describe("exclusions: a score that says nothing about the policy enters nothing", () => {
  const group = [
    sample("a", 1),
    sample("b", 1, { outcome: "model_error" }),
    sample("c", 0, { outcome: "tool_infrastructure_error" }),
    sample("d", 1, { verdict: "judge_failed" }),
    sample("e", 0),
    sample("f", 0),
    sample("g", 1, { outcome: "cancelled" }),
    sample("h", 0, { outcome: "timeout" }),
  ]
  const exclusions = { infrastructure: 2, judge_failed: 1, cancelled: 1, timeout: 1 }

  it("agentcpm: the baseline is a, e, f only (a: 1 − 0, e and f: 0 − 1/2)", () => {
    const d = decide(agentcpm, group)
    expect(kept(d, "a").advantage).toBe(1)
    expect(kept(d, "e").advantage).toBe(-0.5)
    expect(kept(d, "f").advantage).toBe(-0.5)
    expect(d.baseline?.members).toEqual(["a", "e", "f"])
    expect(nonZero(d.droppedSamples)).toEqual(exclusions)
    expect(reasonOf(d, "b")).toBe("infrastructure")
    expect(reasonOf(d, "d")).toBe("judge_failed")
  })

  it("grpo: mean 1/3, std sqrt(1/3) over a, e, f", () => {
    const d = decide(grpo, group)
    expect(kept(d, "a").advantage).toBeCloseTo(2 / 3 / (Math.sqrt(1 / 3) + 1e-6), 12)
    expect(kept(d, "e").advantage).toBeCloseTo(-1 / 3 / (Math.sqrt(1 / 3) + 1e-6), 12)
    expect(nonZero(d.droppedSamples)).toEqual(exclusions)
  })

  it("dapo: the same exclusions", () => {
    expect(nonZero(decide(dapo, group).droppedSamples)).toEqual(exclusions)
  })

  it("a group of failures only keeps nothing and raises no group reason", () => {
    const failures = [sample("x", 1, { outcome: "model_error" }), sample("y", 0, { outcome: "timeout" })]
    for (const profile of [agentcpm, grpo, dapo]) {
      const d = decide(profile, failures)
      expect(d.kept).toBe(0)
      expect(d.groupDropped).toBeNull()
      expect(d.baseline).toBeNull()
    }
  })
})

describe("zero variance", () => {
  const allWrong = [sample("a", 0), sample("b", 0), sample("c", 0)]
  const nearlyEqual = [sample("a", 0.95), sample("b", 1), sample("c", 1)]

  it("agentcpm and dapo drop a group of equal scores whole; grpo keeps it with advantages of 0", () => {
    for (const profile of [agentcpm, dapo]) {
      const d = decide(profile, allWrong)
      expect(d.groupDropped).toBe("zero_variance_group")
      expect(nonZero(d.droppedSamples)).toEqual({ zero_variance_group: 3 })
      expect(d.baseline).toBeNull()
    }
    const g = decide(grpo, allWrong)
    expect(g.kept).toBe(3)
    for (const id of ["a", "b", "c"]) expect(kept(g, id).turns.every((t) => t.advantage === 0)).toBe(true)
  })

  it("agentcpm's threshold is 0.1 (max − min = 0.05 drops); dapo's tolerance is 0 (it keeps)", () => {
    expect(decide(agentcpm, nearlyEqual).groupDropped).toBe("zero_variance_group")
    // At 0.05 it passes (1 − 0.95 is 0.05 in decimal, whatever binary makes of it); balanced mode
    // (min = 0 wrong) keeps the 2 shortest right, a and b; a (0.95 − 1 < 0) is sign-clipped.
    const lower = decide(config({ profile: "agentcpm", varianceThreshold: 0.05 }), nearlyEqual)
    expect(nonZero(lower.droppedSamples)).toEqual({ balanced_trim: 1, sign_clip: 1 })
    expect(kept(lower, "b").advantage).toBeCloseTo(0.05, 12)
    expect(decide(dapo, nearlyEqual).kept).toBe(3)
    expect(decide(config({ profile: "dapo", zeroVarianceTolerance: 0.05 }), nearlyEqual).groupDropped).toBe(
      "zero_variance_group",
    )
  })

  it("agentcpm tests again after its per-sample drops: one right answer and two truncated is no group", () => {
    const group = [
      sample("a", 1),
      sample("b", 0, { outcome: "turns_limit" }),
      sample("c", 0, { outcome: "context_limit" }),
    ]
    const d = decide(agentcpm, group)
    expect(d.groupDropped).toBe("zero_variance_group")
    expect(nonZero(d.droppedSamples)).toEqual({ truncated: 2, zero_variance_group: 1 })
  })

  it("no spread is zero variance whatever the threshold", () => {
    const d = decide(config({ profile: "agentcpm", varianceThreshold: 0 }), allWrong)
    expect(d.groupDropped).toBe("zero_variance_group")
  })
})

describe("agentcpm's quality rules (3a–3c), applied in balanced mode too", () => {
  const group = [
    sample("a", 1, { turns: 1 }),
    sample("b", 1, { turns: 3 }),
    sample("c", 0.7, { outcome: "turns_limit", tokens: 900 }),
    sample("d", 0, { outcome: "context_limit", tokens: 500 }),
    sample("e", 0, { tokens: 100 }),
    sample("f", 0, { outcome: "repetition", tokens: 300 }),
  ]

  it("a correct answer in 1 turn goes (too_few_turns); truncated go; repetition stays as a wrong answer", () => {
    const d = decide(agentcpm, group)
    expect(reasonOf(d, "a")).toBe("too_few_turns")
    expect(reasonOf(d, "c")).toBe("truncated")
    expect(reasonOf(d, "d")).toBe("truncated")
    // Members b, e, f: b 1 − 0, e and f 0 − 1/2.
    expect(kept(d, "b").advantage).toBe(1)
    expect(kept(d, "e").advantage).toBe(-0.5)
    expect(kept(d, "f").advantage).toBe(-0.5)
  })

  it("minTurns 0 keeps the one-turn answer", () => {
    const d = decide(config({ profile: "agentcpm", minTurns: 0, balanced: false }), group)
    expect(kept(d, "a").advantage).toBe(1 - 1 / 3)
  })

  it("reserveContextErrorCount keeps the shortest truncated ones as negatives (score 0, whatever it was given)", () => {
    const d = decide(config({ profile: "agentcpm", reserveContextErrorCount: 1, balanced: false }), group)
    expect(reasonOf(d, "c")).toBe("truncated")
    // Members b, d, e, f: b 1 − 0; d, e, f 0 − 1/3.
    expect(kept(d, "d").score).toBe(0)
    expect(kept(d, "d").advantage).toBeCloseTo(-1 / 3, 12)
    expect(kept(d, "b").advantage).toBe(1)
    const both = decide(config({ profile: "agentcpm", reserveContextErrorCount: 2, balanced: false }), group)
    expect(kept(both, "c").score).toBe(0)
    expect(kept(both, "c").advantage).toBeCloseTo(-1 / 4, 12)
  })

  it("balanced mode counts reserved truncated samples as wrong and trims the longest", () => {
    // Members b (right), d, e, f (wrong): min = 1, keep 2 wrong: e (100 tokens), f (300); d (500) goes.
    const d = decide(config({ profile: "agentcpm", reserveContextErrorCount: 1 }), group)
    expect(reasonOf(d, "d")).toBe("balanced_trim")
    expect(d.baseline?.members).toEqual(["b", "e", "f"])
  })

  it("balanced mode's min: with more right than wrong, every wrong and min + 2 right stay", () => {
    const many = [
      ...["r1", "r2", "r3", "r4", "r5"].map((id, i) => sample(id, 1, { tokens: 100 * (5 - i) })),
      sample("w1", 0),
    ]
    const d = decide(agentcpm, many)
    // min = 1: w1 and the 3 shortest right (r5, r4, r3) stay.
    expect(d.baseline?.members).toEqual(["r3", "r4", "r5", "w1"])
    expect(reasonOf(d, "r1")).toBe("balanced_trim")
    expect(reasonOf(d, "r2")).toBe("balanced_trim")
    // A partial score is "right" for balancing (AgentRL: score ≠ 0) but negative for the sign clip.
  })
})

describe("agentcpm's advantage rules", () => {
  it("the sign clip: a right answer below its group's baseline, and a wrong one above, are dropped", () => {
    // Σ = 2.6; a: 0.6 − 2/3 < 0 but 0.6 > 0.5; b, c: 1 − 1.6/3; d: 0 − 2.6/3.
    const d = decide(config({ profile: "agentcpm", balanced: false }), [
      sample("a", 0.6),
      sample("b", 1),
      sample("c", 1),
      sample("d", 0),
    ])
    expect(reasonOf(d, "a")).toBe("sign_clip")
    expect(kept(d, "b").advantage).toBeCloseTo(1 - 1.6 / 3, 12)
    expect(kept(d, "d").advantage).toBeCloseTo(-2.6 / 3, 12)
    // a partial score ≤ 0.5 above the others' mean is clipped to 0 as well.
    const partial = decide(agentcpm, [sample("a", 0.4), sample("b", 0), sample("c", 0)])
    expect(reasonOf(partial, "a")).toBe("sign_clip")
    expect(kept(partial, "b").advantage).toBe(-0.2)
  })

  it("a sample exactly at its baseline has no advantage (zero_advantage)", () => {
    const d = decide(config({ profile: "agentcpm", balanced: false }), [
      sample("a", 1),
      sample("b", 0.5),
      sample("c", 0),
    ])
    expect(reasonOf(d, "b")).toBe("zero_advantage")
    expect(kept(d, "a").advantage).toBe(0.75)
    expect(kept(d, "c").advantage).toBe(-0.75)
  })

  it("rounding residue is not a signal: 0.2 against 0.1 and 0.3 is exactly at its baseline", () => {
    const d = decide(config({ profile: "agentcpm", balanced: false }), [
      sample("a", 0.1),
      sample("b", 0.2),
      sample("c", 0.3),
    ])
    expect(reasonOf(d, "b")).toBe("zero_advantage")
  })

  it("per turn: FORMAT_ERROR and REPEAT capped at 0 (then dropped), FAILED never trains; a wrong sample's flagged turns keep A < 0", () => {
    const d = decide(agentcpm, [
      sample("r", 1, { turns: [[], ["FORMAT_ERROR"], ["REPEAT"], ["FAILED"], ["TOOL_FAILED"]] }),
      sample("w", 0, { turns: [["FORMAT_ERROR"], ["REPEAT"], [], ["FAILED"]] }),
    ])
    expect(kept(d, "r").turns).toEqual([
      { turn: 0, advantage: 1 },
      { turn: 4, advantage: 1 },
    ])
    expect(kept(d, "r").droppedTurns).toEqual([
      { turn: 1, reason: "format_error" },
      { turn: 2, reason: "repeat" },
      { turn: 3, reason: "failed_turn" },
    ])
    expect(kept(d, "w").turns).toEqual([0, 1, 2].map((turn) => ({ turn, advantage: -1 })))
    expect(nonZero(d.droppedTurns)).toEqual({ format_error: 1, repeat: 1, failed_turn: 2 })
    expect(d.keptTurns).toBe(5)
  })

  it("a sample whose every turn is dropped goes with the reason of most of its turns", () => {
    const d = decide(agentcpm, [
      sample("r", 1, { turns: [["FORMAT_ERROR"], ["REPEAT"], ["FORMAT_ERROR"]] }),
      sample("w", 0),
    ])
    expect(reasonOf(d, "r")).toBe("format_error")
    expect(nonZero(d.droppedSamples)).toEqual({ format_error: 1 })
    // The baseline was taken before: w keeps 0 − 1.
    expect(kept(d, "w").advantage).toBe(-1)
  })

  it("efficient rewarding shapes the scores the baseline reads: shorter right and longer wrong rank higher", () => {
    const group = [
      sample("r1", 1, { turns: 2 }),
      sample("r2", 1, { turns: 4 }),
      sample("w1", 0, { turns: 3 }),
      sample("w2", 0, { turns: 5 }),
    ]
    const d = decide(config({ profile: "agentcpm", efficientRewarding: true }), group)
    // Shaped: r1 1.1, r2 0.9, w1 −0.1, w2 0.1 (Σ 2). r1: 1.1 − 0.9/3; r2: 0.9 − 1.1/3; w1: −0.1 − 2.1/3.
    expect(kept(d, "r1").advantage).toBeCloseTo(0.8, 12)
    expect(kept(d, "r2").advantage).toBeCloseTo(0.9 - 1.1 / 3, 12)
    expect(kept(d, "w1").advantage).toBeCloseTo(-0.8, 12)
    expect(kept(d, "w2").advantage).toBeCloseTo(0.1 - 1.9 / 3, 12)
    expect(kept(d, "r1").score).toBe(1)
    // Off, the two right answers are alike.
    const plain = decide(agentcpm, group)
    expect(kept(plain, "r1").advantage).toBe(kept(plain, "r2").advantage)
  })

  it("efficient rewarding: tied turn counts share their rank", () => {
    const d = decide(config({ profile: "agentcpm", efficientRewarding: true }), [
      sample("r1", 1, { turns: 3 }),
      sample("r2", 1, { turns: 3 }),
      sample("w1", 0, { turns: 3 }),
    ])
    expect(kept(d, "r1").advantage).toBe(kept(d, "r2").advantage)
  })
})

describe("dapo's overlong filtering", () => {
  const group = [
    sample("a", 1),
    sample("b", 0),
    sample("c", 0, { outcome: "turns_limit" }),
    sample("d", 0.8, { outcome: "context_limit" }),
  ]

  it("masks truncated samples; by default they still count as 0 in the mean and std", () => {
    const d = decide(dapo, group)
    expect(reasonOf(d, "c")).toBe("truncated")
    expect(reasonOf(d, "d")).toBe("truncated")
    // Over [1, 0, 0, 0]: mean 0.25, std 0.5.
    expect(d.baseline).toEqual({ members: ["a", "b", "c", "d"], mean: 0.25, std: 0.5 })
    expect(kept(d, "a").advantage).toBeCloseTo(0.75 / (0.5 + 1e-6), 12)
    expect(kept(d, "b").advantage).toBeCloseTo(-0.25 / (0.5 + 1e-6), 12)
  })

  it("with overlongInStatistics off they are as if never drawn", () => {
    const d = decide(config({ profile: "dapo", overlongInStatistics: false }), group)
    expect(d.baseline?.members).toEqual(["a", "b"])
    expect(kept(d, "a").advantage).toBeCloseTo(0.5 / (Math.SQRT1_2 + 1e-6), 12)
    // Then two equal answers and a truncated one is a zero-variance group, masked sample included.
    const equal = decide(config({ profile: "dapo", overlongInStatistics: false }), [
      sample("a", 1),
      sample("b", 1),
      sample("c", 0, { outcome: "turns_limit" }),
    ])
    expect(nonZero(equal.droppedSamples)).toEqual({ zero_variance_group: 3 })
  })

  it("grpo keeps truncated samples as wrong answers", () => {
    const d = decide(grpo, group)
    expect(kept(d, "c").advantage).toBeLessThan(0)
    expect(kept(d, "d").score).toBe(0)
  })
})

describe("the group contract", () => {
  const refused = (samples: ReadonlyArray<GroupSample>): string => {
    const result = decideGroup(agentcpm, samples)
    if (Result.isSuccess(result)) throw new Error("accepted")
    return result.failure.reason
  }

  it("refuses an empty group, a sample listed twice, a turn listed twice and a score outside [0, 1]", () => {
    expect(refused([])).toMatch(/at least one sample/)
    expect(refused([sample("a", 1), sample("a", 1)])).toMatch(/sample "a" is listed twice/)
    const twice = {
      ...sample("a", 1),
      turns: [
        { turn: 2, flags: [] },
        { turn: 2, flags: [] },
      ],
    }
    expect(refused([twice])).toMatch(/turn 2 is listed twice/)
    expect(refused([sample("a", 1.5)])).toMatch(/reward group/)
    expect(refused([{ ...sample("a", 1), outcome: "exploded" as GroupSample["outcome"] }])).toMatch(/outcome/)
  })
})

describe("the rewards config", () => {
  it("decodes each profile with AgentRL's defaults", () => {
    expect(config({ profile: "agentcpm" })).toEqual({
      profile: "agentcpm",
      varianceThreshold: 0.1,
      balanced: true,
      minTurns: 1,
      reserveContextErrorCount: 0,
      advScaling: 1,
      efficientRewarding: false,
      efficientSpread: 0.2,
    })
    expect(config({ profile: "grpo" })).toEqual({ profile: "grpo", epsilon: 1e-6 })
    expect(config({ profile: "dapo", overlongInStatistics: false })).toEqual({
      profile: "dapo",
      epsilon: 1e-6,
      zeroVarianceTolerance: 0,
      overlongInStatistics: false,
    })
  })

  it("refuses unknown keys, unknown profiles and out-of-range values, naming the key", () => {
    const reason = (data: unknown) => {
      const result = decodeRewardConfig(data)
      if (Result.isSuccess(result)) throw new Error("accepted")
      return result.failure.reason
    }
    expect(reason({ profile: "grpo", balanced: true })).toMatch(/balanced/)
    expect(reason({ profile: "ppo" })).toMatch(/rewards/)
    expect(reason({ profile: "agentcpm", advScaling: 0 })).toMatch(/advScaling/)
    expect(reason({ profile: "agentcpm", minTurns: 1.5 })).toMatch(/minTurns/)
    expect(reason({ profile: "dapo", epsilon: -1 })).toMatch(/epsilon/)
  })
})

describe("drop counts", () => {
  it("count every reason and add up per step", () => {
    const a = countReasons(["truncated", "truncated", "stale"])
    expect(nonZero(a)).toEqual({ truncated: 2, stale: 1 })
    expect(nonZero(addCounts(a, countReasons(["drift", "stale"])))).toEqual({
      truncated: 2,
      stale: 2,
      drift: 1,
    })
    expect(addCounts(noDrops, noDrops)).toEqual(noDrops)
  })
})
