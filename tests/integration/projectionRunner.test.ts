/**
 * The projection runner against real logs and real checkpoint stores: the embedded log with file
 * checkpoints in a temp data dir, and a real nats-server with the JetStream log and KV
 * checkpoints. Both backends run one suite: resume applies each event once, a version bump or a
 * corrupt checkpoint rebuilds (and says why), undecodable entries are counted with their positions
 * and skipped, a live projection follows new appends and checkpoints when stopped. The two
 * checkpoint stores also pass one small contract.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Kvm } from "@nats-io/kv"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { projectionRegistry } from "../../src/app/projections.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats, type NatsHandle } from "../../src/events/log/natsConnection.ts"
import type { DomainEvent, NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { type EventCountsState, eventCounts } from "../../src/projections/eventCounts/eventCounts.ts"
import type { AnyProjection, Projection } from "../../src/projections/projection.ts"
import {
  listProjections,
  rebuildProjection,
  rebuildProjections,
  runProjection,
  startProjection,
} from "../../src/projections/runner/runner.ts"
import { runs } from "../../src/projections/runs/runs.ts"
import {
  type CheckpointStoreShape,
  CheckpointUnreadable,
  checkpointBucketFor,
  fileCheckpointDir,
  fileCheckpointStore,
  kvCheckpointStore,
} from "../../src/runtime/checkpointStore.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import { type Acquired, acquire } from "../support/scoped.ts"

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E | undefined> => {
  const exit = await Effect.runPromise(Effect.exit(effect))
  if (Exit.isSuccess(exit)) return undefined
  const found = exit.cause.reasons.find((r) => r._tag === "Fail")
  return found?._tag === "Fail" ? (found.error as E) : undefined
}

let ids = 0
const newEvent = (event: DomainEvent, actor = "runner"): NewEvent => ({
  eventId: `ev-${process.pid}-${ids++}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "corr",
  causationId: "cmd",
  actor,
  event,
})

/** Appends one run with `episodes` episodes (4 events per episode, 2 for the run); returns the last position. */
const appendRun = async (
  log: EventLogShape,
  runId: string,
  episodes: number,
  finish = true,
): Promise<number> => {
  const ns = log.namespace
  const runSubject = entitySubject(ns, "run", runId)
  let last = 0
  const put = async (subject: string, events: NewEvent[]) => {
    const appended = await run(log.append(subject, events))
    last = Math.max(last, ...appended.positions)
  }
  await put(runSubject, [
    newEvent({ type: "RunStarted", runId, kind: "eval", model: "m", benchmark: "b", k: 1 }),
  ])
  for (let i = 0; i < episodes; i++) {
    const episodeId = `${runId}-e${i}`
    const episodeSubject = entitySubject(ns, "episode", episodeId)
    await put(episodeSubject, [
      newEvent(
        {
          type: "EpisodeStarted",
          episodeId,
          runId,
          taskId: `t${i}`,
          sampleIndex: 0,
          question: "q",
          model: "m",
          maxTurns: 3,
        },
        "agent",
      ),
      newEvent(
        {
          type: "ModelRequested",
          episodeId,
          turn: 0,
          requestId: `${episodeId}-q`,
          model: "m",
          messageCount: 1,
        },
        "agent",
      ),
      newEvent(
        { type: "EpisodeFinished", episodeId, outcome: i % 3 === 0 ? "turns_limit" : "answered", turns: 1 },
        "agent",
      ),
    ])
    await put(runSubject, [
      newEvent(
        {
          type: "SampleScored",
          runId,
          taskId: `t${i}`,
          sampleIndex: 0,
          episodeId,
          scorer: "exact",
          verdict: i % 2 === 0 ? "correct" : "incorrect",
          score: i % 2 === 0 ? 1 : 0,
        },
        "evaluator",
      ),
    ])
  }
  if (finish) await put(runSubject, [newEvent({ type: "RunFinished", runId, status: "completed" })])
  return last
}

const within = <A, E>(effect: Effect.Effect<A, E>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: 15_000, orElse: () => Effect.die(new Error("timed out")) }))

interface Opened {
  readonly log: EventLogShape
  readonly store: CheckpointStoreShape
  readonly close: () => Promise<void>
}

