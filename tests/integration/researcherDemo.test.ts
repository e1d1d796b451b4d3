/**
 * The bundled demo benchmark through the real agent path, offline: 20 questions × 8 samples, each
 * an episode of the episode shell on the embedded log, its model the scripted model server (a TEST
 * DOUBLE for a GPU server) running the `researcher` script behind the inference pool, its tools
 * AgentDock's pools of this checkout's `search` (offline BM25 over the demo corpus) and
 * `fetch_url` (offline corpus mode) MCP servers, started as `rollout mcp-server` (needs
 * `npm run build`). The researcher never sees the answers: it must find them through the tools, so
 * every episode answers, accuracy is well above chance and below perfect, and samples of one task
 * disagree. Scored with GAIA's exact match; accuracy and wall time are printed.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { poolModelPort } from "../../src/actors/agent/modelPort.ts"
import { runEpisode } from "../../src/actors/agent/shell.ts"
import { gaiaScore } from "../../src/actors/evaluator/index.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import { researcherScript } from "../../src/actors/inference/scriptedModel/researcher.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/actors/inference/scriptedModelServer.ts"
import { dockToolPort } from "../../src/actors/tools/agentToolPort.ts"
import { startDock } from "../../src/actors/tools/dock.ts"
import { toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"

interface DemoQuestion {
  readonly id: string
  readonly question: string
  readonly answer: string
  readonly level: number
}

const SAMPLES = 8
const corpus = path.resolve("data/demo/corpus.jsonl")
const questions: ReadonlyArray<DemoQuestion> = fs
  .readFileSync(path.resolve("data/demo/questions.jsonl"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => JSON.parse(line) as DemoQuestion)

let dir: string
let server: ScriptedModelServer
beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does): the tool servers run as `rollout mcp-server`",
  ).toBe(true)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-researcher-demo-"))
  server = await startScriptedModelServer({ script: researcherScript({ seed: 0 }), recordLimit: 0 })
})
afterAll(async () => {
  await server?.stop()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

interface Outcome {
  readonly task: DemoQuestion
  readonly sample: number
  readonly outcome: string | undefined
  readonly answer: string | undefined
  readonly turns: number
  readonly correct: boolean
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`

describe("the demo benchmark with the researcher test double", () => {
  it("answers every episode, scores strictly between 20% and 95% Avg@8, and samples disagree", async () => {
    expect(questions).toHaveLength(20)
    const models = Result.getOrThrow(
      modelsConfigFrom({ agent: { endpoints: [{ url: server.url, maxConcurrency: 16 }] } }),
    )
    const tools = Result.getOrThrow(
      toolsConfigFrom({
        servers: {
          search: {
            command: "rollout",
            args: [
              "mcp-server",
              "search",
              "--options",
              JSON.stringify({ providers: ["offline"], corpusPath: corpus }),
            ],
            idempotent: true,
          },
          fetch_url: {
            command: "rollout",
            args: [
              "mcp-server",
              "fetch_url",
              "--options",
              JSON.stringify({ offline: true, corpusPath: corpus }),
            ],
            idempotent: true,
          },
        },
      }),
    )
    const started = performance.now()
    const outcomes = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const log = yield* makeEmbeddedLog({ dataDir: dir, namespace: "demo", fsync: "never" })
          const pool = yield* makeInferencePool(models, { log, namespace: "demo" })
          const dock = yield* Effect.acquireRelease(
            Effect.promise(() => startDock({ log, config: tools, sampleEveryMs: 0 })),
            (d) => Effect.promise(() => d.close()),
          )
          const { port, specs } = dockToolPort(dock)
          expect(specs.map((s) => s.name).sort()).toEqual(["fetch_url", "search"])
          const ports = {
            model: poolModelPort(pool),
            tools: port,
            toolSpecs: specs,
            parse: parseForEpisode,
            now: () => new Date().toISOString(),
          }
          const runs = questions.flatMap((task) =>
            Array.from({ length: SAMPLES }, (_, sample) => ({ task, sample })),
          )
          return yield* Effect.forEach(
            runs,
            ({ task, sample }) => {
              const episodeId = `researcher-${task.id}-${sample}`
              return Effect.map(
                runEpisode(log, ports, episodeId, {
                  kind: "start",
                  episodeId,
                  runId: "researcher-demo",
                  taskId: task.id,
                  sampleIndex: sample,
                  question: task.question,
                  model: "agent",
                }),
                (state): Outcome => ({
                  task,
                  sample,
                  outcome: state.outcome,
                  answer: state.answer,
                  turns: state.turn,
                  correct: gaiaScore(state.answer, task.answer).correct,
                }),
              )
            },
            { concurrency: 16 },
          )
        }),
      ),
    )
    const seconds = (performance.now() - started) / 1000

    const accuracyOf = (subset: ReadonlyArray<Outcome>) =>
      subset.length === 0 ? 0 : subset.filter((o) => o.correct).length / subset.length
    const byTask = questions.map((task) => outcomes.filter((o) => o.task.id === task.id))
    const levels = [...new Set(questions.map((q) => q.level))].sort()
    const report = [
      `researcher demo: ${outcomes.length} episodes in ${seconds.toFixed(1)} s, ` +
        `mean ${(outcomes.reduce((n, o) => n + o.turns, 0) / outcomes.length).toFixed(1)} turns`,
      `Avg@${SAMPLES} overall ${percent(accuracyOf(outcomes))}; ` +
        levels
          .map(
            (level) =>
              `level ${level} ${percent(accuracyOf(outcomes.filter((o) => o.task.level === level)))}`,
          )
          .join("; "),
      ...byTask.map(
        (runs) =>
          `  ${runs[0]?.task.id} L${runs[0]?.task.level} ${runs.filter((o) => o.correct).length}/${runs.length} ` +
          `(truth ${runs[0]?.task.answer}): ${runs.map((o) => o.answer ?? "-").join(" | ")}`,
      ),
    ]
    console.log(report.join("\n"))

    expect(outcomes).toHaveLength(questions.length * SAMPLES)
    expect(outcomes.filter((o) => o.outcome !== "answered")).toEqual([])
    const accuracy = accuracyOf(outcomes)
    expect(accuracy).toBeGreaterThan(0.2)
    expect(accuracy).toBeLessThan(0.95)
    // The samples of a task are different trajectories: some tasks get more than one answer.
    const disagreeing = byTask.filter((runs) => new Set(runs.map((o) => o.answer)).size > 1)
    expect(disagreeing.length).toBeGreaterThan(0)
  }, 300_000)
})
