/**
 * `rollout rl demo` through the compiled CLI (`npm run build` first), small: 4 held-out tasks × 2,
 * 4 RL steps of 2 groups, merges at weights 0 and 1, on the embedded log in a temporary data dir,
 * with the trainer killed (SIGKILL) after step 1. The real parts all run: the Python policy server
 * and trainer (torch from /usr/bin/python3), AgentDock's calculator, the sampler, the bridge. The
 * checks read the demo's namespace back through `rollout log tail --json`: every phase left its
 * events (eval and rl runs, batches published and acknowledged once, trainer reports, weight
 * updates that succeeded), the SVG exists, the lag-0 ratio target holds, and the second trainer
 * resumed from the first one's last checkpoint without training a step twice. The warm start's
 * demonstrations are episodes too (run `<id>-demos`, a scripted teacher calling the real calculator):
 * the SFT file's lines are those episodes' messages, and render in the policy's template exactly as
 * the bundled demonstrations of the same tasks do.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CliResult, runRollout } from "../support/cli.ts"

const repo = path.resolve(".")
let dataDir: string
let result: CliResult
let report: {
  namespace: string
  id: string
  runs: { demos: string | null; base: string; warm: string; rl: string; rlEval: string; merges: string[] }
  demonstrations: { file: string; episodes: number; correct: number; exported: number }
  heldout: { tasks: number; k: number; base: number; warm: number; rl: number }
  steps: Array<{
    step: number
    reward: number | null
    groups: number
    samples: number
    ratioLag0: number | null
  }>
  stepsTrained: number
  acknowledgements: Record<string, number>
  trainerRestarts: Array<{ afterStep: number; lastCheckpoint: number; resumedFromVersion: number | null }>
  staleness: { maxLag: number; trainedTokens: number; violations: number }
  merge: Array<{ weight: number; avgAtK: number; run: string }>
  rewardCurve: string
  phases: Array<{ phase: string; seconds: number }>
  targets: Array<{ name: string; goal: string; actual: unknown; pass: boolean }>
}
let events: Array<{ type: string; subject: string; payload: Record<string, unknown> }>

const STEPS = 4
/** The warm start's recorded demonstrations: as many as the bundled file has (the default). */
const DEMOS = 512

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-demo-"))
  result = await runRollout(
    [
      "--data-dir",
      dataDir,
      "rl",
      "demo",
      "--heldout",
      "4",
      "-k",
      "2",
      "--steps",
      String(STEPS),
      "--groups",
      "2",
      "--train-tasks",
      "200",
      "--demonstrations",
      String(DEMOS),
      "--merge-weights",
      "0,1",
      "--kill-trainer-after",
      "1",
      "--json",
    ],
    { cwd: repo, timeoutMs: 480_000 },
  )
  if (result.code !== 0) throw new Error(`rl demo exited ${result.code}: ${result.stderr.slice(-3000)}`)
  report = JSON.parse(result.stdout)
  const tail = await runRollout(
    ["--data-dir", dataDir, "log", "tail", "--from", "1", "--limit", "1000000", "--json"],
    {
      cwd: repo,
      env: { ...process.env, ROLLOUT_NAMESPACE: report.namespace },
      timeoutMs: 120_000,
    },
  )
  expect(tail.code).toBe(0)
  events = (JSON.parse(tail.stdout) as { events: typeof events }).events
}, 600_000)

afterAll(() => {
  if (dataDir !== undefined) fs.rmSync(dataDir, { recursive: true, force: true })
})

const ofType = (type: string) => events.filter((e) => e.type === type).map((e) => e.payload)

