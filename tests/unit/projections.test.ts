/**
 * Properties of projections and the runner, with no I/O: folding in arbitrary chunks with
 * checkpoint/restore through JSON equals one fold; a rebuild equals the result of a live projection
 * that resumed from its checkpoints as the log grew; a redelivered event changes nothing; `apply`
 * never mutates its input. Logs come from small arbitraries of valid envelopes whose ids collide
 * often, so runs, episodes and scores actually meet. An in-memory log and store drive the runner.
 */
import { fc, test } from "@fast-check/vitest"
import { Effect, Result, Schema, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { projectionRegistry } from "../../src/app/projections.ts"
import { UndecodableEvent } from "../../src/events/codec.ts"
import {
  type EventLogShape,
  type LogEntry,
  PassedOver,
  type ReadOptions,
} from "../../src/events/log/eventLog.ts"
import { DomainEvent, type Envelope, type LogRecord } from "../../src/events/schema.ts"
import { subjectMatches } from "../../src/events/subjects.ts"
import { eventCounts } from "../../src/projections/eventCounts/eventCounts.ts"
import {
  advance,
  decodeState,
  encodeState,
  type Folded,
  findNonJson,
  foldAll,
  initialFolded,
  type Json,
  makeProjectionRegistry,
  type Projection,
} from "../../src/projections/projection.ts"
import { rebuildProjection, runProjection } from "../../src/projections/runner/runner.ts"
import { runs } from "../../src/projections/runs/runs.ts"
import {
  type Checkpoint,
  type CheckpointStoreShape,
  CheckpointUnreadable,
} from "../../src/runtime/checkpointStore.ts"

// ---------------------------------------------------------------------------------------------
// Arbitraries: valid events of the vocabulary, with ids drawn from small pools so they collide.

const NS = "t"
const runId = fc.constantFrom("r1", "r2", "r3", "__proto__")
const episodeId = fc.constantFrom("e1", "e2", "e3", "e4", "constructor")
const actor = fc.constantFrom("agent", "evaluator", "runner@w1", "toString")
const text = fc.string({ maxLength: 8 })

const runStarted = fc.record(
  {
    type: fc.constant("RunStarted" as const),
    runId,
    kind: fc.constantFrom("eval" as const, "rl" as const, "adhoc" as const),
    model: text,
    benchmark: text,
    k: fc.nat({ max: 8 }),
    taskCount: fc.nat({ max: 100 }),
  },
  { requiredKeys: ["type", "runId", "kind", "model"] },
)
const runFinished = fc.record(
  {
    type: fc.constant("RunFinished" as const),
    runId,
    status: fc.constantFrom("completed" as const, "failed" as const, "cancelled" as const),
    reason: text,
  },
  { requiredKeys: ["type", "runId", "status"] },
)
const episodeStarted = fc.record(
  {
    type: fc.constant("EpisodeStarted" as const),
    episodeId,
    runId,
    taskId: text,
    sampleIndex: fc.nat({ max: 4 }),
    question: text,
    model: text,
    maxTurns: fc.nat({ max: 50 }),
  },
  { requiredKeys: ["type", "episodeId", "taskId", "sampleIndex", "question", "model", "maxTurns"] },
)
const episodeFinished = fc.record(
  {
    type: fc.constant("EpisodeFinished" as const),
    episodeId,
    outcome: fc.constantFrom(
      "answered" as const,
      "turns_limit" as const,
      "context_limit" as const,
      "model_error" as const,
      "timeout" as const,
    ),
    answer: text,
    turns: fc.nat({ max: 50 }),
  },
  { requiredKeys: ["type", "episodeId", "outcome", "turns"] },
)
const sampleScored = fc.record({
  type: fc.constant("SampleScored" as const),
  runId,
  taskId: text,
  sampleIndex: fc.nat({ max: 4 }),
  episodeId,
  scorer: fc.constantFrom("exact", "judge"),
  verdict: fc.constantFrom("correct" as const, "incorrect" as const, "judge_failed" as const),
  score: fc.double({ min: 0, max: 1, noNaN: true }),
})
const modelRequested = fc.record({
  type: fc.constant("ModelRequested" as const),
  episodeId,
  turn: fc.nat({ max: 50 }),
  requestId: fc.constantFrom("q1", "q2"),
  model: text,
  messageCount: fc.nat({ max: 100 }),
})
const probeRecorded = fc.record({
  type: fc.constant("ProbeRecorded" as const),
  probeId: fc.constantFrom("p1", "p2"),
  seq: fc.nat({ max: 100 }),
  worker: text,
})

const domainEvent: fc.Arbitrary<DomainEvent> = fc.oneof(
  runStarted,
  runFinished,
  episodeStarted,
  episodeFinished,
  sampleScored,
  modelRequested,
  probeRecorded,
)

const entityOf = (e: DomainEvent): [string, string] => {
  switch (e.type) {
    case "RunStarted":
    case "RunFinished":
    case "SampleScored":
      return ["run", e.runId]
    case "ProbeRecorded":
      return ["probe", e.probeId]
    default:
      return "episodeId" in e ? ["episode", e.episodeId] : ["inference", "model" in e ? e.model : "unknown"]
  }
}

const subjectOf = (e: DomainEvent) => {
  const [kind, id] = entityOf(e)
  // Pool ids are single safe tokens apart from the prototype-ish ones, which are fine as tokens too.
  return `${NS}.ev.${kind}.${id}`
}

/** A log: valid envelopes at strictly increasing, not contiguous, positions. */
const envelopesOf = (minLength: number): fc.Arbitrary<Envelope[]> =>
  fc
    .array(fc.tuple(domainEvent, actor, fc.integer({ min: 1, max: 3 })), {
      minLength,
      maxLength: 120,
      size: "medium",
    })
    .map((items) => {
      let position = 0
      return items.map(([event, who, gap], i): Envelope => {
        position += gap
        return {
          eventId: `ev-${i}`,
          recordedAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
          correlationId: "c",
          causationId: "x",
          actor: who,
          position,
          subject: subjectOf(event),
          schemaVersion: 1,
          event,
        }
      })
    })
const envelopes = envelopesOf(0)

const toRecord = (e: Envelope): LogRecord => ({
  eventId: e.eventId,
  recordedAt: e.recordedAt,
  correlationId: e.correlationId,
  causationId: e.causationId,
  actor: e.actor,
  position: e.position,
  subject: e.subject,
  schemaVersion: e.schemaVersion,
  type: e.event.type,
  payload: e.event,
})

/** Raw log entries: records, some broken on the way in (envelope) and some with bad payloads. */
const logEntries: fc.Arbitrary<LogEntry[]> = fc
  .tuple(envelopes, fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 120 }))
  .map(([es, kinds]) =>
    es.map((e, i): LogEntry => {
      const kind = kinds[i] ?? 9
      if (kind === 0) {
        return new UndecodableEvent({
          position: e.position,
          subject: e.subject,
          stage: "envelope",
          reason: "x",
        })
      }
      if (kind === 1) return { ...toRecord(e), payload: { type: e.event.type } }
      if (kind === 2) return { ...toRecord(e), type: "NoSuchEvent" }
      return toRecord(e)
    }),
  )

