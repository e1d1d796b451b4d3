/**
 * The large-fields contract every `EventLog` adapter passes with its own blob store (embedded:
 * files beside the log; JetStream: an Object Store bucket): a 50 MB dataset question goes in as an
 * ordinary event and comes back equal through read, scan and tail while the stored event stays
 * small, and without the blob store the same append fails where the engine has a message limit;
 * generated events with large strings, number arrays and JSON come back equal with every stored
 * body under the limit; a duplicate stays a duplicate; a missing or damaged blob makes its event
 * an `UndecodableEvent` naming the position, the field and the hash, and every other event reads.
 */
import { fc } from "@fast-check/vitest"
import { Effect, Exit, Fiber, Result, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import type { EventLogShape, LogEntry, PassedOver } from "../../src/events/log/eventLog.ts"
import type { DomainEvent, EventOf, LogRecord, NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { freshNamespace, type OpenLog } from "./eventLogContract.ts"

export interface LargeFieldsHarness {
  /** Opens a log on the harness's storage in `namespace`, with its default blob store. */
  readonly open: (namespace: string, options?: { readonly inlineLimitBytes?: number }) => Promise<OpenLog>
  /** The event body as the engine stores it at `position` (JSON text). */
  readonly storedBody: (namespace: string, position: number) => Promise<string>
  /** Deletes a blob of the namespace's store behind the log's back. */
  readonly removeBlob: (namespace: string, sha256: string) => Promise<void>
  /** Replaces a blob's stored bytes behind the log's back. */
  readonly damageBlob: (namespace: string, sha256: string, bytes: Uint8Array) => Promise<void>
  /** The engine's own limit on one stored event, when it has one (JetStream: max_payload). */
  readonly messageLimit?: number
  readonly cleanup: () => Promise<void>
}

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => {
  const exit = await Effect.runPromise(Effect.exit(effect))
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const found = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (found?._tag !== "Fail") throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return found.error as E
}

const meta = (eventId: string) => ({
  eventId,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "run-1",
  causationId: `cmd-${eventId}`,
  actor: "contract",
})

const isRecord = (entry: LogEntry | PassedOver): entry is LogRecord =>
  !(entry instanceof UndecodableEvent) && !("_tag" in entry && entry._tag === "PassedOver")

/** The decoded events of the entries, failing the test on anything undecodable. */
const eventsOf = (entries: ReadonlyArray<LogEntry | PassedOver>): DomainEvent[] =>
  entries.filter(isRecord).map((entry) => Result.getOrThrow(decodeEvent(entry)).event)

const collect = <E>(stream: Stream.Stream<LogEntry | PassedOver, E>) =>
  run(Stream.runCollect(stream)).then((entries) => Array.from(entries))

/**
 * A question the size of a big dataset line: ASCII with multi-byte characters spread through it,
 * so a byte or character lost anywhere changes it.
 */
export const bigQuestion = (bytes: number): string => {
  const unit = "Which of these 50 numbers is prime? ünïcödé ✓ 数学 🙂 "
  const repeated = unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)))
  return `${repeated}(end of question)`
}

const episodeStarted = (episodeId: string, question: string): EventOf<"EpisodeStarted"> => ({
  type: "EpisodeStarted",
  episodeId,
  taskId: "big-task",
  sampleIndex: 0,
  question,
  model: "agent",
  maxTurns: 10,
})

const shaIn = (body: string): string[] => [...body.matchAll(/"sha256":"([0-9a-f]{64})"/g)].map((m) => m[1]!)

