/**
 * `runEvaluation` on the real embedded log with an in-process model and echo tool (HTTP adds
 * nothing here; the CLI test goes over HTTP): a run interrupted part-way and resumed equals an
 * uninterrupted one (same verdicts, same metrics, no recorded model call made again, every sample
 * scored once); the scoreboard rebuilt from the log by `foldAll` equals the live report; samples
 * whose model fails count as crashed and are listed; the progress line counts as failed exactly
 * the samples the report and the rebuilt scoreboard list as failed (one that could not start, one
 * left stuck, crashes), on a resume too; judge verdicts are recorded and never asked twice; and no
 * ground truth ever reaches the log.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import type { EpisodePorts, ModelPort, ToolPort } from "../../src/actors/agent/ports.ts"
import { EpisodeStuck } from "../../src/actors/agent/shell.ts"
import type { Task } from "../../src/actors/evaluator/datasets/task.ts"
import { type EpisodeRunner, runHere } from "../../src/actors/evaluator/episodeRunner.ts"
import { type EvalProgress, type EvalRunOptions, runEvaluation } from "../../src/actors/evaluator/evalRun.ts"
import { JudgeCallError, type JudgePort } from "../../src/actors/evaluator/scoring/judge.ts"
import type { Completion } from "../../src/events/chat.ts"
import { decodeEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import type { Envelope, EventOf, LogRecord } from "../../src/events/schema.ts"
import { foldAll } from "../../src/projections/projection.ts"
import { evalReport } from "../../src/projections/scoreboard/queries.ts"
import { isFailedSample } from "../../src/projections/scoreboard/sampleStatus.ts"
import { scoreboard } from "../../src/projections/scoreboard/scoreboard.ts"
import { boardMetrics, boardSamples } from "../../src/projections/scoreboard/scoreboardMetrics.ts"
import { manualClock } from "../../src/runtime/clock.ts"

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c()
})

const openLog = async (): Promise<{ log: EventLogShape; file: string }> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-evalrun-"))
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: "ev", fsync: "never" })),
  )
  cleanup.push(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { log, file: path.join(dir, "log", "ev", "events.ndjson") }
}

/** Ground truths look nothing like what the model writes, yet match under GAIA's string rules. */
const tasks: ReadonlyArray<Task> = Array.from({ length: 6 }, (_, i) => ({
  taskId: `t${i}`,
  question: `Which word names task t${i}?`,
  answer: `Answer-T${i}-Zeta`,
  level: String((i % 2) + 1),
  metadata: {},
}))

/** Which task and sample a request belongs to, from its id `<run>/<task>/<sample>/model/<turn>`. */
const sampleOf = (requestId: string) => {
  const [, taskId, sample] = requestId.split("/")
  return { taskId: taskId!, sample: Number(sample) }
}

/**
 * A model that calls `echo` twice, then answers: right when (task + sample) is not a multiple of 3,
 * wrong otherwise; task t5 always fails (a model outage). Each call yields first, so fibers interleave.
 */
const model = (calls: string[]): ModelPort => ({
  complete: (request) =>
    Effect.andThen(Effect.yieldNow, () => {
      calls.push(request.requestId)
      const { taskId, sample } = sampleOf(request.requestId)
      const index = Number(taskId.slice(1))
      if (index === 5) return Effect.fail({ code: "http_503", message: "model down" })
      const base = { endpoint: "in-process", latencyMs: 0, usage: { promptTokens: 50, completionTokens: 5 } }
      const results = request.messages.filter((m) => m.role === "tool").length
      if (results < 2)
        return Effect.succeed<Completion>({
          ...base,
          finishReason: "tool_calls",
          content: "",
          toolCalls: [{ callId: `c${results}`, tool: "echo", arguments: { text: `look ${results}` } }],
        })
      const answer = (index + sample) % 3 === 0 ? "no idea" : `answer t${index} zeta.`
      return Effect.succeed<Completion>({
        ...base,
        finishReason: "stop",
        content: `<answer>${answer}</answer>`,
      })
    }),
})