/** Cut points that split an array into chunks (possibly empty ones). */
const cuts = fc.array(fc.nat({ max: 130 }), { maxLength: 8 }).map((xs) => [...xs].sort((a, b) => a - b))

const chunked = <A>(xs: ReadonlyArray<A>, at: ReadonlyArray<number>): A[][] => {
  const out: A[][] = []
  let from = 0
  for (const c of at) {
    const to = Math.min(c, xs.length)
    if (to < from) continue
    out.push(xs.slice(from, to))
    from = to
  }
  out.push(xs.slice(from))
  return out
}

// ---------------------------------------------------------------------------------------------
// A projection whose state is a Map, to exercise the encode/decode hooks.

type TaskVerdicts = ReadonlyMap<string, string>
const taskVerdicts: Projection<TaskVerdicts> = {
  name: "taskVerdicts",
  version: 1,
  initial: new Map(),
  filter: "ev.run.*",
  apply(state, envelope) {
    if (envelope.event.type !== "SampleScored") return state
    const next = new Map(state)
    next.set(`${envelope.event.taskId}#${envelope.event.sampleIndex}`, envelope.event.verdict)
    return next
  },
  encode: (state) => [...state.entries()].map(([k, v]) => [k, v]),
  decode: (json) => {
    if (!Array.isArray(json)) throw new Error("expected an array of pairs")
    return new Map(json.map((pair) => [String((pair as Json[])[0]), String((pair as Json[])[1])]))
  },
}

