import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { gaiaScore, meanPassAtK } from "../../src/actors/evaluator/index.ts"
import { assistantTurns, messageText, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { runRollout } from "../support/cli.ts"

let cwd: string
let dataDir: string
let server: ScriptedModelServer

/** The CLI on this test's data folder; `builtin` tools (`echo`) unless `tools` says otherwise. */
const rollout = (args: ReadonlyArray<string>, tools: "builtin" | "configured" = "builtin") => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" }
  if (tools === "builtin") env.ROLLOUT_TOOLS = "builtin"
  else delete env.ROLLOUT_TOOLS
  return runRollout(["--data-dir", dataDir, ...args], { cwd, env })
}

interface Message {
  readonly role: string
  readonly content?: unknown
  readonly name?: string
  readonly tool_call_id?: string
  readonly tool_calls?: ReadonlyArray<{ readonly id: string; readonly function: { readonly name: string } }>
}

interface Run {
  readonly traj: number
  readonly result: Record<string, unknown> & { readonly conversation_history: ReadonlyArray<Message> }
  readonly dialog: ReadonlyArray<Message>
}

/** The export as AgentToLeaP's readers see it: task folder → its runs in `traj_<i>` order. */
const readAsAgentToLeaP = (dir: string): Map<string, ReadonlyArray<Run>> => {
  const tasks = new Map<string, ReadonlyArray<Run>>()
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const trajs = fs
      .readdirSync(path.join(dir, entry.name), { withFileTypes: true })
      .filter((t) => t.isDirectory() && t.name.startsWith("traj_"))
      .map((t) => Number(t.name.slice("traj_".length)))
      .sort((a, b) => a - b)
    if (trajs.length === 0) continue
    tasks.set(
      entry.name,
      trajs.map((traj) => {
        const folder = path.join(dir, entry.name, `traj_${traj}`)
        return {
          traj,
          result: JSON.parse(fs.readFileSync(path.join(folder, "result.json"), "utf8")),
          dialog: JSON.parse(fs.readFileSync(path.join(folder, "dialog.json"), "utf8")),
        }
      }),
    )
  }
  return tasks
}

/** Their answer: the last assistant message's content, then its last `<answer>…</answer>`. */
const answerOf = (run: Run): string | undefined => {
  const last = run.result.conversation_history.findLast((m) => m.role === "assistant")
  const content = typeof last?.content === "string" ? last.content : ""
  const match = [...content.matchAll(/<answer>([\s\S]*?)<\/answer>/g)].at(-1)
  return match?.[1]?.trim()
}

const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-export-atl-"))
  dataDir = path.join(cwd, "data")
})
afterAll(async () => {
  await server?.stop()
  fs.rmSync(cwd, { recursive: true, force: true })
})