interface Backend {
  readonly name: string
  readonly setup: () => Promise<void>
  readonly teardown: () => Promise<void>
  readonly open: (ns: string) => Promise<Opened>
  /** Overwrites a projection's checkpoint with garbage; returns where it is. */
  readonly corrupt: (ns: string, name: string) => Promise<string>
  /**
   * Puts two broken entries into the log (one unparseable, one with a payload its schema rejects),
   * on a run subject; returns the reopened log and their positions.
   */
  readonly injectBroken: (ns: string, opened: Opened) => Promise<{ opened: Opened; positions: number[] }>
}

const badPayloadBody = (eventId: string) =>
  JSON.stringify({
    eventId,
    recordedAt: "2026-01-01T00:00:00.000Z",
    correlationId: "c",
    causationId: "x",
    actor: "intruder",
    schemaVersion: 1,
    event: { type: "RunStarted" },
  })

const embedded = (): Backend => {
  let dataDir = ""
  const open = async (namespace: string): Promise<Opened> => {
    const acquired = await acquire(makeEmbeddedLog({ dataDir, namespace, fsync: "never" }))
    return {
      log: acquired.value,
      store: fileCheckpointStore(fileCheckpointDir(dataDir, namespace)),
      close: acquired.close,
    }
  }
  return {
    name: "embedded log + file checkpoints",
    setup: async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-projections-"))
    },
    teardown: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
    open,
    corrupt: async (ns, name) => {
      const file = path.join(fileCheckpointDir(dataDir, ns), `${name}.json`)
      fs.writeFileSync(file, '{"projection":"eventCounts","version":1,"posi')
      return file
    },
    injectBroken: async (ns, opened) => {
      const last = (await run(opened.log.stats)).lastPosition
      await opened.close()
      // Written behind the log's back, as a crash-damaged disk or a foreign writer would.
      const subject = entitySubject(ns, "run", "intruder")
      fs.appendFileSync(
        path.join(dataDir, "log", ns, "events.ndjson"),
        `this is not json\n{"position":${last + 2},"subject":"${subject}","body":${badPayloadBody("bad-1")}}\n`,
      )
      return { opened: await open(ns), positions: [last + 1, last + 2] }
    },
  }
}

const jetStream = (): Backend => {
  let server: TestNatsServer
  let conn: Acquired<NatsHandle>
  return {
    name: "JetStream log + KV checkpoints",
    setup: async () => {
      server = await startTestNatsServer()
      conn = await acquire(connectNats({ servers: server.url, name: "projection-it" }))
    },
    teardown: async () => {
      await conn?.close()
      await server?.stop()
    },
    open: async (namespace) => ({
      log: await run(makeJetStreamLog(conn.value, { namespace })),
      store: await run(kvCheckpointStore(conn.value, { bucket: checkpointBucketFor(namespace) })),
      close: async () => {},
    }),
    corrupt: async (ns, name) => {
      const kv = await new Kvm(conn.value.js).open(checkpointBucketFor(ns))
      await kv.put(name, "{ not a checkpoint")
      return `kv://${checkpointBucketFor(ns)}/${name}`
    },
    injectBroken: async (ns, opened) => {
      const subject = entitySubject(ns, "run", "intruder")
      const first = await conn.value.js.publish(subject, "this is not json")
      const second = await conn.value.js.publish(subject, badPayloadBody("bad-1"))
      return { opened, positions: [first.seq, second.seq] }
    },
  }
}

let namespaces = 0
const freshNs = () => `pr${process.pid % 1000}x${namespaces++}`

