/**
 * The episode decider, given(events).when(input).then(events), with no I/O: the loop of AgentToLeaP
 * (model turn, tool calls, answer), every explicit ending, nudges, context reset, and properties:
 * any scripted run ends within the turn limit with an explicit outcome, and re-driving the
 * decisions over the recorded inputs reproduces the recorded events exactly.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import type { JsonObject } from "effect/Schema"
import { describe, expect, it } from "vitest"
import {
  decide,
  defaultPolicy,
  type EpisodeState,
  evolve,
  finalAnswerNudge,
  initial,
  nextIntent,
  type ParseAssistant,
} from "../../src/actors/agent/decider.ts"
import type { Completion } from "../../src/events/chat.ts"
import type { DomainEvent, Envelope, EpisodePolicy } from "../../src/events/schema.ts"

/** The OpenAI-native parser: calls come structured from the server; a non-object argument is an error. */
const nativeParse: ParseAssistant = (_format, message) => ({
  calls: (message.toolCalls ?? [])
    .filter((c) => typeof c.arguments === "object" && c.arguments !== null && !Array.isArray(c.arguments))
    .map((c) => ({ callId: c.callId, tool: c.tool, arguments: c.arguments as JsonObject })),
  errors: (message.toolCalls ?? [])
    .filter((c) => !(typeof c.arguments === "object" && c.arguments !== null && !Array.isArray(c.arguments)))
    .map((c) => `arguments of ${c.tool} must be a JSON object`),
})

let position = 0
const envelope = (event: DomainEvent): Envelope => ({
  eventId: `e${++position}`,
  position,
  subject: "t.ev.episode.ep",
  schemaVersion: 1,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "c",
  causationId: "c",
  actor: "agent",
  event,
})
const fold = (events: ReadonlyArray<DomainEvent>, from: EpisodeState = initial) =>
  events.reduce((s, e) => evolve(s, envelope(e)), from)

const policy = (overrides: Partial<EpisodePolicy> = {}): EpisodePolicy => ({ ...defaultPolicy, ...overrides })
const start = (p: EpisodePolicy = policy()) =>
  Result.getOrThrow(
    decide(
      initial,
      {
        kind: "start",
        episodeId: "ep",
        taskId: "t1",
        sampleIndex: 0,
        question: "What is 2 + 2?",
        model: "m",
        policy: p,
      },
      nativeParse,
    ),
  )

const response = (content: string, calls: Array<{ tool: string; arguments: unknown }> = []): Completion => ({
  endpoint: "http://127.0.0.1:1/v1",
  latencyMs: 5,
  finishReason: calls.length > 0 ? "tool_calls" : "stop",
  content,
  ...(calls.length > 0
    ? {
        toolCalls: calls.map((c, i) => ({
          callId: `call-${i}`,
          tool: c.tool,
          arguments: c.arguments as never,
        })),
      }
    : {}),
  usage: { promptTokens: 10, completionTokens: 5 },
})

const step = (state: EpisodeState, input: Parameters<typeof decide>[1]) => {
  const events = Result.getOrThrow(decide(state, input, nativeParse))
  return { events, state: fold(events, state) }
}
const types = (events: ReadonlyArray<DomainEvent>) => events.map((e) => e.type)

/** Runs an episode against scripted responses; tools answer "ok" (or fail, per `toolFails`). */
const drive = (p: EpisodePolicy, responses: ReadonlyArray<Completion>, toolFails?: "infrastructure") => {
  let state = fold(start(p))
  const log: DomainEvent[] = [...start(p)]
  const inputs: Array<Parameters<typeof decide>[1]> = []
  let r = 0
  for (let guard = 0; guard < 10_000; guard++) {
    const intent = nextIntent(state)
    let events: ReadonlyArray<DomainEvent>
    if (intent.kind === "finished") break
    if (intent.kind === "prepare") events = Result.getOrThrow(decide(state, { kind: "prepare" }, nativeParse))
    else if (intent.kind === "call_model") {
      const input = { kind: "model_responded" as const, response: responses[r++ % responses.length]! }
      inputs.push(input)
      events = Result.getOrThrow(decide(state, input, nativeParse))
    } else if (intent.kind === "call_tools") {
      events = intent.pending.map((callId) =>
        toolFails === undefined
          ? ({
              type: "ToolCallCompleted",
              episodeId: "ep",
              callId,
              tool: "search",
              content: "ok",
              truncated: false,
              latencyMs: 1,
            } as const)
          : ({
              type: "ToolCallFailed",
              episodeId: "ep",
              callId,
              tool: "search",
              kind: toolFails,
              message: "down",
            } as const),
      )
    } else throw new Error(`unexpected intent ${intent.kind}`)
    log.push(...events)
    state = fold(events, state)
  }
  return { state, log, inputs }
}

