/**
 * `rollout eval --dispatch` with real processes: a nats-server, two `rollout worker --roles agent`
 * processes each pointed at its own scripted OpenAI-compatible server (test doubles for GPU
 * servers), and the eval command sending every sample to the agent work queue. Both workers take a
 * share (each server answers), one worker is `kill -9`ed part-way and the other finishes its
 * episodes, every sample is scored once as the script dictates, and running the same `--run`
 * again sends nothing.
 */
import { type ChildProcess, execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { afterAll, describe, expect, it } from "vitest"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import { scripts } from "../../src/programs/scriptedModel/scripts.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"
import { startWorkerProcess } from "../support/workerProcess.ts"

const cli = path.resolve("bin/rollout.js")
const execute = promisify(execFile)
const namespace = "evaldispatch"
const tasks = 12
const k = 2
const started: ChildProcess[] = []
let nats: TestNatsServer | undefined
const models: ScriptedModelServer[] = []
let cwd: string | undefined

afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await nats?.stop()
  for (const m of models) await m.stop()
  if (cwd !== undefined) fs.rmSync(cwd, { recursive: true, force: true })
})

const rollout = async (args: ReadonlyArray<string>) => {
  try {
    const { stdout, stderr } = await execute(process.execPath, [cli, "--data-dir", "data", ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: "1", ROLLOUT_NAMESPACE: namespace },
      maxBuffer: 16 * 1024 * 1024,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe("rollout eval --dispatch", () => {
  it("spreads the samples over the agent workers, survives a killed worker, and resumes to nothing", async () => {
    nats = await startTestNatsServer()
    // The agent calls echo three times (30 ms a model call), then answers "done".
    for (let i = 0; i < 2; i++)
      models.push(
        await startScriptedModelServer({
          script: scripts.echoTool({ tool: "echo", turns: 3 }),
          latencyMs: 30,
        }),
      )
    const worker = (name: string, model: ScriptedModelServer) =>
      startWorkerProcess(
        [
          "--nats",
          nats!.url,
          "worker",
          "--roles",
          "agent",
          "--name",
          name,
          "--ack-wait",
          "1500",
          "--concurrency",
          "4",
        ],
        { ROLLOUT_NAMESPACE: namespace, ROLLOUT_MODEL_AGENT_URL: model.url, ROLLOUT_TOOLS: "builtin" },
        started,
      )
    const [a] = await Promise.all([worker("agent-a", models[0]!), worker("agent-b", models[1]!)])

    cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-dispatch-"))
    // Every third task's answer is "done", which is what the scripted agent always answers.
    const rows = Array.from({ length: tasks }, (_, i) => ({
      id: `t${i}`,
      question: `question number ${i}`,
      answer: i % 3 === 0 ? "done" : `answer ${i}`,
    }))
    fs.writeFileSync(path.join(cwd, "tasks.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n"))
    const evalArgs = [
      "--nats",
      nats.url,
      "eval",
      "--bench",
      "custom",
      "--data",
      "tasks.jsonl",
      "--map",
      "question=question,answer=answer,id=id",
      "--scorer",
      "gaia",
      "--model",
      "agent",
      "-k",
      String(k),
      "--concurrency",
      "8",
      "--run",
      "spread",
      "--dispatch",
      "--json",
    ]

    // Kill one worker once a few episodes have ended; its episodes go to the other after the ack wait.
    const handle = await acquire(connectNats({ servers: nats.url, name: "eval-dispatch-test" }))
    try {
      const log = await Effect.runPromise(makeJetStreamLog(handle.value, { namespace }))
      const events = async () =>
        Array.from(
          await Effect.runPromise(Stream.runCollect(log.read({ filter: `${namespace}.ev.episode.*` }))),
        ).map((e) => {
          if (e instanceof UndecodableEvent) throw new Error(e.message)
          return Result.getOrThrow(decodeEvent(e))
        })
      const evaluation = rollout(evalArgs)
      const deadline = Date.now() + 60_000
      while ((await events()).filter((e) => e.event.type === "EpisodeFinished").length < 4) {
        if (Date.now() > deadline)
          throw new Error(`episodes did not get going: ${JSON.stringify(await evaluation)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      a!.kill("SIGKILL")
      const first = await evaluation
      expect(first.stderr).not.toContain("internal error")
      expect(first.code, first.stderr).toBe(0)
      const report = JSON.parse(first.stdout) as {
        samples?: unknown
        metrics: { correct: number; runs: number }
        scoredNow: number
        failed: unknown[]
      }
      expect(report.failed).toEqual([])
      expect(report.scoredNow).toBe(tasks * k)
      expect(report.metrics).toMatchObject({ runs: tasks * k, correct: (tasks / 3) * k })

      const all = await events()
      const finished = all.filter((e) => e.event.type === "EpisodeFinished")
      expect(finished).toHaveLength(tasks * k)
      // Both workers ran episodes: each one's own model server answered.
      const endpoints = new Set(
        all.flatMap((e) => (e.event.type === "ModelResponded" ? [e.event.endpoint] : [])),
      )
      expect(endpoints.size).toBe(2)
      // No completion recorded twice, although a worker died mid-episode.
      const requests = all.flatMap((e) => (e.event.type === "ModelResponded" ? [e.event.requestId] : []))
      expect(new Set(requests).size).toBe(requests.length)

      // The same run again: everything is scored, so nothing is sent and nothing new is written.
      const before = all.length
      const again = await rollout(evalArgs)
      expect(again.code, again.stderr).toBe(0)
      expect(JSON.parse(again.stdout)).toMatchObject({ scoredNow: 0, alreadyScored: tasks * k })
      expect((await events()).length).toBe(before)
    } finally {
      await handle.close()
    }
  }, 180_000)

  it("refuses --dispatch on the embedded log and with --base-url, saying why", async () => {
    cwd ??= fs.mkdtempSync(path.join(os.tmpdir(), "rollout-dispatch-"))
    fs.writeFileSync(path.join(cwd, "one.jsonl"), JSON.stringify({ id: "a", question: "q", answer: "x" }))
    const common = [
      "eval",
      "--bench",
      "custom",
      "--data",
      "one.jsonl",
      "--map",
      "question=question,answer=answer,id=id",
    ]
    const embedded = await rollout([...common, "--scorer", "gaia", "--model", "agent", "--dispatch"])
    expect(embedded.code).not.toBe(0)
    expect(embedded.stderr).toContain("--dispatch needs the NATS log")
    const withUrl = await rollout([
      ...common,
      "--scorer",
      "gaia",
      "--model",
      "agent",
      "--dispatch",
      "--base-url",
      "http://127.0.0.1:9/v1",
    ])
    expect(withUrl.code).not.toBe(0)
    expect(withUrl.stderr).toContain("--base-url and --tools do not apply")
  })
})
