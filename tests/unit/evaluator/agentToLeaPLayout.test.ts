/**
 * The AgentToLeaP layout's pure parts, against the facts of AgentCPM-Explore's report code: a task
 * id is its own folder when it is a safe file name and otherwise gets a distinct, decodable,
 * bounded one (fuzzed); `result.json` carries `task_id`, `query`, `success` (the episode ran to its
 * own end), `conversation_history` (whose last assistant message holds the answer), `tool_calls`
 * as call records, `execution_time` in seconds, `interactions` and `max_interactions_reached`
 * beside our own fields; `dialog.json` has only user, assistant and tool messages, the tool ones
 * with `name`. Episodes are driven through the real decider, so the events are the ones it writes.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import {
  decide,
  defaultPolicy,
  evolve,
  type Input,
  initial,
  nextIntent,
} from "../../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../../src/actors/agent/index.ts"
import { toChat } from "../../../src/actors/agent/replay.ts"
import {
  agentToLeaPFiles,
  MAX_FOLDER_BYTES,
  taskFolder,
} from "../../../src/actors/evaluator/agentToLeaPLayout.ts"
import type { DomainEvent, Envelope } from "../../../src/events/schema.ts"

const FOLDER = /^[A-Za-z0-9._%~-]+$/

describe("taskFolder", () => {
  it.each([
    ["q01", "q01"],
    ["c61d22de-5f6c-4958-a7f6-5e9707bd3466", "c61d22de-5f6c-4958-a7f6-5e9707bd3466"],
    ["task_1.v2", "task_1.v2"],
    ["a/b", "a%2Fb"],
    ["x y?", "x%20y%3F"],
    ["日本", "%E6%97%A5%E6%9C%AC"],
    ["100%", "100%25"],
    [".", "%2E"],
    ["..", "%2E%2E"],
    ["...", "..."],
    ["", "~empty"],
  ])("%j → %s", (id, folder) => {
    expect(taskFolder(id)).toBe(folder)
  })

  it("cuts an over-long id and ends it with ~ and a hash, never inside a %XX", () => {
    const long = "é".repeat(300)
    const folder = taskFolder(long)
    expect(folder).toMatch(/^(%C3%A9)+~[0-9a-f]{16}$/)
    expect(folder.length).toBeLessThanOrEqual(MAX_FOLDER_BYTES)
    expect(taskFolder(`${long}x`)).not.toBe(folder)
    const safeButLong = "a".repeat(MAX_FOLDER_BYTES + 1)
    expect(taskFolder(safeButLong)).toMatch(/^a{200}~[0-9a-f]{16}$/)
    expect(taskFolder("a".repeat(MAX_FOLDER_BYTES))).toBe("a".repeat(MAX_FOLDER_BYTES))
  })

  test.prop([fc.string({ unit: "binary", maxLength: 300 })], { numRuns: 2000 })(
    "is one path component of safe characters, at most 255 bytes, never . or ..; decodes back unless hashed",
    (id) => {
      const folder = taskFolder(id)
      expect(folder).toMatch(FOLDER)
      expect(Buffer.byteLength(folder)).toBeLessThanOrEqual(MAX_FOLDER_BYTES)
      expect([".", ".."]).not.toContain(folder)
      if (!folder.includes("~")) expect(decodeURIComponent(folder)).toBe(id)
    },
  )

  test.prop([fc.stringMatching(/^[A-Za-z0-9._-]{1,255}$/).filter((s) => s !== "." && s !== "..")])(
    "keeps a safe id as it is",
    (id) => {
      expect(taskFolder(id)).toBe(id)
    },
  )

  test.prop(
    [
      fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.stringMatching(/^[A-Za-z0-9%~._/-]{0,8}$/)),
      fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.stringMatching(/^[A-Za-z0-9%~._/-]{0,8}$/)),
    ],
    { numRuns: 2000 },
  )("gives different ids different folders", (a, b) => {
    fc.pre(a !== b)
    expect(taskFolder(a)).not.toBe(taskFolder(b))
  })

  test.prop([fc.string({ unit: "binary", maxLength: 300 })], { numRuns: 1000 })(
    "never gives a mapped id the folder of the id that is spelled like that folder",
    (id) => {
      const folder = taskFolder(id)
      fc.pre(folder !== id)
      expect(taskFolder(folder)).not.toBe(folder)
    },
  )

  it("keeps ids apart that differ only in a lone surrogate", () => {
    expect(taskFolder("a\ud800")).not.toBe(taskFolder("a\ud801"))
    expect(taskFolder("a\ud800")).toMatch(/~[0-9a-f]{16}$/)
  })
})

/** Runs one episode through the decider; each event is recorded one second after the previous. */
const episode = (
  replies: ReadonlyArray<Input & { kind: "model_responded" | "model_failed" }>,
  tool: (name: string) => "ok" | "down",
  maxTurns = 10,
): ReadonlyArray<Envelope> => {
  const envelopes: Envelope[] = []
  let state = initial
  const record = (events: ReadonlyArray<DomainEvent>) => {
    for (const event of events) {
      const n = envelopes.length
      const envelope: Envelope = {
        eventId: `e${n}`,
        position: n + 1,
        subject: "t.ev.episode.ep",
        schemaVersion: 1,
        recordedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
        correlationId: "c",
        causationId: "c",
        actor: "agent",
        event,
      }
      envelopes.push(envelope)
      state = evolve(state, envelope)
    }
  }
  const run = (input: Input) => record(Result.getOrThrow(decide(state, input, parseForEpisode)))
  run({
    kind: "start",
    episodeId: "r/a/b/0",
    taskId: "a/b",
    sampleIndex: 0,
    question: "Which town has the lighthouse?",
    model: "m",
    policy: { ...defaultPolicy, maxTurns },
  })
  let reply = 0
  for (let guard = 0; guard < 100; guard++) {
    const intent = nextIntent(state)
    if (intent.kind === "finished") break
    if (intent.kind === "prepare") run({ kind: "prepare" })
    else if (intent.kind === "call_model") run(replies[reply++] ?? replies.at(-1)!)
    else if (intent.kind === "call_tools")
      record(
        intent.pending.map((callId): DomainEvent => {
          const name = state.messages
            .toArray()
            .flatMap((m) => m.toolCalls ?? [])
            .find((c) => c.callId === callId)!.tool
          return tool(name) === "ok"
            ? {
                type: "ToolCallCompleted",
                episodeId: "r/a/b/0",
                callId,
                tool: name,
                content: `results for ${name}`,
                truncated: false,
                latencyMs: 12,
              }
            : {
                type: "ToolCallFailed",
                episodeId: "r/a/b/0",
                callId,
                tool: name,
                kind: "tool",
                message: `${name} is down`,
              }
        }),
      )
    else throw new Error(`unexpected intent ${intent.kind}`)
  }
  return envelopes
}

