/**
 * The bundled demo benchmark through the real agent path, offline: 20 questions × 8 samples, each
 * an episode of the episode shell on the embedded log, its model the scripted model server (a TEST
 * DOUBLE for a GPU server) running the `researcher` script behind the inference pool, its tools
 * AgentDock's pools of this checkout's `search` (offline BM25 over the demo corpus) and
 * `fetch_url` (offline corpus mode) MCP servers, started as `rollout mcp-server` (needs
 * `npm run build`). The researcher never sees the answers: it must find them through the tools, so
 * every episode answers, accuracy is well above chance and below perfect, and samples of one task
 * disagree. Scored with GAIA's exact match; accuracy and wall time are printed. Then the samples of
 * some tasks split over two workers, each with its own model server, one of which has already
 * answered some of the same turns (a worker that crashed): each episode still takes the trajectory
 * it took on one server, because the pool names its episode to the server.
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
import { episodeIdFor } from "../../src/actors/evaluator/evalRun.ts"
import { gaiaScore } from "../../src/actors/evaluator/index.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import { dockToolPort } from "../../src/actors/tools/agentToolPort.ts"
import { startDock } from "../../src/actors/tools/dock.ts"
import { toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { researcherScript } from "../../src/programs/scriptedModel/researcher/researcherScript.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"

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
  /** What the model said, turn by turn (text and tool calls): the episode's trajectory. */
  readonly trajectory: string
}

interface Run {
  readonly task: DemoQuestion
  readonly sample: number
}

/** One worker: a model server behind its own inference pool, and the samples it runs. */
interface Worker {
  readonly server: ScriptedModelServer
  readonly runs: ReadonlyArray<Run>
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`

const toolsConfig = Result.getOrThrow(
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
        args: ["mcp-server", "fetch_url", "--options", JSON.stringify({ offline: true, corpusPath: corpus })],
        idempotent: true,
      },
    },
  }),
)

/**
 * Runs the workers' episodes on one fresh embedded log (as workers share one), each through its own
 * pool and server, with the real tool servers. Episode ids are the evaluator's.
 */
const runWorkers = (logDir: string, runId: string, workers: ReadonlyArray<Worker>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const log = yield* makeEmbeddedLog({ dataDir: logDir, namespace: "demo", fsync: "never" })
        const dock = yield* Effect.acquireRelease(
          Effect.promise(() => startDock({ log, config: toolsConfig, sampleEveryMs: 0 })),
          (d) => Effect.promise(() => d.close()),
        )
        const { port, specs } = dockToolPort(dock)
        expect(specs.map((s) => s.name).sort()).toEqual(["fetch_url", "search"])
        const perWorker = yield* Effect.forEach(
          workers,
          (worker) =>
            Effect.gen(function* () {
              const models = Result.getOrThrow(
                modelsConfigFrom({ agent: { endpoints: [{ url: worker.server.url, maxConcurrency: 16 }] } }),
              )
              const pool = yield* makeInferencePool(models, { log, namespace: "demo" })
              const ports = {
                model: poolModelPort(pool),
                tools: port,
                toolSpecs: specs,
                parse: parseForEpisode,
              }
              return yield* Effect.forEach(
                worker.runs,
                ({ task, sample }) => {
                  const episodeId = episodeIdFor(runId, task.id, sample)
                  return Effect.map(
                    runEpisode(log, ports, episodeId, {
                      kind: "start",
                      episodeId,
                      runId,
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
                      trajectory: JSON.stringify(
                        state.messages
                          .toArray()
                          .filter((m) => m.role === "assistant")
                          .map((m) => [m.content, m.toolCalls ?? []]),
                      ),
                    }),
                  )
                },
                { concurrency: 16 },
              )
            }),
          { concurrency: "unbounded" },
        )
        return perWorker.flat()
      }),
    ),
  )

const runsOf = (tasks: ReadonlyArray<DemoQuestion>): ReadonlyArray<Run> =>
  tasks.flatMap((task) => Array.from({ length: SAMPLES }, (_, sample) => ({ task, sample })))

const keyOf = (o: Run) => `${o.task.id}/${o.sample}`

describe("the demo benchmark with the researcher test double", () => {
  it("answers every episode, scores strictly between 20% and 95% Avg@8, and samples disagree", async () => {
    expect(questions).toHaveLength(20)
    const started = performance.now()
    const outcomes = await runWorkers(path.join(dir, "one"), "researcher-demo", [
      { server, runs: runsOf(questions) },
    ])
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

  it("takes each episode's trajectory on either of two workers' servers, after a crash too", async () => {
    const tasks = questions.slice(0, 4)
    const reference = await runWorkers(path.join(dir, "reference"), "split", [
      { server, runs: runsOf(tasks) },
    ])
    const [a, b] = [
      await startScriptedModelServer({ script: researcherScript({ seed: 0 }), recordLimit: 0 }),
      await startScriptedModelServer({ script: researcherScript({ seed: 0 }), recordLimit: 0 }),
    ]
    try {
      // Worker A takes the even samples, worker B the odd ones in reverse order; B's server has
      // already answered two of its episodes once, for a worker that crashed (its log is lost).
      const runs = runsOf(tasks)
      const even = runs.filter((r) => r.sample % 2 === 0)
      const odd = runs.filter((r) => r.sample % 2 === 1).reverse()
      await runWorkers(path.join(dir, "crashed"), "split", [{ server: b, runs: odd.slice(0, 2) }])
      const split = await runWorkers(path.join(dir, "split"), "split", [
        { server: a, runs: even },
        { server: b, runs: odd },
      ])
      const byKey = new Map(split.map((o) => [keyOf(o), o]))
      expect(split).toHaveLength(reference.length)
      for (const o of reference) {
        expect(byKey.get(keyOf(o))?.trajectory, keyOf(o)).toBe(o.trajectory)
        expect(byKey.get(keyOf(o))?.answer, keyOf(o)).toBe(o.answer)
      }
      // The reference's samples differ among themselves: equal trajectories are not a collapse.
      expect(new Set(reference.map((o) => o.trajectory)).size).toBeGreaterThan(tasks.length)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }, 300_000)
})
