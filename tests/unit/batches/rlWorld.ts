/**
 * A scripted RL run for the batch tests: groups of episodes whose turns carry token-exact records
 * built the way an agent builds them (each prompt extends the ids reached, except after a context
 * reset or a drift, which are recorded as events), as event streams to interleave, with weight
 * versions either fixed per turn or read live while the events are ordered (a simulated trainer
 * that publishes version v + 1 only after step v has closed). Also the fast-check arbitraries of
 * such runs and the folds the tests compare.
 */
import * as fc from "fast-check"
import type { DomainEvent, Envelope, EventOf } from "../../../src/events/schema.ts"
import {
  type BatchesState,
  type BatchSize,
  initialBatches,
  makeApplyBatchPlan,
} from "../../../src/projections/batches/batchPlan.ts"
import {
  applyEpisodeTokens,
  type EpisodeTokens,
  emptyEpisodeTokens,
} from "../../../src/projections/batches/sequences.ts"

export const RUN = "rl1"
export const MODEL = "policy"

type Outcome = EventOf<"EpisodeFinished">["outcome"]
type Flag = EventOf<"TurnAssessed">["flags"][number]
type Verdict = EventOf<"SampleScored">["verdict"]

export interface TurnSpec {
  readonly sampled: number
  /** Tokens the next prompt adds (tool results, template) before this turn's prompt ends. */
  readonly extra: number
  /** Prompt ids, sampled ids, log-probs, temperature and versions recorded. */
  readonly exact: boolean
  readonly flags: ReadonlyArray<Flag>
  /** The prompt rewrote history (a fork at its first token), recorded as `DriftDetected`. */
  readonly drift: boolean
  /** The context was reset before this turn (`ContextReset`). */
  readonly reset: boolean
  /** The version of the sampled tokens (fixed versions), or of the first part (live versions). */
  readonly version: number
  /** Where a second version span starts (an update landing mid-request), 0 for one span. */
  readonly splitAt: number
  readonly temperature: number
}

export interface SampleSpec {
  readonly outcome: Outcome
  readonly verdict: Verdict
  readonly score: number
  readonly turns: ReadonlyArray<TurnSpec>
}

export interface GroupSpec {
  readonly task: string
  readonly samples: ReadonlyArray<SampleSpec>
}

export interface WorldSpec {
  readonly k: number
  readonly batch: BatchSize
  readonly staleness: { readonly maxLag: number; readonly policy: "drop" | "mask" }
  readonly rewards: unknown
  readonly groups: ReadonlyArray<GroupSpec>
}

export const groupOf = (g: number) => `g${g}`
export const episodeOf = (g: number, s: number) => `${RUN}/g${g}/${s}`

export const rlConfig = (world: Pick<WorldSpec, "batch" | "staleness" | "rewards" | "k">) => ({
  groupSize: world.k,
  batch: world.batch,
  staleness: world.staleness,
  ...(world.rewards === undefined ? {} : { rewards: world.rewards }),
})

export const runStarted = (world: Pick<WorldSpec, "batch" | "staleness" | "rewards" | "k">): DomainEvent => ({
  type: "RunStarted",
  runId: RUN,
  kind: "rl",
  model: MODEL,
  k: world.k,
  config: rlConfig(world) as never,
})

/** Sampled id `j` of a turn: distinct per episode and turn, so a layout error shows. */
const sampledId = (g: number, s: number, turn: number, j: number) =>
  10_000 + g * 1000 + s * 100 + turn * 10 + (j % 10)