const responded = (
  content: string,
  calls: ReadonlyArray<{ tool: string; arguments: { readonly [key: string]: string } }> = [],
  reasoning?: string,
): Input & { kind: "model_responded" } => ({
  kind: "model_responded",
  response: {
    endpoint: "http://127.0.0.1:1/v1",
    latencyMs: 5,
    finishReason: calls.length > 0 ? "tool_calls" : "stop",
    content,
    ...(reasoning === undefined ? {} : { reasoning }),
    ...(calls.length > 0
      ? { toolCalls: calls.map((c, i) => ({ callId: `call-${i}`, tool: c.tool, arguments: c.arguments })) }
      : {}),
    usage: { promptTokens: 10, completionTokens: 5 },
  },
})

const run = { runId: "r", model: "m", benchmark: "custom" }
const files = (envelopes: ReadonlyArray<Envelope>, verdict: "correct" | "incorrect" | null, traj = 0) => {
  const finished = envelopes.findLast((e) => e.event.type === "EpisodeFinished")!.event
  if (finished.type !== "EpisodeFinished") throw new Error("unfinished")
  return agentToLeaPFiles(
    run,
    {
      taskId: "a/b",
      sample: 3,
      episodeId: "r/a/b/0",
      outcome: finished.outcome,
      verdict,
      turns: finished.turns,
      toolCalls: 2,
      promptTokens: 30,
      completionTokens: 15,
    },
    traj,
    envelopes,
    toChat(envelopes),
  )
}

