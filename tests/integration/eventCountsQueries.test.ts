/**
 * The eventCounts read model's queries and renderings, on a real embedded log with file
 * checkpoints: the log's statistics with its events counted by type, resumed from the checkpoint;
 * a broken line counted with its position, whether the count ran or only the index knew; the
 * table by type (most frequent first) and the JSON of `rollout log stats --json`, whose
 * `undecodable` is null only when nothing could tell.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { DomainEvent, NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { initialEventCounts } from "../../src/projections/eventCounts/eventCounts.ts"
import { type LogCounts, logCountsOf, typeCounts } from "../../src/projections/eventCounts/queries.ts"
import { logStatsJson, typeCountsTable } from "../../src/projections/eventCounts/render.ts"
import { fileCheckpointDir, fileCheckpointStore } from "../../src/runtime/checkpointStore.ts"
import { acquire } from "../support/scoped.ts"

const NS = "c"
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

let ids = 0
const newEvent = (event: DomainEvent, actor: string): NewEvent => ({
  eventId: `ev-${ids++}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "corr",
  causationId: "cmd",
  actor,
  event,
})

/** A log of three probe events and one run started; then a broken line written behind its back. */
const damagedLog = async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-event-counts-"))
  dirs.push(dataDir)
  const open = async (mode: "writer" | "reader") => {
    const log = await acquire(makeEmbeddedLog({ dataDir, namespace: NS, fsync: "never", mode }))
    return {
      source: { log: log.value, checkpoints: fileCheckpointStore(fileCheckpointDir(dataDir, NS)) },
      close: log.close,
    }
  }
  const writer = await open("writer")
  const probes = [0, 1, 2].map((seq) =>
    newEvent({ type: "ProbeRecorded", probeId: "p", seq, worker: "w" }, "probe"),
  )
  await Effect.runPromise(writer.source.log.append(entitySubject(NS, "probe", "p"), probes))
  await Effect.runPromise(
    writer.source.log.append(entitySubject(NS, "run", "r"), [
      newEvent({ type: "RunStarted", runId: "r", kind: "adhoc", model: "m" }, "runner"),
    ]),
  )
  await writer.close()
  fs.appendFileSync(path.join(dataDir, "log", NS, "events.ndjson"), "not an event\n")
  return { open }
}

describe("eventCounts queries", () => {
  it("counts events by type and actor, with the broken line's position; the same resumed from the checkpoint", async () => {
    const { open } = await damagedLog()
    for (const pass of ["first read", "resumed"]) {
      const reader = await open("reader")
      try {
        const read = await Effect.runPromise(logCountsOf(reader.source, { byType: true }))
        expect(read.stats.events, pass).toBe(5)
        expect(read.counts, pass).toMatchObject({
          total: 4,
          byType: { ProbeRecorded: 3, RunStarted: 1 },
          byActor: { probe: 3, runner: 1 },
          undecodable: 1,
          lastUndecodablePosition: 5,
        })
        expect(read.undecodable, pass).toEqual({ count: 1, positions: [5] })
        expect(typeCounts(read.counts!)).toEqual([
          ["ProbeRecorded", 3],
          ["RunStarted", 1],
        ])
      } finally {
        await reader.close()
      }
    }
  })

  it("without the count by type, the index still knows the broken line", async () => {
    const { open } = await damagedLog()
    const reader = await open("reader")
    try {
      const read = await Effect.runPromise(logCountsOf(reader.source, { byType: false }))
      expect(read.counts).toBeUndefined()
      expect(read.undecodable).toEqual({ count: 1, positions: [5] })
      expect(logStatsJson(read, NS)).toMatchObject({
        namespace: NS,
        undecodable: { count: 1, positions: [5] },
      })
      expect("counts" in logStatsJson(read, NS)).toBe(false)
    } finally {
      await reader.close()
    }
  })
})

describe("eventCounts renderings", () => {
  it("the table by type, most frequent first; none for an empty log", () => {
    const counts = { ...initialEventCounts, byType: { RunStarted: 1, ProbeRecorded: 12, EpisodeStarted: 3 } }
    expect(typeCountsTable(counts)).toBe(
      ["type            events", "ProbeRecorded   12", "EpisodeStarted  3", "RunStarted      1"].join("\n"),
    )
    expect(typeCountsTable(initialEventCounts)).toBeUndefined()
  })

  it("log stats --json: statistics first, then namespace, counts and undecodable (null when nothing could tell)", () => {
    const read: LogCounts = {
      stats: {
        backend: "nats",
        stream: "ROLLOUT",
        location: "nats://127.0.0.1:4222",
        events: 0,
        bytes: 0,
        firstPosition: 0,
        lastPosition: 0,
        subjects: 0,
      },
      counts: undefined,
      undecodable: { count: 0, positions: [] },
    }
    const json = logStatsJson(read, "rollout")
    expect(Object.keys(json)).toEqual([
      "backend",
      "stream",
      "location",
      "events",
      "bytes",
      "firstPosition",
      "lastPosition",
      "subjects",
      "namespace",
      "undecodable",
    ])
    expect(json.undecodable).toBeNull()
    expect(logStatsJson({ ...read, counts: initialEventCounts }, "rollout")).toMatchObject({
      counts: initialEventCounts,
      undecodable: { count: 0, positions: [] },
    })
  })
})