describe("AgentToLeaP export of the demo run", () => {
  let runId: string
  let exportDir: string

  it("reads, the way AgentToLeaP reads it, as rollout scores reports the run", async () => {
    // The demo brings its own tools (search and fetch_url over the bundled corpus).
    const demo = await rollout(["demo", "-k", "4", "--json"], "configured")
    expect(demo.stderr).not.toContain("internal error")
    expect(demo.code).toBe(0)
    runId = json(demo.stdout).runId as string
    const scores = await rollout(["scores", "--run", runId, "--json"])
    expect(scores.code).toBe(0)
    const metrics = json(scores.stdout).metrics as {
      k: number
      tasks: number
      runs: number
      avgAtK: number
      perRunAccuracy: ReadonlyArray<number>
      passAtK: Record<string, number>
      naivePassAtK: Record<string, number>
    }

    const exported = await rollout(["export", runId, "--format", "agenttoleap", "--json"])
    expect(exported.code).toBe(0)
    const summary = json(exported.stdout)
    exportDir = summary.dir as string
    expect(summary).toMatchObject({
      format: "agenttoleap",
      episodes: metrics.runs,
      mapped: [],
      renumbered: [],
    })

    const truths = new Map<string, string>(
      fs
        .readFileSync(path.resolve("data/demo/questions.jsonl"), "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as { id: string; answer: string })
        .map((q) => [q.id, q.answer]),
    )
    const tasks = readAsAgentToLeaP(exportDir)
    expect(tasks.size).toBe(metrics.tasks)
    const correct = new Map<string, ReadonlyArray<boolean>>()
    for (const [taskId, runs] of tasks) {
      expect(runs.map((r) => r.traj)).toEqual(runs.map((_, i) => i))
      expect(runs.map((r) => r.result.sample)).toEqual(runs.map((_, i) => i))
      const truth = truths.get(taskId)
      expect(truth, `task folder ${taskId} is a demo task id`).toBeDefined()
      correct.set(
        taskId,
        runs.map((r) => {
          const answer = answerOf(r)
          expect(answer).toBe(r.result.final_answer ?? undefined)
          const right = gaiaScore(answer, truth!).correct
          expect(right).toBe(r.result.correct)
          return right
        }),
      )
    }
    const k = metrics.k
    const all = [...correct.values()]
    const total = all.reduce((n, runs) => n + runs.length, 0)
    expect(total).toBe(metrics.runs)
    expect(all.flat().filter(Boolean).length / total).toBeCloseTo(metrics.avgAtK, 12)
    const perRun = Array.from(
      { length: k },
      (_, i) => all.filter((runs) => runs[i] === true).length / all.length,
    )
    for (const [i, accuracy] of perRun.entries()) expect(accuracy).toBeCloseTo(metrics.perRunAccuracy[i]!, 12)
    const counts = all.map((runs) => ({ n: runs.length, c: runs.filter(Boolean).length }))
    for (const [key, value] of Object.entries(metrics.passAtK))
      expect(meanPassAtK(counts, Number(key))).toBeCloseTo(value, 12)
    for (const [key, value] of Object.entries(metrics.naivePassAtK))
      expect(all.filter((runs) => runs.slice(0, Number(key)).some(Boolean)).length / all.length).toBeCloseTo(
        value,
        12,
      )
    // The demo's samples of a task disagree, so the numbers above are not all 0 or all 1.
    expect(metrics.avgAtK).toBeGreaterThan(0)
    expect(metrics.avgAtK).toBeLessThan(1)
  }, 180_000)

  it("with --correct-only, renumbers the kept runs from 0 and removes the earlier export's runs", async () => {
    // What AgentToLeaP's reports leave in the folder (no traj_* inside) stays.
    fs.mkdirSync(path.join(exportDir, "success", "q01_run_0"), { recursive: true })
    const before = readAsAgentToLeaP(exportDir)
    const kept = await rollout(["export", runId, "--format", "agenttoleap", "--correct-only", "--json"])
    expect(kept.stderr).toBe("")
    expect(kept.code).toBe(0)
    const summary = json(kept.stdout)
    expect(summary.dir).toBe(exportDir)
    const after = readAsAgentToLeaP(exportDir)
    expect(fs.existsSync(path.join(exportDir, "success", "q01_run_0"))).toBe(true)
    const renumbered: string[] = []
    let runs = 0
    for (const [taskId, all] of before) {
      const right = all.filter((r) => r.result.correct === true)
      const now = after.get(taskId) ?? []
      expect(now.map((r) => r.result.sample)).toEqual(right.map((r) => r.result.sample))
      expect(now.map((r) => r.traj)).toEqual(now.map((_, i) => i))
      expect(now.every((r) => r.result.correct === true)).toBe(true)
      if (now.some((r) => r.traj !== r.result.sample)) renumbered.push(taskId)
      runs += now.length
    }
    expect(summary.episodes).toBe(runs)
    expect([...(summary.renumbered as string[])].sort()).toEqual(renumbered.sort())
    expect(renumbered.length).toBeGreaterThan(0)
    const text = await rollout(["export", runId, "--format", "agenttoleap", "--correct-only"])
    expect(text.stdout).toContain(
      `so traj_<i> counts them from 0 and result.json's "sample" keeps the number:`,
    )
  }, 60_000)
})

/** Ids that are not safe folder names, and one task whose model calls all fail. */
const rows = [
  { id: "q1", question: "What is two plus two?", gold: "4" },
  { id: "a/b", question: "What is the capital of France?", gold: "Paris" },
  { id: "..", question: "Which planet is called the red planet?", gold: "Mars" },
  { id: "x y?", question: "Which ocean is the largest?", gold: "Pacific" },
  { id: "broken", question: "Is this request malformed?", gold: "yes" },
]
const modelAnswers: Record<string, string> = {
  "What is two plus two?": "4",
  "What is the capital of France?": "Paris",
  "Which planet is called the red planet?": "Venus",
  "Which ocean is the largest?": "Pacific",
}

/** One `echo` call with a reasoning, then the table's answer; the "malformed" task gets HTTP 400. */
const script: Script = (request) => {
  const first = messageText(request.messages.find((m) => m.role === "user") ?? { role: "user" })
  if (first.includes("malformed")) return { error: { status: 400, message: "this request is malformed" } }
  if (assistantTurns(request) === 0)
    return { reasoning: "I will look first.", toolCalls: [{ name: "echo", arguments: { text: "looking" } }] }
  const question = Object.keys(modelAnswers).find((q) => first.includes(q))
  return { content: `<answer>${question === undefined ? "?" : modelAnswers[question]}</answer>` }
}

describe("AgentToLeaP export of task ids that are not folder names", () => {
  const runId = "awkward"

  it("prints which ids got which folder, and writes AgentToLeaP's fields", async () => {
    server = await startScriptedModelServer({ script })
    fs.writeFileSync(path.join(cwd, "bench.jsonl"), `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`)
    const evaluated = await rollout([
      "eval",
      "--bench",
      "custom",
      "--data",
      "bench.jsonl",
      "--map",
      "question=question,answer=gold,id=id",
      "--model",
      "agent",
      "--base-url",
      server.url,
      "--scorer",
      "gaia",
      "-k",
      "2",
      "--run",
      runId,
      "--json",
    ])
    expect(evaluated.stderr).not.toContain("internal error")
    expect(json(evaluated.stdout)).toMatchObject({ runId, metrics: { tasks: 5, runs: 10 } })

    const text = await rollout(["export", runId, "--format", "agenttoleap", "--out", "atl"])
    expect(text.code).toBe(0)
    expect(text.stdout).toContain("3 task ids are not safe folder names")
    expect(text.stdout).toContain('"a/b" → a%2Fb')
    expect(text.stdout).toContain('".." → %2E%2E')
    expect(text.stdout).toContain('"x y?" → x%20y%3F')
    expect(text.stdout).not.toContain('"q1"')

    const again = await rollout(["export", runId, "--format", "agenttoleap", "--out", "atl", "--json"])
    expect(again.code).toBe(0)
    const summary = json(again.stdout)
    expect(summary.mapped).toEqual([
      { taskId: "a/b", folder: "a%2Fb" },
      { taskId: "..", folder: "%2E%2E" },
      { taskId: "x y?", folder: "x%20y%3F" },
    ])
    const dir = path.join(cwd, "atl")
    expect(fs.readdirSync(dir).sort()).toEqual(
      ["%2E%2E", "a%2Fb", "broken", "q1", "rollout-export.json", "x%20y%3F"].sort(),
    )
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "rollout-export.json"), "utf8"))
    expect(manifest).toMatchObject({ format: "agenttoleap", run_id: runId })
    expect(manifest.tasks).toContainEqual({ task_id: "a/b", folder: "a%2Fb", samples: [0, 1] })

    const tasks = readAsAgentToLeaP(dir)
    expect([...tasks.keys()].map(decodeURIComponent).sort()).toEqual(rows.map((r) => r.id).sort())
    for (const [folder, runs] of tasks) {
      const row = rows.find((r) => r.id === decodeURIComponent(folder))!
      expect(runs.map((r) => r.traj)).toEqual([0, 1])
      for (const { result, dialog } of runs) {
        // AgentToLeaP's fields and their types.
        expect(result.task_id).toBe(row.id)
        expect(result.query).toBe(row.question)
        expect(typeof result.success).toBe("boolean")
        expect(Array.isArray(result.conversation_history)).toBe(true)
        expect(Array.isArray(result.tool_calls)).toBe(true)
        expect(typeof result.execution_time).toBe("number")
        expect(result.execution_time as number).toBeGreaterThanOrEqual(0)
        expect(Number.isInteger(result.interactions)).toBe(true)
        expect(typeof result.max_interactions_reached).toBe("boolean")
        for (const call of result.tool_calls as ReadonlyArray<Record<string, unknown>>) {
          expect(call).toMatchObject({ type: "function", response: { status_code: 200 } })
          expect(typeof call.id).toBe("string")
          const fn = call.function as { name: string; arguments: string }
          expect(typeof fn.name).toBe("string")
          expect(JSON.parse(fn.arguments)).toEqual({ text: "looking" })
        }
        expect(result.tool_call_count).toBe((result.tool_calls as unknown[]).length)
        // dialog.json: user, assistant and tool messages; a tool message names its call's tool.
        expect(dialog.every((m) => ["user", "assistant", "tool"].includes(m.role))).toBe(true)
        const calls = dialog.flatMap((m) => m.tool_calls ?? [])
        for (const m of dialog.filter((d) => d.role === "tool")) {
          const call = calls.find((c) => c.id === m.tool_call_id)
          expect(call, `the call of tool message ${m.tool_call_id}`).toBeDefined()
          expect(m.name).toBe(call!.function.name)
        }
        if (row.id === "broken") {
          expect(result).toMatchObject({ success: false, outcome: "model_error", final_answer: null })
          expect(result.error).toMatch(/malformed/)
          expect(answerOf({ traj: 0, result, dialog })).toBeUndefined()
        } else {
          expect(result).toMatchObject({ success: true, outcome: "answered", interactions: 2 })
          expect(result.tool_calls).toHaveLength(1)
          expect(answerOf({ traj: 0, result, dialog })).toBe(modelAnswers[row.question])
          expect(result.correct).toBe(modelAnswers[row.question] === row.gold)
          expect(result.conversation_history.find((m) => m.role === "assistant")).toMatchObject({
            thought: "I will look first.",
          })
          expect(dialog.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
        }
      }
    }
  }, 120_000)

  it("refuses a folder that already holds trajectories AgentToLeaP would read", async () => {
    fs.mkdirSync(path.join(cwd, "theirs", "task-9", "traj_0"), { recursive: true })
    const r = await rollout(["export", runId, "--format", "agenttoleap", "--out", "theirs"])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("already holds trajectories")
    expect(r.stderr).toContain("task-9")
    expect(fs.readdirSync(path.join(cwd, "theirs"))).toEqual(["task-9"])
  })
})
