/**
 * `deriveBatch` on a real embedded log: a scripted RL run is appended as its actors would write it
 * (each episode on its own subject), then every closed step is derived from the log — its bytes
 * decode as `rollout.batch.v1`, its hash is their SHA-256, its summary matches the batch, and
 * deriving again (as `rl batch --verify` does) gives the same hash, also after the trainer consumed
 * the step (whose details the projection prunes). A step still filling, or an unknown run, is
 * refused with an error naming run and step; `publishableSteps` lists closed steps not published.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import * as Result from "effect/Result"
import { afterEach, describe, expect, it } from "vitest"
import { deriveBatch, publishableSteps, readPlan } from "../../../src/actors/sampler/batchDerivation.ts"
import { makeEmbeddedLog } from "../../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../../src/events/log/eventLog.ts"
import type { DomainEvent, NewEvent } from "../../../src/events/schema.ts"
import { entitySubject } from "../../../src/events/subjects.ts"
import { decodeBatch } from "../../../src/projections/batches/batchFile.ts"
import { acquire } from "../../support/scoped.ts"
import { logOf, RUN, type SampleSpec, type TurnSpec, type WorldSpec } from "./rlWorld.ts"

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const turn: TurnSpec = {
  sampled: 4,
  extra: 2,
  exact: true,
  flags: [],
  drift: false,
  reset: false,
  version: 0,
  splitAt: 0,
  temperature: 1,
}
const sample = (score: number): SampleSpec => ({
  outcome: "answered",
  verdict: score > 0 ? "correct" : "incorrect",
  score,
  turns: [turn, { ...turn, sampled: 2 }],
})
const world: WorldSpec = {
  k: 2,
  batch: { groups: 1 },
  staleness: { maxLag: 4, policy: "drop" },
  rewards: { profile: "grpo" },
  groups: [0, 1, 2].map((g) => ({ task: `t${g % 2}`, samples: [sample(1), sample(0)] })),
}

const subjectOf = (event: DomainEvent): string =>
  "episodeId" in event ? entitySubject("ns", "episode", event.episodeId) : entitySubject("ns", "run", RUN)

let counter = 0
const appendAll = (log: EventLogShape, events: ReadonlyArray<DomainEvent>) =>
  Effect.forEach(events, (event) => {
    counter += 1
    const entry: NewEvent = {
      eventId: `ev-${counter}`,
      recordedAt: "2026-01-01T00:00:00.000Z",
      correlationId: "c",
      causationId: "x",
      actor: "test",
      event,
    }
    return log.append(subjectOf(event), [entry])
  })

const openLog = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-batches-"))
  dirs.push(dir)
  return acquire(makeEmbeddedLog({ dataDir: dir, namespace: "ns", mode: "writer", fsync: "never" }))
}

describe("deriveBatch", () => {
  it("derives every closed step from the log, the same bytes every time", async () => {
    const log = await openLog()
    try {
      // The run without its end: groups 0 and 1 close steps 0 and 1, group 2 closes step 2 (size 1)
      await Effect.runPromise(appendAll(log.value, logOf(world, [0], false)))
      const plan = await Effect.runPromise(readPlan(log.value))
      expect(publishableSteps(plan.state, RUN)).toEqual([0, 1, 2])
      for (const step of [0, 1, 2]) {
        const derived = await Effect.runPromise(deriveBatch(log.value, RUN, step))
        expect(derived.hash).toBe(createHash("sha256").update(derived.bytes).digest("hex"))
        const decoded = decodeBatch(derived.bytes)
        if (Result.isFailure(decoded)) throw new Error(decoded.failure.message)
        expect(decoded.success).toEqual(derived.batch)
        expect(derived.summary).toMatchObject({
          runId: RUN,
          step,
          hash: derived.hash,
          groups: [`g${step}`],
          samples: 2,
          sequences: 2,
          tokens: derived.batch.tokenIds.length,
          trainedTokens: 12,
          lags: [{ lag: step, tokens: 12 }],
          drops: {},
        })
        expect(derived.undecodable).toBe(0)
      }
      const first = await Effect.runPromise(deriveBatch(log.value, RUN, 1))
      // Published and consumed: the projection prunes the step's details; a derivation still works
      await Effect.runPromise(
        appendAll(log.value, [
          {
            type: "BatchPublished",
            blob: { sha256: first.hash, bytes: first.bytes.byteLength },
            ...first.summary,
          },
          { type: "BatchConsumed", runId: RUN, step: 1 },
        ]),
      )
      const again = await Effect.runPromise(deriveBatch(log.value, RUN, 1))
      expect(again.hash).toBe(first.hash)
      expect(again.bytes).toEqual(first.bytes)
      const after = await Effect.runPromise(readPlan(log.value))
      expect(publishableSteps(after.state, RUN)).toEqual([0, 2])
    } finally {
      await log.close()
    }
  })

  it("refuses a step that is not closed and a run that is not in the log, naming them", async () => {
    const log = await openLog()
    try {
      await Effect.runPromise(appendAll(log.value, logOf({ ...world, batch: { groups: 5 } }, [0], false)))
      const open = await Effect.runPromise(Effect.flip(deriveBatch(log.value, RUN, 0)))
      expect(open.message).toBe(
        `batch of run "${RUN}" step 0: the step is not closed (it is still filling, or later)`,
      )
      const unknown = await Effect.runPromise(Effect.flip(deriveBatch(log.value, "nope", 0)))
      expect(unknown.message).toMatch(/^batch of run "nope" step 0: the log has no RL run/)
    } finally {
      await log.close()
    }
  })
})
