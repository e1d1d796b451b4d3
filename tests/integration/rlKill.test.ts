/**
 * Issue 12's kill test with real processes on a real nats-server: `rollout rl run --dispatch`
 * (the sampler, the trainer bridge and the simulated trainer — a test double — in one process)
 * sends its episodes to two `rollout worker --roles agent` processes, which sample a token-exact
 * RL model group from the scripted model server (a test double for vLLM). Mid-run one agent worker
 * is killed with SIGKILL; later the `rl run` process itself (sampler and bridge) is killed with
 * SIGKILL in the middle of a weight update (the server left paused, its update open) and started
 * again with the same run id. The run still finishes, and the log shows: the restarted bridge's
 * update recovered the server, no
 * group started twice, every sample scored once, every published batch derived again from the log
 * to its hash, no sample in two batches, every step acknowledged once, as many batches as the run
 * said it would publish.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { afterAll, describe, expect, it } from "vitest"
import { deriveBatch } from "../../src/actors/sampler/batchDerivation.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import { blobBucketFor, objectBlobStore } from "../../src/events/log/objectBlobStore.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { DomainEvent, EventOf } from "../../src/events/schema.ts"
import { assistantTurns, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { decodeBatch } from "../../src/projections/batches/batchFile.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"
import { startWorkerProcess } from "../support/workerProcess.ts"

const cli = path.resolve("bin/rollout.js")
const namespace = "rlkill"
const RUN = "rl-kill"
const started: ChildProcess[] = []
let nats: TestNatsServer | undefined
let model: ScriptedModelServer | undefined
let dir: string | undefined

afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await nats?.stop()
  await model?.stop()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

/** Three echo calls, then an answer: right for about half the samples (by the episode's id). */
const script: Script = (request, context) => {
  const turn = assistantTurns(request) + 1
  if (turn <= 3)
    return { content: `step ${turn}`, toolCalls: [{ name: "echo", arguments: { text: `t${turn}` } }] }
  let h = 0
  for (const c of context.episodeId ?? "") h = (h * 31 + c.charCodeAt(0)) >>> 0
  return { content: h % 2 === 0 ? "<answer>blue</answer>" : "<answer>red</answer>" }
}

const env = () => ({ ...process.env, ROLLOUT_NAMESPACE: namespace, ROLLOUT_TOOLS: "builtin" })

/** Starts `rollout rl run` and collects its output; resolves its exit when it ends. */
const startRun = (cwd: string) => {
  const child = spawn(
    process.execPath,
    [
      cli,
      "--nats",
      nats!.url,
      "--config",
      "config/rl.yaml",
      "rl",
      "run",
      "--dispatch",
      "--run",
      RUN,
      "--simulated-trainer",
      "60",
      "--json",
    ],
    { cwd, env: env(), stdio: ["ignore", "pipe", "pipe"] },
  )
  started.push(child)
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString()
  })
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  )
  return { child, exited, output: () => ({ stdout, stderr }) }
}

