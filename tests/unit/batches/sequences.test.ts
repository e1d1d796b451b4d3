/**
 * The batch layout on a worked example (docs/training.md): turns whose prompts extend the ids
 * reached merge into one sequence, each adding only its new prompt ids; a drift and a context reset
 * each start a new sequence with the whole prompt; a dropped turn's tokens are context (mask 0,
 * advantage 0, its versions and log-probs kept); stale-masked tokens do not train; and a plan the
 * tokens do not support is refused naming the episode and turn.
 */
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import type { DomainEvent } from "../../../src/events/schema.ts"
import type { PlannedSample, PlannedStep } from "../../../src/projections/batches/batchPlan.ts"
import { buildBatch } from "../../../src/projections/batches/sequences.ts"
import { noDrops } from "../../../src/projections/rewards/dropReasons.ts"
import { tokensOf } from "./rlWorld.ts"

const E = "ep1"

const responded = (
  turn: number,
  prompt: number[],
  sampled: number[],
  version = "0",
  temperature = 1,
): DomainEvent => ({
  type: "ModelResponded",
  episodeId: E,
  turn,
  requestId: `${E}/${turn}`,
  endpoint: "http://e1",
  latencyMs: 1,
  finishReason: "stop",
  content: "",
  usage: { promptTokens: prompt.length, completionTokens: sampled.length },
  promptTokenIds: prompt,
  tokenIds: sampled,
  logprobs: sampled.map((_, j) => -(j + 1) / 4),
  temperature,
  weightVersions: [{ version, start: 0, end: sampled.length }],
})

const events: DomainEvent[] = [
  responded(1, [1, 2, 3], [10, 11]),
  responded(2, [1, 2, 3, 10, 11, 20], [12]),
  // The template rewrote the history: the prompt starts differently
  responded(3, [9, 2, 3, 10, 11, 20, 12, 21], [13, 14], "1"),
  {
    type: "DriftDetected",
    episodeId: E,
    turn: 3,
    previousTurn: 2,
    index: 0,
    expectedTokens: 7,
    promptTokens: 8,
    kind: "fork",
  },
  {
    type: "ContextReset",
    episodeId: E,
    turn: 3,
    policy: "discard_all_tools",
    estimatedTokens: 99,
    keptMessages: 2,
    droppedMessages: 4,
  },
  responded(4, [1, 2, 30], [15], "1"),
]

const planned = (overrides: Partial<PlannedSample> = {}): PlannedStep => {
  const sample: PlannedSample = {
    episode: E,
    group: "g0",
    task: "t0",
    sample: 1,
    score: 1,
    advantage: 0.5,
    // Turn 4 was dropped (say, a format error capped to 0): its tokens are context only
    turns: [
      { turn: 1, advantage: 0.5 },
      { turn: 2, advantage: 0.25 },
      { turn: 3, advantage: 0.75 },
    ],
    masked: [],
    trainedTokens: 5,
    lags: [],
    ...overrides,
  }
  return {
    runId: "r",
    step: 2,
    groups: ["g0"],
    placedGroups: 1,
    samples: [sample],
    sampleCount: 1,
    drops: { ...noDrops, stale: 1 },
    lags: [],
    trainedTokens: sample.trainedTokens,
    closedBy: "groups",
    pruned: false,
  }
}

describe("the batch layout", () => {
  it("merges extending turns, splits at a drift and at a context reset, and masks what does not train", () => {
    const built = buildBatch(planned(), tokensOf(events))
    if (Result.isFailure(built)) throw new Error(built.failure.reason)
    const b = built.success
    expect([...b.tokenIds]).toEqual([
      1, 2, 3, 10, 11, 20, 12, 9, 2, 3, 10, 11, 20, 12, 21, 13, 14, 1, 2, 30, 15,
    ])
    expect(b.seqOffsets).toEqual([0, 7, 17, 21])
    expect([...b.lossMask]).toEqual([0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
    expect([...b.versions]).toEqual([
      -1, -1, -1, 0, 0, -1, 0, -1, -1, -1, -1, -1, -1, -1, -1, 1, 1, -1, -1, -1, 1,
    ])
    expect([...b.advantages]).toEqual([
      0, 0, 0, 0.5, 0.5, 0, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0.75, 0.75, 0, 0, 0, 0,
    ])
    expect([...b.logprobs]).toEqual([
      0, 0, 0, -0.25, -0.5, 0, -0.25, 0, 0, 0, 0, 0, 0, 0, 0, -0.25, -0.5, 0, 0, 0, -0.25,
    ])
    expect(b.sequences.map((s) => [s.turns, s.split])).toEqual([
      [[1, 2], "start"],
      [[3, 3], "drift"],
      [[4, 4], "context_reset"],
    ])
    expect(b.sequences[0]).toEqual({
      episode: E,
      group: "g0",
      task: "t0",
      sample: 1,
      turns: [1, 2],
      score: 1,
      advantage: 0.5,
      split: "start",
    })
    expect([...b.temperature]).toEqual([1, 1, 1])
    expect(b.lags).toEqual([
      { lag: 1, tokens: 2 },
      { lag: 2, tokens: 3 },
    ])
    expect(b.drops).toEqual({ stale: 1 })
  })

  it("leaves stale-masked tokens out of the loss, and starts a new sequence at another temperature", () => {
    const hot = [...events.slice(0, 1), responded(2, [1, 2, 3, 10, 11, 20], [12], "0", 0.7)]
    const built = buildBatch(
      planned({
        turns: [
          { turn: 1, advantage: 0.5 },
          { turn: 2, advantage: 0.5 },
        ],
        masked: [{ turn: 1, start: 1, end: 2 }],
      }),
      tokensOf(hot),
    )
    if (Result.isFailure(built)) throw new Error(built.failure.reason)
    const b = built.success
    expect(b.sequences.map((s) => s.split)).toEqual(["start", "temperature"])
    expect([...b.lossMask.subarray(0, 5)]).toEqual([0, 0, 0, 1, 0])
    expect([...b.versions.subarray(0, 5)]).toEqual([-1, -1, -1, 0, 0])
    expect([...b.temperature].map((t) => Math.round(t * 10) / 10)).toEqual([1, 0.7])
  })

  it("refuses a plan the tokens do not support, naming the episode and turn", () => {
    const missing = buildBatch(planned({ episode: "nobody" }), tokensOf(events))
    expect(Result.isFailure(missing) && missing.failure.reason).toMatch(
      /episode "nobody" has no token record/,
    )
    const noTurn = buildBatch(planned({ turns: [{ turn: 7, advantage: 1 }] }), tokensOf(events))
    expect(Result.isFailure(noTurn) && noTurn.failure.reason).toMatch(/episode "ep1" turn 7 trains but/)
    const pruned = buildBatch({ ...planned(), pruned: true }, tokensOf(events))
    expect(Result.isFailure(pruned) && pruned.failure.reason).toMatch(/pruned/)
  })
})
