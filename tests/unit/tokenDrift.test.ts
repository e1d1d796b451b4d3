/**
 * The drift guard of token-exact episodes. The pure check (`tokenDrift`) under fast-check: it never
 * throws and what it reports is internally true; a prompt that extends the reached ids never
 * drifts; any mutation of the reached ids (a changed, dropped or added token, a cut) is reported at
 * the first index where the two differ, a one-token change as a realignment and a dropped block of
 * more than the window as a fork. The decider given/when/then: `DriftDetected` follows the response
 * whose prompt does not extend the previous turn's prompt and sampled ids, none after a clean
 * extension, a context reset or a turn without ids; and replay re-drives it exactly.
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
  initial,
  type ParseAssistant,
} from "../../src/actors/agent/decider.ts"
import { verify } from "../../src/actors/agent/replay.ts"
import { REALIGN_WINDOW, type ReachedTokens, tokenDrift } from "../../src/actors/agent/tokenDrift.ts"
import type { Completion } from "../../src/events/chat.ts"
import type { DomainEvent, Envelope, EventOf } from "../../src/events/schema.ts"

/** The first index where `expected` and `prompt` differ, by the definition (the oracle). */
const firstDifference = (expected: ReadonlyArray<number>, prompt: ReadonlyArray<number>): number => {
  let i = 0
  while (i < expected.length && i < prompt.length && expected[i] === prompt[i]) i++
  return i
}

const ids = (max = 60) => fc.array(fc.integer({ min: 0, max: 151_935 }), { maxLength: max })
const reachedOf = (prompt: ReadonlyArray<number>, sampled: ReadonlyArray<number>): ReachedTokens => ({
  turn: 1,
  prompt,
  sampled,
})

describe("tokenDrift", () => {
  test.prop([ids(), ids(), ids(80), fc.integer({ min: 0, max: 4 })])(
    "never throws, and what it reports holds",
    (prompt, sampled, next, small) => {
      // Small alphabets make repeated ids, where a realignment can be found by coincidence.
      const narrow = (xs: ReadonlyArray<number>) => (small === 0 ? xs : xs.map((x) => x % (small + 1)))
      const reached = reachedOf(narrow(prompt), narrow(sampled))
      const candidate = narrow(next)
      const expected = [...reached.prompt, ...reached.sampled]
      const drift = tokenDrift(reached, candidate)
      if (drift === undefined) {
        expect(candidate.slice(0, expected.length)).toEqual(expected)
        return
      }
      expect(drift.index).toBe(firstDifference(expected, candidate))
      expect(drift.index).toBeLessThan(expected.length)
      expect(drift.expectedTokens).toBe(expected.length)
      expect(drift.promptTokens).toBe(candidate.length)
      if (drift.kind === "realign") {
        const { expected: from, prompt: at } = drift.resume!
        expect(from - drift.index).toBeLessThanOrEqual(REALIGN_WINDOW)
        expect(at - drift.index).toBeLessThanOrEqual(REALIGN_WINDOW)
        expect(candidate.slice(at, at + expected.length - from)).toEqual(expected.slice(from))
      } else expect(drift.resume).toBeUndefined()
    },
  )

  test.prop([ids(), ids(), ids()])("a true extension never drifts", (prompt, sampled, added) => {
    expect(tokenDrift(reachedOf(prompt, sampled), [...prompt, ...sampled, ...added])).toBeUndefined()
  })

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("replace" as const), value: fc.integer({ min: 0, max: 151_935 }) }),
    fc.record({ kind: fc.constant("delete" as const) }),
    fc.record({ kind: fc.constant("insert" as const), value: fc.integer({ min: 0, max: 151_935 }) }),
    fc.record({ kind: fc.constant("cut" as const) }),
  )
  test.prop([ids(), ids(), fc.nat(), mutation, ids(20)])(
    "any mutation of the reached ids is reported at its first differing index",
    (prompt, sampled, at, change, added) => {
      const expected = [...prompt, ...sampled]
      fc.pre(expected.length > 0)
      const k = at % expected.length
      const mutated = [...expected]
      if (change.kind === "replace") {
        fc.pre(change.value !== expected[k])
        mutated[k] = change.value
      } else if (change.kind === "delete") mutated.splice(k, 1)
      else if (change.kind === "insert") {
        fc.pre(change.value !== expected[k])
        mutated.splice(k, 0, change.value)
      } else mutated.length = k
      const candidate = change.kind === "cut" ? mutated : [...mutated, ...added]
      fc.pre(firstDifference(expected, candidate) < expected.length)
      const drift = tokenDrift(reachedOf(prompt, sampled), candidate)
      expect(drift?.index).toBe(firstDifference(expected, candidate))
      // A changed token (or one dropped or added) is where it says it is.
      if (change.kind === "replace" || change.kind === "insert") expect(drift?.index).toBe(k)
      // A one-token change leaves the rest in place: a realignment, never a fork.
      if (change.kind !== "cut") expect(drift?.kind).toBe("realign")
    },
  )

  test.prop([
    fc.uniqueArray(fc.integer({ min: 0, max: 151_935 }), { minLength: 30, maxLength: 90 }),
    fc.nat(),
    fc.integer({ min: REALIGN_WINDOW + 1, max: 20 }),
  ])("a dropped block longer than the window is a fork", (unique, at, length) => {
    // Distinct ids: no part of the rest can be found by coincidence.
    const expected = unique.slice(0, unique.length - 5)
    const added = unique.slice(unique.length - 5)
    fc.pre(expected.length > length + 1)
    const k = at % (expected.length - length)
    const candidate = [...expected.slice(0, k), ...expected.slice(k + length), ...added]
    const drift = tokenDrift(reachedOf(expected.slice(0, 10), expected.slice(10)), candidate)
    expect(drift).toMatchObject({ index: k, kind: "fork" })
  })

  it("names the smallest skip of a local re-tokenization", () => {
    // Two sampled tokens came back as three (a different merge), then the new message follows.
    const drift = tokenDrift(reachedOf([1, 2, 3], [4, 5, 6, 7]), [1, 2, 3, 4, 50, 51, 52, 7, 8, 9])
    expect(drift).toEqual({
      index: 4,
      expectedTokens: 7,
      promptTokens: 10,
      kind: "realign",
      resume: { expected: 6, prompt: 7 },
    })
    // A prompt that stops short of the sampled ids by a few tokens realigns at their end.
    expect(tokenDrift(reachedOf([1, 2], [3, 4]), [1, 2, 3])).toEqual({
      index: 3,
      expectedTokens: 4,
      promptTokens: 3,
      kind: "realign",
      resume: { expected: 4, prompt: 3 },
    })
  })
})

