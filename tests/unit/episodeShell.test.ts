/**
 * The episode shell on the real embedded log with an in-process scripted model and an echo tool:
 * a whole episode, a 150-turn episode (and one whose memory stays flat), resuming after the worker died mid-episode without making a
 * recorded model or tool call again, and explicit outcomes for failing ports.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { estimateTokens } from "../../src/actors/agent/context.ts"
import { defaultPolicy, type StartEpisode } from "../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { type EpisodePorts, runEpisode, type ToolPort } from "../../src/actors/agent/shell.ts"
import type { Completion } from "../../src/events/chat.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import type { LogRecord } from "../../src/events/schema.ts"
import { manualClock } from "../../src/runtime/clock.ts"

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c()
})

const openLog = async (): Promise<EventLogShape> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-episode-"))
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: "ep", fsync: "never" })),
  )
  cleanup.push(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return log
}

const start = (episodeId: string, maxTurns = 200): StartEpisode => ({
  kind: "start",
  episodeId,
  taskId: "task-1",
  sampleIndex: 0,
  question: "What is the answer?",
  model: "agent",
  policy: { ...defaultPolicy, maxTurns },
})

/** A model that calls `echo` until `toolTurns` tool results are in the context, then answers. */
const echoModel = (toolTurns: number, calls: string[]) => ({
  complete: (request: { requestId: string; messages: ReadonlyArray<{ role: string }> }) =>
    Effect.sync((): Completion => {
      calls.push(request.requestId)
      const results = request.messages.filter((m) => m.role === "tool").length
      const base = { endpoint: "in-process", latencyMs: 0, usage: { promptTokens: 10, completionTokens: 3 } }
      return results >= toolTurns
        ? { ...base, finishReason: "stop", content: "<answer>42</answer>" }
        : {
            ...base,
            finishReason: "tool_calls",
            content: "",
            toolCalls: [
              { callId: `${request.requestId}#0`, tool: "echo", arguments: { text: `turn ${results}` } },
            ],
          }
    }),
})

const echoTool = (calls: string[]): ToolPort => ({
  call: ({ callId, arguments: args }) =>
    Effect.sync(() => {
      calls.push(callId)
      return { ok: true as const, content: args as never, truncated: false }
    }),
})

const ports = (model: EpisodePorts["model"], tools: ToolPort): EpisodePorts => ({
  model,
  tools,
  parse: parseForEpisode,
  clock: manualClock(Date.parse("2026-01-01T00:00:00.000Z")),
})

const records = async (log: EventLogShape) =>
  Array.from(await Effect.runPromise(Stream.runCollect(log.read()))) as LogRecord[]