for (const backend of [embedded(), jetStream()]) {
  describe(backend.name, () => {
    beforeAll(() => backend.setup())
    afterAll(() => backend.teardown())

    it("resumes from its checkpoint and applies each event once", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      const firstLast = await appendRun(log, "r1", 10)
      const first = await run(runProjection(log, store, eventCounts, { live: false, checkpointEvery: 7 }))
      expect(first.start).toStrictEqual({ kind: "rebuilt", reason: "no checkpoint" })
      expect(first.applied).toBe(42)
      expect(first.position).toBe(firstLast)
      expect(first.checkpointsSaved).toBeGreaterThanOrEqual(6)

      const secondLast = await appendRun(log, "r2", 5)
      const second = await run(runProjection(log, store, eventCounts, { live: false }))
      expect(second.start).toStrictEqual({ kind: "resumed", position: firstLast })
      expect(second.applied).toBe(22)
      expect(second.position).toBe(secondLast)
      expect(second.state.total).toBe(64)
      expect(second.state.byType).toMatchObject({ RunStarted: 2, EpisodeStarted: 15, SampleScored: 15 })
      expect(second.state.byActor).toStrictEqual({ runner: 4, agent: 45, evaluator: 15 })

      const stored = await run(store.load("eventCounts"))
      expect(stored).toMatchObject({
        projection: "eventCounts",
        version: 1,
        position: secondLast,
        undecodable: 0,
      })
      expect(stored?.state).toStrictEqual(second.state)

      const rebuilt = await run(rebuildProjection(log, store, eventCounts))
      expect(rebuilt.start).toStrictEqual({ kind: "rebuilt", reason: "rebuild requested" })
      expect(rebuilt.state).toStrictEqual(second.state)
      await close()
    })

    it("rebuilds several projections from one read, equal to rebuilding each alone", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      const last = await appendRun(log, "r1", 12)
      const together = await run(rebuildProjections(log, store, [eventCounts, runs] as AnyProjection[]))
      expect(together.map((t) => [t.name, t.position])).toStrictEqual([
        ["eventCounts", last],
        ["runs", last],
      ])
      const savedCounts = await run(store.load("eventCounts"))
      const savedRuns = await run(store.load("runs"))
      const alone = await run(rebuildProjection(log, store, eventCounts))
      const aloneRuns = await run(rebuildProjection(log, store, runs))
      expect(savedCounts?.state).toStrictEqual(alone.state)
      expect(JSON.stringify(savedRuns?.state)).toBe(JSON.stringify(aloneRuns.state))
      expect(savedRuns?.position).toBe(last)
      await close()
    })

    it("rebuilds when the projection's version changes, and says so", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      await appendRun(log, "r1", 4)
      const v1 = await run(runProjection(log, store, runs, { live: false }))
      const next = runs.version + 1
      const v2 = await run(runProjection(log, store, { ...runs, version: next }, { live: false }))
      expect(v2.start).toStrictEqual({ kind: "rebuilt", reason: `version changed ${runs.version}→${next}` })
      expect(v2.applied).toBe(v1.applied)
      expect(v2.state).toStrictEqual(v1.state)
      expect(v2.state.runs.r1).toMatchObject({
        status: "completed",
        episodes: { started: 4, finished: 4, byOutcome: { turns_limit: 2, answered: 2 } },
        samples: { scored: 4, byVerdict: { correct: 2, incorrect: 2, judge_failed: 0 } },
      })
      expect((await run(store.load("runs")))?.version).toBe(next)
      await close()
    })

    it("rebuilds over a corrupt checkpoint, naming where it is, without failing", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      await appendRun(log, "r1", 3)
      const before = await run(runProjection(log, store, eventCounts, { live: false }))
      const location = await backend.corrupt(ns, "eventCounts")
      const listed = await run(listProjections(store, projectionRegistry, log))
      expect(listed.find((p) => p.name === "eventCounts")).toMatchObject({ checkpoint: "unreadable" })
      expect(listed.find((p) => p.name === "runs")).toMatchObject({ checkpoint: "none" })

      const after = await run(runProjection(log, store, eventCounts, { live: false }))
      expect(after.start).toMatchObject({ kind: "rebuilt", reason: "checkpoint unreadable" })
      expect(after.start.kind === "rebuilt" ? after.start.detail : "").toContain(location)
      expect(after.state).toStrictEqual(before.state)
      const again = await run(runProjection(log, store, eventCounts, { live: false }))
      expect(again.start).toStrictEqual({ kind: "resumed", position: before.position })
      await close()
    })

    it("counts undecodable entries with their positions and skips them", async () => {
      const ns = freshNs()
      let { log, store, close } = await backend.open(ns)
      await appendRun(log, "r1", 2)
      const injected = await backend.injectBroken(ns, { log, store, close })
      ;({ log, store, close } = injected.opened)
      const last = await appendRun(log, "r2", 1)
      const seen: number[] = []
      const result = await run(
        runProjection(log, store, eventCounts, { live: false, onUndecodable: (u) => seen.push(u.position) }),
      )
      expect(seen).toStrictEqual(injected.positions)
      expect(result.undecodableSeen.map((u) => u.stage)).toStrictEqual(["envelope", "payload"])
      expect(result.undecodable).toBe(2)
      expect(result.state).toMatchObject({
        total: 16,
        undecodable: 2,
        lastUndecodablePosition: injected.positions[1],
      })
      expect(result.position).toBe(last)
      // The count survives the checkpoint; the broken entries are not met again.
      const resumed = await run(
        runProjection(log, store, eventCounts, { live: false, onUndecodable: () => {} }),
      )
      expect(resumed.undecodable).toBe(2)
      expect(resumed.undecodableSeen).toStrictEqual([])
      await close()
    })

    it("reads only its own subjects when the projection has a filter", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      await appendRun(log, "r1", 3)
      const runEvents: Projection<EventCountsState> = {
        ...eventCounts,
        name: "runEvents",
        filter: "ev.run.*",
      }
      const result = await run(runProjection(log, store, runEvents, { live: false }))
      expect(result.state.byType).toStrictEqual({ RunStarted: 1, SampleScored: 3, RunFinished: 1 })
      await close()
    })

    it("follows new appends live and checkpoints when stopped", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      const firstLast = await appendRun(log, "r1", 2, false)
      const live = await acquire(startProjection(log, store, runs, { checkpointEvery: 1000 }))
      expect(live.value.start).toStrictEqual({ kind: "rebuilt", reason: "no checkpoint" })
      const caughtUp = await run(within(live.value.awaitPosition(firstLast)))
      expect(caughtUp.state.runs.r1).toMatchObject({
        status: "running",
        episodes: { started: 2, finished: 2 },
      })

      const more = await appendRun(log, "r2", 3)
      const followed = await run(within(live.value.awaitPosition(more)))
      expect(followed.caughtUp).toBe(true)
      expect(followed.state.runs.r2).toMatchObject({ status: "completed", samples: { scored: 3 } })
      const finish = await run(
        log.append(entitySubject(ns, "run", "r1"), [
          newEvent({ type: "RunFinished", runId: "r1", status: "failed", reason: "x" }),
        ]),
      )
      const finished = await run(within(live.value.awaitPosition(finish.positions[0]!)))
      expect(finished.state.runs.r1?.status).toBe("failed")

      await live.close()
      // Stopping saved the live position, so the next run resumes there with nothing to do.
      expect((await run(store.load("runs")))?.position).toBe(finish.positions[0])
      const next = await run(runProjection(log, store, runs, { live: false }))
      expect(next.start).toStrictEqual({ kind: "resumed", position: finish.positions[0] })
      expect(next.applied).toBe(0)
      expect(next.state).toStrictEqual(finished.state)
      await close()
    })

    it("lists projections with their checkpoint status", async () => {
      const ns = freshNs()
      const { log, store, close } = await backend.open(ns)
      const last = await appendRun(log, "r1", 1)
      await run(runProjection(log, store, runs, { live: false }))
      await run(
        store.save("eventCounts", {
          projection: "eventCounts",
          version: 99,
          position: 1,
          state: {},
          undecodable: 0,
        }),
      )
      const listed = await run(listProjections(store, projectionRegistry, log))
      expect(listed).toMatchObject([
        { name: "eventCounts", checkpoint: "version changed", position: 1, behind: last - 1 },
        { name: "runs", checkpoint: "current", position: last, behind: 0 },
        { name: "toolHealth", checkpoint: "none" },
        { name: "scoreboard", checkpoint: "none" },
        { name: "rewards", checkpoint: "none" },
        { name: "batches", checkpoint: "none" },
      ])
      await close()
    })
  })
}

