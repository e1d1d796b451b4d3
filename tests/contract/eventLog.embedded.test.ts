/**
 * The EventLog contract on the embedded adapter (a temp data dir per test), plus what only the
 * embedded log has: the writer lock, torn-tail recovery after a crash, broken lines reported with
 * their position, and a reader process following a writer through the file.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  eventLogContract,
  type LogHarness,
  type OpenLog,
  probe,
  readAll,
  waitFor,
} from "./eventLogContract.ts"

const openEmbedded = async (
  dataDir: string,
  namespace: string,
  mode: "writer" | "reader" = "writer",
): Promise<OpenLog> => {
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace, mode, fsync: "never" })),
  )
  return { log, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "rollout-embedded-"))

eventLogContract("embedded", async (): Promise<LogHarness> => {
  const dir = tempDir()
  return {
    open: (namespace) => openEmbedded(dir, namespace),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  }
})

describe("embedded log specifics", () => {
  const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)
  const fileOf = (dir: string, ns: string) => path.join(dir, "log", ns, "events.ndjson")

  it("lets one writer in at a time and names the holder", async () => {
    const dir = tempDir()
    const first = await openEmbedded(dir, "lock")
    const second = await Effect.runPromise(
      Effect.exit(Effect.scoped(makeEmbeddedLog({ dataDir: dir, namespace: "lock" }))),
    )
    expect(Exit.isFailure(second)).toBe(true)
    expect(String(Exit.isFailure(second) ? second.cause.reasons[0] : "")).toContain(`process ${process.pid}`)
    await first.close()
    const third = await openEmbedded(dir, "lock")
    await third.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("takes over a stale lock left by a dead process", async () => {
    const dir = tempDir()
    fs.mkdirSync(path.join(dir, "log", "stale"), { recursive: true })
    // A pid that cannot be alive: beyond the kernel's pid range.
    fs.writeFileSync(path.join(dir, "log", "stale", "writer.lock"), "4194304999")
    const opened = await openEmbedded(dir, "stale")
    await run(opened.log.append(entitySubject("stale", "probe", "a"), [probe("s1", 1)]))
    await opened.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("cuts a torn last line after a crash, keeps its bytes and every complete line, and records the cut", async () => {
    const dir = tempDir()
    let opened = await openEmbedded(dir, "torn")
    const a = entitySubject("torn", "probe", "a")
    for (let i = 0; i < 5; i++) await run(opened.log.append(a, [probe(`t${i}`, i)]))
    await opened.close()
    const torn = '{"position":6,"subject":"torn.ev.probe.a","body":{"eventId":"t5"'
    fs.appendFileSync(fileOf(dir, "torn"), torn)
    opened = await openEmbedded(dir, "torn")
    const entries = await readAll(opened.log)
    // The cut takes the position the torn line would have had: the log says it was cut.
    expect(entries.map((e) => ("eventId" in e ? e.eventId : "broken"))).toEqual([
      "t0",
      "t1",
      "t2",
      "t3",
      "t4",
      expect.stringMatching(/^log\/tail-cut\/6\//),
    ])
    const cut = (await run(opened.log.stats)).damage?.cutOnOpen
    expect(cut).toMatchObject({ position: 6, bytes: torn.length, recordedAtPosition: 6 })
    expect(fs.readFileSync(path.join(dir, "log", "torn", cut!.keptIn), "utf8")).toBe(torn)
    const next = await run(opened.log.append(a, [probe("t5", 5)], { expectedLastPosition: 5 }))
    expect(next.positions).toEqual([7])
    await opened.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("reports a broken line with its position and reads on past it", async () => {
    const dir = tempDir()
    let opened = await openEmbedded(dir, "broken")
    const a = entitySubject("broken", "probe", "a")
    await run(opened.log.append(a, [probe("b1", 1)]))
    await opened.close()
    fs.appendFileSync(fileOf(dir, "broken"), "this is not json\n")
    fs.appendFileSync(
      fileOf(dir, "broken"),
      '{"position":3,"subject":"broken.ev.probe.a","body":{"eventId":"x","recordedAt":"t","correlationId":"c","causationId":"c","actor":"a","schemaVersion":1,"event":{"type":"Nope"}}}\n',
    )
    opened = await openEmbedded(dir, "broken")
    await run(opened.log.append(a, [probe("b4", 4)]))
    const entries = await readAll(opened.log)
    expect(entries).toHaveLength(4)
    const broken = entries[1]!
    expect("_tag" in broken && broken._tag === "UndecodableEvent" && broken.position).toBe(2)
    expect(String((broken as { message: string }).message)).toContain("position 2")
    // The third line's envelope is fine: its unknown type is caught by decodeEvent, not the log.
    expect(entries[2]).toMatchObject({ position: 3, type: "Nope" })
    expect(entries[3]).toMatchObject({ position: 4, eventId: "b4" })
    await opened.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("lets a reader follow a writer through the file", async () => {
    const dir = tempDir()
    const writer = await openEmbedded(dir, "follow")
    const a = entitySubject("follow", "probe", "a")
    await run(writer.log.append(a, [probe("f1", 1)]))
    const reader = await openEmbedded(dir, "follow", "reader")
    const seen: string[] = []
    const fiber = Effect.runFork(
      reader.log.tail().pipe(
        Stream.tap((e) => Effect.sync(() => seen.push("eventId" in e ? e.eventId : "?"))),
        Stream.take(3),
        Stream.runDrain,
      ),
    )
    await waitFor(() => seen.length === 1)
    await run(writer.log.append(a, [probe("f2", 2), probe("f3", 3)]))
    await Effect.runPromise(Fiber.join(fiber))
    expect(seen).toEqual(["f1", "f2", "f3"])
    const refused = await Effect.runPromise(Effect.exit(reader.log.append(a, [probe("f4", 4)])))
    expect(Exit.isFailure(refused)).toBe(true)
    await reader.close()
    await writer.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("reads a line longer than the read chunk", async () => {
    const dir = tempDir()
    let opened: OpenLog = await openEmbedded(dir, "big")
    const a = entitySubject("big", "probe", "a")
    const big = {
      ...probe("big", 1),
      event: { type: "ProbeRecorded", probeId: "p", seq: 1, worker: "x".repeat(5_000_000) },
    }
    await run(opened.log.append(a, [probe("small", 0), big as never, probe("after", 2)]))
    await opened.close()
    opened = await openEmbedded(dir, "big")
    const entries = await readAll(opened.log)
    expect(entries.map((e) => ("eventId" in e ? e.eventId : "broken"))).toEqual(["small", "big", "after"])
    await opened.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
})
