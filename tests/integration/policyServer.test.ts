/**
 * The Python policy server (trainer/rollout_trainer/server.py) driven by the inference pool exactly
 * as the pool drives vLLM: a `tokens: exact`, `weightUpdates: vllm` model group through the official
 * openai client. The policy is warm-started by the trainer's own SFT mode on the shipped calc
 * demonstrations. A two-turn calculator episode: the first turn comes back as an OpenAI tool call
 * with prompt ids, sampled ids, one log-prob per id, the temperature and the version spans; the
 * second turn's prompt ids extend the first prompt and sampled ids exactly (no drift) and it answers.
 * Then `publishWeights` loads another checkpoint through vLLM's update sequence and calls are
 * stamped with the new version; a checkpoint that does not load fails the update at its step.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { promisify } from "node:util"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { taskPrompt } from "../../src/actors/agent/episodeState.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { type Completion, type InferencePool, makeInferencePool } from "../../src/actors/inference/pool.ts"
import type { ChatMessage, ToolSpec } from "../../src/events/chat.ts"
import { acquire } from "../support/scoped.ts"

const python = process.env.ROLLOUT_PYTHON ?? "/usr/bin/python3"
const trainerDir = path.resolve("trainer")
const run = promisify(execFile)

const calculator: ToolSpec = {
  name: "calculator",
  description: "Evaluates an arithmetic expression of integers.",
  parameters: { type: "object", properties: { expression: { type: "string" } }, required: ["expression"] },
}

let dir: string
let server: ChildProcess
let url: string
let pool: InferencePool
const cleanups: Array<() => Promise<void> | void> = []

/** Runs the trainer's SFT mode: a checkpoint directory. */
const sft = async (out: string, steps: number, seed: number): Promise<string> => {
  await run(
    python,
    [
      "-m",
      "rollout_trainer.train",
      "--sft",
      path.resolve("data/calc/demonstrations.jsonl"),
      "--out",
      out,
      "--steps",
      String(steps),
      "--batch-size",
      "16",
      "--lr",
      "3e-3",
      "--seed",
      String(seed),
    ],
    { cwd: trainerDir, timeout: 240_000 },
  )
  return out
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-policy-server-"))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  const [warm] = await Promise.all([sft(path.join(dir, "warm"), 200, 0), sft(path.join(dir, "other"), 5, 1)])
  server = spawn(python, ["-m", "rollout_trainer.server", "--checkpoint", warm, "--port", "0"], {
    cwd: trainerDir,
    stdio: ["ignore", "pipe", "pipe"],
  })
  cleanups.push(() => {
    server.kill("SIGTERM")
  })
  const first = await new Promise<string>((resolve, reject) => {
    server.once("exit", (code) => reject(new Error(`the policy server exited with ${code}`)))
    readline.createInterface({ input: server.stdout! }).once("line", resolve)
  })
  url = (JSON.parse(first) as { url: string }).url
  const config = Result.getOrThrow(
    modelsConfigFrom({
      agent: {
        served: "policy",
        endpoints: [{ url }],
        tokens: "exact",
        weightUpdates: "vllm",
        retries: 1,
        backoffMs: 10,
      },
    }),
  )
  const acquired = await acquire(makeInferencePool(config, {}))
  cleanups.push(acquired.close)
  pool = acquired.value
}, 300_000)

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

let calls = 0
const complete = (messages: ReadonlyArray<ChatMessage>): Promise<Completion> =>
  Effect.runPromise(
    pool.complete({
      model: "agent",
      requestId: `policy-${calls++}`,
      messages,
      tools: [calculator],
      temperature: 0,
      maxTokens: 40,
      logprobs: true,
    }),
  )

const weightInfo = async (): Promise<unknown> =>
  (await fetch(`${url.replace(/\/v1$/, "")}/weight_info`)).json()

describe("the policy server behind the inference pool", () => {
  it("answers a token-exact tool-calling episode whose second prompt extends the first turn", async () => {
    const question = "What is 475 times 807?" // the task's form: 3-digit operands, a 6-digit product
    const user: ChatMessage = { role: "user", content: taskPrompt(question) }
    const first = await complete([user])
    expect(first.finishReason).toBe("tool_calls")
    expect(first.toolCalls).toHaveLength(1)
    // What the warm-started toy writes is its own: the shape is the test, not its arithmetic.
    expect(first.toolCalls![0]).toMatchObject({ tool: "calculator" })
    expect((first.toolCalls![0]!.arguments as { expression: string }).expression).toMatch(/^\d+\*\d+$/)
    expect(first.tokenIds!.length).toBeGreaterThan(0)
    expect(first.logprobs).toHaveLength(first.tokenIds!.length)
    expect(first.temperature).toBe(0)
    expect(first.weightVersions).toEqual([{ version: "0", start: 0, end: first.tokenIds!.length }])
    expect(first.policyVersion).toBe("0")
    expect(first.usage.promptTokens).toBe(first.promptTokenIds!.length)

    const second = await complete([
      user,
      { role: "assistant", content: first.content, toolCalls: first.toolCalls! },
      { role: "tool", content: "383325", toolCallId: first.toolCalls![0]!.callId },
    ])
    const before = [...first.promptTokenIds!, ...first.tokenIds!]
    expect(second.promptTokenIds!.slice(0, before.length)).toEqual(before)
    expect(second.content).toMatch(/^<answer>\d+<\/answer>$/)
    expect(second.finishReason).toBe("stop")
  })

  it("loads a published checkpoint through vLLM's update sequence, and names the step of a failed one", async () => {
    const report = await Effect.runPromise(
      pool.publishWeights("agent", { version: "1", path: path.join(dir, "other") }),
    )
    expect(report.endpoints).toHaveLength(1)
    expect(report.endpoints[0]).toMatchObject({ ok: true })
    expect(await weightInfo()).toEqual({ weight_version: "1" })
    const after = await complete([{ role: "user", content: taskPrompt("What is 12 times 34?") }])
    expect(after.policyVersion).toBe("1")
    expect(after.weightVersions).toEqual([{ version: "1", start: 0, end: after.tokenIds!.length }])

    const broken = path.join(dir, "broken")
    fs.mkdirSync(broken)
    fs.writeFileSync(path.join(broken, "model.safetensors"), Buffer.from("not a safetensors file"))
    const failed = await Effect.runPromise(pool.publishWeights("agent", { version: "2", path: broken }))
    expect(failed.endpoints[0]).toMatchObject({ ok: false })
    expect(JSON.stringify(failed.endpoints[0])).toContain("update_weights")
    expect(await weightInfo()).toEqual({ weight_version: "1" })
  })
})
