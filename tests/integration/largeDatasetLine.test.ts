/**
 * A 50 MB dataset line through a whole evaluation, on the embedded log and on JetStream (whose
 * 1 MB message limit would refuse the episode's start event without the blob store): the task is
 * loaded from a JSONL file, the agent's model sees the whole question, the answer and the judge's
 * raw response are over the inline limit too. Everything read back from the log is whole:
 *
 * - scoring: a run interrupted while the judge thinks is resumed; the episode is not run again,
 *   its answer is read back from the log and judged right only when whole; a second run takes the
 *   judge's verdict from the log's cache (the raw response read back) without asking again;
 * - replay: the episode read from the log verifies, and its chat's user message is the question;
 * - export: the SFT line of the sample carries the whole question and answer.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Deferred, Effect, Exit, Fiber, Result, Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import type { EpisodePorts } from "../../src/actors/agent/ports.ts"
import { toChat, verify } from "../../src/actors/agent/replay.ts"
import { loadBenchmark } from "../../src/actors/evaluator/datasets/datasetLoader.ts"
import { episodeIdFor, runEvaluation } from "../../src/actors/evaluator/evalRun.ts"
import { exportRun } from "../../src/actors/evaluator/exportTrajectories.ts"
import type { JudgePort } from "../../src/actors/evaluator/scoring/judge.ts"
import type { Completion } from "../../src/events/chat.ts"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import type { Envelope, EventOf } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { manualClock } from "../../src/runtime/clock.ts"
import { bigQuestion } from "../contract/largeFieldsContract.ts"
import { startTestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"

interface Backend {
  readonly log: EventLogShape
  readonly close: () => Promise<void>
}

const openEmbedded = async (): Promise<Backend> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-bigline-"))
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace: "bigline", fsync: "never" })),
  )
  return {
    log,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

const openJetStream = async (): Promise<Backend> => {
  const server = await startTestNatsServer()
  const opened = await acquire(
    Effect.flatMap(connectNats({ servers: server.url, name: "bigline" }), (handle) =>
      makeJetStreamLog(handle, { namespace: "bigline" }),
    ),
  )
  return {
    log: opened.value,
    close: async () => {
      await opened.close()
      await server.stop()
    },
  }
}

const sha = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

/** The model's answer to a question: a digest of the question as it arrived, then 300 KB of working. */
const answerFor = (question: string) => `${sha(question)} ${"w".repeat(300_000)}`

/** The judge's raw response: 300 KB of reasoning, then its verdict. */
const judgeResponse = (correct: boolean) =>
  `${"Reasoning. ".repeat(30_000)}\n**Correct:** ${correct ? "yes" : "no"}\nconfidence: 90%`

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

const episodeOf = async (log: EventLogShape, episodeId: string): Promise<Envelope[]> => {
  const entries = await run(
    Stream.runCollect(log.read({ filter: entitySubject(log.namespace, "episode", episodeId) })),
  )
  return Array.from(entries).map((entry) => {
    if (entry instanceof UndecodableEvent) throw entry
    return Result.getOrThrow(decodeEvent(entry))
  })
}

