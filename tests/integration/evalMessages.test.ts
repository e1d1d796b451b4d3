import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { scripts, startScriptedModelServer } from "../../src/programs/scriptedModel/server.ts"
import { runRollout } from "../support/cli.ts"

let cwd: string

const rollout = (args: ReadonlyArray<string>) =>
  runRollout(["--data-dir", "data", ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: "1", ROLLOUT_TOOLS: "builtin" },
  })

/** The lines of a breakdown's header in a report: `level  tasks … pass@…` or `| level | … |`. */
const breakdownHeaders = (text: string): ReadonlyArray<string> =>
  text.split("\n").filter((line) => /^\|? ?level\b/.test(line) && line.includes("pass@"))

beforeAll(() => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-eval-messages-"))
  fs.mkdirSync(path.join(cwd, "config"))
  // A config with the agent only: no judge group.
  fs.writeFileSync(
    path.join(cwd, "config", "models.yaml"),
    "models:\n  agent:\n    endpoints:\n      - url: http://127.0.0.1:9/v1\n",
  )
  fs.writeFileSync(
    path.join(cwd, "bench.jsonl"),
    `${[
      { id: "q1", question: "What is two plus two?", answer: "4", level: "1" },
      { id: "q2", question: "What is three plus one?", answer: "4", level: "2" },
      { id: "q3", question: "What is two plus three?", answer: "5", level: "2" },
    ]
      .map((row) => JSON.stringify(row))
      .join("\n")}\n`,
  )
})
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }))

describe("rollout eval's messages", () => {
  it("points a judge model the config lacks at --judge-base-url", async () => {
    const common = ["eval", "--bench", "frames", "--data", "bench.jsonl", "--model", "agent"]
    const missing = await rollout([...common, "--judge-model", "grader"])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('unknown model "grader"')
    expect(missing.stderr).toContain("(or pass --judge-base-url)")
    expect(missing.stderr).not.toContain("--base-url)")
    const upper = await rollout([...common, "--judge-model", "Grader-2"])
    expect(upper.code).toBe(1)
    expect(upper.stderr).toContain(
      `--judge-base-url defines only lower-case names without '-' or '.': add "Grader-2" to models.yaml`,
    )
    // The agent's own model still gets the agent's flag.
    const agent = await rollout([
      "eval",
      "--bench",
      "custom",
      "--data",
      "bench.jsonl",
      "--scorer",
      "gaia",
      "--model",
      "policy",
    ])
    expect(agent.code).toBe(1)
    expect(agent.stderr).toContain("(or pass --base-url)")
  })

  it("shows pass@1 once in the breakdowns of a k = 1 report", async () => {
    const server = await startScriptedModelServer({
      script: scripts.echoTool({ tool: "echo", turns: 1, answer: "<answer>4</answer>" }),
    })
    try {
      const r = await rollout([
        "eval",
        "--bench",
        "custom",
        "--data",
        "bench.jsonl",
        "--map",
        "question=question,answer=answer,id=id,level=level",
        "--scorer",
        "gaia",
        "--model",
        "agent",
        "--base-url",
        server.url,
        "-k",
        "1",
        "--run",
        "k1",
      ])
      expect(r.code, r.stderr).toBe(0)
      const markdown = fs.readFileSync(path.join(cwd, "data", "runs", "k1", "report.md"), "utf8")
      const scores = await rollout(["scores", "--run", "k1"])
      expect(scores.code, scores.stderr).toBe(0)
      for (const text of [r.stdout, markdown, scores.stdout]) {
        const headers = breakdownHeaders(text)
        expect(headers, text).toHaveLength(1)
        expect(headers[0]!.match(/pass@\d+/g)).toEqual(["pass@1"])
      }
      // Level 2: one of two tasks right; the one pass@ column says so.
      expect(r.stdout).toMatch(/^2\s+2\s+1\s+50\.00%\s+50\.00%\s*$/m)
      // At k = 8 both columns are there.
      const k2 = await rollout([
        "eval",
        "--bench",
        "custom",
        "--data",
        "bench.jsonl",
        "--map",
        "question=question,answer=answer,id=id,level=level",
        "--scorer",
        "gaia",
        "--model",
        "agent",
        "--base-url",
        server.url,
        "-k",
        "2",
        "--run",
        "k2",
      ])
      expect(k2.code, k2.stderr).toBe(0)
      expect(breakdownHeaders(k2.stdout)[0]!.match(/pass@\d+/g)).toEqual(["pass@1", "pass@2"])
    } finally {
      await server.stop()
    }
  })
})
