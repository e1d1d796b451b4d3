/**
 * The Python trainer's unittest suite (trainer/tests) as vitest tests, so the test count and CI
 * include them: at collection the Python runner lists the test ids, the suite runs once in
 * beforeAll with a runner that writes each test's outcome as JSON, and each id is one vitest test
 * that passes only if its Python test passed (a failure shows the Python traceback). The system
 * interpreter is named explicitly: another `python3` earlier on the PATH may lack torch.
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"

const python = process.env.ROLLOUT_PYTHON ?? "/usr/bin/python3"
const runner = path.resolve("trainer/tests/run.py")

/** Listing fails loudly: an import error in a test module must not shrink the suite silently. */
const ids: ReadonlyArray<string> = JSON.parse(
  execFileSync(python, [runner, "--list"], { encoding: "utf8", timeout: 120_000 }),
) as ReadonlyArray<string>

interface Outcome {
  readonly outcome: "pass" | "fail" | "error" | "skip"
  readonly detail: string
}

let results: Record<string, Outcome> = {}
let runnerOutput = ""

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-python-tests-"))
  const file = path.join(dir, "results.json")
  await new Promise<void>((resolve, reject) => {
    const child = spawn(python, [runner, "--results", file], { stdio: ["ignore", "pipe", "pipe"] })
    child.stdout.on("data", (chunk: Buffer) => {
      runnerOutput += chunk.toString("utf8")
    })
    child.stderr.on("data", (chunk: Buffer) => {
      runnerOutput += chunk.toString("utf8")
    })
    child.on("error", reject)
    // A failing Python test exits 1; the per-test outcomes say which.
    child.on("close", () => resolve())
  })
  if (!fs.existsSync(file))
    throw new Error(`the Python runner wrote no results:\n${runnerOutput.slice(-4000)}`)
  results = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, Outcome>
  fs.rmSync(dir, { recursive: true, force: true })
}, 600_000)

describe("the Python trainer's tests", () => {
  it("lists a suite that covers every test module", () => {
    const modules = new Set(ids.map((id) => id.split(".")[1]))
    const files = fs
      .readdirSync("trainer/tests")
      .filter((name) => /^test_.*\.py$/.test(name))
      .map((name) => name.replace(/\.py$/, ""))
    expect([...modules].sort()).toEqual(files.sort())
  })

  it.each(ids)("%s", (id) => {
    const result = results[id]
    if (result === undefined) throw new Error(`${id} did not run:\n${runnerOutput.slice(-4000)}`)
    if (result.outcome !== "pass") throw new Error(`${id}: ${result.outcome}\n${result.detail}`)
    expect(result.outcome).toBe("pass")
  })
})
