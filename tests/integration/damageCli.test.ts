import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import type { NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { runRollout } from "../support/cli.ts"
import { damageArb, damaged, expectedOf, garbage, linesOf, NEWLINE } from "../support/logDamage.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"

let cwd: string
let demo: string

const rollout = (...args: string[]) => runRollout(args, { cwd })

/** Any character that could drive a terminal, except the newlines and tabs of our own layout. */
const controlsIn = (text: string) =>
  [...text].filter((c) => {
    const code = c.charCodeAt(0)
    return (code < 0x20 && code !== 0x0a && code !== 0x09) || (code >= 0x7f && code <= 0x9f)
  })

const copyOfDemo = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damaged-"))
  fs.cpSync(demo, dir, { recursive: true })
  return { dir, file: path.join(dir, "log", "rollout", "events.ndjson") }
}

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-damage-cli-"))
  demo = path.join(cwd, "demo")
  const made = await rollout("--data-dir", demo, "demo", "-k", "1", "--json")
  expect(made.code, made.stderr).toBe(0)
}, 120_000)
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }))

describe("a damaged embedded log through the CLI", () => {
  it("a garbage line in the middle: every reading command names the count and the position, escaped", async () => {
    const { dir, file } = copyOfDemo()
    try {
      const lines = linesOf(fs.readFileSync(file))
      const at = Math.floor(lines.length / 2)
      lines[at - 1] = Buffer.from("garbage \u001b[31mRED\u001b[0m \u0007line")
      fs.writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")])))
      const where = `position ${at}`

      const all = await rollout("--data-dir", dir, "projections", "rebuild", "all")
      expect(all.code).toBe(0)
      expect(all.stderr).toContain(`log damage: 1 line of ${file} does not decode: ${where}`)
      expect(all.stderr).toContain(
        `projections rebuild all: 1 entry could not be decoded and was skipped: ${where}`,
      )
      expect(all.stderr).toContain('"garbage \\x1b[')
      const allJson = JSON.parse(
        (await rollout("--data-dir", dir, "projections", "rebuild", "all", "--json")).stdout,
      )
      expect(allJson.undecodable).toEqual({ count: 1, positions: [at] })

      const one = await rollout("--data-dir", dir, "projections", "rebuild", "scoreboard")
      expect(one.stderr).toContain(
        `projections rebuild scoreboard: 1 entry could not be decoded and was skipped: ${where}`,
      )

      const stats = await rollout("--data-dir", dir, "log", "stats")
      expect(stats.stdout).toContain(`undecodable 1: ${where}`)
      const statsJson = JSON.parse((await rollout("--data-dir", dir, "log", "stats", "--json")).stdout)
      expect(statsJson.undecodable).toEqual({ count: 1, positions: [at] })
      expect(statsJson.damage).toMatchObject({ undecodable: 1, undecodablePositions: [at] })

      const tail = await rollout("--data-dir", dir, "log", "tail", "--from", String(at - 1), "--limit", "3")
      expect(tail.stdout.split("\n")[1]).toMatch(new RegExp(`^${at}\\t!\\t.*"garbage \\\\x1b\\[`))
      expect(tail.stderr).toContain(
        `log tail: of the 3 entries printed: 1 entry could not be decoded and is marked !: ${where}`,
      )

      const scores = await rollout("--data-dir", dir, "scores", "--json")
      expect(JSON.parse(scores.stdout).undecodable).toEqual({ count: 1, positions: [at] })
      const status = await rollout("--data-dir", dir, "status")
      expect(status.stdout).toContain("damaged: 1 undecodable line")

      for (const r of [all, one, stats, tail, scores, status]) {
        expect(controlsIn(r.stdout)).toEqual([])
        expect(controlsIn(r.stderr)).toEqual([])
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("a torn last line: reported on open by every reader; the next writer announces the cut and keeps the bytes", async () => {
    const { dir, file } = copyOfDemo()
    try {
      const sound = fs.readFileSync(file)
      const lastStart = sound.lastIndexOf(NEWLINE, sound.length - 2) + 1
      const lastLine = sound.subarray(lastStart, sound.length - 1).toString()
      expect(JSON.parse(lastLine).body.event.type).toBe("RunFinished")
      fs.truncateSync(file, sound.length - 183)
      const torn = sound.subarray(lastStart, sound.length - 183)
      const expected = `ends in an incomplete line of ${torn.length} bytes at offset ${lastStart}`

      const stats = await rollout("--data-dir", dir, "log", "stats")
      expect(stats.stdout).toContain(expected)
      for (const args of [["projections", "rebuild", "all"], ["log", "tail"], ["scores"]]) {
        const r = await rollout("--data-dir", dir, ...args)
        expect(r.code).toBe(0)
        expect(r.stderr, args.join(" ")).toContain(expected)
      }
      const scores = await rollout("--data-dir", dir, "scores", "--json")
      const runId = JSON.parse(lastLine).body.event.runId
      expect(scores.stderr).toContain(`run ${runId} may be further on than shown`)
      expect(JSON.parse(scores.stdout)).toMatchObject({ tornRun: runId, tornTail: { offset: lastStart } })
      // Readers leave the file alone.
      expect(fs.statSync(file).size).toBe(sound.length - 183)

      // A writer cuts it: says so, keeps the bytes, records the cut in the log.
      const writer = await rollout("--data-dir", dir, "cancel", "nobody/q00/0")
      expect(writer.stderr).toMatch(
        new RegExp(
          `log damage: cut an incomplete last line of ${torn.length} bytes at offset ${lastStart} off .*; its bytes are kept in (\\S+), the cut is recorded at position \\d+ \\(LogTailCut\\)`,
        ),
      )
      const kept = /kept in (\S+),/.exec(writer.stderr)![1]!
      expect(fs.readFileSync(kept).equals(torn)).toBe(true)
      const after = JSON.parse((await rollout("--data-dir", dir, "log", "stats", "--json")).stdout)
      expect(after.damage.tornTail).toBeUndefined()
      expect(after.damage.cuts).toEqual([
        expect.objectContaining({
          offset: lastStart,
          bytes: torn.length,
          keptIn: path.relative(path.dirname(file), kept),
        }),
      ])
      expect((await rollout("--data-dir", dir, "log", "stats")).stdout).toContain(
        `${torn.length} bytes at offset ${lastStart}`,
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("arbitrary damage: each reading command reports the right count, positions and torn tail, and exits 0", async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-fuzzed-"))
    try {
      const scope = Effect.runSync(Scope.make())
      const log = await Effect.runPromise(
        Scope.provide(scope)(makeEmbeddedLog({ dataDir: base, namespace: "rollout", fsync: "never" })),
      )
      await Effect.runPromise(
        log.append(
          entitySubject("rollout", "probe", "p"),
          Array.from({ length: 12 }, (_, i) => probeEvent(i)),
        ),
      )
      await Effect.runPromise(Scope.close(scope, Exit.void))
      const sound = fs.readFileSync(path.join(base, "log", "rollout", "events.ndjson"))
      const original = linesOf(sound)
      await fc.assert(
        fc.asyncProperty(
          damageArb,
          fc.nat({ max: 300 }),
          fc.oneof(
            fc.constant(Buffer.alloc(0)),
            garbage.map((g) => Buffer.from(g.filter((b) => b !== NEWLINE))),
          ),
          async (damage, cut, partial) => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-fuzzed-"))
            try {
              const file = path.join(dir, "log", "rollout", "events.ndjson")
              fs.mkdirSync(path.dirname(file), { recursive: true })
              const bytes = damaged(original, damage, cut, partial)
              fs.writeFileSync(file, bytes)
              const want = expectedOf(bytes, original)
              const undecodable = { count: want.broken.length, positions: want.broken }

              const stats = await rollout("--data-dir", dir, "log", "stats", "--json")
              expect(stats.code, stats.stderr).toBe(0)
              const s = JSON.parse(stats.stdout)
              expect(s.undecodable).toEqual(undecodable)
              expect(s.lastPosition).toBe(want.complete)
              expect(s.damage.tornTail?.offset).toBe(want.tail?.offset)

              const rebuilt = await rollout("--data-dir", dir, "projections", "rebuild", "all", "--json")
              expect(rebuilt.code, rebuilt.stderr).toBe(0)
              expect(JSON.parse(rebuilt.stdout).undecodable).toEqual(undecodable)

              const tail = await rollout("--data-dir", dir, "log", "tail", "--from", "1", "--limit", "100")
              expect(tail.code, tail.stderr).toBe(0)
              const marked = tail.stdout
                .split("\n")
                .filter((l) => l.split("\t")[1] === "!")
                .map((l) => Number(l.split("\t")[0]))
              expect(marked).toEqual(want.broken)
              for (const r of [stats, rebuilt, tail]) {
                expect(r.stderr).not.toContain("internal error")
                expect(controlsIn(r.stdout)).toEqual([])
                expect(controlsIn(r.stderr)).toEqual([])
              }
              if (want.broken.length > 0)
                expect(tail.stderr).toContain(`${want.broken.length === 1 ? "line" : "lines"} of`)
              if (want.tail !== undefined)
                expect(tail.stderr).toContain(`incomplete line of ${want.tail.bytes.length} byte`)
            } finally {
              fs.rmSync(dir, { recursive: true, force: true })
            }
          },
        ),
        { numRuns: 6 },
      )
    } finally {
      fs.rmSync(base, { recursive: true, force: true })
    }
  }, 300_000)
})

/** One demo episode's lines: where each is in the file and what it holds. */
const episodeLines = (file: string) => {
  const lines = linesOf(fs.readFileSync(file))
  const parsed = lines.map((l) => JSON.parse(l.toString()))
  const responded = parsed.findIndex((l) => l.body.event.type === "ModelResponded")
  const subject: string = parsed[responded].subject
  const mine = parsed.flatMap((l, i) => (l.subject === subject ? [i] : []))
  const episodeId: string = parsed[mine[0]!].body.event.episodeId
  return { lines, parsed, responded, subject, mine, episodeId }
}

const writeLines = (file: string, lines: ReadonlyArray<Buffer>) =>
  fs.writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")])))

describe("replay over a damaged episode", () => {
  it("an undecodable ModelResponded: marked where it is, the rest shown, DAMAGED (exit 4), not DIVERGED", async () => {
    const { dir, file } = copyOfDemo()
    try {
      const ep = episodeLines(file)
      const at = ep.responded + 1
      // The line still names its subject; its body is broken (and carries a terminal escape).
      ep.lines[ep.responded] = Buffer.concat([
        ep.lines[ep.responded]!.subarray(0, 160),
        Buffer.from("\u001b[31m"),
      ])
      writeLines(file, ep.lines)
      const verify = await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify")
      expect(verify.code).toBe(4)
      expect(verify.stdout).toMatch(
        new RegExp(`^DAMAGED at position ${at}: this entry of the episode cannot be decoded`),
      )
      expect(verify.stdout).not.toContain("DIVERGED")
      const json = JSON.parse(
        (await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify", "--json")).stdout,
      )
      expect(json.verdict).toBe("damaged")
      expect(json.gaps).toEqual([expect.objectContaining({ position: at, subjectKnown: true })])

      const plain = await rollout("--data-dir", dir, "replay", ep.episodeId)
      expect(plain.code).toBe(4)
      const rows = plain.stdout.trim().split("\n")
      expect(rows.map((r) => Number(r.trim().split(/\s+/)[0]))).toEqual(ep.mine.map((i) => i + 1))
      expect(rows.find((r) => r.trim().startsWith(`${at} `))).toMatch(
        /! undecodable entry: envelope: invalid JSON/,
      )
      expect(plain.stderr).toContain(
        `replay: 1 entry of this episode could not be decoded (marked !): position ${at}`,
      )
      for (const r of [verify, plain]) {
        expect(controlsIn(r.stdout)).toEqual([])
        expect(controlsIn(r.stderr)).toEqual([])
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("a garbage line of unknown subject among the episode's events is named; tampering is DIVERGED (exit 3)", async () => {
    const { dir, file } = copyOfDemo()
    try {
      const ep = episodeLines(file)
      const at = ep.responded + 1
      const sound = [...ep.lines]
      ep.lines[ep.responded] = Buffer.from("garbage \u001b[31m line")
      writeLines(file, ep.lines)
      const verify = await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify")
      expect(verify.code).toBe(4)
      expect(verify.stdout).toContain(`DAMAGED at position ${at}: a line of unknown subject among its events`)
      const plain = await rollout("--data-dir", dir, "replay", ep.episodeId)
      expect(plain.stdout).toMatch(new RegExp(`\\s${at}  ! undecodable line of unknown subject`))
      expect(plain.stderr).toContain(`lie among this episode's positions (position ${at})`)

      // A decision changed in the log is a divergence, with its own exit code.
      const tampered = [...sound]
      const call = ep.mine.find((i) => ep.parsed[i].body.event.type === "ToolCallRequested")!
      const edited = structuredClone(ep.parsed[call])
      edited.body.event.arguments = { query: "tampered" }
      tampered[call] = Buffer.from(JSON.stringify(edited))
      writeLines(file, tampered)
      const diverged = await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify")
      expect(diverged.code).toBe(3)
      expect(diverged.stdout).toMatch(/^DIVERGED at position \d+/)
      // Damage after a divergence does not hide it; damage of unknown subject that the episode
      // does not miss leaves it verified.
      const later = Array.from({ length: ep.mine.at(-1)! - call }, (_, k) => call + 1 + k).find(
        (i) => !ep.mine.includes(i),
      )!
      expect(later).toBeDefined()
      tampered[later] = Buffer.from("garbage")
      writeLines(file, tampered)
      expect((await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify")).code).toBe(3)
      const clean = [...sound]
      clean[later] = Buffer.from("garbage")
      writeLines(file, clean)
      const verified = await rollout("--data-dir", dir, "replay", ep.episodeId, "--verify")
      expect(verified.code).toBe(0)
      expect(verified.stdout).toMatch(/^verified: /)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("an event of an unknown type: every other event shown, the unknown one marked with its position and type", async () => {
    const { dir, file } = copyOfDemo()
    try {
      const ep = episodeLines(file)
      const at = ep.mine[1]! + 1
      const future = structuredClone(ep.parsed[ep.mine[1]!])
      future.body.event.type = "FromTheFuture"
      ep.lines[ep.mine[1]!] = Buffer.from(JSON.stringify(future))
      writeLines(file, ep.lines)
      const plain = await rollout("--data-dir", dir, "replay", ep.episodeId)
      expect(plain.code).toBe(4)
      expect(plain.stdout.trim().split("\n")).toHaveLength(ep.mine.length)
      expect(plain.stdout).toContain(
        `${at}  ! FromTheFuture that does not decode: payload: unknown event type "FromTheFuture"`,
      )
      expect(plain.stderr).toContain(`position ${at} (FromTheFuture)`)
      const json = JSON.parse((await rollout("--data-dir", dir, "replay", ep.episodeId, "--json")).stdout)
      expect(json.events).toHaveLength(ep.mine.length)
      expect(json.gaps).toEqual([expect.objectContaining({ position: at, type: "FromTheFuture" })])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

const probeEvent = (i: number): NewEvent => ({
  eventId: `probe-${i}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "c",
  causationId: `cmd-${i}`,
  actor: "test",
  event: { type: "ProbeRecorded", probeId: "p", seq: i, worker: "w" },
})

describe("a foreign message on the JetStream log through the CLI", () => {
  let server: TestNatsServer
  beforeAll(async () => {
    server = await startTestNatsServer()
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  })

  it("is counted with its position by scores, rebuild and log tail, and escaped", async () => {
    const handle = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* connectNats({ servers: server.url, name: "damage-cli" })
          const log = yield* makeJetStreamLog(conn, { namespace: "rollout" })
          yield* log.append(
            entitySubject("rollout", "probe", "p"),
            Array.from({ length: 5 }, (_, i) => probeEvent(i)),
          )
        }),
      ),
    )
    expect(handle).toBeUndefined()
    const nc = await connect({ servers: server.url })
    const ack = await jetstream(nc).publish("rollout.ev.probe.intruder", "garbage \u001b[31mRED\u0007")
    await nc.close()
    const at = ack.seq
    const nats = ["--nats", server.url]

    const scores = await rollout(...nats, "scores", "--json")
    expect(scores.code, scores.stderr).toBe(0)
    expect(JSON.parse(scores.stdout).undecodable).toEqual({ count: 1, positions: [at] })
    expect(scores.stderr).toContain(`scores: 1 entry could not be decoded and was skipped: position ${at}`)

    const all = await rollout(...nats, "projections", "rebuild", "all", "--json")
    expect(JSON.parse(all.stdout).undecodable).toEqual({ count: 1, positions: [at] })
    const allText = await rollout(...nats, "projections", "rebuild", "all")
    expect(allText.stderr).toContain(
      `projections rebuild all: 1 entry could not be decoded and was skipped: position ${at}`,
    )
    expect(allText.stderr).toContain("\\x1b[31m")

    const tail = await rollout(...nats, "log", "tail", "--json")
    expect(JSON.parse(tail.stdout).undecodable).toEqual({ count: 1, positions: [at] })
    const tailText = await rollout(...nats, "log", "tail")
    expect(tailText.stdout).toContain(`${at}\t!\t`)
    for (const r of [scores, allText, tailText]) {
      expect(controlsIn(r.stdout)).toEqual([])
      expect(controlsIn(r.stderr)).toEqual([])
    }
  }, 120_000)

  it("in an episode's stream: replay marks it and an unknown type where they are; --verify says DAMAGED", async () => {
    // One demo episode, copied event by event into the JetStream log.
    const ep = episodeLines(path.join(demo, "log", "rollout", "events.ndjson"))
    const events: NewEvent[] = ep.mine.map((i) => {
      const { eventId, recordedAt, correlationId, causationId, actor, event } = ep.parsed[i].body
      return { eventId, recordedAt, correlationId, causationId, actor, event }
    })
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* connectNats({ servers: server.url, name: "damage-cli-replay" })
          const log = yield* makeJetStreamLog(conn, { namespace: "rollout" })
          yield* log.append(ep.subject, events)
        }),
      ),
    )
    const nc = await connect({ servers: server.url })
    const js = jetstream(nc)
    const garbageAt = (await js.publish(ep.subject, "garbage \u001b[31mRED")).seq
    const body = {
      eventId: "future-1",
      recordedAt: "2026-01-01T00:00:00.000Z",
      correlationId: "c",
      causationId: "c",
      actor: "a newer build",
      schemaVersion: 1,
      event: { type: "FromTheFuture" },
    }
    const futureAt = (await js.publish(ep.subject, JSON.stringify(body))).seq
    await nc.close()
    const nats = ["--nats", server.url]

    const plain = await rollout(...nats, "replay", ep.episodeId)
    expect(plain.code).toBe(4)
    expect(plain.stdout.trim().split("\n")).toHaveLength(events.length + 2)
    expect(plain.stdout).toContain(`${garbageAt}  ! undecodable entry: envelope: invalid JSON`)
    expect(plain.stdout).toContain(`${futureAt}  ! FromTheFuture that does not decode`)
    expect(plain.stderr).toContain(
      `replay: 2 entries of this episode could not be decoded (marked !): position ${garbageAt}, position ${futureAt} (FromTheFuture)`,
    )
    const verify = await rollout(...nats, "replay", ep.episodeId, "--verify")
    expect(verify.code).toBe(4)
    expect(verify.stdout).toContain(`DAMAGED at position ${garbageAt}`)
    expect(verify.stdout).toContain("the other")
    for (const r of [plain, verify]) {
      expect(controlsIn(r.stdout)).toEqual([])
      expect(controlsIn(r.stderr)).toEqual([])
    }
  }, 120_000)
})
