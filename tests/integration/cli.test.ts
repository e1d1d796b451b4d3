/**
 * The `rollout` CLI as a user runs it (the compiled binary, a temp working directory, the embedded
 * log): probe, status, log stats/tail, projections list/rebuild, each with `--json` printing one
 * object; and clear errors for bad configuration and bad flags.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const cli = path.resolve("bin/rollout.js")
const run = promisify(execFile)
let cwd: string

const rollout = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1" },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

beforeAll(() => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-cli-"))
})
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }))

describe("rollout CLI on the embedded log", () => {
  it("demo evaluates the bundled benchmark offline (k samples, scored, verifiable, on the leaderboard)", async () => {
    const demoDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-demo-"))
    try {
      const r = await run(process.execPath, [cli, "--data-dir", demoDir, "demo", "-k", "2", "--json"], {
        cwd,
      })
      const out = JSON.parse(r.stdout)
      expect(out).toMatchObject({ benchmark: "custom", k: 2, status: "completed", scoredNow: 40 })
      expect(out.metrics.statusCounts).toMatchObject({ scored: 40, crashed: 0, missing: 0 })
      // The researcher test double finds most answers, not all: an honest score, not a fixture.
      expect(out.metrics.avgAtK).toBeGreaterThan(0.3)
      expect(out.metrics.avgAtK).toBeLessThan(1)
      const scores = JSON.parse(
        (await run(process.execPath, [cli, "--data-dir", demoDir, "scores", "--json"], { cwd })).stdout,
      )
      expect(JSON.stringify(scores)).toContain(out.runId)
      const verified = await run(
        process.execPath,
        [cli, "--data-dir", demoDir, "replay", `${out.runId}/q01/0`, "--verify"],
        { cwd },
      )
      expect(verified.stdout).toContain("reproduce the log")
    } finally {
      fs.rmSync(demoDir, { recursive: true, force: true })
    }
  }, 120_000)

  it("demo --actors runs agent episodes through the actor host and they verify", async () => {
    const demoDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-demo-"))
    try {
      const r = await run(
        process.execPath,
        [cli, "--data-dir", demoDir, "demo", "--actors", "--episodes", "3", "--json"],
        { cwd },
      )
      const out = JSON.parse(r.stdout)
      expect(out.model).toBe("scripted test double")
      expect(out.episodes.map((e: { outcome: string }) => e.outcome)).toEqual([
        "answered",
        "answered",
        "answered",
      ])
      const verified = await run(
        process.execPath,
        [cli, "--data-dir", demoDir, "replay", out.episodes[0].episode, "--verify"],
        { cwd },
      )
      expect(verified.stdout).toContain("reproduce the log")
    } finally {
      fs.rmSync(demoDir, { recursive: true, force: true })
    }
  })

  it("probe records every command once and reports it as JSON", async () => {
    const r = await rollout("probe", "--count", "300", "--entities", "7", "--json")
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({
      backend: "embedded",
      commands: 300,
      recorded: 300,
      duplicates: 0,
      deadLetters: 0,
    })
    expect(out.byWorker).toEqual({ local: 300 })
    expect(fs.existsSync(path.join(cwd, ".rollout", "log", "rollout", "events.ndjson"))).toBe(true)
  })

  it("log stats and log tail read what was written", async () => {
    const stats = JSON.parse((await rollout("log", "stats", "--json")).stdout)
    expect(stats).toMatchObject({
      backend: "embedded",
      events: 300,
      firstPosition: 1,
      lastPosition: 300,
      subjects: 7,
    })
    expect(stats.counts.byType).toEqual({ ProbeRecorded: 300 })
    const tail = JSON.parse((await rollout("log", "tail", "--from", "299", "--json")).stdout)
    expect(tail.events.map((e: { position: number }) => e.position)).toEqual([299, 300])
    expect(tail.events[0]).toMatchObject({ type: "ProbeRecorded", actor: "probe" })
    const text = await rollout("log", "tail", "--limit", "2")
    expect(text.stdout.trim().split("\n")).toHaveLength(2)
  })

  it("projections list and rebuild", async () => {
    const rebuilt = JSON.parse((await rollout("projections", "rebuild", "eventCounts", "--json")).stdout)
    expect(rebuilt).toMatchObject({ projection: "eventCounts", position: 300, applied: 300, undecodable: 0 })
    const list = JSON.parse((await rollout("projections", "list", "--json")).stdout)
    const counts = list.projections.find((p: { name: string }) => p.name === "eventCounts")
    expect(counts).toMatchObject({ checkpoint: "current", position: 300, behind: 0 })
    const unknown = await rollout("projections", "rebuild", "nope")
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('no projection named "nope"; known projections: eventCounts')
  })

  it("status shows the log and the queues", async () => {
    const status = JSON.parse((await rollout("status", "--json")).stdout)
    expect(status.log).toMatchObject({ events: 300 })
    expect(status.queues.map((q: { actorKind: string }) => q.actorKind)).toContain("probe")
  })

  it("names the file, line, path and reason of a bad config value", async () => {
    fs.mkdirSync(path.join(cwd, "config"), { recursive: true })
    fs.writeFileSync(path.join(cwd, "config", "rollout.yaml"), "log:\n  backend: natz\n")
    const r = await rollout("log", "stats")
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      /config\/rollout\.yaml:2:\d+ log\.backend: expected "embedded" \| "nats", got "natz"/,
    )
    fs.rmSync(path.join(cwd, "config"), { recursive: true })
  })

  it("a reading command on a data dir or namespace without a log says so, and creates nothing", async () => {
    const missing = path.join(cwd, "no-such-dir")
    for (const args of [["log", "stats"], ["scores"], ["rl", "status"]]) {
      const r = await rollout("--data-dir", missing, ...args)
      expect(r.code, args.join(" ")).toBe(1)
      expect(r.stderr).toContain(`no log at ${missing}: the directory does not exist`)
      expect(fs.existsSync(missing)).toBe(false)
    }
    // The default data dir holds the demo's namespace: a mistyped one is named with the ones there.
    const typo = await run(process.execPath, [cli, "scores"], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", ROLLOUT_NAMESPACE: "rollot" },
    }).catch((e: { code: number; stderr: string }) => e)
    expect(typo.stderr).toContain('no log of namespace "rollot"')
    expect(typo.stderr).toMatch(/it holds the namespace\(s\) "[^"]+"/)
    expect(fs.existsSync(path.join(cwd, ".rollout", "log", "rollot"))).toBe(false)
  })

  it("refuses bad flags with a usage error", async () => {
    const r = await rollout("probe", "--count", "zero")
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('--count must be a positive integer, got "zero"')
    const w = await rollout("worker")
    expect(w.code).toBe(1)
    expect(w.stderr).toContain("rollout worker takes commands from NATS JetStream")
  })
})

describe("rollout replay", () => {
  const golden = path.resolve("tests/golden/v0.1.0/episodes.ndjson")
  const withGolden = (edit?: (text: string) => string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-replay-"))
    fs.mkdirSync(path.join(dir, "log", "golden"), { recursive: true })
    const text = fs.readFileSync(golden, "utf8")
    fs.writeFileSync(path.join(dir, "log", "golden", "events.ndjson"), edit === undefined ? text : edit(text))
    return dir
  }
  const replay = (dir: string, ...args: string[]) => replayWith({}, dir, ...args)
  const replayWith = (env: Record<string, string>, dir: string, ...args: string[]) =>
    run(process.execPath, [cli, "--data-dir", dir, "replay", ...args], {
      cwd,
      env: { ...process.env, ROLLOUT_NAMESPACE: "golden", ...env },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    )

  it("renders, exports chat messages and verifies a recorded episode", async () => {
    const dir = withGolden()
    const text = await replay(dir, "answered-openai")
    expect(text.code).toBe(0)
    expect(text.stdout).toContain("finished: answered after 3 turns, answer: Paris")
    // --verify prints its verdict alone, not the trajectory first.
    const verified = await replay(dir, "answered-openai", "--verify")
    expect(verified.code).toBe(0)
    expect(verified.stdout).toMatch(/^verified: \d+ decisions over \d+ events reproduce the log\n$/)
    const chat = (await replay(dir, "answered-openai", "--format", "openai")).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
    expect(chat[1]).toMatchObject({ role: "assistant", tool_calls: [{ function: { name: "search" } }] })
    expect(chat[2]).toMatchObject({ role: "tool", tool_call_id: "answered-openai/model/1:c1" })
    const json = JSON.parse((await replay(dir, "answered-openai", "--json", "--verify")).stdout)
    expect(json).toMatchObject({ episodeId: "answered-openai", verification: { ok: true } })
    expect(json.events).toBeUndefined()
    const events = JSON.parse((await replay(dir, "answered-openai", "--json")).stdout).events
    expect(events.at(-1)).toMatchObject({ type: "EpisodeFinished", answer: "Paris" })
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("exits 3 with a diff when the recording does not follow from its inputs", async () => {
    const dir = withGolden((t) => t.replace('"answer":"Paris"', '"answer":"Lyon"'))
    const r = await replay(dir, "answered-openai", "--verify")
    expect(r.code).toBe(3)
    expect(r.stdout).toMatch(/^DIVERGED at position \d+ \(EpisodeFinished\): the re-driven event differs\n/)
    expect(r.stdout).toContain('  answer: recorded "Lyon", re-driven "Paris"\n')
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("forks a recorded episode at a turn and runs it on with a live model", async () => {
    const { scripts, startScriptedModelServer } = await import("../../src/programs/scriptedModel/server.ts")
    const server = await startScriptedModelServer({
      script: scripts.echoTool({ tool: "echo", turns: 0, answer: "<answer>Lyon</answer>" }),
    })
    const dir = withGolden()
    try {
      const r = await replayWith(
        { ROLLOUT_MODEL_GOLDEN_MODEL_URL: server.url },
        dir,
        "answered-openai",
        "--fork-at",
        "3",
        "--json",
      )
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({
        episodeId: "answered-openai~fork3",
        outcome: "answered",
        answer: "Lyon",
        turns: 3,
      })
      // Turns 1 and 2 came from the record: the server saw one request, for turn 3.
      expect(server.requests.filter((q) => q.path.endsWith("/chat/completions"))).toHaveLength(1)
      const verified = await replay(dir, "answered-openai~fork3", "--verify")
      expect(verified.code).toBe(0)
    } finally {
      await server.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