describe("episode decider", () => {
  it("starts once, with the task prompt, and accepts every reset policy", () => {
    const events = start()
    expect(types(events)).toEqual(["EpisodeStarted"])
    const state = fold(events)
    expect(state.messages.toArray()).toEqual([
      { role: "user", content: "Your task is to answer the user's question: What is 2 + 2?" },
    ])
    expect(nextIntent(state)).toEqual({ kind: "prepare" })
    const again = decide(
      state,
      { kind: "start", episodeId: "ep", taskId: "t1", sampleIndex: 0, question: "q", model: "m" },
      nativeParse,
    )
    expect(Result.isFailure(again)).toBe(true)
    const summarize = decide(
      initial,
      {
        kind: "start",
        episodeId: "x",
        taskId: "t",
        sampleIndex: 0,
        question: "q",
        model: "m",
        policy: policy({ contextReset: "summarize" }),
      },
      nativeParse,
    )
    expect(Result.isSuccess(summarize)).toBe(true)
  })

  it("runs model turn → tool calls → results → next turn → answer", () => {
    let s = fold(start())
    let r = step(s, { kind: "prepare" })
    expect(r.events).toEqual([
      {
        type: "ModelRequested",
        episodeId: "ep",
        turn: 1,
        requestId: "ep/model/1",
        model: "m",
        messageCount: 1,
      },
    ])
    s = r.state
    expect(nextIntent(s)).toMatchObject({ kind: "call_model", requestId: "ep/model/1", turn: 1 })
    r = step(s, {
      kind: "model_responded",
      response: response("searching", [
        { tool: "search", arguments: { q: "a" } },
        { tool: "fetch", arguments: { url: "u" } },
      ]),
    })
    expect(types(r.events)).toEqual(["ModelResponded", "ToolCallRequested", "ToolCallRequested"])
    s = r.state
    expect(nextIntent(s)).toEqual({ kind: "call_tools", pending: ["call-0", "call-1"] })
    s = fold(
      [
        {
          type: "ToolCallCompleted",
          episodeId: "ep",
          callId: "call-1",
          tool: "fetch",
          content: { page: 1 },
          truncated: false,
          latencyMs: 1,
        },
        {
          type: "ToolCallCompleted",
          episodeId: "ep",
          callId: "call-0",
          tool: "search",
          content: "hits",
          truncated: false,
          latencyMs: 1,
        },
      ],
      s,
    )
    expect(s.messages.toArray().slice(-2)).toEqual([
      { role: "tool", content: '{"page":1}', toolCallId: "call-1" },
      { role: "tool", content: "hits", toolCallId: "call-0" },
    ])
    r = step(s, { kind: "prepare" })
    expect(r.events).toMatchObject([
      { type: "ModelRequested", turn: 2, requestId: "ep/model/2", messageCount: 4 },
    ])
    r = step(r.state, {
      kind: "model_responded",
      response: response("<think>easy</think>It is <answer>4</answer>"),
    })
    expect(r.events.at(-1)).toEqual({
      type: "EpisodeFinished",
      episodeId: "ep",
      outcome: "answered",
      turns: 2,
      answer: "4",
    })
    expect(nextIntent(r.state)).toEqual({ kind: "finished" })
    expect(Result.isFailure(decide(r.state, { kind: "prepare" }, nativeParse))).toBe(true)
  })

  it("ends on repetition, flagging REPEAT from the second time", () => {
    const { state, log } = drive(policy({ repetitionLimit: 4 }), [response("thinking about it")])
    expect(state.outcome).toBe("repetition")
    expect(state.answer).toBeUndefined()
    const assessed = log.filter((e) => e.type === "TurnAssessed")
    expect(assessed).toHaveLength(3)
    expect(assessed.every((e) => e.type === "TurnAssessed" && e.flags.includes("REPEAT"))).toBe(true)
  })

  it("forces a final answer on the last turn, then ends at the turn limit", () => {
    let n = 0
    const responses = Array.from({ length: 10 }, () =>
      response(`step ${n++}`, [{ tool: "search", arguments: { q: String(n) } }]),
    )
    const { state, log } = drive(policy({ maxTurns: 3 }), responses)
    expect(state.outcome).toBe("turns_limit")
    const nudges = log.filter((e) => e.type === "ModelNudged")
    expect(nudges).toEqual([
      { type: "ModelNudged", episodeId: "ep", turn: 3, reason: "final_answer", text: finalAnswerNudge },
    ])
    expect(log.filter((e) => e.type === "ModelRequested")).toHaveLength(3)
  })

  it("nudges after idle turns without a tool call or an answer", () => {
    let n = 0
    const responses = Array.from({ length: 20 }, () => response(`musing ${n++}`))
    const { log } = drive(policy({ maxTurns: 8, nudgeAfter: 3, repetitionLimit: 100 }), responses)
    const idle = log.filter((e) => e.type === "ModelNudged" && e.reason === "idle")
    expect(idle.map((e) => e.type === "ModelNudged" && e.turn)).toEqual([4, 7])
  })

  it("resets an over-budget context by discarding tool results, or ends when it cannot", () => {
    let n = 0
    const responses = Array.from({ length: 50 }, () =>
      response(`turn ${n++}`, [{ tool: "fetch", arguments: { url: String(n) } }]),
    )
    // Roomy enough for the reduced context: resets keep the episode going to its turn limit.
    const reset = drive(policy({ maxTurns: 40, contextBudget: 160, contextReserve: 10 }), responses)
    const resets = reset.log.filter((e) => e.type === "ContextReset")
    expect(resets.length).toBeGreaterThan(0)
    expect(resets[0]).toMatchObject({ policy: "discard_all_tools" })
    expect(reset.state.outcome).toBe("turns_limit")
    expect(reset.state.messages.length).toBeLessThan(2 + 15 + 4)
    // Without a reset policy the same run ends at the context limit.
    const none = drive(
      policy({ maxTurns: 40, contextBudget: 160, contextReserve: 10, contextReset: "none" }),
      responses,
    )
    expect(none.log.some((e) => e.type === "ContextReset")).toBe(false)
    expect(none.state.outcome).toBe("context_limit")
    // So tight that even the reduced context does not fit: context limit after some resets.
    const tight = drive(policy({ maxTurns: 40, contextBudget: 40, contextReserve: 10 }), responses)
    expect(tight.state.outcome).toBe("context_limit")
  })

  it("ends with tool_infrastructure_error or model_error, never a sentinel answer", () => {
    const infra = drive(policy(), [response("go", [{ tool: "search", arguments: {} }])], "infrastructure")
    expect(infra.state.outcome).toBe("tool_infrastructure_error")
    expect(infra.state.answer).toBeUndefined()
    let s = step(fold(start()), { kind: "prepare" }).state
    const failed = step(s, { kind: "model_failed", code: "503", message: "all endpoints down" })
    expect(types(failed.events)).toEqual(["ModelCallFailed", "EpisodeFinished"])
    expect(failed.state.outcome).toBe("model_error")
    s = failed.state
    expect(Result.isFailure(decide(s, { kind: "model_failed", code: "x", message: "y" }, nativeParse))).toBe(
      true,
    )
  })

  it("turns a malformed call into a FORMAT_ERROR turn with feedback to the model", () => {
    let s = step(fold(start()), { kind: "prepare" }).state
    const r = step(s, {
      kind: "model_responded",
      response: response("oops", [{ tool: "search", arguments: "not an object" }]),
    })
    expect(r.events[1]).toEqual({
      type: "TurnAssessed",
      episodeId: "ep",
      turn: 1,
      flags: ["FORMAT_ERROR"],
      feedback: "arguments of search must be a JSON object",
    })
    s = r.state
    expect(s.messages.at(-1)).toEqual({ role: "user", content: "arguments of search must be a JSON object" })
    expect(nextIntent(s)).toEqual({ kind: "prepare" })
  })

  const anyResponse = fc.oneof(
    fc.string({ maxLength: 30 }).map((c) => response(c)),
    fc.string({ maxLength: 10 }).map((a) => response(`<answer>${a}</answer>`)),
    fc.array(fc.constantFrom("search", "fetch"), { minLength: 1, maxLength: 3 }).map((tools) =>
      response(
        "calling",
        tools.map((tool, i) => ({ tool, arguments: { i } })),
      ),
    ),
    fc.constant({ ...response("cut"), finishReason: "length" }),
  )

  test.prop([
    fc.array(anyResponse, { minLength: 1, maxLength: 12 }),
    fc.integer({ min: 1, max: 15 }),
    fc.integer({ min: 0, max: 5 }),
  ])(
    "every run ends within the turn limit with an explicit outcome, and replays to the same events",
    (responses, maxTurns, nudgeAfter) => {
      const p = policy({ maxTurns, nudgeAfter })
      const { state, log, inputs } = drive(p, responses)
      expect(state.status).toBe("finished")
      expect(log.filter((e) => e.type === "ModelRequested").length).toBeLessThanOrEqual(maxTurns)
      const finished = log.filter((e) => e.type === "EpisodeFinished")
      expect(finished).toHaveLength(1)
      if (state.outcome === "answered") expect(state.answer).toBeDefined()
      else expect(state.answer).toBeUndefined()
      // Re-drive: the same inputs through decide reproduce the log exactly.
      const again = drive(
        p,
        inputs.map((i) => (i.kind === "model_responded" ? i.response : response(""))),
      )
      expect(again.log).toEqual(log)
    },
  )
})

