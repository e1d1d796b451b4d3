import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assistantTurns, messageText, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { runRollout } from "../support/cli.ts"

let cwd: string
let server: ScriptedModelServer

const rollout = (args: ReadonlyArray<string>) =>
  runRollout(["--data-dir", "data", ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: "1", ROLLOUT_TOOLS: "builtin" },
  })

/** Ground truths; the model knows q1 and q3 and gets q2 wrong. */
const rows = [
  { id: "q1", question: "What is two plus two?", gold: "4", difficulty: "1" },
  { id: "q2", question: "What is the capital of France?", gold: "Paris", difficulty: "1" },
  { id: "q3", question: "Which planet is called the red planet?", gold: "Mars", difficulty: "2" },
]
const modelAnswers: Record<string, string> = {
  "What is two plus two?": "4",
  "What is the capital of France?": "Lyon",
  "Which planet is called the red planet?": "mars",
}

/**
 * Agent requests (they carry the tool catalog): one `echo` call, then the answer the table gives
 * for the question. Judge requests (no tools): "correct: yes" when the judge prompt shows the
 * model's answer equal to the ground truth, else "correct: no".
 */
const script: Script = (request) => {
  const first = messageText(request.messages.find((m) => m.role === "user") ?? { role: "user" })
  if (request.tools === undefined || request.tools.length === 0) {
    const reference = /Reference answer: (.*)/.exec(first)?.[1]?.trim().toLowerCase()
    const given = /Agent's answer: (.*)/.exec(first)?.[1]?.trim().toLowerCase()
    return { content: `reasoning: compared the two.\ncorrect: ${reference === given ? "yes" : "no"}` }
  }
  if (assistantTurns(request) === 0) return { toolCalls: [{ name: "echo", arguments: { text: "looking" } }] }
  const question = Object.keys(modelAnswers).find((q) => first.includes(q))
  return { content: `<answer>${question === undefined ? "?" : modelAnswers[question]}</answer>` }
}

const agentRequests = () => server.requests.filter((r) => (r.body?.tools?.length ?? 0) > 0).length
const judgeRequests = () =>
  server.requests.filter((r) => r.body !== undefined && (r.body.tools?.length ?? 0) === 0).length

const evalArgs = (runId: string, extra: ReadonlyArray<string> = []) => [
  "eval",
  "--bench",
  "custom",
  "--data",
  "bench.jsonl",
  "--map",
  "question=question,answer=gold,id=id,level=difficulty",
  "--model",
  "agent",
  "--base-url",
  server.url,
  "-k",
  "2",
  "--concurrency",
  "3",
  "--run",
  runId,
  ...extra,
]

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-evalrun-cli-"))
  fs.writeFileSync(path.join(cwd, "bench.jsonl"), `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`)
  server = await startScriptedModelServer({ script })
})
afterAll(async () => {
  await server.stop()
  fs.rmSync(cwd, { recursive: true, force: true })
})