const echo = (calls: string[]): ToolPort => ({
  call: ({ callId, episodeId, arguments: args }) =>
    Effect.sync(() => {
      calls.push(`${episodeId}/${callId}`)
      return { ok: true as const, content: args as never, truncated: false }
    }),
})

const ports = (modelCalls: string[], toolCalls: string[]): EpisodePorts => ({
  model: model(modelCalls),
  tools: echo(toolCalls),
  parse: parseForEpisode,
  clock: manualClock(Date.parse("2026-01-01T00:00:00.000Z")),
})

const options = (log: EventLogShape, runId: string, p: EpisodePorts): EvalRunOptions => ({
  log,
  ports: p,
  tasks,
  benchmark: "custom",
  scorer: "gaia",
  model: "agent",
  k: 3,
  concurrency: 4,
  runId,
  policy: { maxTurns: 10 },
})

const envelopesOf = async (log: EventLogShape): Promise<Envelope[]> => {
  const entries = await Effect.runPromise(Stream.runCollect(log.read()))
  return entries.map((e) => Result.getOrThrow(decodeEvent(e as LogRecord)))
}

const scoredOf = (envelopes: ReadonlyArray<Envelope>, runId: string) =>
  envelopes
    .map((e) => e.event)
    .filter((e): e is EventOf<"SampleScored"> => e.type === "SampleScored" && e.runId === runId)

