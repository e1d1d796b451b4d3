/**
 * Metrics over sample records: Avg@k with missing, crashed, timed-out and judge-failed runs
 * counted as wrong and listed; std over runs; the task-clustered 95% interval (Student t);
 * unbiased and naive pass@k; breakdowns; usage per sample; records that are not used.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  computeMetrics,
  passAtKValues,
  type SampleRecord,
  sampleStd,
} from "../../../src/projections/scoreboard/metrics.ts"
import { meanPassAtK } from "../../../src/projections/scoreboard/passAtK.ts"
import { studentTCdf, studentTQuantile } from "../../../src/projections/scoreboard/studentT.ts"

const scored = (
  taskId: string,
  sample: number,
  correct: boolean,
  extra: Partial<SampleRecord> = {},
): SampleRecord => ({
  taskId,
  sample,
  status: "scored",
  correct,
  ...extra,
})

describe("Avg@k", () => {
  it("counts missing, crashed, timed-out and judge-failed runs as wrong, lists them, keeps every task", () => {
    const metrics = computeMetrics({
      k: 4,
      tasks: [{ taskId: "a" }, { taskId: "b" }, { taskId: "c" }],
      samples: [
        scored("a", 0, true),
        scored("a", 1, true),
        scored("a", 2, true),
        scored("a", 3, true),
        scored("b", 0, true),
        scored("b", 1, false),
        { taskId: "b", sample: 2, status: "crashed" },
        { taskId: "c", sample: 1, status: "timeout" },
        { taskId: "c", sample: 2, status: "judge_failed" },
      ],
    })
    expect(metrics.avgAtK).toBe(5 / 12)
    expect(metrics).toMatchObject({ k: 4, tasks: 3, runs: 12, correct: 5 })
    expect(metrics.statusCounts).toEqual({ scored: 6, missing: 3, crashed: 1, timeout: 1, judge_failed: 1 })
    expect(metrics.notScored).toEqual([
      { taskId: "b", sample: 2, status: "crashed" },
      { taskId: "b", sample: 3, status: "missing" },
      { taskId: "c", sample: 0, status: "missing" },
      { taskId: "c", sample: 1, status: "timeout" },
      { taskId: "c", sample: 2, status: "judge_failed" },
      { taskId: "c", sample: 3, status: "missing" },
    ])
    expect(metrics.perRunAccuracy).toEqual([2 / 3, 1 / 3, 1 / 3, 1 / 3])
    expect(metrics.stdOverRuns).toBeCloseTo(sampleStd([2 / 3, 1 / 3, 1 / 3, 1 / 3])!, 15)
    expect(metrics.stdOverRuns).toBeCloseTo(1 / 6, 12)
  })

  it("keeps a task with no record at all in the denominator", () => {
    const metrics = computeMetrics({
      k: 2,
      tasks: [{ taskId: "x" }, { taskId: "y" }],
      samples: [scored("x", 0, true), scored("x", 1, true)],
    })
    expect(metrics.avgAtK).toBe(0.5)
    expect(metrics.statusCounts.missing).toBe(2)
  })

  it("takes the tasks from the records when none are given", () => {
    const metrics = computeMetrics({ k: 1, samples: [scored("x", 0, true), scored("y", 0, false)] })
    expect(metrics).toMatchObject({ tasks: 2, avgAtK: 0.5 })
    expect(metrics.stdOverRuns).toBeUndefined()
  })

  it("uses the last record of a run and says which records it did not use", () => {
    const metrics = computeMetrics({
      k: 2,
      tasks: [{ taskId: "a" }],
      samples: [
        { taskId: "a", sample: 0, status: "crashed" },
        scored("a", 0, true),
        scored("a", 2, true),
        scored("a", 1.5, true),
        scored("zzz", 0, true),
      ],
    })
    expect(metrics.correct).toBe(1)
    expect(metrics.ignored).toEqual([
      { taskId: "a", sample: 0, reason: "replaced by a later record of the same run" },
      { taskId: "a", sample: 2, reason: "run index outside 0..1" },
      { taskId: "a", sample: 1.5, reason: "run index outside 0..1" },
      { taskId: "zzz", sample: 0, reason: "not a task of this evaluation" },
    ])
  })

  it("counts a scored record without correct: true as wrong", () => {
    const metrics = computeMetrics({ k: 1, samples: [{ taskId: "a", sample: 0, status: "scored" }] })
    expect(metrics.avgAtK).toBe(0)
  })
})

describe("interval and pass@k", () => {
  it("gives the task-clustered 95% interval with Student t (df = N − 1), clamped to [0, 1]", () => {
    // Task means 1, 0.25, 0: mean 5/12, sample sd, se = sd / √3, t(0.975, 2) = 4.3027.
    const samples = [
      ...[0, 1, 2, 3].map((j) => scored("a", j, true)),
      ...[0, 1, 2, 3].map((j) => scored("b", j, j === 0)),
      ...[0, 1, 2, 3].map((j) => scored("c", j, false)),
    ]
    const metrics = computeMetrics({ k: 4, samples })
    const sd = sampleStd([1, 0.25, 0])!
    const se = sd / Math.sqrt(3)
    expect(metrics.interval95?.standardError).toBeCloseTo(se, 12)
    expect(metrics.interval95?.low).toBe(0)
    expect(metrics.interval95?.high).toBe(1)
    expect(metrics.interval95?.method).toMatch(/Student t \(df 2\).*clustered by task/)

    const many = computeMetrics({
      k: 2,
      samples: Array.from({ length: 40 }, (_, t) => [
        scored(`t${t}`, 0, t % 2 === 0),
        scored(`t${t}`, 1, t % 4 === 0),
      ]).flat(),
    })
    const means = Array.from({ length: 40 }, (_, t) => ((t % 2 === 0 ? 1 : 0) + (t % 4 === 0 ? 1 : 0)) / 2)
    const half = studentTQuantile(0.975, 39) * (sampleStd(means)! / Math.sqrt(40))
    expect(many.avgAtK).toBe(0.375)
    expect(many.interval95?.low).toBeCloseTo(0.375 - half, 12)
    expect(many.interval95?.high).toBeCloseTo(0.375 + half, 12)
  })

  it("reports unbiased pass@k for 1, 2, 4 … and k, and naive pass@k", () => {
    expect(passAtKValues(8)).toEqual([1, 2, 4, 8])
    expect(passAtKValues(5)).toEqual([1, 2, 4, 5])
    expect(passAtKValues(1)).toEqual([1])
    const samples = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => scored("a", j, j === 5 || j === 6))
    const metrics = computeMetrics({ k: 8, samples })
    expect(metrics.passAtK["1"]).toBe(0.25)
    expect(metrics.passAtK["2"]).toBeCloseTo(0.4643, 4)
    expect(metrics.passAtK["4"]).toBeCloseTo(0.7857, 4)
    expect(metrics.passAtK["8"]).toBe(1)
    expect(metrics.naivePassAtK).toEqual({ "1": 0, "2": 0, "4": 0, "8": 1 })
  })

  test.prop([
    fc
      .integer({ min: 1, max: 8 })
      .chain((k) =>
        fc.tuple(
          fc.constant(k),
          fc.array(
            fc.array(fc.constantFrom("yes", "no", "crashed", "absent"), { minLength: k, maxLength: k }),
            { minLength: 1, maxLength: 12 },
          ),
        ),
      ),
  ])("Avg@k and pass@k follow their definitions on any records", ([k, table]) => {
    const samples: Array<SampleRecord> = []
    table.forEach((runs, t) => {
      runs.forEach((run, j) => {
        if (run === "yes" || run === "no") samples.push(scored(`t${t}`, j, run === "yes"))
        else if (run === "crashed") samples.push({ taskId: `t${t}`, sample: j, status: "crashed" })
      })
    })
    const metrics = computeMetrics({ k, tasks: table.map((_, t) => ({ taskId: `t${t}` })), samples })
    const correct = table.flat().filter((r) => r === "yes").length
    expect(metrics.avgAtK).toBe(correct / (table.length * k))
    expect(metrics.passAtK[String(k)]).toBe(
      meanPassAtK(
        table.map((runs) => ({ n: k, c: runs.filter((r) => r === "yes").length })),
        k,
      ),
    )
    expect(metrics.notScored).toHaveLength(
      table.flat().filter((r) => r === "crashed" || r === "absent").length,
    )
    expect(metrics.interval95 === undefined).toBe(table.length < 2)
  })
})

describe("breakdowns and usage", () => {
  it("groups by level, category and both, and averages turns, tool calls, tokens and cost per sample", () => {
    const metrics = computeMetrics({
      k: 2,
      tasks: [
        { taskId: "a", level: "easy", category: "single_source" },
        { taskId: "b", level: "hard", category: "multi_source" },
        { taskId: "c", level: "hard", category: "single_source" },
      ],
      samples: [
        scored("a", 0, true, {
          turns: 10,
          toolCalls: 12,
          promptTokens: 1000,
          completionTokens: 100,
          costUsd: 0.01,
        }),
        scored("a", 1, true, {
          turns: 20,
          toolCalls: 30,
          promptTokens: 3000,
          completionTokens: 300,
          costUsd: 0.03,
        }),
        scored("b", 0, false, { turns: 30 }),
        { taskId: "b", sample: 1, status: "judge_failed", turns: 40 },
        scored("c", 0, true),
      ],
    })
    expect(metrics.byLevel).toEqual({
      easy: { tasks: 1, correct: 2, avgAtK: 1, passAtK: { "1": 1, "2": 1 } },
      hard: { tasks: 2, correct: 1, avgAtK: 0.25, passAtK: { "1": 0.25, "2": 0.5 } },
    })
    expect(Object.keys(metrics.byCategory)).toEqual(["multi_source", "single_source"])
    expect(metrics.byCategory.single_source).toMatchObject({ tasks: 2, correct: 3, avgAtK: 0.75 })
    expect(Object.keys(metrics.byLevelAndCategory)).toEqual([
      "easy × single_source",
      "hard × multi_source",
      "hard × single_source",
    ])
    expect(metrics.statusCounts.judge_failed).toBe(1)
    expect(metrics.usage.turns).toEqual({ samples: 4, total: 100, mean: 25 })
    expect(metrics.usage.toolCalls).toEqual({ samples: 2, total: 42, mean: 21 })
    expect(metrics.usage.costUsd?.total).toBeCloseTo(0.04, 12)
  })

  it("takes level and category from the records when the task list has none, and has no groups without them", () => {
    const withLevels = computeMetrics({
      k: 1,
      samples: [scored("a", 0, true, { level: "1" }), scored("b", 0, false, { level: "2" })],
    })
    expect(Object.keys(withLevels.byLevel)).toEqual(["1", "2"])
    const without = computeMetrics({ k: 1, samples: [scored("a", 0, true)] })
    expect(without.byLevel).toEqual({})
    expect(without.byCategory).toEqual({})
  })
})

describe("Student t", () => {
  it("gives the known 97.5% quantiles", () => {
    const known: ReadonlyArray<readonly [number, number]> = [
      [1, 12.706204736174694],
      [2, 4.302652729749462],
      [5, 2.5705818356363146],
      [10, 2.228138851986274],
      [30, 2.0422724563012378],
      [100, 1.9839715185235518],
      [1000, 1.9623390808264083],
    ]
    for (const [df, q] of known) expect(studentTQuantile(0.975, df)).toBeCloseTo(q, 8)
    expect(studentTQuantile(0.025, 10)).toBeCloseTo(-2.228138851986274, 8)
    expect(studentTQuantile(0.5, 3)).toBe(0)
    expect(studentTCdf(0, 7)).toBeCloseTo(0.5, 12)
    expect(studentTQuantile(0.975, 1_000_000)).toBeCloseTo(1.959966, 5)
  })
})
