/**
 * The RL demo's pure parts: `--merge-weights` parsing (fuzzed: any list of weights in [0, 1]
 * written out parses back to the same numbers; any entry outside, or not a number, is refused
 * naming the entry), the targets (each {name, goal, actual, pass}, a step without lag-0 tokens not
 * counted against the ratio band, a ratio outside it failing), and the reward curve SVG (one point
 * per step with a reward, inside the plot).
 */
import { fc, test } from "@fast-check/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, it } from "vitest"
import { demoTargets, rewardCurveSvg, type StepPoint } from "../../src/app/rlDemo.ts"
import { parseMergeWeights } from "../../src/cli/commands/rlDemoCommand.ts"

const parse = (text: string | undefined) => Effect.runSyncExit(parseMergeWeights(text))

describe("--merge-weights", () => {
  it("defaults to 0, 0.25, 0.5, 0.75, 1", () => {
    expect(parse(undefined)).toEqual(Exit.succeed([0, 0.25, 0.5, 0.75, 1]))
  })

  test.prop([fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 })])(
    "reads back any list of weights in [0, 1]",
    (weights) => {
      expect(parse(weights.map(String).join(","))).toEqual(
        Exit.succeed(weights.map((w) => Number(String(w)))),
      )
    },
  )

  test.prop([
    fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
    fc.oneof(
      fc.double({ min: 1.000001, max: 1e6, noNaN: true }).map(String),
      fc.double({ min: -1e6, max: -1e-6, noNaN: true }).map(String),
      fc.constantFrom("", "x", "NaN", "0.5.5", "1e", "Infinity"),
    ),
  ])("refuses an entry that is not a weight in [0, 1], naming it", (good, bad) => {
    const exit = parse([...good.map(String), bad].join(","))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain(
      `"${bad.trim()}" is not a weight in [0, 1]`,
    )
  })
})

const point = (step: number, reward: number | null, ratioLag0: number | null): StepPoint => ({
  step,
  reward,
  groups: 2,
  samples: 16,
  ratioLag0,
  loss: 0,
})

describe("the demo's targets", () => {
  const heldout = { tasks: 10, k: 8, base: 0, warm: 0.1, rl: 0.85 }
  const staleness = { maxLag: 4, trainedTokens: 100, violations: 0 }

  it("pass on the issue's figures, a step without lag-0 tokens not counted against the band", () => {
    const targets = demoTargets({
      heldout,
      stepsTrained: 3,
      steps: [point(0, 0.1, 1), point(1, 0.2, null), point(2, 0.3, 1.0000001)],
      staleness,
    })
    expect(targets.map((t) => Object.keys(t).sort())).toEqual(
      Array(5).fill(["actual", "goal", "name", "pass"]),
    )
    expect(targets.every((t) => t.pass)).toBe(true)
    expect(targets[3]!.actual).toContain("2 of 3 steps")
  })

  it("fail where a figure misses", () => {
    const targets = demoTargets({
      heldout: { ...heldout, warm: 0.35, rl: 0.79 },
      stepsTrained: 301,
      steps: [point(0, 0.1, 1), point(1, 0.2, 1.03)],
      staleness: { ...staleness, violations: 1 },
    })
    expect(targets.map((t) => t.pass)).toEqual([false, false, false, false, false])
  })
})

describe("the reward curve", () => {
  test.prop([
    fc.array(fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null }), { maxLength: 60 }),
  ])("has one point per step with a reward, inside the plot", (rewards) => {
    const svg = rewardCurveSvg(
      rewards.map((r, i) => point(i, r, 1)),
      { warm: 0.1, rl: 0.9, k: 8 },
    )
    expect(svg.startsWith("<svg")).toBe(true)
    const points = (/points="([^"]*)"/.exec(svg)?.[1] ?? "").split(" ").filter((p) => p !== "")
    expect(points).toHaveLength(rewards.filter((r) => r !== null).length)
    for (const p of points) {
      const [x, y] = p.split(",").map(Number)
      expect(x).toBeGreaterThanOrEqual(56)
      expect(x).toBeLessThanOrEqual(624)
      expect(y).toBeGreaterThanOrEqual(32)
      expect(y).toBeLessThanOrEqual(312)
    }
  })
})