describe("runEvaluation", () => {
  it("resumes an interrupted run to the same result as an uninterrupted one, repeating no recorded call", async () => {
    const { log, file } = await openLog()
    const fullCalls: string[] = []
    const full = await Effect.runPromise(runEvaluation(options(log, "full", ports(fullCalls, []))))
    expect(full.status).toBe("completed")
    expect(full.scored).toBe(18)

    // The same run, interrupted once 7 samples are done.
    const firstCalls: string[] = []
    const firstTools: string[] = []
    const seven = Deferred.makeUnsafe<void>()
    const fiber = Effect.runFork(
      runEvaluation({
        ...options(log, "resumed", ports(firstCalls, firstTools)),
        onProgress: (p) => {
          if (p.done >= 7) Deferred.doneUnsafe(seven, Exit.void)
        },
      }),
    )
    await Effect.runPromise(Deferred.await(seven))
    await Effect.runPromise(Fiber.interrupt(fiber))
    const atInterrupt = await envelopesOf(log)
    const scoredBefore = scoredOf(atInterrupt, "resumed")
    expect(scoredBefore.length).toBeGreaterThanOrEqual(7)
    expect(scoredBefore.length).toBeLessThan(18)
    const recordedRequests = new Set(
      atInterrupt
        .map((e) => e.event)
        .filter(
          (e): e is EventOf<"ModelResponded"> | EventOf<"ModelCallFailed"> =>
            (e.type === "ModelResponded" || e.type === "ModelCallFailed") &&
            e.episodeId.startsWith("resumed/"),
        )
        .map((e) => e.requestId),
    )
    const recordedTools = new Set(
      atInterrupt
        .map((e) => e.event)
        .filter(
          (e): e is EventOf<"ToolCallCompleted"> =>
            e.type === "ToolCallCompleted" && e.episodeId.startsWith("resumed/"),
        )
        .map((e) => `${e.episodeId}/${e.callId}`),
    )
    const scoredEpisodes = new Set(scoredBefore.map((s) => s.episodeId))

    const secondCalls: string[] = []
    const secondTools: string[] = []
    const resumed = await Effect.runPromise(
      runEvaluation(options(log, "resumed", ports(secondCalls, secondTools))),
    )
    expect(resumed.resumed).toBe(true)
    expect(resumed.alreadyScored).toBe(scoredBefore.length)
    expect(resumed.scored).toBe(18 - scoredBefore.length)

    // No recorded model or tool call was made again; no scored sample's episode ran again.
    expect(secondCalls.filter((id) => recordedRequests.has(id))).toEqual([])
    expect(secondTools.filter((id) => recordedTools.has(id))).toEqual([])
    expect(secondCalls.filter((id) => scoredEpisodes.has(id.split("/model/")[0]!))).toEqual([])
    // Together the two parts asked for exactly the calls of the uninterrupted run.
    const strip = (id: string) => id.slice(id.indexOf("/"))
    expect(new Set([...firstCalls, ...secondCalls].map(strip))).toEqual(new Set(fullCalls.map(strip)))

    // Every sample scored once, with the uninterrupted run's verdicts and metrics.
    const after = await envelopesOf(log)
    const verdicts = (runId: string) =>
      scoredOf(after, runId)
        .map((s) => `${s.taskId}#${s.sampleIndex}:${s.verdict}:${s.score}`)
        .sort()
    expect(verdicts("resumed")).toHaveLength(18)
    expect(new Set(verdicts("resumed")).size).toBe(18)
    expect(verdicts("resumed")).toEqual(verdicts("full"))
    const starts = after.filter((e) => e.event.type === "EpisodeStarted" && e.event.runId === "resumed")
    expect(starts).toHaveLength(18)
    expect(resumed.metrics).toStrictEqual(full.metrics)
    expect(after.filter((e) => e.event.type === "RunStarted" && e.event.runId === "resumed")).toHaveLength(1)

    // 10 of the 15 answering samples are right; t5 (3 samples) crashed on its model and is listed.
    expect(full.metrics.correct).toBe(10)
    expect(full.metrics.avgAtK).toBeCloseTo(10 / 18, 12)
    expect(full.metrics.notScored).toEqual([
      { taskId: "t5", sample: 0, status: "crashed" },
      { taskId: "t5", sample: 1, status: "crashed" },
      { taskId: "t5", sample: 2, status: "crashed" },
    ])
    expect(full.metrics.usage.toolCalls).toMatchObject({ samples: 18, total: 30 })

    // The ground truth never entered the log (the model's answers differ from it in the raw text).
    const raw = fs.readFileSync(file, "utf8")
    for (const t of tasks) expect(raw).not.toContain(t.answer)
    expect(raw).toContain("Which word names task t0?")
  })

  it("rebuilds from the log by foldAll exactly the scores the live run reported", async () => {
    const { log } = await openLog()
    const first = await Effect.runPromise(runEvaluation(options(log, "a", ports([], []))))
    const second = await Effect.runPromise(
      runEvaluation({ ...options(log, "b", ports([], [])), k: 2, limit: 4 }),
    )
    const state = foldAll(scoreboard, await envelopesOf(log))
    for (const live of [first, second]) {
      const rebuilt = state.runs[live.runId]!
      expect(boardMetrics(state, rebuilt)).toStrictEqual(live.metrics)
      expect(boardSamples(state, rebuilt)).toStrictEqual(boardSamples(live.state, live.board))
      expect(evalReport(state, rebuilt, boardMetrics(state, rebuilt))).toStrictEqual(
        evalReport(live.state, live.board, live.metrics),
      )
    }
    expect(second.metrics).toMatchObject({ k: 2, tasks: 4, runs: 8 })

    // Running a finished run again does nothing and reports the same.
    const calls: string[] = []
    const again = await Effect.runPromise(runEvaluation(options(log, "a", ports(calls, []))))
    expect(calls).toEqual([])
    expect(again).toMatchObject({ resumed: true, alreadyScored: 18, scored: 0, status: "completed" })
    expect(again.metrics).toStrictEqual(first.metrics)
    const finished = (await envelopesOf(log)).filter(
      (e) => e.event.type === "RunFinished" && e.event.runId === "a",
    )
    expect(finished).toHaveLength(1)
  })

  it("refuses to resume a run with other options", async () => {
    const { log } = await openLog()
    await Effect.runPromise(runEvaluation({ ...options(log, "x", ports([], [])), limit: 2, k: 1 }))
    const other = await Effect.runPromise(
      Effect.flip(runEvaluation({ ...options(log, "x", ports([], [])), limit: 3, k: 1 })),
    )
    expect(other._tag).toBe("EvalRunRejected")
    expect(other.message).toContain("tasks")
    const rejected = (changes: Partial<EvalRunOptions>) =>
      Effect.runPromise(
        Effect.flip(runEvaluation({ ...options(log, "x", ports([], [])), limit: 2, k: 1, ...changes })),
      ).then((e) => e.message)
    expect(await rejected({ policy: { maxTurns: 50 } })).toContain("episode policy")
    expect(await rejected({ model: "other" })).toContain("model agent")
    expect(await rejected({ k: 2 })).toContain("k = 1")
    expect(
      await rejected({
        scorer: "agentcpm",
        judge: { model: "j", port: { complete: () => Effect.succeed("") } },
      }),
    ).toContain("gaia scorer")
    const badId = await Effect.runPromise(Effect.flip(runEvaluation(options(log, "a/b", ports([], [])))))
    expect(badId._tag).toBe("EvalRunRejected")
    const noJudge = await Effect.runPromise(
      Effect.flip(runEvaluation({ ...options(log, "y", ports([], [])), scorer: "agentcpm" })),
    )
    expect(noJudge._tag).toBe("JudgeRequired")
  })

  it("records judge verdicts and never asks the same judgement twice", async () => {
    const { log, file } = await openLog()
    const judgeCalls: string[] = []
    const judge: JudgePort = {
      complete: (messages) =>
        Effect.sync(() => {
          const prompt = messages.map((m) => m.content).join("\n")
          judgeCalls.push(prompt)
          // A judge that finds "no idea" wrong and anything else right; task t4's first answer is unparseable.
          if (prompt.includes("t4 zeta") && judgeCalls.filter((p) => p === prompt).length === 1)
            return "I cannot decide."
          return prompt.includes("no idea") ? "correct: no" : "**Correct:** yes\nconfidence: 80%"
        }),
    }
    const judged = (runId: string) => ({
      ...options(log, runId, ports([], [])),
      scorer: "agentcpm" as const,
      judge: { model: "judge", port: judge, temperature: 0 },
    })
    const first = await Effect.runPromise(runEvaluation(judged("j1")))
    // Distinct (task, answer) pairs among the 15 answering samples: t0..t4 each answer right and
    // "no idea"; t4's first verdict is retried once. Same judgement in one run → one judgement.
    const pairs = 5 * 2
    expect(first.judge.asked).toBe(pairs)
    expect(first.judge.cached).toBe(15 - pairs)
    expect(judgeCalls).toHaveLength(pairs + 1)
    expect(first.metrics.correct).toBe(10)
    expect(first.metrics.statusCounts.judge_failed).toBe(0)

    const second = await Effect.runPromise(runEvaluation(judged("j2")))
    expect(second.judge).toEqual({ asked: 0, cached: 15 })
    expect(judgeCalls).toHaveLength(pairs + 1)
    expect(second.metrics).toStrictEqual(first.metrics)

    const recorded = (await envelopesOf(log)).filter((e) => e.event.type === "JudgeVerdictRecorded")
    expect(recorded).toHaveLength(pairs)
    const retried = recorded
      .map((e) => e.event as EventOf<"JudgeVerdictRecorded">)
      .find((e) => e.attempts === 2)
    expect(retried).toMatchObject({
      verdict: "correct",
      judgeModel: "judge",
      temperature: 0,
      responses: ["I cannot decide.", expect.any(String)],
    })
    expect(retried?.promptHash).toMatch(/^[0-9a-f]{64}$/)
    // The judge's prompt holds the ground truth; the log holds only its hash.
    const raw = fs.readFileSync(file, "utf8")
    for (const t of tasks) expect(raw).not.toContain(t.answer)
  })

  it("counts a judge that cannot be reached as judge_failed, and asks it again next time", async () => {
    const { log } = await openLog()
    let up = false
    let calls = 0
    const judge: JudgePort = {
      complete: () =>
        Effect.suspend(() => {
          calls++
          return up
            ? Effect.succeed("correct: yes")
            : Effect.fail(new JudgeCallError({ model: "judge", reason: "connection refused" }))
        }),
    }
    const judged = (runId: string) => ({
      ...options(log, runId, ports([], [])),
      tasks: tasks.slice(0, 1),
      k: 1,
      scorer: "agentcpm" as const,
      judge: { model: "judge", port: judge },
    })
    const down = await Effect.runPromise(runEvaluation(judged("down")))
    expect(down.metrics.statusCounts.judge_failed).toBe(1)
    expect(down.metrics.notScored).toEqual([{ taskId: "t0", sample: 0, status: "judge_failed" }])
    up = true
    const back = await Effect.runPromise(runEvaluation(judged("back")))
    expect(back.judge).toEqual({ asked: 1, cached: 0 })
    expect(back.metrics.correct).toBe(1)
    expect(calls).toBe(2)
  })

  it("counts as failed while it runs exactly the samples the report and the rebuilt scoreboard list as failed", async () => {
    const { log } = await openLog()
    // t3's sample 0 cannot even start; t4's sample 1 starts and gets stuck on a tool result that
    // cannot be recorded (not JSON); t5's samples crash on their model.
    const poisoned: ToolPort = {
      call: (request) =>
        request.episodeId === "f/t4/1"
          ? Effect.succeed({ ok: true as const, content: Number.NaN as never, truncated: false })
          : echo([]).call(request),
    }
    const here = runHere({ ...ports([], []), tools: poisoned })
    const runner: EpisodeRunner = {
      where: "this test",
      run: (runLog, start) =>
        start.episodeId === "f/t3/0"
          ? Effect.fail(new EpisodeStuck("refused before it started"))
          : here.run(runLog, start),
    }
    const progress: EvalProgress[] = []
    const result = await Effect.runPromise(
      runEvaluation({ ...options(log, "f", ports([], [])), runner, onProgress: (p) => progress.push(p) }),
    )
    expect(result.status).toBe("failed")
    expect(result.failed.map((f) => `${f.taskId}#${f.sample}`).sort()).toEqual(["t3#0", "t4#1"])
    const failedIn = (samples: ReturnType<typeof boardSamples>) =>
      samples.filter((s) => isFailedSample(s.status)).map((s) => `${s.taskId}#${s.sample}:${s.status}`)
    const live = failedIn(boardSamples(result.state, result.board))
    expect(live.sort()).toEqual(["t4#1:crashed", "t5#0:crashed", "t5#1:crashed", "t5#2:crashed"])
    const rebuilt = foldAll(scoreboard, await envelopesOf(log))
    expect(failedIn(boardSamples(rebuilt, rebuilt.runs.f!)).sort()).toEqual(live.sort())
    const last = progress.at(-1)!
    expect(last).toMatchObject({ done: 18, total: 18, failures: live.length, infrastructure: live.length })

    // A resume counts the scored samples as the log says, before it runs the other two again.
    const again: EvalProgress[] = []
    await Effect.runPromise(
      runEvaluation({ ...options(log, "f", ports([], [])), runner, onProgress: (p) => again.push(p) }),
    )
    expect(again[0]).toMatchObject({ done: 16, resumedDone: 16, failures: 3, infrastructure: 3 })
    expect(again.at(-1)).toMatchObject({ done: 18, failures: 4 })
  })
})