/** The events of one episode, in the order its agent writes them. */
export const episodeEvents = (g: number, s: number, task: string, spec: SampleSpec): DomainEvent[] => {
  const episodeId = episodeOf(g, s)
  const events: DomainEvent[] = [
    {
      type: "EpisodeStarted",
      episodeId,
      runId: RUN,
      taskId: task,
      sampleIndex: s,
      group: groupOf(g),
      question: "q",
      model: MODEL,
      maxTurns: 10,
    },
  ]
  let reached: number[] = []
  spec.turns.forEach((turn, i) => {
    const number = i + 1
    const fresh = [1, 2, 3, 100 + number]
    const extra = Array.from({ length: turn.extra }, (_, j) => 500 + number * 10 + j)
    let prompt: number[]
    if (i === 0) prompt = [...fresh, ...extra]
    else if (turn.reset) {
      events.push({
        type: "ContextReset",
        episodeId,
        turn: i,
        policy: "discard_all_tools",
        estimatedTokens: 100,
        keptMessages: 2,
        droppedMessages: 3,
      })
      prompt = [...fresh, 7, ...extra]
    } else if (turn.drift) prompt = [99, ...reached.slice(1), ...extra]
    else prompt = [...reached, ...extra]
    const sampled = Array.from({ length: turn.sampled }, (_, j) => sampledId(g, s, number, j))
    const split = turn.splitAt > 0 && turn.splitAt < turn.sampled ? turn.splitAt : 0
    events.push({
      type: "ModelResponded",
      episodeId,
      turn: number,
      requestId: `${episodeId}/model/${number}`,
      endpoint: "http://e1",
      latencyMs: 1,
      finishReason: "stop",
      content: "",
      usage: { promptTokens: prompt.length, completionTokens: turn.sampled },
      ...(turn.exact
        ? {
            promptTokenIds: prompt,
            tokenIds: sampled,
            logprobs: sampled.map((_, j) => -(j + 1) / 64),
            temperature: turn.temperature,
            weightVersions:
              split === 0
                ? [{ version: String(turn.version), start: 0, end: turn.sampled }]
                : [
                    { version: String(turn.version), start: 0, end: split },
                    { version: String(turn.version), start: split, end: turn.sampled },
                  ],
          }
        : {}),
    })
    if (turn.exact && i > 0 && turn.drift && !turn.reset)
      events.push({
        type: "DriftDetected",
        episodeId,
        turn: number,
        previousTurn: i,
        index: 0,
        expectedTokens: reached.length,
        promptTokens: prompt.length,
        kind: "fork",
      })
    if (turn.flags.length > 0)
      events.push({ type: "TurnAssessed", episodeId, turn: number, flags: turn.flags })
    reached = [...prompt, ...sampled]
  })
  events.push({ type: "EpisodeFinished", episodeId, outcome: spec.outcome, turns: spec.turns.length })
  events.push({
    type: "SampleScored",
    runId: RUN,
    taskId: task,
    sampleIndex: s,
    group: groupOf(g),
    episodeId,
    scorer: "gaia",
    verdict: spec.verdict,
    score: spec.score,
  })
  return events
}

/** The run's streams: the groups' starts, then one stream per episode. */
export const streamsOf = (world: WorldSpec): DomainEvent[][] => {
  const starts: DomainEvent[] = world.groups.map((group, g) => ({
    type: "GroupStarted",
    runId: RUN,
    group: groupOf(g),
    taskId: group.task,
    epoch: 0,
    samples: world.k,
    version: "0",
  }))
  const streams = [starts]
  world.groups.forEach((group, g) => {
    group.samples.forEach((sample, s) => {
      streams.push(episodeEvents(g, s, group.task, sample))
    })
  })
  return streams
}

/** One interleaving of the streams, each kept in its own order, chosen by `picks`. */
export const interleave = (
  streams: ReadonlyArray<ReadonlyArray<DomainEvent>>,
  picks: ReadonlyArray<number>,
): DomainEvent[] => {
  const queues = streams.map((s) => [...s])
  const out: DomainEvent[] = []
  let i = 0
  for (;;) {
    const open = queues.filter((q) => q.length > 0)
    if (open.length === 0) return out
    out.push(open[(picks[i++ % Math.max(1, picks.length)] ?? 0) % open.length]!.shift()!)
  }
}

/** The whole log of a world in one interleaving: the run starts first, finishes last. */
export const logOf = (world: WorldSpec, picks: ReadonlyArray<number>, finish = true): DomainEvent[] => [
  runStarted(world),
  ...interleave(streamsOf(world), picks),
  ...(finish ? [{ type: "RunFinished", runId: RUN, status: "completed" } as DomainEvent] : []),
]