// ---------------------------------------------------------------------------------------------
// The CheckpointStore contract, on both adapters.

const storeContract = (
  name: string,
  make: () => Promise<{ store: CheckpointStoreShape; corrupt: (key: string, text: string) => Promise<void> }>,
) =>
  describe(`CheckpointStore contract: ${name}`, () => {
    it("loads nothing, then what was saved, then the replacement, then nothing after remove", async () => {
      const { store } = await make()
      expect(await run(store.load("alpha"))).toBeUndefined()
      const cp = {
        projection: "alpha",
        version: 3,
        position: 17,
        state: { a: [1, "x", null], b: { c: true } },
        undecodable: 2,
        savedAt: "2026-01-01T00:00:00.000Z",
      }
      await run(store.save("alpha", cp))
      expect(await run(store.load("alpha"))).toStrictEqual(cp)
      await run(store.save("alpha", { ...cp, position: 18, state: [] }))
      expect(await run(store.load("alpha"))).toMatchObject({ position: 18, state: [] })
      await run(store.remove("alpha"))
      expect(await run(store.load("alpha"))).toBeUndefined()
      await run(store.remove("alpha"))
    })

    it("keeps a checkpoint larger than one NATS message (3 MB), then a small one replacing it", async () => {
      const { store } = await make()
      const rows = Array.from({ length: 30_000 }, (_, i) => ({
        task: `t${i}`,
        verdict: i % 2 === 0,
        pad: "x".repeat(80),
      }))
      const big = { projection: "gamma", version: 1, position: 99, state: { rows }, undecodable: 0 }
      await run(store.save("gamma", big))
      expect(await run(store.load("gamma"))).toStrictEqual(big)
      await run(store.save("gamma", { ...big, position: 100, state: { rows: rows.slice(0, 2) } }))
      expect(await run(store.load("gamma"))).toMatchObject({
        position: 100,
        state: { rows: rows.slice(0, 2) },
      })
      await run(store.save("gamma", { ...big, position: 101 }))
      expect(await run(store.load("gamma"))).toStrictEqual({ ...big, position: 101 })
      await run(store.remove("gamma"))
      expect(await run(store.load("gamma"))).toBeUndefined()
    })

    it("reports a corrupt or foreign checkpoint as unreadable, with its location", async () => {
      const { store, corrupt } = await make()
      await corrupt("beta", "{ torn")
      const torn = await failureOf(store.load("beta"))
      expect(torn).toBeInstanceOf(CheckpointUnreadable)
      expect(torn).toMatchObject({ projection: "beta" })
      expect((torn as CheckpointUnreadable).location).toContain("beta")
      await corrupt(
        "beta",
        JSON.stringify({ projection: "gamma", version: 1, position: 0, state: null, undecodable: 0 }),
      )
      expect(((await failureOf(store.load("beta"))) as CheckpointUnreadable).reason).toContain("gamma")
      await corrupt("beta", JSON.stringify({ projection: "beta", version: "1" }))
      expect(await failureOf(store.load("beta"))).toBeInstanceOf(CheckpointUnreadable)
    })
  })