describe.each([
  ["embedded", openEmbedded],
  ["jetstream", openJetStream],
])("a 50 MB dataset line on the %s log", (_name, open) => {
  it("is scored, replayed and exported whole", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-bigline-data-"))
    const backend = await open()
    try {
      const { log } = backend
      const question = bigQuestion(50 * 1024 * 1024)
      const file = path.join(dir, "tasks.jsonl")
      fs.writeFileSync(
        file,
        `${JSON.stringify({ id: "big", q: question, a: answerFor(question) })}\n${JSON.stringify({ id: "small", q: "What is two and two?", a: answerFor("What is two and two?") })}\n`,
      )
      expect(fs.statSync(file).size).toBeGreaterThan(50 * 1024 * 1024)
      const loaded = await run(
        loadBenchmark("custom", file, { mapping: { question: "q", answer: "a", id: "id" } }),
      )
      expect(loaded.tasks.map((t) => t.taskId)).toEqual(["big", "small"])

      const modelCalls: string[] = []
      const ports: EpisodePorts = {
        model: {
          complete: (request) =>
            Effect.sync((): Completion => {
              modelCalls.push(request.requestId)
              const user = request.messages.find((m) => m.role === "user")!.content
              // The task prompt wraps the question: answer for the question inside it.
              const asked = loaded.tasks.find((t) => user.includes(t.question.trimEnd()))
              return {
                endpoint: "in-process",
                latencyMs: 0,
                usage: { promptTokens: 10, completionTokens: 10 },
                finishReason: "stop",
                content: `<answer>${asked === undefined ? "lost question" : answerFor(asked.question)}</answer>`,
              }
            }),
        },
        tools: { call: () => Effect.die(new Error("no tools in this test")) },
        parse: parseForEpisode,
        clock: manualClock(Date.parse("2026-01-01T00:00:00.000Z")),
      }
      const judgeCalls: string[] = []
      let holdBigJudgement = true
      const bigJudged = Deferred.makeUnsafe<void>()
      const judge: JudgePort = {
        complete: (messages) =>
          Effect.suspend(() => {
            const prompt = messages.map((m) => m.content).join("\n")
            const isBig = prompt.includes(question)
            judgeCalls.push(isBig ? "big" : "small")
            if (isBig && holdBigJudgement) {
              Deferred.doneUnsafe(bigJudged, Exit.void)
              return Effect.never
            }
            // Right only when the prediction is the whole expected answer.
            const task = isBig ? loaded.tasks[0]! : loaded.tasks[1]!
            const whole = prompt.includes(task.answer)
            return Effect.succeed(judgeResponse(whole))
          }),
      }
      const options = (runId: string) => ({
        log,
        ports,
        tasks: loaded.tasks,
        benchmark: "custom",
        scorer: "agentcpm" as const,
        judge: { model: "judge", port: judge, temperature: 0 },
        model: "agent",
        k: 1,
        concurrency: 2,
        runId,
        policy: { maxTurns: 3, contextBudget: 40_000_000 },
      })

      // Run 1, interrupted while the judge thinks about the big sample (the small one is scored).
      const smallScored = Deferred.makeUnsafe<void>()
      const first = Effect.runFork(
        runEvaluation({
          ...options("r1"),
          onProgress: (p) => {
            if (p.done >= 1) Deferred.doneUnsafe(smallScored, Exit.void)
          },
        }),
      )
      await run(Deferred.await(bigJudged))
      await run(Deferred.await(smallScored))
      await run(Fiber.interrupt(first))
      const bigEpisode = episodeIdFor("r1", "big", 0)
      const recorded = await episodeOf(log, bigEpisode)
      const finished = recorded.find((e) => e.event.type === "EpisodeFinished")
        ?.event as EventOf<"EpisodeFinished">
      expect(finished.answer).toBe(answerFor(question))

      // The resume judges the ending it reads back from the log; the episode does not run again.
      holdBigJudgement = false
      const resumed = await run(runEvaluation(options("r1")))
      expect(resumed.resumed).toBe(true)
      expect(resumed.alreadyScored).toBe(1)
      expect(resumed.scored).toBe(1)
      expect(modelCalls.filter((id) => id.startsWith(`${bigEpisode}/`))).toHaveLength(1)
      expect(resumed.metrics.correct).toBe(2)
      expect(resumed.judge).toEqual({ asked: 1, cached: 0 })

      // A second run asks the model again and takes both verdicts from the log's judge cache.
      const judgedBefore = judgeCalls.length
      const second = await run(runEvaluation(options("r2")))
      expect(second.metrics.correct).toBe(2)
      expect(second.judge).toEqual({ asked: 0, cached: 2 })
      expect(judgeCalls).toHaveLength(judgedBefore)
      const verdicts = Array.from(await run(Stream.runCollect(log.read())))
        .filter((e) => !(e instanceof UndecodableEvent) && e.type === "JudgeVerdictRecorded")
        .map((e) => Result.getOrThrow(decodeEvent(e as never)).event as EventOf<"JudgeVerdictRecorded">)
      expect(verdicts).toHaveLength(2)
      for (const v of verdicts) expect(v.responses).toEqual([judgeResponse(true)])

      // Replay: the episode read from the log verifies, and its chat asks the whole question.
      const replayed = await episodeOf(log, bigEpisode)
      expect(verify(replayed, parseForEpisode).ok).toBe(true)
      const chat = toChat(replayed)
      const user = chat.find((m) => m.role === "user")!
      expect(user.content.includes(question)).toBe(true)
      expect(user.content.length).toBeGreaterThanOrEqual(question.length)

      // Export: the SFT line of the big sample carries the whole question and answer.
      const out = path.join(dir, "export")
      await run(exportRun(log, resumed.state, resumed.board, "sft", out))
      const lines = fs.readFileSync(path.join(out, "sft.jsonl"), "utf8").trimEnd().split("\n")
      const big = lines
        .map(
          (line) =>
            JSON.parse(line) as {
              messages: Array<{ role: string; content: string }>
              metadata: { task_id: string }
            },
        )
        .find((line) => line.metadata.task_id === "big")!
      expect(big.messages.find((m) => m.role === "user")!.content.includes(question)).toBe(true)
      expect(big.messages.find((m) => m.role === "assistant")!.content).toContain(answerFor(question))
    } finally {
      await backend.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 300_000)
})