describe("discard_all_tools", () => {
  it("keeps the system prompt and the task, drops tool results and their markup, keeps 10 to 15 recent messages", async () => {
    const { discardAllTools } = await import("../../src/actors/agent/context.ts")
    const messages = [
      { role: "system" as const, content: "sys" },
      { role: "user" as const, content: "task" },
      ...Array.from({ length: 30 }, (_, i) =>
        i % 2 === 0
          ? {
              role: "assistant" as const,
              content: `a${i}`,
              toolCalls: [{ callId: `c${i}`, tool: "t", arguments: {} }],
            }
          : { role: "tool" as const, content: `r${i}`, toolCallId: `c${i - 1}` },
      ),
    ]
    const reduced = discardAllTools(messages)
    expect(reduced.slice(0, 2)).toEqual(messages.slice(0, 2))
    expect(reduced.slice(2).every((m) => m.role === "assistant" && m.toolCalls === undefined)).toBe(true)
    expect(reduced).toHaveLength(2 + 15)
    expect(reduced.at(-1)).toEqual({ role: "assistant", content: "a28" })
    const noSystem = discardAllTools(messages.slice(1))
    expect(noSystem[0]).toEqual({ role: "user", content: "task" })
    expect(noSystem).toHaveLength(1 + 15)
  })
})