export const largeFieldsContract = (name: string, makeHarness: () => Promise<LargeFieldsHarness>): void => {
  describe(`large fields in the blob store: ${name}`, () => {
    const withLog = async (
      tag: string,
      body: (log: EventLogShape, ns: string, h: LargeFieldsHarness) => Promise<void>,
      options?: { readonly inlineLimitBytes?: number },
    ) => {
      const harness = await makeHarness()
      const ns = freshNamespace(tag)
      const opened = await harness.open(ns, options)
      try {
        await body(opened.log, ns, harness)
      } finally {
        await opened.close()
        await harness.cleanup()
      }
    }

    it("takes a 50 MB dataset question as an ordinary event and gives it back whole", async () => {
      await withLog("big", async (log, ns, harness) => {
        const question = bigQuestion(50 * 1024 * 1024)
        const subject = entitySubject(ns, "episode", "e-big")
        const started = episodeStarted("e-big", question)
        const appended = await run(
          log.append(subject, [
            { ...meta("big-1"), event: started },
            {
              ...meta("big-2"),
              event: {
                type: "ModelRequested",
                episodeId: "e-big",
                turn: 1,
                requestId: "r1",
                model: "m",
                messageCount: 1,
              },
            },
          ]),
        )
        // What the engine stores is small: the question went to the blob store.
        const body = await harness.storedBody(ns, appended.positions[0]!)
        expect(Buffer.byteLength(body)).toBeLessThan(4096)
        expect(shaIn(body)).toHaveLength(1)
        const stats = await run(log.stats)
        expect(stats.bytes).toBeLessThan(64 * 1024)

        const read = eventsOf(await collect(log.read({ filter: subject })))
        expect(read).toHaveLength(2)
        const back = read[0] as EventOf<"EpisodeStarted">
        expect(back.question.length).toBe(question.length)
        expect(back.question === question).toBe(true)
        expect({ ...back, question: "" }).toStrictEqual({ ...started, question: "" })

        // A scan that folds episode starts reads it back too; one that does not passes it over.
        const scanned = await collect(log.scan({ filter: subject, types: new Set(["EpisodeStarted"]) }))
        expect((eventsOf(scanned)[0] as EventOf<"EpisodeStarted">).question === question).toBe(true)
        const passed = await collect(log.scan({ filter: subject, types: new Set(["ModelRequested"]) }))
        expect(passed[0]).toMatchObject({ _tag: "PassedOver", type: "EpisodeStarted" })

        // A tail started before the append sees the whole question as well.
        const tailSubject = entitySubject(ns, "episode", "e-tail")
        const tail = Effect.runFork(Stream.runCollect(Stream.take(log.tail({ filter: tailSubject }), 1)))
        await run(log.append(tailSubject, [{ ...meta("tail-1"), event: episodeStarted("e-tail", question) }]))
        const tailed = eventsOf(Array.from(await run(Fiber.join(tail))))
        expect((tailed[0] as EventOf<"EpisodeStarted">).question === question).toBe(true)
      })
    }, 120_000)

    it("without the blob store, the same event is as large as the question (and refused by a message limit)", async () => {
      await withLog(
        "inline",
        async (log, ns, harness) => {
          const question = bigQuestion(50 * 1024 * 1024)
          const subject = entitySubject(ns, "episode", "e-inline")
          const append = log.append(subject, [
            { ...meta("inline-1"), event: episodeStarted("e-inline", question) },
          ])
          if (harness.messageLimit !== undefined) {
            const error = await failureOf(append)
            expect(error._tag).toBe("LogUnavailable")
            expect(error.message.toLowerCase()).toContain("payload")
            return
          }
          const { positions } = await run(append)
          const body = await harness.storedBody(ns, positions[0]!)
          expect(Buffer.byteLength(body)).toBeGreaterThan(50 * 1024 * 1024)
          expect(shaIn(body)).toEqual([])
        },
        { inlineLimitBytes: Number.POSITIVE_INFINITY },
      )
    }, 120_000)

    it("gives back generated events with large fields equal, every stored body under the limit (property)", async () => {
      const limit = 2048
      await withLog(
        "prop",
        async (log, ns, harness) => {
          const text = (max: number) => fc.string({ unit: "grapheme", maxLength: max })
          const responded = fc.record({
            content: text(3000),
            reasoning: text(3000),
            query: text(1500),
            tokenIds: fc.array(fc.integer({ min: 0, max: 150_000 }), { maxLength: 1200 }),
            logprobs: fc.array(
              fc.integer({ min: -100_000, max: 0 }).map((n) => n / 1000),
              { maxLength: 800 },
            ),
          })
          const served = fc.record({
            content: fc.array(
              fc.oneof(
                fc.record({ type: fc.constant("text" as const), text: text(2500) }),
                fc.record({ type: fc.constant("json" as const), value: fc.jsonValue({ maxDepth: 3 }) }),
              ),
              { maxLength: 4 },
            ),
          })
          let n = 0
          await fc.assert(
            fc.asyncProperty(responded, served, fc.boolean(), async (r, s, expectPosition) => {
              const id = `p${n++}`
              const subject = entitySubject(ns, "episode", id)
              const events: DomainEvent[] = [
                {
                  type: "ModelResponded",
                  episodeId: id,
                  turn: 1,
                  requestId: `${id}-r1`,
                  endpoint: "http://127.0.0.1:1/v1",
                  latencyMs: 12,
                  finishReason: "tool_calls",
                  content: r.content,
                  reasoning: r.reasoning,
                  toolCalls: [{ callId: "c1", tool: "search", arguments: { query: r.query } }],
                  usage: { promptTokens: 10, completionTokens: r.tokenIds.length },
                  tokenIds: r.tokenIds,
                  logprobs: r.logprobs,
                },
                {
                  type: "ToolCallServed",
                  server: "search",
                  tool: "search",
                  idempotencyKey: `${id}/c1`,
                  version: "v1",
                  replica: "r0",
                  attempts: 1,
                  latencyMs: 3,
                  outcome: "ok",
                  content: s.content as EventOf<"ToolCallServed">["content"],
                  truncated: false,
                },
              ]
              const appended = await run(
                log.append(
                  subject,
                  events.map((event, i) => ({ ...meta(`${id}-${i}`), event }) as NewEvent),
                  expectPosition ? { expectedLastPosition: 0 } : undefined,
                ),
              )
              const back = eventsOf(await collect(log.read({ filter: subject })))
              expect(back).toStrictEqual(JSON.parse(JSON.stringify(events)))
              // The responded event's mass is all in fields that can move: it always fits.
              const body = await harness.storedBody(ns, appended.positions[0]!)
              expect(Buffer.byteLength(body)).toBeLessThanOrEqual(limit)
            }),
            { numRuns: 40 },
          )
        },
        { inlineLimitBytes: limit },
      )
    }, 120_000)

    it("keeps a JSON key named __proto__ a key through the blob store", async () => {
      await withLog(
        "proto",
        async (log, ns) => {
          const content = JSON.parse(`{"__proto__": {"page": ${JSON.stringify("p".repeat(5000))}}, "n": 1}`)
          const subject = entitySubject(ns, "episode", "e-proto")
          const event: DomainEvent = {
            type: "ToolCallCompleted",
            episodeId: "e-proto",
            callId: "c1",
            tool: "fetch",
            content,
            truncated: false,
            latencyMs: 1,
          }
          await run(log.append(subject, [{ ...meta("proto-1"), event }]))
          const [back] = eventsOf(await collect(log.read({ filter: subject })))
          const backContent = (back as EventOf<"ToolCallCompleted">).content as Record<string, unknown>
          expect(Object.hasOwn(backContent, "__proto__")).toBe(true)
          expect(JSON.stringify(backContent)).toBe(JSON.stringify(content))
        },
        { inlineLimitBytes: 2048 },
      )
    })

    it("appends a duplicate once, and its blob once", async () => {
      await withLog(
        "dup",
        async (log, ns, harness) => {
          const subject = entitySubject(ns, "episode", "e-dup")
          const event = { ...meta("dup-1"), event: episodeStarted("e-dup", bigQuestion(300_000)) }
          const first = await run(log.append(subject, [event], { expectedLastPosition: 0 }))
          const again = await run(log.append(subject, [event], { expectedLastPosition: 0 }))
          expect(again).toEqual({ positions: first.positions, duplicates: 1 })
          expect(await collect(log.read({ filter: subject }))).toHaveLength(1)
          expect(shaIn(await harness.storedBody(ns, first.positions[0]!))).toHaveLength(1)
        },
        { inlineLimitBytes: 4096 },
      )
    })

    it("keeps appends to one subject in call order when an earlier one is still storing its blobs", async () => {
      await withLog(
        "order",
        async (log, ns) => {
          const subject = entitySubject(ns, "episode", "e-order")
          const big = { ...meta("order-1"), event: episodeStarted("e-order", bigQuestion(2_000_000)) }
          const small = (i: number) => ({
            ...meta(`order-${i}`),
            event: { type: "ProbeRecorded" as const, probeId: "p", seq: i, worker: "w" },
          })
          // Not awaited one by one: the small appends start while the big one uploads its blob.
          const appended = await run(
            Effect.all(
              [
                log.append(subject, [big]),
                log.append(subject, [small(2)]),
                log.append(subject, [small(3), small(4)]),
              ],
              {
                concurrency: "unbounded",
              },
            ),
          )
          const positions = appended.flatMap((a) => a.positions)
          expect(positions).toEqual([...positions].sort((a, b) => a - b))
          const ids = (await collect(log.read({ filter: subject }))).filter(isRecord).map((r) => r.eventId)
          expect(ids).toEqual(["order-1", "order-2", "order-3", "order-4"])
        },
        { inlineLimitBytes: 4096 },
      )
    })

    it("reports a missing or damaged blob with the event's position, the field and the hash; the rest reads", async () => {
      await withLog(
        "lost",
        async (log, ns, harness) => {
          const subject = entitySubject(ns, "episode", "e-lost")
          const question = bigQuestion(20_000)
          const answer = bigQuestion(30_000).toUpperCase()
          const { positions } = await run(
            log.append(subject, [
              { ...meta("lost-1"), event: episodeStarted("e-lost", question) },
              {
                ...meta("lost-2"),
                event: { type: "ModelNudged", episodeId: "e-lost", turn: 1, reason: "idle", text: "go on" },
              },
              {
                ...meta("lost-3"),
                event: {
                  type: "EpisodeFinished",
                  episodeId: "e-lost",
                  outcome: "answered",
                  answer,
                  turns: 1,
                },
              },
            ]),
          )
          const [questionSha] = shaIn(await harness.storedBody(ns, positions[0]!))
          const [answerSha] = shaIn(await harness.storedBody(ns, positions[2]!))
          await harness.removeBlob(ns, questionSha!)
          await harness.damageBlob(ns, answerSha!, Buffer.from(answer.replace("Q", "q"), "utf8"))

          const entries = await collect(log.read({ filter: subject }))
          expect(entries).toHaveLength(3)
          const missing = entries[0]
          expect(missing).toBeInstanceOf(UndecodableEvent)
          expect(missing).toMatchObject({ position: positions[0], stage: "blob", eventId: "lost-1" })
          expect((missing as UndecodableEvent).message).toContain(`position ${positions[0]}`)
          expect((missing as UndecodableEvent).message).toContain("field question")
          expect((missing as UndecodableEvent).message).toContain(questionSha)
          expect((missing as UndecodableEvent).message).toContain("missing")
          expect(eventsOf([entries[1]!])).toHaveLength(1)
          const damaged = entries[2] as UndecodableEvent
          expect(damaged).toBeInstanceOf(UndecodableEvent)
          expect(damaged.position).toBe(positions[2])
          expect(damaged.message).toContain("field answer")
          expect(damaged.message).toContain(answerSha)
          expect(damaged.message).toContain("damaged")
          expect(damaged.message).not.toContain("missing")
        },
        { inlineLimitBytes: 4096 },
      )
    })
  })
}
