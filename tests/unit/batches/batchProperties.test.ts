/**
 * The batches projection and the batch layout over random RL runs (fast-check): with versions read
 * live from a simulated trainer, no token with s − v > η ever has loss mask 1 and every batch's lag
 * histogram equals a brute recount (and the plan's); no sample is in two steps and none is lost
 * (kept + dropped = k per completed group, nothing left open after the run's end); no
 * infrastructure failure or failed judge reaches a batch; the layout holds (sequences are the
 * recorded ids, prefix-merged; loss mask only on sampled tokens; log-probs 0 and versions −1
 * elsewhere; offsets from 0 to T); the file round-trips and is deterministic. And the fold: events
 * of different episodes of a group in any order give the same state, a redelivered event changes
 * nothing, and folding in chunks through a JSON checkpoint equals folding from scratch.
 */
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { DomainEvent, Envelope } from "../../../src/events/schema.ts"
import { decodeBatch, encodeBatch } from "../../../src/projections/batches/batchFile.ts"
import { type BatchesState, batches, type PlannedStep } from "../../../src/projections/batches/batchPlan.ts"
import { runPlan } from "../../../src/projections/batches/queries.ts"
import { type Batch, buildBatch } from "../../../src/projections/batches/sequences.ts"
import {
  advance,
  decodeState,
  encodeState,
  findNonJson,
  initialFolded,
} from "../../../src/projections/projection.ts"
import {
  envelope,
  envelopes,
  foldPlan,
  logOf,
  picks,
  RUN,
  tokensOf,
  type WorldSpec,
  withLiveVersions,
  worldSpec,
} from "./rlWorld.ts"

const closedSteps = (state: BatchesState): PlannedStep[] =>
  Object.values(state.runs[RUN]?.closed ?? {}).sort((a, b) => a.step - b.step)

const built = (step: PlannedStep, events: ReadonlyArray<DomainEvent>): Batch => {
  const batch = buildBatch(step, tokensOf(events))
  if (Result.isFailure(batch)) throw new Error(batch.failure.reason)
  return batch.success
}

/** A live run: a random world, interleaved, its versions read from a simulated trainer. */
const liveRun = fc
  .tuple(worldSpec(0), picks, fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }))
  .map(([world, order, bumps]) => ({ world, events: withLiveVersions(logOf(world, order), bumps) }))

const infraFailed = (events: ReadonlyArray<DomainEvent>): Set<string> => {
  const out = new Set<string>()
  for (const e of events) {
    if (
      e.type === "EpisodeFinished" &&
      (e.outcome === "model_error" || e.outcome === "tool_infrastructure_error")
    )
      out.add(e.episodeId)
    if (e.type === "SampleScored" && e.verdict === "judge_failed") out.add(e.episodeId)
  }
  return out
}

describe("batches over random runs with live weight versions", () => {
  it("never trains a token with s − v > η; each batch's lags equal a brute recount and the plan's", () => {
    fc.assert(
      fc.property(liveRun, ({ world, events }) => {
        const state = foldPlan(events)
        for (const step of closedSteps(state)) {
          const batch = built(step, events)
          const brute = new Map<number, number>()
          let violations = 0
          for (let i = 0; i < batch.tokenIds.length; i++) {
            if (batch.lossMask[i] !== 1) continue
            const lag = step.step - batch.versions[i]!
            if (lag > world.staleness.maxLag || lag < 0) violations += 1
            brute.set(lag, (brute.get(lag) ?? 0) + 1)
          }
          expect(violations).toBe(0)
          const recount = [...brute.entries()]
            .sort(([a], [b]) => a - b)
            .map(([lag, tokens]) => ({ lag, tokens }))
          expect(batch.lags).toEqual(recount)
          expect(step.lags).toEqual(recount)
          expect(recount.reduce((sum, l) => sum + l.tokens, 0)).toBe(step.trainedTokens)
        }
      }),
      { numRuns: 150 },
    )
  })

  it("puts no sample in two steps, loses none, and lets no infrastructure failure in", () => {
    fc.assert(
      fc.property(liveRun, ({ world, events }) => {
        const state = foldPlan(events)
        const run = state.runs[RUN]!
        const seen = new Set<string>()
        const infra = infraFailed(events)
        let accounted = 0
        for (const step of [...closedSteps(state), run.open]) {
          for (const sample of step.samples) {
            expect(seen.has(sample.episode)).toBe(false)
            seen.add(sample.episode)
            expect(infra.has(sample.episode)).toBe(false)
          }
          accounted += step.sampleCount + Object.values(step.drops).reduce((a, b) => a + b, 0)
        }
        expect(accounted).toBe(run.groupsCompleted * world.k)
        // The run finished: nothing kept waits in the open step
        expect(run.open.sampleCount).toBe(0)
        for (const step of closedSteps(state)) {
          const batch = built(step, events)
          batch.sequences.forEach((sequence, i) => {
            if (!infra.has(sequence.episode)) return
            for (let t = batch.seqOffsets[i]!; t < batch.seqOffsets[i + 1]!; t++)
              expect(batch.advantages[t]).toBe(0)
          })
        }
      }),
      { numRuns: 150 },
    )
  })

  it("lays sequences out as the recorded ids, masks and streams as the format says, and round-trips", () => {
    fc.assert(
      fc.property(liveRun, ({ events }) => {
        const state = foldPlan(events)
        const responses = new Map<string, Extract<DomainEvent, { type: "ModelResponded" }>>()
        for (const e of events) if (e.type === "ModelResponded") responses.set(`${e.episodeId}#${e.turn}`, e)
        for (const step of closedSteps(state)) {
          const batch = built(step, events)
          const t = batch.tokenIds.length
          expect(batch.seqOffsets[0]).toBe(0)
          expect(batch.seqOffsets[batch.seqOffsets.length - 1]).toBe(t)
          for (let i = 1; i < batch.seqOffsets.length; i++)
            expect(batch.seqOffsets[i]!).toBeGreaterThanOrEqual(batch.seqOffsets[i - 1]!)
          for (let i = 0; i < t; i++) {
            if (batch.lossMask[i] === 1) expect(batch.versions[i]).toBeGreaterThanOrEqual(0)
            else expect(batch.advantages[i]).toBe(0)
            if (batch.versions[i] === -1) expect(batch.logprobs[i]).toBe(0)
          }
          // Prefix merge: a sequence is its last turn's prompt followed by its sampled ids, as recorded
          batch.sequences.forEach((sequence, i) => {
            const last = responses.get(`${sequence.episode}#${sequence.turns[1]}`)!
            const ids = [...batch.tokenIds.subarray(batch.seqOffsets[i]!, batch.seqOffsets[i + 1]!)]
            expect(ids).toEqual([...last.promptTokenIds!, ...last.tokenIds!])
          })
          const bytes = encodeBatch(batch)
          expect(encodeBatch(batch)).toEqual(bytes)
          const decoded = decodeBatch(bytes)
          expect(Result.isSuccess(decoded) ? decoded.success : decoded.failure).toEqual(batch)
        }
      }),
      { numRuns: 120 },
    )
  })
})

