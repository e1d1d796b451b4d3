/**
 * The evaluation commands as a user runs them (the compiled binary, a temp working directory):
 * `data inspect` on the public datasets (`$ROLLOUT_DATASETS` or `../shared/datasets`; skipped where absent) and on
 * synthetic files, `score` with values that are empty or start with `-`, a judge scorer without a
 * judge (exit 2) and with one (the scripted test-double model server standing in for a judge
 * model), and `judge parse` reading a verdict from stdin.
 */
import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { scripts, startScriptedModelServer } from "../../src/programs/scriptedModel/server.ts"

const cli = path.resolve("bin/rollout.js")
const datasets = path.resolve(process.env.ROLLOUT_DATASETS ?? "../shared/datasets")
const run = promisify(execFile)
let cwd: string

const rollout = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** Runs the CLI with `input` on stdin. */
const rolloutWithStdin = (args: ReadonlyArray<string>, input: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, NO_COLOR: "1" } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", reject)
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(input)
  })

beforeAll(() => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-eval-cli-"))
})
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }))

describe("rollout data inspect", () => {
  it.skipIf(!fs.existsSync(datasets))(
    "reports the public xbench and BrowseComp-ZH files as complete",
    async () => {
      const xbench = await rollout([
        "data",
        "inspect",
        "xbench-deepsearch-2505",
        path.join(datasets, "xbench/DeepSearch-2505.csv"),
        "--json",
      ])
      expect(xbench.code, xbench.stderr).toBe(0)
      expect(JSON.parse(xbench.stdout)).toMatchObject({
        benchmark: "xbench-deepsearch-2505",
        rows: 100,
        tasks: 100,
        fields: ["id", "prompt", "answer", "reference_steps", "canary"],
        decrypted: 100,
        errors: [],
      })
      const zh = await rollout([
        "data",
        "inspect",
        "browsecomp-zh",
        path.join(datasets, "browsecomp-zh/browsecomp-zh-encrypted.xlsx"),
      ])
      expect(zh.code).toBe(0)
      expect(zh.stdout).toContain("rows 289, tasks 289, decrypted 289, skipped 0, bad rows 0")
    },
  )

  it("lists bad rows as file:row: reason and exits 3", async () => {
    const file = path.join(cwd, "custom.jsonl")
    fs.writeFileSync(file, '{"question": "q1", "answer": "a1"}\n{"question": "", "answer": "a2"}\nnot json\n')
    const r = await rollout(["data", "inspect", "custom", file, "--json"])
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ benchmark: "custom", rows: 3, tasks: 1 })
    expect(out.errors).toEqual([
      expect.stringMatching(new RegExp(`^${file}:3: not JSON`)),
      `${file}:2: the question (column "question") is empty`,
    ])
    const mapped = await rollout(["data", "inspect", "custom", file, "--map", "question=q"])
    expect(mapped.code).toBe(1)
    expect(mapped.stderr).toContain('missing column(s) "q" for custom')
  })

  it("refuses an unknown benchmark, and gaia-text without an id list", async () => {
    const unknown = await rollout(["data", "inspect", "gaia-txt", "x.jsonl"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/unknown benchmark "gaia-txt"; known benchmarks: gaia, gaia-text, hle/)
    const noIds = await rollout(["data", "inspect", "gaia-text", "metadata.jsonl"])
    expect(noIds.code).toBe(1)
    expect(noIds.stderr).toContain("gaia-text needs a task-id list (--ids <file>")
  })
})

describe("rollout score", () => {
  it("takes values that are empty or start with -", async () => {
    const negative = await rollout(["score", "--scorer", "gaia", "--pred=-3", "--truth=-3", "--json"])
    expect(negative.code, negative.stderr).toBe(0)
    expect(JSON.parse(negative.stdout)).toEqual({
      scorer: "gaia",
      correct: true,
      status: "scored",
      method: "exact",
      mode: "number",
    })
    const empty = await rollout(["score", "--scorer", "gaia", "--pred=", "--truth=0", "--json"])
    expect(JSON.parse(empty.stdout)).toMatchObject({
      correct: false,
      mode: "number",
      reason: "the answer is not a number",
    })
    const dollars = await rollout(["score", "--scorer", "gaia", "--pred=$1,000", "--truth=1000"])
    expect(dollars.stdout).toBe("correct (gaia, number mode)\n")
  })

  it("says a judge model is needed for a judge scorer and exits 2", async () => {
    const r = await rollout(["score", "--scorer", "hle", "--pred=Paris", "--truth=Paris", "--json"])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain("the hle scorer needs a judge model: pass --judge-model <name>")
    const exact = await rollout([
      "score",
      "--scorer",
      "xbench",
      "--pred=最终答案: 湖人",
      "--truth=湖人",
      "--json",
    ])
    expect(exact.code).toBe(0)
    expect(JSON.parse(exact.stdout)).toMatchObject({ correct: true, method: "exact" })
    const unknown = await rollout(["score", "--scorer", "exact", "--pred=a", "--truth=a"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('unknown scorer "exact"; scorers: gaia, hle')
  })

  it("asks the judge model named by --judge-model and records its verdict", async () => {
    const server = await startScriptedModelServer({
      script: scripts.echoTool({
        tool: "unused",
        turns: 0,
        answer: "extracted_final_answer: Paris\nreasoning: The same city.\n**correct:** yes\nconfidence: 80%",
      }),
    })
    try {
      const r = await rollout(
        [
          "score",
          "--scorer",
          "browsecomp",
          "--question=Where is the Louvre?",
          "--pred=Paris",
          "--truth=Paris",
          "--judge-model",
          "judge",
          "--json",
        ],
        { ROLLOUT_MODEL_JUDGE_URL: server.url },
      )
      expect(r.code, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout)
      expect(out).toMatchObject({
        scorer: "browsecomp",
        correct: true,
        status: "scored",
        method: "judge",
        judge: {
          model: "judge",
          verdict: "correct",
          confidence: 80,
          attempts: 1,
          temperature: 0,
          templateVersion: "browsecomp/1",
        },
      })
      expect(out.judge.promptHash).toMatch(/^[0-9a-f]{64}$/)
      const sent = server.requests.find((q) => q.path.endsWith("/chat/completions"))?.body
      expect(JSON.stringify(sent?.messages)).toContain("Where is the Louvre?")
    } finally {
      await server.stop()
    }
  })
})

describe("rollout judge parse", () => {
  it("reads a judge's response on stdin and prints the verdict", async () => {
    const r = await rolloutWithStdin(
      ["judge", "parse", "--benchmark", "hle"],
      "reasoning: it might look incorrect: the format differs\n**Correct:** yes\nconfidence: 85%\n",
    )
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ verdict: "correct", confidence: 85, profile: "hle" })
    const zh = await rolloutWithStdin(
      ["judge", "parse", "--benchmark", "xbench-deepsearch-2510"],
      "最终答案: 1轮\n结论：错误\n",
    )
    expect(JSON.parse(zh.stdout)).toMatchObject({ verdict: "incorrect", confidence: null, profile: "xbench" })
    const junk = await rolloutWithStdin(["judge", "parse", "--benchmark", "webwalkerqa"], "no idea")
    expect(JSON.parse(junk.stdout)).toMatchObject({ verdict: "unparseable" })
    const gaia = await rolloutWithStdin(["judge", "parse", "--benchmark", "gaia"], "correct: yes")
    expect(gaia.code).toBe(1)
    expect(gaia.stderr).toContain("gaia is scored by exact match, not by a judge")
  })
})