describe("rollout eval / scores / export", () => {
  let live: { metrics: { avgAtK: number; correct: number; runs: number } } & Record<string, unknown>

  it("evaluates a custom benchmark over HTTP, prints the report and writes it under the run's folder", async () => {
    const r = await rollout(evalArgs("cli-text", ["--scorer", "gaia"]))
    expect(r.stderr).not.toContain("internal error")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(
      "run cli-text: custom · model agent · scorer gaia · k = 2 · 3 tasks · completed",
    )
    expect(r.stdout).toMatch(/Avg@2 ± std/)
    expect(r.stdout).toContain("66.67%")
    expect(r.stdout).toMatch(/level\s+tasks/)
    const dir = path.join(cwd, "data", "runs", "cli-text")
    const report = JSON.parse(fs.readFileSync(path.join(dir, "report.json"), "utf8"))
    expect(report.metrics).toMatchObject({ k: 2, tasks: 3, runs: 6, correct: 4 })
    expect(report.samples).toHaveLength(6)
    expect(fs.readFileSync(path.join(dir, "report.md"), "utf8")).toContain("## pass@k")
    const csv = fs.readFileSync(path.join(dir, "samples.csv"), "utf8").trim().split("\n")
    expect(csv[0]).toBe(
      "task_id,sample,episode_id,status,verdict,correct,outcome,turns,tool_calls,prompt_tokens,completion_tokens,level,category,failure",
    )
    expect(csv).toHaveLength(7)
    expect(csv.find((l) => l.startsWith("q2,0,"))).toMatch(
      /^q2,0,cli-text\/q2\/0,scored,incorrect,false,answered,2,1,\d+,\d+,1,,$/,
    )
    // No ground truth in the files or the log: "Paris" is only ever a truth here.
    expect(fs.readFileSync(path.join(dir, "report.json"), "utf8")).not.toContain("Paris")
    expect(fs.readFileSync(path.join(cwd, "data", "log", "rollout", "events.ndjson"), "utf8")).not.toContain(
      "Paris",
    )
  })

  it("prints one JSON object with --json, and a second run with the same --run makes no model call", async () => {
    const r = await rollout(evalArgs("cli-json", ["--scorer", "gaia", "--json"]))
    expect(r.code).toBe(0)
    live = JSON.parse(r.stdout)
    expect(live).toMatchObject({
      runId: "cli-json",
      benchmark: "custom",
      model: "agent",
      scorer: "gaia",
      k: 2,
      status: "completed",
      resumed: false,
      scoredNow: 6,
      metrics: { k: 2, tasks: 3, runs: 6, correct: 4 },
    })
    expect(live.metrics.avgAtK).toBeCloseTo(4 / 6, 12)
    expect(live).not.toHaveProperty("samples")

    const before = agentRequests()
    const again = await rollout(evalArgs("cli-json", ["--scorer", "gaia", "--json"]))
    expect(again.code).toBe(0)
    const resumed = JSON.parse(again.stdout)
    expect(resumed).toMatchObject({ resumed: true, alreadyScored: 6, scoredNow: 0 })
    expect(resumed.metrics).toStrictEqual(live.metrics)
    expect(agentRequests()).toBe(before)
  })

  it("judges through the pool and asks no judgement twice across runs", async () => {
    const judge = ["--judge-model", "judge", "--judge-base-url", server.url, "--json"]
    const first = await rollout(evalArgs("cli-judge-1", judge))
    expect(first.stderr).not.toContain("internal error")
    expect(first.code).toBe(0)
    const one = JSON.parse(first.stdout)
    expect(one).toMatchObject({ scorer: "agentcpm", judgeModel: "judge", metrics: { correct: 4 } })
    // Three distinct (question, answer) pairs: each asked once, the second sample from the cache.
    expect(one.judge).toEqual({ asked: 3, cached: 3 })
    const judgedBefore = judgeRequests()
    const second = await rollout(evalArgs("cli-judge-2", judge))
    expect(second.code).toBe(0)
    expect(JSON.parse(second.stdout).judge).toEqual({ asked: 0, cached: 6 })
    expect(judgeRequests()).toBe(judgedBefore)
  })

  it("rollout scores rebuilds the leaderboard from the log, equal to the live report", async () => {
    const r = await rollout(["scores", "--json"])
    expect(r.code).toBe(0)
    const { runs } = JSON.parse(r.stdout)
    expect(runs.map((x: { runId: string }) => x.runId).sort()).toEqual([
      "cli-json",
      "cli-judge-1",
      "cli-judge-2",
      "cli-text",
    ])
    const row = runs.find((x: { runId: string }) => x.runId === "cli-json")
    expect(row).toMatchObject({
      benchmark: "custom",
      model: "agent",
      k: 2,
      tasks: 3,
      done: 6,
      total: 6,
      status: "completed",
    })
    expect(row.avgAtK).toBe(live.metrics.avgAtK)

    const one = await rollout(["scores", "--run", "cli-json", "--json"])
    expect(one.code).toBe(0)
    expect(JSON.parse(one.stdout).metrics).toStrictEqual(live.metrics)

    const text = await rollout(["scores"])
    expect(text.stdout).toMatch(/run\s+benchmark\s+model/)
    expect(text.stdout).toContain("cli-judge-2")
  })

  it("rollout export writes SFT chat JSONL and AgentToLeaP's folders", async () => {
    const sft = await rollout(["export", "cli-json", "--format", "sft", "--out", "sft", "--json"])
    expect(sft.code).toBe(0)
    expect(JSON.parse(sft.stdout)).toMatchObject({ format: "sft", episodes: 6, skipped: 0 })
    const lines = fs
      .readFileSync(path.join(cwd, "sft", "sft.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(lines).toHaveLength(6)
    const q1 = lines.find((l) => l.metadata.task_id === "q1" && l.metadata.sample === 0)
    expect(q1.metadata).toMatchObject({
      run_id: "cli-json",
      episode_id: "cli-json/q1/0",
      outcome: "answered",
      verdict: "correct",
      correct: true,
      turns: 2,
    })
    expect(q1.messages.map((m: { role: string }) => m.role)).toEqual([
      "user",
      "assistant",
      "tool",
      "assistant",
    ])
    expect(q1.messages[1].tool_calls[0]).toMatchObject({
      type: "function",
      function: { name: "echo", arguments: '{"text":"looking"}' },
    })
    expect(q1.messages[2]).toMatchObject({ role: "tool", tool_call_id: q1.messages[1].tool_calls[0].id })
    expect(q1.messages[3].content).toBe("<answer>4</answer>")

    const correctOnly = await rollout([
      "export",
      "cli-json",
      "--format",
      "sft",
      "--out",
      "sft-correct",
      "--correct-only",
      "--json",
    ])
    expect(JSON.parse(correctOnly.stdout)).toMatchObject({ episodes: 4, skipped: 2 })

    const atl = await rollout(["export", "cli-json", "--format", "agenttoleap"])
    expect(atl.code).toBe(0)
    expect(atl.stdout).toContain("exported 6 trajectories of cli-json as agenttoleap")
    // The layout AgentToLeaP reads (tests/integration/exportAgentToLeaP.test.ts holds it to that).
    const folder = path.join(cwd, "data", "runs", "cli-json", "export-agenttoleap", "q2", "traj_1")
    expect(JSON.parse(fs.readFileSync(path.join(folder, "dialog.json"), "utf8"))).toHaveLength(4)
    const result = JSON.parse(fs.readFileSync(path.join(folder, "result.json"), "utf8"))
    expect(result).toMatchObject({
      task_id: "q2",
      sample: 1,
      traj: 1,
      run_id: "cli-json",
      outcome: "answered",
      final_answer: "Lyon",
      verdict: "incorrect",
      correct: false,
      score: 0,
      turns: 2,
      interactions: 2,
      tool_call_count: 1,
    })
    expect(result.tool_calls).toHaveLength(1)
    expect(result.conversation_history.at(-1)).toEqual({
      role: "assistant",
      content: "<answer>Lyon</answer>",
    })

    const unknown = await rollout(["export", "nope", "--format", "sft"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('no evaluation run "nope"')
  })

  it("says what is wrong with bad flags", async () => {
    const judgeLess = await rollout(evalArgs("cli-bad"))
    expect(judgeLess.code).toBe(1)
    expect(judgeLess.stderr).toContain("needs a judge model")
    const badRun = await rollout(evalArgs("a/b", ["--scorer", "gaia"]))
    expect(badRun.code).toBe(1)
    expect(badRun.stderr).toContain("--run")
    const other = await rollout(evalArgs("cli-json", ["--scorer", "gaia", "--limit", "2"]))
    expect(other.code).toBe(1)
    expect(other.stderr).toContain("eval run cli-json")
  })
})