describe("episode shell", () => {
  it("runs an episode to its answer and records every step", async () => {
    const log = await openLog()
    const modelCalls: string[] = []
    const toolCalls: string[] = []
    const state = await Effect.runPromise(
      runEpisode(log, ports(echoModel(3, modelCalls), echoTool(toolCalls)), "e1", start("e1")),
    )
    expect(state.outcome).toBe("answered")
    expect(state.answer).toBe("42")
    expect(modelCalls).toEqual(["e1/model/1", "e1/model/2", "e1/model/3", "e1/model/4"])
    expect(toolCalls).toHaveLength(3)
    const types = (await records(log)).map((r) => r.type)
    expect(types.slice(0, 5)).toEqual([
      "EpisodeStarted",
      "ModelRequested",
      "ModelResponded",
      "ToolCallRequested",
      "ToolCallCompleted",
    ])
    expect(types.at(-1)).toBe("EpisodeFinished")
  })

  it("finishes a 150-turn episode", async () => {
    const log = await openLog()
    const modelCalls: string[] = []
    const state = await Effect.runPromise(
      runEpisode(log, ports(echoModel(150, modelCalls), echoTool([])), "long", start("long")),
    )
    expect(state.outcome).toBe("answered")
    expect(state.turn).toBe(151)
    expect(new Set(modelCalls).size).toBe(151)
  })

  it("keeps memory bounded over 150 turns of 64 KB tool results", async () => {
    // Unbounded, the results alone would hold 150 × 64 KB ≈ 9.4 MB; the context budget's
    // discard_all_tools reset keeps the conversation (and so the heap) flat.
    v8.setFlagsFromString("--expose-gc")
    const gc = vm.runInNewContext("gc") as () => void
    const log = await openLog()
    const budget = 20_000
    const page = "x".repeat(64 * 1024)
    const heapAt = new Map<number, number>()
    let maxContext = 0
    const model: EpisodePorts["model"] = {
      complete: (request) =>
        Effect.sync((): Completion => {
          const turn = Number(request.requestId.split("/").at(-1))
          maxContext = Math.max(maxContext, estimateTokens(request.messages))
          if (turn === 50 || turn === 150) {
            gc()
            heapAt.set(turn, process.memoryUsage().heapUsed)
          }
          const base = {
            endpoint: "in-process",
            latencyMs: 0,
            usage: { promptTokens: 10, completionTokens: 3 },
          }
          return turn > 150
            ? { ...base, finishReason: "stop", content: "<answer>42</answer>" }
            : {
                ...base,
                finishReason: "tool_calls",
                content: "",
                toolCalls: [{ callId: `${request.requestId}#0`, tool: "fetch", arguments: { turn } }],
              }
        }),
    }
    const tools: ToolPort = {
      call: () => Effect.succeed({ ok: true as const, content: `${page}${Math.random()}`, truncated: false }),
    }
    const state = await Effect.runPromise(
      runEpisode(log, ports(model, tools), "big", {
        ...start("big"),
        policy: { ...defaultPolicy, maxTurns: 200, contextBudget: budget, contextReserve: 0 },
      }),
    )
    expect(state.outcome).toBe("answered")
    expect(state.turn).toBe(151)
    // What the model saw stayed within one result over the budget (the reset comes before the call).
    expect(maxContext).toBeLessThanOrEqual(budget + 64 * 1024)
    const growth = heapAt.get(150)! - heapAt.get(50)!
    expect(growth).toBeLessThan(3 * 1024 * 1024)
  })

  it("resumes after the worker died mid-episode without repeating a recorded call", async () => {
    // The first worker is stopped (interrupted) while waiting for the model on turn 4.
    const log = await openLog()
    const calls2: string[] = []
    const tools2: string[] = []
    const dying2 = echoModel(6, calls2)
    const interrupted = {
      complete: (request: Parameters<typeof dying2.complete>[0]) =>
        request.requestId === "r/model/4" ? Effect.interrupt : dying2.complete(request),
    }
    const exit = await Effect.runPromise(
      Effect.exit(runEpisode(log, ports(interrupted as never, echoTool(tools2)), "r", start("r"))),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(calls2).toEqual(["r/model/1", "r/model/2", "r/model/3"])
    // Another worker picks the episode up from the log.
    const resumedCalls: string[] = []
    const resumedTools: string[] = []
    const state = await Effect.runPromise(
      runEpisode(log, ports(echoModel(6, resumedCalls), echoTool(resumedTools)), "r"),
    )
    expect(state.outcome).toBe("answered")
    expect(resumedCalls[0]).toBe("r/model/4")
    expect(resumedTools.some((c) => tools2.includes(c))).toBe(false)
    const all = await records(log)
    const responded = all
      .filter((r) => r.type === "ModelResponded")
      .map((r) => (r.payload as { requestId: string }).requestId)
    expect(new Set(responded).size).toBe(responded.length)
    const completed = all
      .filter((r) => r.type === "ToolCallCompleted")
      .map((r) => (r.payload as { callId: string }).callId)
    expect(new Set(completed).size).toBe(completed.length)
  })

  it("ends with model_error or tool_infrastructure_error, explicitly", async () => {
    const log = await openLog()
    const down = {
      complete: () => Effect.fail({ code: "unavailable", message: "every endpoint of agent is down" }),
    }
    const a = await Effect.runPromise(runEpisode(log, ports(down, echoTool([])), "m", start("m")))
    expect(a.outcome).toBe("model_error")
    const broken: ToolPort = {
      call: () =>
        Effect.succeed({ ok: false as const, kind: "infrastructure" as const, message: "sandbox gone" }),
    }
    const b = await Effect.runPromise(runEpisode(log, ports(echoModel(2, []), broken), "t", start("t")))
    expect(b.outcome).toBe("tool_infrastructure_error")
    expect(b.answer).toBeUndefined()
  })
})

describe("the agent actor on the host", () => {
  it("a worker stopped mid-episode hands it over; the next resumes from the log without repeating calls", async () => {
    const { agentActor } = await import("../../src/actors/agent/actor.ts")
    const { startHost } = await import("../../src/runtime/actorHost.ts")
    const { makeInProcessBus } = await import("../../src/runtime/inProcessBus.ts")
    const log = await openLog()
    const bus = makeInProcessBus()
    const aCalls: string[] = []
    const aModel = echoModel(6, aCalls)
    // Worker A's model never answers turn 4: A is then stopped, as a killed worker would be.
    const hanging = {
      complete: (request: Parameters<typeof aModel.complete>[0]) =>
        request.requestId === "ep-1/model/4"
          ? Effect.andThen(
              Effect.sync(() => aCalls.push(request.requestId)),
              Effect.never,
            )
          : aModel.complete(request),
    }
    const hostOptions = (worker: string) => ({
      worker,
      concurrency: 2,
      ackWaitMs: 50,
      maxDeliver: 5,
      drainTimeoutMs: 100,
      conflictRetries: 4,
    })
    const a = await Effect.runPromise(
      startHost(log, bus, [agentActor(ports(hanging as never, echoTool([])))], hostOptions("A")),
    )
    await Effect.runPromise(
      bus.send([
        {
          commandId: "run-ep-1",
          actorKind: "agent",
          entityId: "ep-1",
          type: "RunEpisode",
          payload: { taskId: "t", sampleIndex: 0, question: "q?", model: "agent" },
          issuedAt: "2026-01-01T00:00:00.000Z",
          correlationId: "test",
        },
      ]),
    )
    const deadline = Date.now() + 10_000
    while (!aCalls.includes("ep-1/model/4")) {
      if (Date.now() > deadline)
        throw new Error(
          `worker A never reached turn 4: ${JSON.stringify({ aCalls, letters: await Effect.runPromise(bus.deadLetters()) })}`,
        )
      await new Promise((r) => setTimeout(r, 5))
    }
    await Effect.runPromise(a.drain)
    const bCalls: string[] = []
    const b = await Effect.runPromise(
      startHost(log, bus, [agentActor(ports(echoModel(6, bCalls), echoTool([])))], hostOptions("B")),
    )
    while (!(await records(log)).some((r) => r.type === "EpisodeFinished")) {
      if (Date.now() > deadline) throw new Error("worker B never finished the episode")
      await new Promise((r) => setTimeout(r, 5))
    }
    await Effect.runPromise(b.drain)
    expect(bCalls[0]).toBe("ep-1/model/4")
    const all = await records(log)
    const responded = all
      .filter((r) => r.type === "ModelResponded")
      .map((r) => (r.payload as { requestId: string }).requestId)
    expect(responded).toEqual(Array.from({ length: 7 }, (_, i) => `ep-1/model/${i + 1}`))
    expect(all.filter((r) => r.type === "EpisodeStarted")).toHaveLength(1)
    expect(b.counters.get("agent")?.handled).toBe(1)
  })
})

describe("a decision torn by a crash", () => {
  it("is completed from the state before it, under the same ids, and the episode verifies", async () => {
    const { verify } = await import("../../src/actors/agent/replay.ts")
    const { decodeEvent } = await import("../../src/events/codec.ts")
    const Result = await import("effect/Result")
    const full = await openLog()
    await Effect.runPromise(runEpisode(full, ports(echoModel(2, []), echoTool([])), "torn", start("torn")))
    const recorded = await records(full)
    // Keep everything up to the first ModelResponded that asked for a tool, and drop the rest of
    // that decision: a worker died between the two publishes of one append.
    const cut = recorded.findIndex((r) => r.type === "ModelResponded" && r.eventId.endsWith("/result/0"))
    expect(recorded[cut + 1]?.type).toBe("ToolCallRequested")
    const partial = await openLog()
    for (const r of recorded.slice(0, cut + 1)) {
      await Effect.runPromise(
        partial.append(r.subject, [
          {
            eventId: r.eventId,
            recordedAt: r.recordedAt,
            correlationId: r.correlationId,
            causationId: r.causationId,
            actor: r.actor,
            event: r.payload as never,
          },
        ]),
      )
    }
    const state = await Effect.runPromise(runEpisode(partial, ports(echoModel(2, []), echoTool([])), "torn"))
    expect(state.outcome).toBe("answered")
    const resumed = await records(partial)
    expect(resumed[cut + 1]).toMatchObject({ type: "ToolCallRequested", eventId: recorded[cut + 1]!.eventId })
    const envelopes = resumed.map((r) => Result.getOrThrow(decodeEvent(r)))
    expect(verify(envelopes, parseForEpisode)).toMatchObject({ ok: true })
  })
})

describe("context refinement", () => {
  const longPage = "Paris is the capital of France. ".repeat(60)
  const refiningPorts = (
    summarizerDown: boolean,
    purpose: string,
    seen: Array<ReadonlyArray<{ role: string; content: string }>>,
  ) =>
    ports(
      {
        complete: (request) => {
          if (request.requestId.includes("/refine/")) {
            return summarizerDown
              ? Effect.fail({ code: "no_endpoint", message: "summarizer down" })
              : Effect.succeed({
                  endpoint: "in-process",
                  latencyMs: 0,
                  finishReason: "stop",
                  content: `summary of ${request.requestId.split("/refine/")[1]}`,
                  usage: { promptTokens: 1, completionTokens: 1 },
                })
          }
          seen.push(request.messages)
          const tools = request.messages.filter((m) => m.role === "tool").length
          return Effect.succeed(
            tools === 0
              ? {
                  endpoint: "in-process",
                  latencyMs: 0,
                  finishReason: "tool_calls",
                  content: "",
                  toolCalls: [{ callId: "fetch-1", tool: "fetch_url", arguments: { url: "u", purpose } }],
                  usage: { promptTokens: 1, completionTokens: 1 },
                }
              : {
                  endpoint: "in-process",
                  latencyMs: 0,
                  finishReason: "stop",
                  content: "<answer>Paris</answer>",
                  usage: { promptTokens: 1, completionTokens: 1 },
                },
          )
        },
      },
      { call: () => Effect.succeed({ ok: true as const, content: longPage, truncated: false }) },
    )
  const policy = {
    ...defaultPolicy,
    refineAboveTokens: 100,
    refinePageTokens: 200,
    refineModel: "summarizer",
  }
  const run = async (summarizerDown: boolean, purpose: string) => {
    const log = await openLog()
    const seen: Array<ReadonlyArray<{ role: string; content: string }>> = []
    const state = await Effect.runPromise(
      runEpisode(log, refiningPorts(summarizerDown, purpose, seen), "rf", { ...start("rf"), policy }),
    )
    return { state, seen, all: await records(log) }
  }

  it("summarizes a long result page by page before it enters the context; the raw result stays in the log", async () => {
    const { state, seen, all } = await run(false, "find the capital of France")
    expect(state.outcome).toBe("answered")
    const refined = all.find((r) => r.type === "ToolResultRefined")!.payload as {
      pages: number
      method: string
      content: string
    }
    expect(refined).toMatchObject({ pages: 3, method: "summarized" })
    const toolMessage = seen[1]!.find((m) => m.role === "tool")!
    expect(toolMessage.content).toContain("summary of 0")
    expect(toolMessage.content).toContain("summary of 2")
    expect(toolMessage.content).not.toContain("Paris is the capital")
    expect((all.find((r) => r.type === "ToolCallCompleted")!.payload as { content: string }).content).toBe(
      longPage,
    )
  })

  it("falls back to explicit truncation when the summarizer is down, and skips refinement for raw requests", async () => {
    const down = await run(true, "find the capital")
    expect((down.all.find((r) => r.type === "ToolResultRefined")!.payload as { method: string }).method).toBe(
      "truncated",
    )
    expect(down.seen[1]!.find((m) => m.role === "tool")!.content).toContain("[… truncated:")
    const raw = await run(false, "return the full page content")
    expect(raw.all.some((r) => r.type === "ToolResultRefined")).toBe(false)
    expect(raw.seen[1]!.find((m) => m.role === "tool")!.content).toBe(longPage)
  })
})

describe("the summarize context reset", () => {
  const run = async (summarizerDown: boolean) => {
    const { verify } = await import("../../src/actors/agent/replay.ts")
    const { decodeEvent } = await import("../../src/events/codec.ts")
    const Result = await import("effect/Result")
    const log = await openLog()
    const summaries: string[] = []
    const base = echoModel(12, [])
    const model: EpisodePorts["model"] = {
      complete: (request) => {
        if (request.requestId.includes("/summary/")) {
          summaries.push(request.requestId)
          return summarizerDown
            ? Effect.fail({ code: "no_endpoint", message: "summarizer down" })
            : Effect.succeed({
                endpoint: "in-process",
                latencyMs: 0,
                finishReason: "stop",
                content: "## Actions\nechoed\n## Results\nnothing yet\n## Current Status\nkeep going",
                usage: { promptTokens: 1, completionTokens: 1 },
              })
        }
        return base.complete(request)
      },
    }
    const policy = {
      ...defaultPolicy,
      contextReset: "summarize" as const,
      contextBudget: 260,
      contextReserve: 10,
    }
    const state = await Effect.runPromise(
      runEpisode(log, ports(model, echoTool([])), "sum", { ...start("sum"), policy }),
    )
    const envelopes = (await records(log)).map((r) => Result.getOrThrow(decodeEvent(r)))
    return { state, summaries, envelopes, verified: verify(envelopes, parseForEpisode) }
  }

  it("replaces the history with the summarizer's summary and goes on; replay verifies", async () => {
    const { state, summaries, envelopes, verified } = await run(false)
    expect(summaries.length).toBeGreaterThan(0)
    const resets = envelopes.filter((e) => e.event.type === "ContextReset")
    expect(resets[0]?.event).toMatchObject({
      policy: "summarize",
      summary: expect.stringContaining("## Current Status"),
    })
    // The scripted model counts tool results in its context, which a summary removes, so it keeps
    // calling tools: the episode goes on past the reset until its turn limit.
    const firstReset = envelopes.indexOf(resets[0]!)
    expect(envelopes.slice(firstReset).some((e) => e.event.type === "ModelRequested")).toBe(true)
    expect(state.outcome).toBe("turns_limit")
    expect(verified).toMatchObject({ ok: true })
  })

  it("ends at the context limit when the summarizer is down", async () => {
    const { state, verified } = await run(true)
    expect(state.outcome).toBe("context_limit")
    expect(verified).toMatchObject({ ok: true })
  })
})

describe("forking an episode at a turn", () => {
  it("replays the turns before it without calls and goes live from it; the fork verifies", async () => {
    const { forkEpisode } = await import("../../src/actors/agent/fork.ts")
    const { verify } = await import("../../src/actors/agent/replay.ts")
    const { decodeEvent } = await import("../../src/events/codec.ts")
    const Result = await import("effect/Result")
    const log = await openLog()
    await Effect.runPromise(runEpisode(log, ports(echoModel(3, []), echoTool([])), "orig", start("orig")))
    const recorded = (await records(log)).map((r) => Result.getOrThrow(decodeEvent(r)))
    const liveCalls: string[] = []
    const liveTools: string[] = []
    const live = ports(
      {
        complete: (request) =>
          Effect.sync(() => {
            liveCalls.push(request.requestId)
            return {
              endpoint: "live",
              latencyMs: 0,
              finishReason: "stop",
              content: "<answer>forked</answer>",
              usage: { promptTokens: 1, completionTokens: 1 },
            }
          }),
      },
      echoTool(liveTools),
    )
    const fork = forkEpisode(recorded, "orig~fork3", 3, live)
    if ("error" in fork) throw new Error(fork.error)
    const state = await Effect.runPromise(runEpisode(log, fork.ports, "orig~fork3", fork.start))
    expect(state.answer).toBe("forked")
    expect(liveCalls).toEqual(["orig~fork3/model/3"])
    expect(liveTools).toEqual([])
    const forked = (await records(log))
      .filter((r) => r.subject.endsWith(".orig~fork3") || r.subject.includes("orig=7Efork3"))
      .map((r) => Result.getOrThrow(decodeEvent(r)))
    expect(forked.filter((e) => e.event.type === "ToolCallCompleted")).toHaveLength(2)
    expect(verify(forked, parseForEpisode)).toMatchObject({ ok: true })
    expect(forkEpisode(recorded, "x", 9, live)).toMatchObject({
      error: expect.stringContaining("from 1 to 5"),
    })
  })
})

describe("stopping an episode from outside", () => {
  it("ends with timeout past the policy's deadline, and with cancelled on request; both verify", async () => {
    const { cancelEpisode } = await import("../../src/actors/agent/shell.ts")
    const { verify } = await import("../../src/actors/agent/replay.ts")
    const { decodeEvent } = await import("../../src/events/codec.ts")
    const Result = await import("effect/Result")
    const log = await openLog()
    const clock = manualClock(Date.parse("2026-01-01T00:00:00.000Z"))
    const slowTool: ToolPort = {
      call: () =>
        Effect.sync(() => {
          clock.advance(10_000)
          return { ok: true as const, content: "ok", truncated: false }
        }),
    }
    const timed = { ...ports(echoModel(100, []), slowTool), clock }
    const state = await Effect.runPromise(
      runEpisode(log, timed, "slow", { ...start("slow"), policy: { ...defaultPolicy, timeoutMs: 35_000 } }),
    )
    expect(state.outcome).toBe("timeout")
    expect(state.turn).toBe(4)

    // Cancel an episode whose worker was stopped mid-way; resuming it then finds it finished.
    const calls: string[] = []
    const stopping = {
      complete: (request: { requestId: string; messages: ReadonlyArray<{ role: string }> }) =>
        request.requestId === "c/model/3" ? Effect.interrupt : echoModel(10, calls).complete(request),
    }
    await Effect.runPromise(
      Effect.exit(runEpisode(log, ports(stopping as never, echoTool([])), "c", start("c"))),
    )
    const cancelled = await Effect.runPromise(cancelEpisode(log, "c", parseForEpisode))
    expect(cancelled.outcome).toBe("cancelled")
    const resumed = await Effect.runPromise(runEpisode(log, ports(echoModel(10, []), echoTool([])), "c"))
    expect(resumed.outcome).toBe("cancelled")
    for (const id of ["slow", "c"]) {
      const envelopes = (await records(log))
        .filter((r) => r.subject.endsWith(`.${id}`))
        .map((r) => Result.getOrThrow(decodeEvent(r)))
      expect(verify(envelopes, parseForEpisode), id).toMatchObject({ ok: true })
    }
  })
})