const projections: ReadonlyArray<Projection<unknown>> = [
  eventCounts,
  runs,
  taskVerdicts as Projection<unknown>,
]

/** Deep-freezes every state handed to `apply`, so a mutation throws (ES modules are strict). */
const deepFreeze = (value: unknown): void => {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return
  if (value instanceof Map) return // Maps cannot be frozen; `taskVerdicts` is checked by encoding
  Object.freeze(value)
  for (const v of Object.values(value)) deepFreeze(v)
}
const frozen = <S>(p: Projection<S>): Projection<S> => ({
  ...p,
  apply: (state, envelope) => {
    deepFreeze(state)
    return p.apply(state, envelope)
  },
})

/** What a checkpoint stores, and back: the fold through JSON text. */
const throughJson = <S>(p: Projection<S>, folded: Folded<S>): Folded<S> => {
  const encoded = encodeState(p, folded.state)
  if (Result.isFailure(encoded)) throw new Error(encoded.failure)
  const text = JSON.stringify({
    position: folded.position,
    undecodable: folded.undecodable,
    state: encoded.success,
  })
  const back = JSON.parse(text) as { position: number; undecodable: number; state: Json }
  const state = decodeState(p, back.state)
  if (Result.isFailure(state)) throw new Error(state.failure)
  return { state: state.success, position: back.position, undecodable: back.undecodable }
}

const comparable = <S>(p: Projection<S>, folded: Folded<S>) => ({
  position: folded.position,
  undecodable: folded.undecodable,
  state: Result.getOrThrow(encodeState(p, folded.state)),
})

// ---------------------------------------------------------------------------------------------