describe("agentToLeaPFiles", () => {
  it("writes AgentToLeaP's result fields beside ours, and a dialog of user, assistant and tool messages", () => {
    const envelopes = episode(
      [
        responded(
          "Looking it up.",
          [
            { tool: "search", arguments: { query: "lighthouse town" } },
            { tool: "fetch_url", arguments: { url: "https://x.invalid/a" } },
          ],
          "I should search first.",
        ),
        responded("<answer>Harrowmere</answer>"),
      ],
      (name) => (name === "search" ? "ok" : "down"),
    )
    const { result, dialog } = files(envelopes, "correct", 2)
    expect(result).toMatchObject({
      task_id: "a/b",
      query: "Which town has the lighthouse?",
      success: true,
      interactions: 2,
      max_interactions_reached: false,
      sample: 3,
      traj: 2,
      run_id: "r",
      episode_id: "r/a/b/0",
      model: "m",
      benchmark: "custom",
      outcome: "answered",
      final_answer: "Harrowmere",
      verdict: "correct",
      correct: true,
      score: 1,
      turns: 2,
      tool_call_count: 2,
      usage: { prompt_tokens: 30, completion_tokens: 15 },
    })
    expect(result).not.toHaveProperty("error")
    // One second per event, from EpisodeStarted to EpisodeFinished.
    expect(result.execution_time).toBe(envelopes.length - 1)

    const history = result.conversation_history as ReadonlyArray<Record<string, unknown>>
    const last = history.findLast((m) => m.role === "assistant")
    expect(last?.content).toBe("<answer>Harrowmere</answer>")
    expect(history.find((m) => m.role === "assistant")).toMatchObject({ thought: "I should search first." })
    expect(last).not.toHaveProperty("thought")

    expect(result.tool_calls).toEqual([
      {
        id: "call-0",
        type: "function",
        function: { name: "search", arguments: '{"query":"lighthouse town"}' },
        response: { status_code: 200, detail: "", content: "results for search" },
        latency_ms: 12,
        truncated: false,
      },
      {
        id: "call-1",
        type: "function",
        function: { name: "fetch_url", arguments: '{"url":"https://x.invalid/a"}' },
        response: { status_code: 500, detail: "fetch_url is down", error: "fetch_url is down" },
        error: "fetch_url is down",
        error_kind: "tool",
      },
    ])

    expect(dialog.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool", "assistant"])
    expect(dialog.filter((m) => m.role === "tool").map((m) => [m.tool_call_id, m.name])).toEqual([
      ["call-0", "search"],
      ["call-1", "fetch_url"],
    ])
  })

  it("marks an episode stopped by a model failure as success: false, with the error", () => {
    const envelopes = episode(
      [{ kind: "model_failed", code: "http_400", message: "context too long" }],
      () => "ok",
    )
    const { result, dialog } = files(envelopes, "incorrect")
    expect(result).toMatchObject({
      success: false,
      outcome: "model_error",
      final_answer: null,
      correct: false,
      score: 0,
      tool_calls: [],
    })
    expect(result.error).toContain("http_400")
    expect(result.error).toContain("context too long")
    expect(dialog.map((m) => m.role)).toEqual(["user"])
  })

  it("says when the turn limit was reached", () => {
    const envelopes = episode(
      [responded("again", [{ tool: "search", arguments: { query: "x" } }])],
      () => "ok",
      2,
    )
    const { result } = files(envelopes, null)
    expect(result.outcome).toBe("turns_limit")
    expect(result).toMatchObject({ success: true, max_interactions_reached: true, correct: null })
    expect(typeof result.interactions).toBe("number")
  })
})