const parse: ParseAssistant = (_format, message) => ({
  calls: (message.toolCalls ?? []).map((c) => ({
    callId: c.callId,
    tool: c.tool,
    arguments: c.arguments as JsonObject,
  })),
  errors: [],
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

/** A token-exact response: a tool call (unless `answer`), with its prompt and sampled ids. */
const exact = (
  prompt: ReadonlyArray<number>,
  sampled: ReadonlyArray<number>,
  answer?: string,
): Completion => ({
  endpoint: "http://127.0.0.1:1/v1",
  latencyMs: 3,
  finishReason: answer === undefined ? "tool_calls" : "stop",
  content: answer === undefined ? "" : `<answer>${answer}</answer>`,
  ...(answer === undefined
    ? { toolCalls: [{ callId: `c${prompt.length}`, tool: "search", arguments: { q: prompt.length } }] }
    : {}),
  usage: { promptTokens: prompt.length, completionTokens: sampled.length },
  tokenIds: sampled,
  logprobs: sampled.map(() => -0.5),
  promptTokenIds: prompt,
  temperature: 1,
  weightVersions: [{ version: "3", start: 0, end: sampled.length }],
})

/** Drives an episode over token-exact responses; every tool call answers "ok". */
const drive = (responses: ReadonlyArray<Completion>, reset?: { readonly beforeTurn: number }) => {
  const log: DomainEvent[] = []
  let state: EpisodeState = initial
  const apply = (events: ReadonlyArray<DomainEvent>) => {
    log.push(...events)
    state = events.reduce((s, e) => evolve(s, envelope(e)), state)
  }
  const decided = (input: Parameters<typeof decide>[1]) => Result.getOrThrow(decide(state, input, parse))
  apply(
    decided({
      kind: "start",
      episodeId: "ep",
      taskId: "t",
      sampleIndex: 0,
      question: "q",
      model: "m",
      policy: defaultPolicy,
    }),
  )
  for (const [i, response] of responses.entries()) {
    if (reset?.beforeTurn === i + 1)
      apply([
        {
          type: "ContextReset",
          episodeId: "ep",
          turn: i,
          policy: "discard_all_tools",
          estimatedTokens: 10,
          keptMessages: 2,
          droppedMessages: 1,
        },
      ])
    apply(decided({ kind: "prepare" }))
    apply(decided({ kind: "model_responded", response }))
    for (const callId of state.pending)
      apply([
        {
          type: "ToolCallCompleted",
          episodeId: "ep",
          callId,
          tool: "search",
          content: "ok",
          truncated: false,
          latencyMs: 1,
        },
      ])
  }
  return { log, state }
}

const drifts = (log: ReadonlyArray<DomainEvent>) =>
  log.filter((e): e is EventOf<"DriftDetected"> => e.type === "DriftDetected")

describe("the episode's drift guard", () => {
  it("records nothing while every prompt extends the previous prompt and sampled ids", () => {
    const { log } = drive([
      exact([1, 2, 3], [4, 5]),
      exact([1, 2, 3, 4, 5, 6], [7]),
      exact([1, 2, 3, 4, 5, 6, 7, 8], [9], "x"),
    ])
    expect(drifts(log)).toEqual([])
    const responded = log.filter((e) => e.type === "ModelResponded")
    expect(responded.map((e) => [e.promptTokenIds, e.temperature, e.weightVersions])).toEqual([
      [[1, 2, 3], 1, [{ version: "3", start: 0, end: 2 }]],
      [[1, 2, 3, 4, 5, 6], 1, [{ version: "3", start: 0, end: 1 }]],
      [[1, 2, 3, 4, 5, 6, 7, 8], 1, [{ version: "3", start: 0, end: 1 }]],
    ])
  })

  it("records DriftDetected right after the response whose prompt rewrote the history, and goes on", () => {
    // Turn 3's template dropped turn 1's first two sampled tokens (a past thinking block, say).
    const long = Array.from({ length: 12 }, (_, i) => 100 + i)
    const { log, state } = drive([
      exact([1, 2, 3], long),
      exact([1, 2, 3, ...long, 20], [21, 22]),
      exact([1, 2, 3, ...long.slice(10), 20, 21, 22, 30], [31], "done"),
    ])
    expect(drifts(log)).toEqual([
      {
        type: "DriftDetected",
        episodeId: "ep",
        turn: 3,
        previousTurn: 2,
        index: 3,
        expectedTokens: 3 + 12 + 1 + 2,
        promptTokens: 3 + 2 + 1 + 2 + 1,
        kind: "fork",
      },
    ])
    const at = log.findIndex((e) => e.type === "DriftDetected")
    expect(log[at - 1]).toMatchObject({ type: "ModelResponded", turn: 3 })
    expect(state.outcome).toBe("answered")
    // The next turn is checked against the rewritten prompt it now extends.
    expect(state.reached).toMatchObject({ turn: 3, sampled: [31] })
  })

  it("a context reset starts a new sequence: no drift is reported across it", () => {
    const { log } = drive([exact([1, 2, 3], [4, 5]), exact([1, 9], [7], "x")], { beforeTurn: 2 })
    expect(log.some((e) => e.type === "ContextReset")).toBe(true)
    expect(drifts(log)).toEqual([])
  })

  it("a turn without ids is not checked, and the one after it is not checked against an older turn", () => {
    const { promptTokenIds: _ids, ...plain } = exact([1], [2])
    const { log } = drive([exact([1, 2, 3], [4, 5]), plain, exact([7, 7, 7], [8], "x")])
    expect(drifts(log)).toEqual([])
  })

  it("replay re-drives the drift exactly, and catches a tampered one", () => {
    const { log } = drive([exact([1, 2], [3, 4]), exact([1, 2, 3, 5, 6], [7], "x")])
    expect(drifts(log)).toMatchObject([{ index: 3, kind: "realign", resume: { expected: 4, prompt: 3 } }])
    const envelopes = log.map(envelope)
    expect(verify(envelopes, parse)).toMatchObject({ ok: true })
    const tampered = envelopes.map((e) =>
      e.event.type === "DriftDetected" ? { ...e, event: { ...e.event, index: 2 } } : e,
    )
    const verdict = verify(tampered, parse)
    expect(verdict.ok).toBe(false)
    if (!verdict.ok)
      expect(verdict.divergence.differences).toEqual([{ path: "index", recorded: 2, redriven: 3 }])
  })
})