describe("checkpoint stores", () => {
  let dir = ""
  let server: TestNatsServer
  let conn: Acquired<NatsHandle>
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-checkpoints-"))
    server = await startTestNatsServer()
    conn = await acquire(connectNats({ servers: server.url, name: "checkpoint-contract" }))
  })
  afterAll(async () => {
    fs.rmSync(dir, { recursive: true, force: true })
    await conn?.close()
    await server?.stop()
  })

  let stores = 0
  storeContract("file", async () => {
    const storeDir = path.join(dir, `s${stores++}`)
    return {
      store: fileCheckpointStore(storeDir),
      corrupt: async (key, text) => {
        fs.mkdirSync(storeDir, { recursive: true })
        fs.writeFileSync(path.join(storeDir, `${key}.json`), text)
      },
    }
  })
  storeContract("NATS KV", async () => {
    const bucket = `CP_${stores++}`
    const store = await run(kvCheckpointStore(conn.value, { bucket }))
    return {
      store,
      corrupt: async (key, text) => {
        await (await new Kvm(conn.value.js).open(bucket)).put(key, text)
      },
    }
  })

  it("file: leaves no temporary files behind and replaces atomically", async () => {
    const storeDir = path.join(dir, "atomic")
    const store = fileCheckpointStore(storeDir)
    await run(
      Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) =>
          store.save("delta", { projection: "delta", version: 1, position: i, state: { i }, undecodable: 0 }),
        { concurrency: 20 },
      ),
    )
    expect(fs.readdirSync(storeDir)).toStrictEqual(["delta.json"])
    expect((await run(store.load("delta")))?.state).toStrictEqual({
      i: (await run(store.load("delta")))?.position,
    })
  })

  it("NATS KV: keeps checkpoints in a file-storage bucket", async () => {
    await run(kvCheckpointStore(conn.value, { bucket: checkpointBucketFor("kvcheck") }))
    const info = await conn.value.jsm.streams.info("KV_KVCHECK_CHECKPOINTS")
    expect(info.config.storage).toBe("file")
    expect(info.config.max_msgs_per_subject).toBe(1)
  })
})