describe("the decider with the real parsers", () => {
  it("reads Qwen/Hermes calls after </think> and gives format feedback for a broken one", async () => {
    const { parseForEpisode } = await import("../../src/actors/agent/index.ts")
    const p = policy({ toolCallFormat: "hermes" })
    let s = fold(start(p))
    s = step(s, { kind: "prepare" }).state
    const content =
      '<think>maybe <tool_call>{"name":"draft","arguments":{}}</tool_call></think>' +
      '<tool_call>{"name": "search", "arguments": {"query": "capital of France"}}</tool_call>' +
      "<tool_call>{not json at all</tool_call>"
    const events = Result.getOrThrow(
      decide(s, { kind: "model_responded", response: response(content) }, parseForEpisode),
    )
    const requested = events.filter((e) => e.type === "ToolCallRequested")
    expect(requested).toEqual([
      {
        type: "ToolCallRequested",
        episodeId: "ep",
        turn: 1,
        callId: "ep/t1:0",
        tool: "search",
        arguments: { query: "capital of France" },
      },
    ])
    const assessed = events.find((e) => e.type === "TurnAssessed")
    expect(assessed).toMatchObject({ flags: ["FORMAT_ERROR"] })
    expect(assessed?.type === "TurnAssessed" && assessed.feedback).toBeTruthy()
  })
})

describe("call ids within one turn", () => {
  it("are made distinct when a server repeats one", async () => {
    const { parseForEpisode } = await import("../../src/actors/agent/index.ts")
    const parsed = parseForEpisode(
      "openai",
      {
        content: "",
        toolCalls: [
          { callId: "call_0", tool: "search", arguments: { q: "a" } },
          { callId: "call_0", tool: "search", arguments: { q: "b" } },
        ],
      },
      "ep/t1",
    )
    expect(parsed.calls.map((c) => c.callId)).toEqual(["call_0", "call_0#1"])
  })
})
