/**
 * The `rewards` projection over a real small run: `runEvaluation` with k = 4 on the embedded log
 * (an in-process model that calls a tool, then answers right or wrong by task and sample, with one
 * task whose model is down), then the projection rebuilt from the log through the runner with file
 * checkpoints. Every group is complete and decided with the default `agentcpm` profile; per group,
 * kept plus dropped samples add up to k and the summed counts equal the groups'; the task whose
 * model failed keeps no sample (all `infrastructure`); a second read resumes from the checkpoint
 * to the same result, which equals `foldAll` over the log's events.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import type { EpisodePorts, ModelPort, ToolPort } from "../../src/actors/agent/ports.ts"
import type { Task } from "../../src/actors/evaluator/datasets/task.ts"
import { runEvaluation } from "../../src/actors/evaluator/evalRun.ts"
import type { Completion } from "../../src/events/chat.ts"
import { decodeEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import type { LogRecord } from "../../src/events/schema.ts"
import { foldAll } from "../../src/projections/projection.ts"
import { dropReasons } from "../../src/projections/rewards/dropReasons.ts"
import { rewardsOf, runRewards } from "../../src/projections/rewards/queries.ts"
import { rewards } from "../../src/projections/rewards/rewardsProjection.ts"
import { fileCheckpointDir, fileCheckpointStore } from "../../src/runtime/checkpointStore.ts"
import { manualClock } from "../../src/runtime/clock.ts"

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c()
})

const openLog = async (): Promise<{ log: EventLogShape; dir: string }> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rewards-"))
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: "ev", fsync: "never" })),
  )
  cleanup.push(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { log, dir }
}

const tasks: ReadonlyArray<Task> = Array.from({ length: 5 }, (_, i) => ({
  taskId: `t${i}`,
  question: `Which word names task t${i}?`,
  answer: `Answer-T${i}-Zeta`,
  level: "1",
  metadata: {},
}))

/** From a request id `<run>/<task>/<sample>/model/<turn>`. */
const sampleOf = (requestId: string) => {
  const [, taskId, sample] = requestId.split("/")
  return { task: Number(taskId!.slice(1)), sample: Number(sample) }
}

/**
 * Calls `echo` (once, or twice on odd samples, so trajectories differ in length), then answers:
 * right when (task + sample) is not a multiple of 3; task t4's model is down.
 */
const model: ModelPort = {
  complete: (request) =>
    Effect.andThen(Effect.yieldNow, () => {
      const { task, sample } = sampleOf(request.requestId)
      if (task === 4) return Effect.fail({ code: "http_503", message: "model down" })
      const base = {
        endpoint: "in-process",
        latencyMs: 0,
        usage: { promptTokens: 50, completionTokens: 5 + sample },
      }
      const results = request.messages.filter((m) => m.role === "tool").length
      if (results < 1 + (sample % 2))
        return Effect.succeed<Completion>({
          ...base,
          finishReason: "tool_calls",
          content: "",
          toolCalls: [{ callId: `c${results}`, tool: "echo", arguments: { text: `look ${results}` } }],
        })
      const answer = (task + sample) % 3 === 0 ? "no idea" : `answer t${task} zeta.`
      return Effect.succeed<Completion>({
        ...base,
        finishReason: "stop",
        content: `<answer>${answer}</answer>`,
      })
    }),
}

const echo: ToolPort = {
  call: ({ arguments: args }) =>
    Effect.succeed({ ok: true as const, content: args as never, truncated: false }),
}

const ports: EpisodePorts = {
  model,
  tools: echo,
  parse: parseForEpisode,
  clock: manualClock(Date.parse("2026-01-01T00:00:00.000Z")),
}

describe("rewards over a real run", () => {
  it("decides every group of a k = 4 run, with counts that add up, rebuilt and resumed alike", async () => {
    const { log, dir } = await openLog()
    const K = 4
    const result = await Effect.runPromise(
      runEvaluation({
        log,
        ports,
        tasks,
        benchmark: "custom",
        scorer: "gaia",
        model: "agent",
        k: K,
        concurrency: 4,
        runId: "rl1",
        policy: { maxTurns: 10 },
      }),
    )
    expect(result.scored).toBe(tasks.length * K)

    const checkpoints = fileCheckpointStore(fileCheckpointDir(dir, "ev"))
    const first = await Effect.runPromise(rewardsOf({ log, checkpoints, checkpointEvery: 7 }, "rl1"))
    expect(first.undecodable.count).toBe(0)
    const run = first.run!
    expect(run).toMatchObject({
      k: K,
      started: true,
      profile: "agentcpm",
      configError: null,
      pending: [],
      refused: [],
    })
    expect(run.decided.map((g) => g.taskId)).toEqual(tasks.map((t) => t.taskId))

    for (const { taskId, decision } of run.decided) {
      const dropped = dropReasons.reduce((sum, reason) => sum + decision.droppedSamples[reason], 0)
      expect(decision.kept + dropped, taskId).toBe(K)
      expect(decision.samples).toHaveLength(K)
      expect(decision.samples.filter((s) => s.kept)).toHaveLength(decision.kept)
    }
    for (const reason of dropReasons) {
      expect(run.droppedSamples[reason]).toBe(
        run.decided.reduce((sum, g) => sum + g.decision.droppedSamples[reason], 0),
      )
      expect(run.droppedTurns[reason]).toBe(
        run.decided.reduce((sum, g) => sum + g.decision.droppedTurns[reason], 0),
      )
    }
    expect(run.keptSamples).toBe(run.decided.reduce((sum, g) => sum + g.decision.kept, 0))

    // The task whose model was down: every sample is an infrastructure drop, none trains.
    const down = run.decided.find((g) => g.taskId === "t4")!.decision
    expect(down.kept).toBe(0)
    expect(down.droppedSamples.infrastructure).toBe(K)
    // Mixed right and wrong answers elsewhere: some samples train, with non-zero advantages.
    expect(run.keptSamples).toBeGreaterThan(0)
    for (const { decision } of run.decided)
      for (const sample of decision.samples)
        if (sample.kept) expect(sample.turns.every((turn) => turn.advantage !== 0)).toBe(true)

    const entries = await Effect.runPromise(Stream.runCollect(log.read()))
    // Resumed from the checkpoint the first read saved: the same result; and the same as one fold.
    const saved = await Effect.runPromise(checkpoints.load("rewards"))
    expect(saved?.position).toBe(entries.at(-1)?.position)
    const again = await Effect.runPromise(rewardsOf({ log, checkpoints }, "rl1"))
    expect(again.run).toEqual(run)
    const envelopes = entries.map((e) => Result.getOrThrow(decodeEvent(e as LogRecord)))
    expect(runRewards(foldAll(rewards, envelopes), "rl1")).toEqual(run)
  })
})
