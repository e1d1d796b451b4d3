/**
 * The episode runner that sends episodes to the agent workers, on the embedded log with the
 * in-process bus and an actor host in this process standing in for the workers: the evaluation
 * scores what the workers ran, an episode a worker dead-letters ends its sample with the reason
 * (instead of waiting forever) and counts as crashed in the progress line as in the report, and a
 * resumed run does not send a finished episode again.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { agentActor } from "../../src/actors/agent/actor.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import type { EpisodePorts } from "../../src/actors/agent/ports.ts"
import type { Task } from "../../src/actors/evaluator/datasets/task.ts"
import { runOnWorkers } from "../../src/actors/evaluator/episodeRunner.ts"
import { type EvalProgress, runEvaluation } from "../../src/actors/evaluator/evalRun.ts"
import type { Completion } from "../../src/events/chat.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { isFailedSample } from "../../src/projections/scoreboard/sampleStatus.ts"
import { boardSamples } from "../../src/projections/scoreboard/scoreboardMetrics.ts"
import { startHost } from "../../src/runtime/actorHost.ts"
import { manualClock } from "../../src/runtime/clock.ts"
import { makeInProcessBus } from "../../src/runtime/inProcessBus.ts"

const dirs: string[] = []
const scopes: Scope.Closeable[] = []
afterEach(async () => {
  for (const s of scopes.splice(0)) await Effect.runPromise(Scope.close(s, Exit.void))
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  return Effect.runPromise(Scope.provide(scope)(effect))
}

const usage = { promptTokens: 10, completionTokens: 5 }

/** One `echo` call with the question, then the answer "done". */
const reply = (requestId: string, question: string, toolResults: number): Completion =>
  toolResults >= 1
    ? { endpoint: "in-process", latencyMs: 0, finishReason: "stop", content: "<answer>done</answer>", usage }
    : {
        endpoint: "in-process",
        latencyMs: 0,
        finishReason: "tool_calls",
        content: "",
        toolCalls: [{ callId: `${requestId}#0`, tool: "echo", arguments: { text: question } }],
        usage,
      }

const ports: EpisodePorts = {
  model: {
    complete: (request) =>
      Effect.sync(() => {
        const task = request.messages.find((m) => m.role === "user")?.content ?? ""
        return reply(request.requestId, task, request.messages.filter((m) => m.role === "tool").length)
      }),
  },
  tools: {
    // A tool result that is not JSON cannot be recorded: the worker dead-letters that episode.
    call: ({ arguments: args }) =>
      Effect.succeed(
        JSON.stringify(args).includes("poison")
          ? { ok: true as const, content: Number.NaN as never, truncated: false }
          : { ok: true as const, content: args as never, truncated: false },
      ),
  },
  parse: parseForEpisode,
  clock: manualClock(Date.parse("2026-01-01T00:00:00.000Z")),
}

const task = (taskId: string, question: string, answer: string): Task => ({
  taskId,
  question,
  answer,
  metadata: {},
})

describe("episodes run on the agent workers", () => {
  it("scores what the workers ran, ends a dead-lettered sample with its reason, resumes without resending", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-runner-"))
    dirs.push(dir)
    const log = await inScope(makeEmbeddedLog({ dataDir: dir, namespace: "runner" }))
    const bus = makeInProcessBus()
    const host = await Effect.runPromise(
      startHost(log, bus, [agentActor(ports)], {
        worker: "w1",
        concurrency: 4,
        ackWaitMs: 5_000,
        maxDeliver: 3,
        drainTimeoutMs: 2_000,
        conflictRetries: 5,
      }),
    )
    const tasks = [
      task("a", "first question", "done"),
      task("b", "a poison question", "done"),
      task("c", "third question", "other"),
    ]
    const progress: EvalProgress[] = []
    const evaluate = (invocation: string) =>
      inScope(
        Effect.flatMap(runOnWorkers(log, { bus, invocation, deadLetterPollMs: 20 }), (runner) =>
          runEvaluation({
            log,
            runner,
            tasks,
            benchmark: "custom",
            scorer: "gaia",
            model: "scripted",
            k: 2,
            concurrency: 4,
            runId: "on-workers",
            onProgress: (p) => progress.push(p),
          }),
        ),
      )
    const first = await evaluate("1")
    expect(first.scored).toBe(4)
    expect(first.metrics.correct).toBe(2)
    expect(first.failed.map((f) => f.taskId)).toEqual(["b", "b"])
    expect(first.failed[0]!.reason).toMatch(/a worker gave up on episode on-workers\/b\/\d/)
    expect(await Effect.runPromise(bus.deadLetters("agent"))).toHaveLength(2)
    // The dead-lettered samples started on a worker and were left unfinished: crashed, in the
    // progress line as in the report.
    const failed = boardSamples(first.state, first.board).filter((s) => isFailedSample(s.status))
    expect(failed.map((s) => `${s.taskId}#${s.sample}:${s.status}`)).toEqual(["b#0:crashed", "b#1:crashed"])
    expect(progress.at(-1)).toMatchObject({ done: 6, failures: 2, infrastructure: 2 })

    // Again: the four scored samples are not sent; the two poisoned ones are, and fail again.
    const sentBefore = (await Effect.runPromise(bus.stats("agent"))).deadLetters
    const second = await evaluate("2")
    expect(second.alreadyScored).toBe(4)
    expect(second.scored).toBe(0)
    expect(second.failed).toHaveLength(2)
    expect((await Effect.runPromise(bus.stats("agent"))).deadLetters).toBe(sentBefore + 2)
    await Effect.runPromise(host.drain)
  }, 30_000)
})