export const envelope = (event: DomainEvent, position: number): Envelope => ({
  eventId: `e${position}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "c",
  causationId: "x",
  actor: "test",
  position,
  subject: "episodeId" in event ? `ev.episode.${event.episodeId}` : `ev.run.${RUN}`,
  schemaVersion: 1,
  event,
})

export const envelopes = (events: ReadonlyArray<DomainEvent>): Envelope[] =>
  events.map((event, i) => envelope(event, i + 1))

const keepAll = makeApplyBatchPlan({ keepConsumed: true })

export const foldPlan = (events: ReadonlyArray<DomainEvent>, keepConsumed = true): BatchesState => {
  const apply = keepConsumed ? keepAll : makeApplyBatchPlan({ keepConsumed: false })
  return envelopes(events).reduce(apply, initialBatches)
}

/**
 * Rewrites the versions of the token-exact turns as a live system has them: the live version
 * starts at 0, and at a `bumps` pick the simulated trainer publishes the next version — only once
 * the step it trains has closed (version v + 1 needs step v). A turn's first span takes the live
 * version when it is written, its second span (if any) the version after a possible bump.
 */
export const withLiveVersions = (
  events: ReadonlyArray<DomainEvent>,
  bumps: ReadonlyArray<boolean>,
): DomainEvent[] => {
  let state = initialBatches
  let live = 0
  let pick = 0
  const out: DomainEvent[] = []
  const push = (event: DomainEvent) => {
    out.push(event)
    state = keepAll(state, envelope(event, out.length))
  }
  const maybeBump = () => {
    const closed = Object.keys(state.runs[RUN]?.closed ?? {}).length
    if ((bumps[pick++ % Math.max(1, bumps.length)] ?? false) && live < closed) {
      live += 1
      push({ type: "WeightsPublished", model: MODEL, version: String(live) })
    }
  }
  for (const event of events) {
    maybeBump()
    if (event.type === "ModelResponded" && event.weightVersions !== undefined) {
      const first = live
      maybeBump()
      const spans = event.weightVersions.map((span, i) => ({
        ...span,
        version: String(i === 0 ? first : live),
      }))
      push({ ...event, weightVersions: spans })
    } else push(event)
  }
  return out
}

/** Every episode's token record, folded from the log. */
export const tokensOf = (events: ReadonlyArray<DomainEvent>): Map<string, EpisodeTokens> => {
  const out = new Map<string, EpisodeTokens>()
  for (const env of envelopes(events)) {
    const event = env.event
    if (!("episodeId" in event)) continue
    out.set(
      event.episodeId,
      applyEpisodeTokens(out.get(event.episodeId) ?? emptyEpisodeTokens(event.episodeId), env),
    )
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const outcome = fc.oneof(
  { arbitrary: fc.constant<Outcome>("answered"), weight: 12 },
  {
    arbitrary: fc.constantFrom<Outcome>(
      "turns_limit",
      "context_limit",
      "repetition",
      "model_error",
      "tool_infrastructure_error",
      "cancelled",
      "timeout",
    ),
    weight: 4,
  },
)
const verdict = fc.oneof(
  { arbitrary: fc.constantFrom<Verdict>("correct", "incorrect"), weight: 9 },
  { arbitrary: fc.constant<Verdict>("judge_failed"), weight: 1 },
)

export const turnSpec = (maxVersion: number): fc.Arbitrary<TurnSpec> =>
  fc.record({
    sampled: fc.integer({ min: 0, max: 6 }),
    extra: fc.integer({ min: 0, max: 3 }),
    exact: fc.oneof(
      { arbitrary: fc.constant(true), weight: 15 },
      { arbitrary: fc.constant(false), weight: 1 },
    ),
    flags: fc.oneof(
      { arbitrary: fc.constant<Flag[]>([]), weight: 6 },
      { arbitrary: fc.subarray<Flag>(["FORMAT_ERROR", "REPEAT", "TOOL_FAILED", "FAILED"]), weight: 1 },
    ),
    drift: fc.oneof(
      { arbitrary: fc.constant(false), weight: 6 },
      { arbitrary: fc.constant(true), weight: 1 },
    ),
    reset: fc.oneof(
      { arbitrary: fc.constant(false), weight: 6 },
      { arbitrary: fc.constant(true), weight: 1 },
    ),
    version: fc.integer({ min: 0, max: maxVersion }),
    splitAt: fc.integer({ min: 0, max: 5 }),
    temperature: fc.oneof(
      { arbitrary: fc.constant(1), weight: 8 },
      { arbitrary: fc.constant(0.7), weight: 1 },
    ),
  })

export const sampleSpec = (maxVersion: number): fc.Arbitrary<SampleSpec> =>
  fc.record({
    outcome,
    verdict,
    score: fc.constantFrom(0, 1, 1, 0.5),
    turns: fc.array(turnSpec(maxVersion), { minLength: 1, maxLength: 4 }),
  })

export const batchSize: fc.Arbitrary<BatchSize> = fc.oneof(
  fc.integer({ min: 1, max: 3 }).map((groups) => ({ groups })),
  fc.integer({ min: 1, max: 40 }).map((tokens) => ({ tokens })),
)

export const worldSpec = (maxVersion = 0): fc.Arbitrary<WorldSpec> =>
  fc
    .record({
      k: fc.integer({ min: 2, max: 3 }),
      groups: fc.integer({ min: 1, max: 8 }),
      batch: batchSize,
      staleness: fc.record({
        // Mostly small: staleness only bites when groups outlive a few steps.
        maxLag: fc.oneof(
          { arbitrary: fc.integer({ min: 0, max: 1 }), weight: 3 },
          { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 },
        ),
        policy: fc.constantFrom<"drop" | "mask">("drop", "mask"),
      }),
      rewards: fc.constantFrom<unknown>(
        undefined,
        { profile: "agentcpm", balanced: false },
        { profile: "grpo" },
        {
          profile: "dapo",
        },
      ),
    })
    .chain((w) =>
      fc
        .array(fc.array(sampleSpec(maxVersion), { minLength: w.k, maxLength: w.k }), {
          minLength: w.groups,
          maxLength: w.groups,
        })
        .map((groups) => ({
          k: w.k,
          batch: w.batch,
          staleness: w.staleness,
          rewards: w.rewards,
          // Epochs: two tasks sampled again and again, each time as a new group.
          groups: groups.map((samples, g) => ({ task: `t${g % 2}`, samples })),
        })),
    )

export const picks = fc.array(fc.nat(), { minLength: 1, maxLength: 64 })
