/**
 * The `scoreboard` projection and its metrics, without I/O: Avg@k over every task × k with
 * missing, unfinished, crashed and timed-out samples counted as wrong and listed; usage per sample;
 * breakdowns by level from the run's task list; runs and episodes that are not evaluations pass
 * by; and, as properties, the fold is the same for any interleaving of the episodes' events (the
 * live board of `rollout eval` folds them in completion order), for any checkpoint/restore cut
 * through JSON, and with redelivered events; `apply` never mutates a state. Infrastructure endings
 * keep their reason (a refused connection, a tool's outage) and are counted by it.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { DomainEvent, Envelope, EventOf } from "../../src/events/schema.ts"
import { advance, encodeState, foldAll, initialFolded } from "../../src/projections/projection.ts"
import {
  openEpisodes,
  type ScoreboardState,
  scoreboard,
} from "../../src/projections/scoreboard/scoreboard.ts"
import {
  boardMetrics,
  boardSamples,
  infrastructureFailures,
  leaderboard,
} from "../../src/projections/scoreboard/scoreboardMetrics.ts"

const NS = "t"

const subjectOf = (e: DomainEvent): string => {
  switch (e.type) {
    case "RunStarted":
    case "RunFinished":
    case "SampleScored":
      return `${NS}.ev.run.${e.runId}`
    default:
      return `${NS}.ev.episode.${"episodeId" in e ? e.episodeId : "x"}`
  }
}

/** Envelopes at increasing positions (gaps of 2, as on JetStream). */
const envelopes = (events: ReadonlyArray<DomainEvent>, from = 0): Envelope[] =>
  events.map((event, i) => ({
    eventId: `ev-${from + i}`,
    recordedAt: new Date(1_700_000_000_000 + (from + i) * 1000).toISOString(),
    correlationId: "c",
    causationId: "x",
    actor: "test",
    position: 2 * (from + i) + 1,
    subject: subjectOf(event),
    schemaVersion: 1,
    event,
  }))

const runStarted = (
  runId: string,
  k: number,
  tasks: ReadonlyArray<[string, string | null]>,
): DomainEvent => ({
  type: "RunStarted",
  runId,
  kind: "eval",
  model: "agent",
  benchmark: "custom",
  k,
  taskCount: tasks.length,
  config: {
    scorer: "gaia",
    judgeModel: null,
    tasks: tasks.map(([taskId, level]) => ({ taskId, level, category: null })),
  },
})

/** One sample's episode: started, `turns` turns each with a tool call, finished, and maybe scored. */
const sample = (
  runId: string,
  taskId: string,
  s: number,
  end: { outcome: EventOf<"EpisodeFinished">["outcome"]; verdict?: EventOf<"SampleScored">["verdict"] },
  turns = 2,
): DomainEvent[] => {
  const episodeId = `${runId}/${taskId}/${s}`
  const events: DomainEvent[] = [
    {
      type: "EpisodeStarted",
      episodeId,
      runId,
      taskId,
      sampleIndex: s,
      question: `q ${taskId}`,
      model: "agent",
      maxTurns: 10,
    },
  ]
  for (let turn = 1; turn <= turns; turn++) {
    events.push({
      type: "ModelResponded",
      episodeId,
      turn,
      requestId: `${episodeId}/model/${turn}`,
      endpoint: "e",
      latencyMs: 1,
      finishReason: "tool_calls",
      content: "",
      usage: { promptTokens: 100, completionTokens: 10 },
    })
    events.push({
      type: "ToolCallRequested",
      episodeId,
      turn,
      callId: `c${turn}`,
      tool: "echo",
      arguments: { text: "x" },
    })
  }
  events.push({ type: "EpisodeFinished", episodeId, outcome: end.outcome, turns, answer: "a" })
  if (end.verdict !== undefined)
    events.push({
      type: "SampleScored",
      runId,
      taskId,
      sampleIndex: s,
      episodeId,
      scorer: "gaia",
      verdict: end.verdict,
      score: end.verdict === "correct" ? 1 : 0,
    })
  return events
}

const deepFreeze = (value: unknown): void => {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return
  Object.freeze(value)
  for (const v of Object.values(value)) deepFreeze(v)
}