describe("projection properties", () => {
  test.prop([envelopes])("the arbitraries produce events the schema accepts", (es) => {
    for (const e of es) expect(Schema.decodeUnknownResult(DomainEvent)(e.event)._tag).toBe("Success")
  })

  for (const p of projections) {
    describe(p.name, () => {
      test.prop([logEntries, cuts])(
        "folding in chunks with checkpoint/restore through JSON equals one fold",
        (entries, at) => {
          const whole = advance(p, initialFolded(p), entries).folded
          let folded = initialFolded(p)
          for (const chunk of chunked(entries, at)) folded = throughJson(p, advance(p, folded, chunk).folded)
          expect(comparable(p, folded)).toStrictEqual(comparable(p, whole))
        },
      )

      test.prop([logEntries, fc.array(fc.nat(), { maxLength: 20 })])(
        "a redelivered entry changes nothing",
        (entries, picks) => {
          const once = advance(p, initialFolded(p), entries).folded
          // Redeliver earlier entries after later ones, as a consumer reset or a retry would.
          const redelivered: LogEntry[] = []
          for (const [i, entry] of entries.entries()) {
            redelivered.push(entry)
            for (const pick of picks)
              if (pick % (entries.length + 1) < i) redelivered.push(entries[pick % i]!)
          }
          const step = advance(p, initialFolded(p), redelivered)
          expect(comparable(p, step.folded)).toStrictEqual(comparable(p, once))
          expect(step.applied).toBe(advance(p, initialFolded(p), entries).applied)
          // And an entry at or below the position, folded on its own, returns the same state object.
          if (entries.length > 0) {
            const again = advance(p, once, [entries[0]!])
            expect(again.folded.state).toBe(once.state)
            expect(again.applied).toBe(0)
          }
        },
      )

      test.prop([envelopes])("apply never mutates the state it is given, and states are JSON", (es) => {
        const before = advance(p, initialFolded(p), es.slice(0, es.length >> 1)).folded
        const snapshot = JSON.stringify(comparable(p, before))
        const after = advance(frozen(p), before, es.slice(es.length >> 1)).folded
        expect(JSON.stringify(comparable(p, before))).toBe(snapshot)
        const encoded = Result.getOrThrow(encodeState(p, after.state))
        expect(findNonJson(encoded)).toBeUndefined()
        expect(JSON.parse(JSON.stringify(encoded))).toStrictEqual(encoded)
      })

      test.prop([envelopes])("decoded envelopes and raw records fold to the same state", (es) => {
        expect(comparable(p, advance(p, initialFolded(p), es.map(toRecord)).folded)).toStrictEqual(
          comparable(p, advance(p, initialFolded(p), es).folded),
        )
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// The runner against an in-memory log and store: same fold, whatever the arrays and checkpoints.

const memoryLog = (entries: LogEntry[], arraySize: number): EventLogShape => {
  const select = (options?: ReadOptions) => {
    const from = options?.from ?? 1
    const filter = options?.filter
    return entries.filter(
      (e) =>
        e.position >= from &&
        (filter === undefined || e instanceof UndecodableEvent || subjectMatches(filter, e.subject)),
    )
  }
  const arrays = (xs: LogEntry[]) => {
    const out: LogEntry[][] = []
    for (let i = 0; i < xs.length; i += arraySize) out.push(xs.slice(i, i + arraySize))
    return out
  }
  return {
    backend: "embedded",
    namespace: NS,
    append: () => Effect.die("read-only"),
    read: (options) => Stream.suspend(() => Stream.fromArrays(...arrays(select(options)))),
    // Passes over every record of another type, as a real log may.
    scan: (options) =>
      Stream.suspend(() =>
        Stream.fromArrays(
          ...arrays(select(options)).map((xs) =>
            xs.map((e) =>
              e instanceof UndecodableEvent || options.types.has(e.type)
                ? e
                : new PassedOver(e.position, e.subject, e.type),
            ),
          ),
        ),
      ),
    tail: (options) =>
      Stream.concat(
        Stream.suspend(() => Stream.fromArrays(...arrays(select(options)))),
        Stream.never,
      ),
    lastPosition: () => Effect.succeed(0),
    stats: Effect.sync(() => ({
      backend: "embedded" as const,
      stream: "T_EVENTS",
      location: "memory",
      events: entries.length,
      bytes: 0,
      firstPosition: entries[0]?.position ?? 0,
      lastPosition: entries.at(-1)?.position ?? 0,
      subjects: 0,
    })),
  }
}

const memoryStore = () => {
  const files = new Map<string, string>()
  let saves = 0
  const store: CheckpointStoreShape = {
    backend: "file",
    location: "memory",
    load: (name) =>
      Effect.suspend(() => {
        const text = files.get(name)
        if (text === undefined) return Effect.succeed(undefined)
        try {
          return Effect.succeed(JSON.parse(text) as Checkpoint)
        } catch {
          return Effect.fail(
            new CheckpointUnreadable({ projection: name, location: `memory/${name}`, reason: "bad" }),
          )
        }
      }),
    save: (name, checkpoint) =>
      Effect.sync(() => {
        saves++
        files.set(name, JSON.stringify(checkpoint))
      }),
    remove: (name) => Effect.sync(() => void files.delete(name)),
  }
  return { store, files, saves: () => saves }
}

const quiet = { onUndecodable: () => {} }

describe("runner (in memory)", () => {
  for (const p of projections) {
    test.prop([logEntries, cuts, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 50 })], {
      numRuns: 40,
    })(
      `${p.name}: resuming from checkpoints as the log grows equals a rebuild`,
      async (entries, at, size, every) => {
        const { store } = memoryStore()
        let grown: LogEntry[] = []
        for (const chunk of chunked(entries, at)) {
          grown = [...grown, ...chunk]
          await Effect.runPromise(
            runProjection(memoryLog(grown, size), store, p, {
              live: false,
              checkpointEvery: every,
              ...quiet,
            }),
          )
        }
        const live = await Effect.runPromise(
          runProjection(memoryLog(grown, size), store, p, { live: false, ...quiet }),
        )
        const rebuilt = await Effect.runPromise(
          rebuildProjection(memoryLog(entries, 7), memoryStore().store, p, quiet),
        )
        expect(live.applied).toBe(0)
        expect(comparable(p, live)).toStrictEqual(comparable(p, rebuilt))
        expect(comparable(p, rebuilt)).toStrictEqual(
          comparable(p, advance(p, initialFolded(p), entries).folded),
        )
      },
    )
  }

  const rejectAll = (): TaskVerdicts => {
    throw new Error("no")
  }

  it("says why it rebuilt, and resumes after a checkpoint applying each event once", async () => {
    const log = memoryLog(
      fc
        .sample(
          envelopes.filter((x) => x.length > 10),
          { numRuns: 1, seed: 7 },
        )[0]!
        .map(toRecord),
      16,
    )
    const { store, files, saves } = memoryStore()
    const first = await Effect.runPromise(runProjection(log, store, eventCounts, { live: false }))
    expect(first.start).toStrictEqual({ kind: "rebuilt", reason: "no checkpoint" })
    const second = await Effect.runPromise(runProjection(log, store, eventCounts, { live: false }))
    expect(second.start).toStrictEqual({ kind: "resumed", position: first.position })
    expect(second.applied).toBe(0)
    expect(second.state).toStrictEqual(first.state)
    expect(saves()).toBe(1) // nothing new, nothing saved

    const bumped = await Effect.runPromise(
      runProjection(log, store, { ...eventCounts, version: 2 }, { live: false }),
    )
    expect(bumped.start).toStrictEqual({ kind: "rebuilt", reason: "version changed 1→2" })
    expect(bumped.state).toStrictEqual(first.state)

    files.set("eventCounts", "{ torn")
    const torn = await Effect.runPromise(
      runProjection(log, store, { ...eventCounts, version: 2 }, { live: false }),
    )
    expect(torn.start).toMatchObject({ kind: "rebuilt", reason: "checkpoint unreadable" })
    expect(torn.start.kind === "rebuilt" && torn.start.detail).toContain("memory/eventCounts")

    const rejected = await Effect.runPromise(
      runProjection(log, store, { ...taskVerdicts, decode: rejectAll }, { live: false }),
    )
    expect(rejected.start).toMatchObject({ kind: "rebuilt", reason: "no checkpoint" })
    const again = await Effect.runPromise(
      runProjection(log, store, { ...taskVerdicts, decode: rejectAll }, { live: false }),
    )
    expect(again.start).toMatchObject({ kind: "rebuilt", reason: "checkpoint unreadable" })
  })

  it("counts undecodable entries with their positions and checkpoints every N entries", async () => {
    const es = fc.sample(
      envelopes.filter((x) => x.length > 30),
      { numRuns: 1, seed: 3 },
    )[0]!
    const entries: LogEntry[] = es.map(toRecord)
    entries[5] = new UndecodableEvent({
      position: es[5]!.position,
      subject: "f (line 6)",
      stage: "envelope",
      reason: "x",
    })
    entries[9] = { ...toRecord(es[9]!), payload: { type: es[9]!.event.type } }
    const seen: number[] = []
    const { store, saves } = memoryStore()
    const result = await Effect.runPromise(
      runProjection(memoryLog(entries, 4), store, eventCounts, {
        live: false,
        checkpointEvery: 10,
        onUndecodable: (u) => seen.push(u.position),
      }),
    )
    expect(seen).toStrictEqual([es[5]!.position, es[9]!.position])
    expect(result.undecodable).toBe(2)
    expect(result.undecodableSeen.map((u) => u.position)).toStrictEqual(seen)
    expect(result.state.undecodable).toBe(2)
    expect(result.state.total).toBe(es.length - 2)
    // One save per 10 entries, plus the end of catch-up when the last one was not on a boundary.
    expect(saves()).toBe(Math.floor(es.length / 10) + (es.length % 10 === 0 ? 0 : 1))
  })
})

// ---------------------------------------------------------------------------------------------

describe("projections by example", () => {
  const env = (position: number, event: DomainEvent, who = "agent"): Envelope => ({
    eventId: `e${position}`,
    recordedAt: `2025-01-01T00:00:${String(position).padStart(2, "0")}Z`,
    correlationId: "c",
    causationId: "x",
    actor: who,
    position,
    subject: subjectOf(event),
    schemaVersion: 1,
    event,
  })
  const log = [
    env(1, { type: "RunStarted", runId: "r1", kind: "eval", model: "m", benchmark: "gaia", k: 2 }, "runner"),
    env(2, {
      type: "EpisodeStarted",
      episodeId: "e1",
      runId: "r1",
      taskId: "t1",
      sampleIndex: 0,
      question: "q",
      model: "m",
      maxTurns: 5,
    }),
    env(3, {
      type: "EpisodeStarted",
      episodeId: "e2",
      runId: "r1",
      taskId: "t1",
      sampleIndex: 1,
      question: "q",
      model: "m",
      maxTurns: 5,
    }),
    env(5, { type: "EpisodeFinished", episodeId: "e1", outcome: "answered", answer: "a", turns: 3 }),
    env(6, { type: "EpisodeFinished", episodeId: "e2", outcome: "turns_limit", turns: 5 }),
    env(
      7,
      {
        type: "SampleScored",
        runId: "r1",
        taskId: "t1",
        sampleIndex: 0,
        episodeId: "e1",
        scorer: "exact",
        verdict: "correct",
        score: 1,
      },
      "evaluator",
    ),
    env(
      8,
      {
        type: "SampleScored",
        runId: "r1",
        taskId: "t1",
        sampleIndex: 1,
        episodeId: "e2",
        scorer: "exact",
        verdict: "incorrect",
        score: 0,
      },
      "evaluator",
    ),
    env(9, { type: "RunFinished", runId: "r1", status: "completed" }, "runner"),
  ]

  it("runs: one summary per run", () => {
    const state = foldAll(runs, log)
    expect(state.openEpisodes).toStrictEqual({})
    expect(state.runs.r1).toStrictEqual({
      runId: "r1",
      status: "completed",
      kind: "eval",
      model: "m",
      benchmark: "gaia",
      k: 2,
      taskCount: null,
      startedAt: "2025-01-01T00:00:01Z",
      finishedAt: "2025-01-01T00:00:09Z",
      reason: null,
      episodes: { started: 2, finished: 2, byOutcome: { answered: 1, turns_limit: 1 } },
      samples: { scored: 2, byVerdict: { correct: 1, incorrect: 1, judge_failed: 0 }, scoreSum: 1 },
      lastPosition: 9,
    })
  })

  it("eventCounts: by type, by actor, first and last position", () => {
    const state = foldAll(eventCounts, [
      ...log,
      new UndecodableEvent({ position: 12, subject: "x", stage: "payload", reason: "bad" }),
    ])
    expect(state).toStrictEqual({
      total: 8,
      byType: { RunStarted: 1, EpisodeStarted: 2, EpisodeFinished: 2, SampleScored: 2, RunFinished: 1 },
      byActor: { runner: 2, agent: 4, evaluator: 2 },
      firstPosition: 1,
      lastPosition: 9,
      undecodable: 1,
      lastUndecodablePosition: 12,
    })
  })

  it("a filter relative to the namespace selects subjects in any namespace", () => {
    const onlyRuns = { ...eventCounts, name: "runEvents", filter: "ev.run.*" }
    expect(foldAll(onlyRuns, log).total).toBe(4)
    expect(foldAll({ ...onlyRuns, filter: "ev.run.>" }, log).total).toBe(4)
    expect(foldAll({ ...onlyRuns, filter: "ev.episode.e1" }, log).total).toBe(2)
  })

  it("names the path of a value that is not JSON", () => {
    expect(findNonJson({ a: [1, { b: undefined }] })).toBe("state.a[1].b")
    expect(findNonJson({ m: new Map() })).toBe("state.m")
    expect(findNonJson({ n: Number.NaN })).toBe("state.n")
    expect(findNonJson({ ok: [null, true, "s", 1.5] })).toBeUndefined()
    expect(encodeState({ ...eventCounts, initial: {} } as Projection<unknown>, { x: new Map() })._tag).toBe(
      "Failure",
    )
  })

  it("the registry knows every projection, and refuses bad names", () => {
    expect(projectionRegistry.names).toStrictEqual([
      "eventCounts",
      "runs",
      "toolHealth",
      "scoreboard",
      "rewards",
      "batches",
    ])
    expect(projectionRegistry.get("runs")).toBe(runs)
    expect(() => makeProjectionRegistry([eventCounts, eventCounts] as Projection<unknown>[])).toThrow(/two/)
    expect(() => makeProjectionRegistry([{ ...eventCounts, name: "../x" }] as Projection<unknown>[])).toThrow(
      /must match/,
    )
  })
})