describe("kill -9 during RL training on NATS", () => {
  it("of an agent worker and of the process running the sampler and the bridge: nothing lost or trained twice", async () => {
    nats = await startTestNatsServer()
    // Each load takes 400 ms, the engine paused meanwhile: wide enough to kill the bridge mid-update.
    model = await startScriptedModelServer({ script, weights: { version: "0", loadMs: 400 }, latencyMs: 40 })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-kill-"))
    fs.mkdirSync(path.join(dir, "config"))
    fs.writeFileSync(
      path.join(dir, "config", "models.yaml"),
      `models:\n  policy:\n    endpoints:\n      - url: ${model.url}\n    tokens: exact\n    weightUpdates: vllm\n    retries: 2\n    backoffMs: 50\n`,
    )
    fs.writeFileSync(
      path.join(dir, "tasks.jsonl"),
      Array.from({ length: 6 }, (_, i) =>
        JSON.stringify({ id: `t${i}`, question: `Colour of thing ${i}?`, answer: "blue" }),
      )
        .join("\n")
        .concat("\n"),
    )
    fs.writeFileSync(
      path.join(dir, "config", "rl.yaml"),
      [
        "tasks: { bench: custom, data: tasks.jsonl, map: 'question=question,answer=answer,id=id' }",
        "model: policy",
        "groupSize: 4",
        "epochs: 3",
        "concurrency: 8",
        "batch: { groups: 2 }",
        "rewards: { profile: grpo }",
        "staleness: { maxLag: 2 }",
        "scorer: gaia",
        "policy: { maxTurns: 6 }",
        "",
      ].join("\n"),
    )
    const workerArgs = (name: string) => [
      "--nats",
      nats!.url,
      "--config",
      "config",
      "worker",
      "--roles",
      "agent",
      "--name",
      name,
      "--ack-wait",
      "1500",
      "--concurrency",
      "8",
    ]
    const spawnWorker = (name: string) => {
      const cwd = process.cwd()
      process.chdir(dir!)
      try {
        return startWorkerProcess(
          workerArgs(name),
          { ROLLOUT_NAMESPACE: namespace, ROLLOUT_TOOLS: "builtin" },
          started,
        )
      } finally {
        process.chdir(cwd)
      }
    }
    const [victim] = await Promise.all([spawnWorker("agent-a"), spawnWorker("agent-b")])

    const handle = await acquire(connectNats({ servers: nats.url, name: "rl-kill-test" }))
    const log = await Effect.runPromise(makeJetStreamLog(handle.value, { namespace }))
    const events = async (): Promise<ReadonlyArray<DomainEvent>> =>
      (await Effect.runPromise(readEvents(log))).state.map((e) => e.event)
    const waitFor = async (what: string, ok: (e: ReadonlyArray<DomainEvent>) => boolean, ms = 60_000) => {
      const until = Date.now() + ms
      while (Date.now() < until) {
        if (ok(await events())) return
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error(`timed out waiting for ${what}`)
    }
    const count = (type: string) => (e: ReadonlyArray<DomainEvent>) => e.filter((x) => x.type === type).length

    try {
      const first = startRun(dir)
      await waitFor("samples scored", (e) => count("SampleScored")(e) >= 6)
      victim.kill("SIGKILL")
      await waitFor("a batch published", (e) => count("BatchPublished")(e) >= 2)
      // Killed mid weight update: the server is left paused with the update open, holding every
      // request until someone finishes it.
      const paused = async () =>
        (
          (await (await fetch(`${model!.url.replace(/\/v1$/, "")}/is_paused`)).json()) as {
            is_paused: boolean
          }
        ).is_paused
      const until = Date.now() + 30_000
      while (!(await paused())) {
        if (Date.now() > until) throw new Error("timed out waiting for a weight update to kill")
        await new Promise((r) => setTimeout(r, 5))
      }
      first.child.kill("SIGKILL")
      expect((await first.exited).signal).toBe("SIGKILL")
      const before = await events()
      expect(before.some((e) => e.type === "RunFinished")).toBe(false)

      const second = startRun(dir)
      const end = await Promise.race([
        second.exited,
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 150_000)),
      ])
      expect(end, JSON.stringify(second.output()).slice(-2000)).toEqual({ code: 0, signal: null })
      const summary = JSON.parse(second.output().stdout) as { resumed: boolean; lost: unknown[] }
      expect(summary.resumed).toBe(true)
      expect(summary.lost).toEqual([])

      const all = await events()
      const groups = all.filter((e): e is EventOf<"GroupStarted"> => e.type === "GroupStarted")
      expect(groups.length).toBe(6 * 3)
      expect(new Set(groups.map((g) => g.group)).size).toBe(groups.length)
      const scored = all.filter((e): e is EventOf<"SampleScored"> => e.type === "SampleScored")
      expect(new Set(scored.map((s) => s.episodeId)).size).toBe(groups.length * 4)
      expect(scored.length).toBe(groups.length * 4)
      const finished = all.find((e): e is EventOf<"RunFinished"> => e.type === "RunFinished")
      const published = all.filter((e): e is EventOf<"BatchPublished"> => e.type === "BatchPublished")
      expect(published.length).toBe(finished?.batches)
      const blobs = objectBlobStore(handle.value, { bucket: blobBucketFor(namespace) })
      const seen = new Set<string>()
      for (const batch of published) {
        const derived = await Effect.runPromise(deriveBatch(log, RUN, batch.step))
        expect(derived.hash).toBe(batch.hash)
        const decoded = Result.getOrThrow(decodeBatch(await Effect.runPromise(blobs.get(batch.blob))))
        for (const sequence of decoded.sequences) {
          const key = `${sequence.episode}@${sequence.turns[0]}`
          expect(seen.has(key), key).toBe(false)
          seen.add(key)
        }
      }
      // The restarted bridge found the server as the killed one left it, loaded over it, resumed it.
      const updates = all.filter(
        (e): e is EventOf<"EndpointWeightsUpdated"> => e.type === "EndpointWeightsUpdated",
      )
      expect(updates.filter((u) => !u.ok)).toEqual([])
      expect(updates.some((u) => u.recovered !== undefined)).toBe(true)
      const consumed = all.filter((e): e is EventOf<"BatchConsumed"> => e.type === "BatchConsumed")
      expect(consumed.map((c) => c.step).sort((a, b) => a - b)).toEqual(
        published.map((b) => b.step).sort((a, b) => a - b),
      )
    } finally {
      await handle.close()
    }
  }, 240_000)
})