const board = (state: ScoreboardState, runId: string) => {
  const run = state.runs[runId]
  if (run === undefined) throw new Error(`no run ${runId}`)
  return run
}

describe("scoreboard", () => {
  // Tasks a (level 1), b (level 2), c (level 2); k = 2: six samples.
  const base = (): DomainEvent[] => [
    runStarted("r", 2, [
      ["a", "1"],
      ["b", "2"],
      ["c", "2"],
    ]),
    ...sample("r", "a", 0, { outcome: "answered", verdict: "correct" }),
    ...sample("r", "a", 1, { outcome: "answered", verdict: "incorrect" }),
    ...sample("r", "b", 0, { outcome: "model_error", verdict: "incorrect" }),
    ...sample("r", "b", 1, { outcome: "timeout", verdict: "incorrect" }),
    // c#0 is still running (no EpisodeFinished); c#1 never started.
    ...sample("r", "c", 0, { outcome: "answered" }).slice(0, -1),
  ]

  it("counts Avg@k over every task × k: missing, running, crashed and timed-out samples are wrong and listed", () => {
    const state = foldAll(scoreboard, envelopes(base()))
    const m = boardMetrics(state, board(state, "r"))
    expect(m.k).toBe(2)
    expect(m.tasks).toBe(3)
    expect(m.runs).toBe(6)
    expect(m.correct).toBe(1)
    expect(m.avgAtK).toBeCloseTo(1 / 6, 12)
    expect(m.statusCounts).toEqual({ scored: 2, missing: 2, crashed: 1, timeout: 1, judge_failed: 0 })
    expect(m.notScored).toEqual([
      { taskId: "b", sample: 0, status: "crashed" },
      { taskId: "b", sample: 1, status: "timeout" },
      { taskId: "c", sample: 0, status: "missing" },
      { taskId: "c", sample: 1, status: "missing" },
    ])
    expect(m.byLevel["1"]).toMatchObject({ tasks: 1, correct: 1, avgAtK: 0.5 })
    expect(m.byLevel["2"]).toMatchObject({ tasks: 2, correct: 0, avgAtK: 0 })
    expect(m.passAtK["1"]).toBeCloseTo(1 / 6, 12)
    expect(m.passAtK["2"]).toBeCloseTo(1 / 3, 12)
  })

  it("takes turns, tool calls and tokens per sample from the episode's events", () => {
    const state = foldAll(scoreboard, envelopes(base()))
    const rows = boardSamples(state, board(state, "r"))
    expect(rows.find((r) => r.taskId === "a" && r.sample === 0)).toMatchObject({
      status: "scored",
      correct: true,
      turns: 2,
      toolCalls: 2,
      promptTokens: 200,
      completionTokens: 20,
      running: false,
    })
    expect(rows.find((r) => r.taskId === "c" && r.sample === 0)).toMatchObject({
      status: "missing",
      running: true,
    })
    const m = boardMetrics(state, board(state, "r"))
    expect(m.usage.toolCalls).toEqual({ samples: 4, total: 8, mean: 2 })
    expect(m.usage.promptTokens).toEqual({ samples: 4, total: 800, mean: 200 })
    expect(m.usage.costUsd).toBeUndefined()
  })

  it("prices tokens when the run recorded its model's pricing", () => {
    const events = base().map((e) =>
      e.type === "RunStarted"
        ? {
            ...e,
            config: { ...(e.config as object), pricing: { promptPerMillion: 2, completionPerMillion: 10 } },
          }
        : e,
    ) as DomainEvent[]
    const state = foldAll(scoreboard, envelopes(events))
    const rows = boardSamples(state, board(state, "r"))
    // 200 prompt tokens at $2/M and 20 completion tokens at $10/M.
    expect(rows.find((r) => r.taskId === "a" && r.sample === 0)?.costUsd).toBeCloseTo(0.0006, 12)
    expect(boardMetrics(state, board(state, "r")).usage.costUsd?.samples).toBe(4)
  })

  it("calls an episode a run left unfinished crashed once the run has finished", () => {
    const events = [
      ...base(),
      { type: "RunFinished", runId: "r", status: "failed", reason: "stuck" } as const,
    ]
    const state = foldAll(scoreboard, envelopes(events))
    const m = boardMetrics(state, board(state, "r"))
    expect(m.notScored).toContainEqual({ taskId: "c", sample: 0, status: "crashed" })
    expect(m.notScored).toContainEqual({ taskId: "c", sample: 1, status: "missing" })
    expect(leaderboard(state)).toMatchObject([
      { runId: "r", status: "failed", done: 2, total: 6, tasks: 3, judgeFailed: 0, notScored: 4 },
    ])
  })

  it("counts judge failures apart and as wrong", () => {
    const events = [
      runStarted("r", 1, [["a", null]]),
      ...sample("r", "a", 0, { outcome: "answered", verdict: "judge_failed" }),
    ]
    const state = foldAll(scoreboard, envelopes(events))
    const m = boardMetrics(state, board(state, "r"))
    expect(m.statusCounts.judge_failed).toBe(1)
    expect(m.avgAtK).toBe(0)
    expect(leaderboard(state)[0]).toMatchObject({ judgeFailed: 1, done: 1, avgAtK: 0 })
  })

  it("keeps why the model server or the tools ended an episode, and counts the reasons", () => {
    const started = (taskId: string): DomainEvent => ({
      type: "EpisodeStarted",
      episodeId: `i/${taskId}/0`,
      runId: "i",
      taskId,
      sampleIndex: 0,
      question: `q ${taskId}`,
      model: "agent",
      maxTurns: 10,
    })
    const refused = (taskId: string): DomainEvent[] => [
      started(taskId),
      {
        type: "ModelCallFailed",
        episodeId: `i/${taskId}/0`,
        turn: 1,
        requestId: `i/${taskId}/0/model/1`,
        endpoint: "http://127.0.0.1:9/v1",
        code: "no_capacity",
        // As the pool words it after the endpoint was ejected.
        message:
          "model agent unavailable after 1 attempt(s): [no_capacity] no endpoint could take the call within queueTimeoutMs (60000 ms): http://127.0.0.1:9/v1 ejected (probe: Connection error.); last error: connection: Connection error.: fetch failed: connect ECONNREFUSED 127.0.0.1:9 (ECONNREFUSED)",
        retryable: false,
      },
      { type: "EpisodeFinished", episodeId: `i/${taskId}/0`, outcome: "model_error", turns: 1 },
    ]
    const events: DomainEvent[] = [
      runStarted("i", 1, [
        ["a", null],
        ["b", null],
        ["c", null],
        ["d", null],
      ]),
      ...sample("i", "a", 0, { outcome: "answered", verdict: "correct" }),
      ...refused("b"),
      ...refused("c"),
      started("d"),
      {
        type: "ToolCallFailed",
        episodeId: "i/d/0",
        callId: "c1",
        tool: "search",
        kind: "infrastructure",
        message: "every replica of search is down",
      },
      { type: "EpisodeFinished", episodeId: "i/d/0", outcome: "tool_infrastructure_error", turns: 1 },
    ]
    const state = foldAll(scoreboard, envelopes(events))
    const samples = boardSamples(state, board(state, "i"))
    expect(samples.map((s) => s.failure)).toStrictEqual([
      null,
      "model: connection refused at http://127.0.0.1:9/v1",
      "model: connection refused at http://127.0.0.1:9/v1",
      "tool search: every replica of search is down",
    ])
    expect(infrastructureFailures(samples)).toStrictEqual({
      samples: 3,
      reasons: {
        "model: connection refused at http://127.0.0.1:9/v1": 2,
        "tool search: every replica of search is down": 1,
      },
    })
    expect(board(state, "i").rows.map((slots) => slots[0]?.responses)).toStrictEqual([2, 0, 0, 0])
    expect(leaderboard(state)[0]).toMatchObject({ runId: "i", infrastructureFailures: 3 })
    // A timeout or an answer is the agent's ending: no infrastructure reason, whatever failed before.
    const recovered = foldAll(
      scoreboard,
      envelopes([
        ...events.slice(0, 1),
        ...refused("a").slice(0, 2),
        { type: "EpisodeFinished", episodeId: "i/a/0", outcome: "timeout", turns: 1 },
      ]),
    )
    expect(boardSamples(recovered, board(recovered, "i"))[0]).toMatchObject({ failure: null })
  })

  it("lets RL, ad-hoc and run-less episodes pass by, and is safe with prototype-ish ids", () => {
    const events: DomainEvent[] = [
      { type: "RunStarted", runId: "rl1", kind: "rl", model: "m" },
      ...sample("rl1", "t", 0, { outcome: "answered", verdict: "correct" }),
      runStarted("__proto__", 1, [["constructor", null]]),
      ...sample("__proto__", "constructor", 0, { outcome: "answered", verdict: "correct" }),
    ]
    const state = foldAll(scoreboard, envelopes(events))
    expect(Object.keys(state.runs)).toEqual(["__proto__"])
    expect(openEpisodes(state)).toEqual([])
    const m = boardMetrics(state, board(state, "__proto__"))
    expect(m.correct).toBe(1)
    expect(encodeState(scoreboard, state)._tag).toBe("Success")
  })

  /** Several runs' samples, and a permutation that keeps each episode's own order. */
  const interleaved = fc
    .tuple(
      fc.array(
        fc.record({
          task: fc.constantFrom("a", "b", "c", "__proto__"),
          sample: fc.nat({ max: 2 }),
          outcome: fc.constantFrom("answered" as const, "model_error" as const, "timeout" as const),
          verdict: fc.option(
            fc.constantFrom("correct" as const, "incorrect" as const, "judge_failed" as const),
            {
              nil: undefined,
            },
          ),
          turns: fc.nat({ max: 3 }),
          cut: fc.boolean(),
        }),
        { maxLength: 12 },
      ),
      fc.array(fc.nat(), { maxLength: 200 }),
    )
    .map(([specs, order]) => {
      const seen = new Set<string>()
      const episodes: DomainEvent[][] = []
      for (const s of specs) {
        const key = `${s.task}/${s.sample}`
        if (seen.has(key)) continue
        seen.add(key)
        const events = sample(
          "r",
          s.task,
          s.sample,
          { outcome: s.outcome, ...(s.verdict === undefined ? {} : { verdict: s.verdict }) },
          s.turns,
        )
        episodes.push(s.cut ? events.slice(0, -2) : events)
      }
      // Merge the episodes' streams in an order drawn from `order`.
      const queues = episodes.map((e) => [...e])
      const merged: DomainEvent[] = []
      let i = 0
      while (queues.some((q) => q.length > 0)) {
        const open = queues.filter((q) => q.length > 0)
        const q = open[(order[i++] ?? 0) % open.length]!
        merged.push(q.shift()!)
      }
      const head = runStarted("r", 3, [
        ["a", "1"],
        ["b", "1"],
        ["c", "2"],
        ["__proto__", "2"],
      ])
      return { inOrder: [head, ...episodes.flat()], merged: [head, ...merged] }
    })

  test.prop([interleaved])(
    "any interleaving of the episodes' events gives the same metrics",
    ({ inOrder, merged }) => {
      const a = foldAll(scoreboard, envelopes(inOrder))
      const b = foldAll(scoreboard, envelopes(merged))
      expect(boardMetrics(b, board(b, "r"))).toStrictEqual(boardMetrics(a, board(a, "r")))
      expect(boardSamples(b, board(b, "r"))).toStrictEqual(boardSamples(a, board(a, "r")))
    },
  )

  test.prop([interleaved, fc.array(fc.nat({ max: 80 }), { maxLength: 6 })])(
    "folding in chunks through JSON checkpoints, with redeliveries, equals one fold",
    ({ merged }, cuts) => {
      const all = envelopes(merged)
      const once = foldAll(scoreboard, all)
      let folded = initialFolded(scoreboard)
      let from = 0
      for (const cut of [...cuts].sort((x, y) => x - y)) {
        const to = Math.min(cut, all.length)
        // Redeliver the last few entries of the previous chunk along with this one.
        folded = advance(scoreboard, folded, all.slice(Math.max(0, from - 2), to)).folded
        // A frozen state throws on any mutation: `apply` must copy what it changes.
        deepFreeze(folded.state)
        folded = { ...folded, state: JSON.parse(JSON.stringify(folded.state)) as ScoreboardState }
        deepFreeze(folded.state)
        from = Math.max(from, to)
      }
      folded = advance(scoreboard, folded, all.slice(Math.max(0, from - 2))).folded
      expect(folded.state).toStrictEqual(once)
    },
  )
})
