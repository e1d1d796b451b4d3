/**
 * Where the projection runner and the actor host stamp a time on what they keep, it comes from the
 * clock port: a checkpoint's `savedAt` (a run, a rebuild, a rebuild of several projections with
 * one read) and a dead letter's `at` read the manual clock a test passes, on the embedded log, a
 * file checkpoint store and the in-process bus.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { probeActor } from "../../src/actors/probe/index.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { eventCounts } from "../../src/projections/eventCounts/eventCounts.ts"
import type { AnyProjection } from "../../src/projections/projection.ts"
import { rebuildProjection, rebuildProjections, runProjection } from "../../src/projections/runner/runner.ts"
import { runs } from "../../src/projections/runs/runs.ts"
import { startHost } from "../../src/runtime/actorHost.ts"
import { fileCheckpointDir, fileCheckpointStore } from "../../src/runtime/checkpointStore.ts"
import { manualClock } from "../../src/runtime/clock.ts"
import { makeInProcessBus } from "../../src/runtime/inProcessBus.ts"

const dirs: string[] = []
const scopes: Scope.Closeable[] = []
afterEach(async () => {
  for (const s of scopes.splice(0)) await Effect.runPromise(Scope.close(s, Exit.void))
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

const NS = "clock"

const openLog = async (): Promise<{ log: EventLogShape; dir: string }> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-clock-"))
  dirs.push(dir)
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: NS, fsync: "never" })),
  )
  return { log, dir }
}

describe("the clock port stamps what the runner and the host keep", () => {
  it("checkpoints: savedAt is the clock's time, for a run, a rebuild and a rebuild of several", async () => {
    const { log, dir } = await openLog()
    await Effect.runPromise(
      log.append(entitySubject(NS, "run", "r"), [
        {
          eventId: "e1",
          recordedAt: "2026-01-01T00:00:00.000Z",
          correlationId: "c",
          causationId: "c",
          actor: "test",
          event: { type: "RunStarted", runId: "r", kind: "adhoc", model: "m" },
        },
      ]),
    )
    const store = fileCheckpointStore(fileCheckpointDir(dir, NS))
    const clock = manualClock(Date.UTC(2031, 4, 6, 7, 8, 9))
    const savedAt = async (name: string) => (await Effect.runPromise(store.load(name)))?.savedAt

    await Effect.runPromise(runProjection(log, store, eventCounts, { live: false, clock }))
    expect(await savedAt("eventCounts")).toBe("2031-05-06T07:08:09.000Z")

    clock.advance(60_000)
    await Effect.runPromise(rebuildProjection(log, store, eventCounts, { clock }))
    expect(await savedAt("eventCounts")).toBe("2031-05-06T07:09:09.000Z")

    clock.advance(1_000)
    await Effect.runPromise(
      rebuildProjections(log, store, [eventCounts as AnyProjection, runs as AnyProjection], { clock }),
    )
    expect(await savedAt("eventCounts")).toBe("2031-05-06T07:09:10.000Z")
    expect(await savedAt("runs")).toBe("2031-05-06T07:09:10.000Z")
  })

  it("dead letters: at is the clock's time", async () => {
    const { log, dir } = await openLog()
    const bus = makeInProcessBus({ dataDir: dir })
    const clock = manualClock(Date.UTC(2031, 0, 2, 3, 4, 5))
    const host = await Effect.runPromise(
      startHost(log, bus, [probeActor], {
        worker: "w",
        concurrency: 2,
        ackWaitMs: 50,
        maxDeliver: 3,
        drainTimeoutMs: 2000,
        conflictRetries: 5,
        clock,
      }),
    )
    await Effect.runPromise(
      bus.send([
        {
          commandId: "poison",
          actorKind: "probe",
          entityId: "p",
          type: "Explode",
          payload: {},
          issuedAt: "2026-01-01T00:00:00.000Z",
          correlationId: "c",
        },
      ]),
    )
    const deadline = Date.now() + 15_000
    while ((await Effect.runPromise(bus.deadLetters("probe"))).length === 0) {
      if (Date.now() > deadline) throw new Error("no dead letter within 15 s")
      await new Promise((r) => setTimeout(r, 10))
    }
    await Effect.runPromise(host.drain)
    const letters = await Effect.runPromise(bus.deadLetters("probe"))
    expect(letters.map((l) => [l.commandId, l.kind, l.at])).toEqual([
      ["poison", "malformed", "2031-01-02T03:04:05.000Z"],
    ])
  })
})