describe("rollout rl demo --json", () => {
  it("runs every phase for real and reports the figures and targets", () => {
    expect(report.heldout).toMatchObject({ tasks: 4, k: 2 })
    for (const figure of [report.heldout.base, report.heldout.warm, report.heldout.rl]) {
      expect(figure).toBeGreaterThanOrEqual(0)
      expect(figure).toBeLessThanOrEqual(1)
    }
    expect(report.phases.map((p) => p.phase)).toEqual([
      "start",
      "eval base",
      "demonstrations",
      "warm start (SFT)",
      "eval warm",
      "rl",
      "eval rl",
      "merge",
    ])
    // The reward per step also went to stderr as the trainer reported each step.
    expect(result.stderr).toMatch(/step {3}0 {2}reward /)

    // Runs in the log: four evaluations of the policy plus one per merge, and the RL run.
    const started = ofType("RunStarted")
    const evalRuns = started.filter((r) => r.kind === "eval").map((r) => r.runId)
    expect(evalRuns).toEqual(
      expect.arrayContaining([
        report.runs.demos,
        report.runs.base,
        report.runs.warm,
        report.runs.rlEval,
        ...report.runs.merges,
      ]),
    )
    expect(report.runs.merges).toHaveLength(2)
    expect(started.filter((r) => r.kind === "rl").map((r) => r.runId)).toEqual([report.runs.rl])
    const finished = ofType("RunFinished")
    for (const run of evalRuns) expect(finished.find((f) => f.runId === run)?.status).toBe("completed")

    // The RL run: batches published and consumed, trainer reports, versions loaded on the server.
    expect(report.stepsTrained).toBe(STEPS)
    expect(ofType("BatchPublished").map((b) => b.step)).toEqual([0, 1, 2, 3])
    expect(
      ofType("BatchConsumed")
        .map((b) => b.step)
        .sort(),
    ).toEqual([0, 1, 2, 3])
    expect(
      ofType("TrainerStepReported")
        .map((r) => r.step)
        .sort(),
    ).toEqual([0, 1, 2, 3])
    const loaded = ofType("EndpointWeightsUpdated").filter((u) => u.ok === true)
    const versions = loaded.map((u) => u.version)
    // 0 is the warm start, 1-4 the trainer's versions, 5-6 the two merges.
    for (const v of ["0", "1", "2", "3", "4", "5", "6"]) expect(versions).toContain(v)
    expect(ofType("EndpointWeightsUpdated").filter((u) => u.ok !== true)).toEqual([])
    // The episodes called the calculator through AgentDock.
    expect(ofType("ToolCallServed").length).toBeGreaterThan(0)
    expect(ofType("ToolCallCompleted").length).toBeGreaterThan(0)

    // The reward curve, one point per step with a reward.
    expect(report.rewardCurve).toBe(path.join(dataDir, "runs", report.runs.rl, "reward-curve.svg"))
    const svg = fs.readFileSync(report.rewardCurve, "utf8")
    expect(svg.startsWith("<svg")).toBe(true)
    const points = /<polyline[^>]*points="([^"]*)"/.exec(svg)?.[1]?.trim().split(" ") ?? []
    expect(points).toHaveLength(report.steps.filter((s) => s.reward !== null).length)
    expect(report.steps.map((s) => s.step)).toEqual([0, 1, 2, 3])
    for (const s of report.steps) expect(s.groups).toBeGreaterThanOrEqual(2)

    // Targets: each {name, goal, actual, pass}; the ratio and staleness ones hold at any size.
    expect(report.targets).toHaveLength(5)
    for (const t of report.targets) expect(Object.keys(t).sort()).toEqual(["actual", "goal", "name", "pass"])
    const ratio = report.targets.find((t) => t.name.startsWith("mean importance ratio at lag 0"))
    expect(ratio?.pass).toBe(true)
    const measured = report.steps.filter((s) => s.ratioLag0 !== null)
    expect(measured.length).toBeGreaterThan(0)
    for (const s of measured) expect(Math.abs(s.ratioLag0! - 1)).toBeLessThan(0.02)
    expect(report.staleness.trainedTokens).toBeGreaterThan(0)
    expect(report.staleness.violations).toBe(0)
    expect(report.targets.find((t) => t.name.startsWith("staleness"))?.pass).toBe(true)
    expect(report.merge.map((m) => m.weight)).toEqual([0, 1])
  })

  it("records the warm start's demonstrations as episodes and warm-starts from their export", () => {
    const run = `${report.id}-demos`
    expect(report.runs.demos).toBe(run)
    const episodes = ofType("EpisodeStarted").filter((e) => e.runId === run)
    expect(episodes).toHaveLength(DEMOS)
    expect(new Set(episodes.map((e) => e.model))).toEqual(new Set(["calc-teacher"]))
    const scored = ofType("SampleScored").filter((e) => e.runId === run)
    const correct = new Set(scored.filter((e) => e.verdict === "correct").map((e) => e.episodeId))
    expect(report.demonstrations).toMatchObject({
      episodes: DEMOS,
      correct: correct.size,
      exported: correct.size,
    })
    expect(correct.size).toBeGreaterThan(DEMOS * 0.9)
    // Each demonstration called the real calculator through AgentDock.
    const results = new Map(
      ofType("ToolCallCompleted")
        .filter((e) => String(e.episodeId).startsWith(`${run}/`))
        .map((e) => [e.episodeId as string, e]),
    )
    expect(results.size).toBe(DEMOS)
    for (const r of results.values()) expect(r.tool).toBe("calculator")

    // The SFT file the warm start read: one line per correct episode, its messages from the log.
    expect(report.demonstrations.file).toBe(path.join(dataDir, "runs", run, "export-sft", "sft.jsonl"))
    const lines = fs
      .readFileSync(report.demonstrations.file, "utf8")
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            messages: Array<{ role: string; content: unknown; tool_calls?: unknown[] }>
            metadata: { run_id: string; episode_id: string; correct: boolean }
          },
      )
    expect(lines).toHaveLength(correct.size)
    for (const line of lines) {
      expect(line.metadata).toMatchObject({ run_id: run, correct: true })
      expect(correct.has(line.metadata.episode_id)).toBe(true)
      const tool = line.messages.find((m) => m.role === "tool")
      const completed = results.get(line.metadata.episode_id)
      const text =
        typeof completed?.content === "string" ? completed.content : JSON.stringify(completed?.content)
      expect(tool?.content).toBe(text)
      expect(line.messages.at(-1)).toEqual({ role: "assistant", content: `<answer>${text}</answer>` })
    }

    // In the policy's template, each line trains the same tokens as the bundled demonstration of
    // its task (the generator's file, from the same training split).
    const compare = spawnSync(
      "/usr/bin/python3",
      [
        "-c",
        [
          "import json, sys",
          "from rollout_trainer.train import sft_example",
          "bundled = [json.loads(l) for l in open(sys.argv[2])]",
          "same = 0",
          "lines = [json.loads(l) for l in open(sys.argv[1])]",
          "for n, line in enumerate(lines):",
          "    i = int(line['metadata']['task_id'].rsplit('-', 1)[1])",
          "    same += sft_example(line, f'recorded {n}') == sft_example(bundled[i], f'bundled {i}')",
          "print(json.dumps({'lines': len(lines), 'same': same}))",
        ].join("\n"),
        report.demonstrations.file,
        path.join(repo, "data", "calc", "demonstrations.jsonl"),
      ],
      { cwd: path.join(repo, "trainer"), encoding: "utf8", timeout: 120_000 },
    )
    expect(compare.status, compare.stderr).toBe(0)
    expect(JSON.parse(compare.stdout)).toEqual({ lines: correct.size, same: correct.size })
  })

  it("resumes after the trainer is killed: the next one starts from its last checkpoint, every step acknowledged once", () => {
    expect(report.trainerRestarts).toHaveLength(1)
    const restart = report.trainerRestarts[0]!
    expect(restart.afterStep).toBe(1)
    // Killed after step 1 was reported: version 2 (steps 0 and 1 trained) at least was on disk.
    expect(restart.lastCheckpoint).toBeGreaterThanOrEqual(2)
    expect(restart.resumedFromVersion).toBe(restart.lastCheckpoint)
    expect(report.acknowledgements).toEqual({ "0": 1, "1": 1, "2": 1, "3": 1 })
    // Each version published once through the bridge, in order: no step was trained twice.
    const published = events
      .filter((e) => e.type === "WeightsPublished" && e.subject.includes(report.runs.rl))
      .map((e) => e.payload.version)
    expect(published).toEqual(["1", "2", "3", "4"])
    // The trainers' reports: one per step, the first kept (a repeat would be refused, not recorded).
    const reports = ofType("TrainerStepReported")
    expect(reports.map((r) => `${r.step}->${r.version}`).sort()).toEqual(["0->1", "1->2", "2->3", "3->4"])
  })
})