/** The events of group `g`'s episodes re-interleaved by `order` within the slots they held. */
const shuffleGroup = (
  events: ReadonlyArray<DomainEvent>,
  g: number,
  order: ReadonlyArray<number>,
): DomainEvent[] => {
  const prefix = `${RUN}/g${g}/`
  const slots: number[] = []
  const streams = new Map<string, DomainEvent[]>()
  events.forEach((e, i) => {
    if (!("episodeId" in e) || !e.episodeId.startsWith(prefix)) return
    slots.push(i)
    streams.set(e.episodeId, [...(streams.get(e.episodeId) ?? []), e])
  })
  const queues = [...streams.values()]
  const out = [...events]
  let k = 0
  for (const slot of slots) {
    const open = queues.filter((q) => q.length > 0)
    out[slot] = open[(order[k++ % order.length] ?? 0) % open.length]!.shift()!
  }
  return out
}

const staticRun = fc.tuple(worldSpec(2), picks, picks, fc.nat())

describe("the batches fold", () => {
  it("does not depend on the order in which events of different episodes of a group arrive", () => {
    fc.assert(
      fc.property(staticRun, ([world, order, other, which]) => {
        const events = logOf(world, order)
        const g = which % world.groups.length
        const shuffled = shuffleGroup(events, g, other)
        expect(foldPlan(shuffled, false)).toEqual(foldPlan(events, false))
      }),
      { numRuns: 200 },
    )
  })

  it("ignores a redelivered event, right after the original or at the end of the log", () => {
    fc.assert(
      fc.property(staticRun, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), ([world, order], again) => {
        const events = logOf(world, order)
        const withCopies: DomainEvent[] = []
        const atEnd: DomainEvent[] = []
        events.forEach((e, i) => {
          withCopies.push(e)
          if (again.includes(i % 17)) withCopies.push(e)
          if (again.includes(i % 13)) atEnd.push(e)
        })
        const once = foldPlan(events, false)
        expect(foldPlan(withCopies, false)).toEqual(once)
        expect(foldPlan([...events, ...atEnd], false)).toEqual(once)
        // At its own position (a replay from an older checkpoint), the runner skips it.
        const envs = envelopes(events)
        const twice = advance(batches, initialFolded(batches), [...envs, ...envs.slice(0, 3)])
        expect(twice.folded.state).toEqual(once)
      }),
      { numRuns: 150 },
    )
  })

  it("rebuilds to the live state, and a JSON checkpoint between chunks changes nothing", () => {
    fc.assert(
      fc.property(staticRun, fc.array(fc.nat(), { maxLength: 5 }), ([world, order], cuts) => {
        const envs: Envelope[] = envelopes(logOf(world, order))
        const whole = advance(batches, initialFolded(batches), envs).folded
        expect(findNonJson(whole.state)).toBeUndefined()
        const at = [...new Set(cuts.map((c) => c % (envs.length + 1)))].sort((a, b) => a - b)
        let folded = initialFolded(batches)
        let from = 0
        for (const cut of [...at, envs.length]) {
          folded = advance(batches, folded, envs.slice(from, cut)).folded
          from = cut
          const json = encodeState(batches, folded.state)
          if (Result.isFailure(json)) throw new Error(json.failure)
          const restored = decodeState(batches, JSON.parse(JSON.stringify(json.success)))
          if (Result.isFailure(restored)) throw new Error(restored.failure)
          folded = { ...folded, state: restored.success }
        }
        expect(folded.state).toEqual(whole.state)
        expect(runPlan(folded.state, RUN)).toEqual(runPlan(whole.state, RUN))
      }),
      { numRuns: 150 },
    )
  })

  it("plans nothing that depends on wall time: the same log always gives the same plan", () => {
    fc.assert(
      fc.property(staticRun, ([world, order]: [WorldSpec, number[], number[], number]) => {
        const events = logOf(world, order)
        const later = events
          .map((e, i) => envelope(e, i + 1))
          .map((env) => ({ ...env, recordedAt: "2030-05-05T00:00:00.000Z" }))
        const state = later.reduce(batches.apply, batches.initial)
        expect(state).toEqual(foldPlan(events, false))
      }),
      { numRuns: 50 },
    )
  })
})
