import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import type { NewEvent } from "../../src/events/schema.ts"
import { runRollout } from "../support/cli.ts"
import { linesOf } from "../support/logDamage.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"

let cwd: string
let demo: string
let runId: string
/** The export of the sound demo log. */
let sound: { episodes: number }

const rollout = (...args: string[]) => runRollout(args, { cwd })

interface Line {
  readonly position: number
  readonly subject: string
  readonly body: NewEvent
}

const demoFile = () => path.join(demo, "log", "rollout", "events.ndjson")

/** The demo log's lines, parsed, and the first episode of the run with a model answer. */
const demoLines = () => {
  const raw = linesOf(fs.readFileSync(demoFile()))
  const parsed = raw.map((l) => JSON.parse(l.toString()) as Line)
  const responded = parsed.findIndex(
    (l) => l.body.event.type === "ModelResponded" && l.body.event.episodeId.startsWith(runId),
  )
  const subject = parsed[responded]!.subject
  const episodeId = (parsed[responded]!.body.event as { episodeId: string }).episodeId
  return { raw, parsed, responded, subject, episodeId }
}

/** The SFT lines of an export, by episode. */
const sftOf = (dir: string) =>
  new Map(
    fs
      .readFileSync(path.join(dir, "sft.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { messages: unknown[]; metadata: { episode_id: string } })
      .map((l) => [l.metadata.episode_id, l.messages.length] as const),
  )

/** What every damaged export must say: the count and position, apart for the trajectories. */
const expectReported = async (args: ReadonlyArray<string>, out: string, at: number) => {
  const json = await rollout(...args, "export", runId, "--format", "sft", "--out", out, "--json")
  expect(json.code, json.stderr).toBe(0)
  const summary = JSON.parse(json.stdout)
  expect(summary.undecodable).toEqual({ count: 1, positions: [at] })
  expect(summary.undecodableInTrajectories).toEqual({ count: 1, positions: [at] })
  const text = await rollout(...args, "export", runId, "--format", "sft", "--out", out)
  expect(text.code, text.stderr).toBe(0)
  expect(text.stderr).toContain(
    `rollout: export: 1 entry could not be decoded and was skipped: position ${at}`,
  )
  expect(text.stderr).toContain(
    `rollout: export: trajectories: 1 entry could not be decoded and is left out of its trajectory: position ${at}`,
  )
  expect(text.stdout).toContain(`exported ${summary.episodes} trajectories of ${runId}`)
  return summary as { episodes: number }
}

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-export-damage-"))
  demo = path.join(cwd, "demo")
  const made = await rollout("--data-dir", demo, "demo", "-k", "1", "--json")
  expect(made.code, made.stderr).toBe(0)
  runId = JSON.parse(made.stdout).runId
  const exported = await rollout(
    "--data-dir",
    demo,
    "export",
    runId,
    "--format",
    "sft",
    "--out",
    "sound",
    "--json",
  )
  expect(exported.code, exported.stderr).toBe(0)
  expect(exported.stderr).toBe("")
  sound = JSON.parse(exported.stdout)
  expect(sound).toMatchObject({ undecodable: { count: 0, positions: [] } })
}, 120_000)
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }))

describe("rollout export over a damaged log", () => {
  it("embedded: a broken line of an exported episode is counted, named, and its trajectory written without it", async () => {
    const dir = fs.mkdtempSync(path.join(cwd, "damaged-"))
    fs.cpSync(demo, dir, { recursive: true })
    const file = path.join(dir, "log", "rollout", "events.ndjson")
    const ep = demoLines()
    const at = ep.parsed[ep.responded]!.position
    // The line keeps its subject; its body is broken.
    ep.raw[ep.responded] = ep.raw[ep.responded]!.subarray(0, 160)
    fs.writeFileSync(file, Buffer.concat(ep.raw.flatMap((l) => [l, Buffer.from("\n")])))

    const damaged = await expectReported(["--data-dir", dir], "damaged", at)
    expect(damaged.episodes).toBe(sound.episodes)
    const before = sftOf(path.join(cwd, "sound"))
    const after = sftOf(path.join(cwd, "damaged"))
    for (const [episode, messages] of before)
      expect(after.get(episode)).toBe(episode === ep.episodeId ? messages - 1 : messages)
  }, 120_000)

  describe("on a real nats-server", () => {
    let server: TestNatsServer
    beforeAll(async () => {
      server = await startTestNatsServer()
    }, 60_000)
    afterAll(async () => {
      await server?.stop()
    })

    it("JetStream: a foreign message on an exported episode's subject is counted and named", async () => {
      // The demo log, event by event in its order, into JetStream.
      const ep = demoLines()
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const conn = yield* connectNats({ servers: server.url, name: "export-damage" })
            const log = yield* makeJetStreamLog(conn, { namespace: "rollout" })
            for (const l of ep.parsed) {
              const { eventId, recordedAt, correlationId, causationId, actor, event } = l.body
              yield* log.append(l.subject, [
                { eventId, recordedAt, correlationId, causationId, actor, event },
              ])
            }
          }),
        ),
      )
      const nc = await connect({ servers: server.url })
      const at = (await jetstream(nc).publish(ep.subject, "garbage, not an event")).seq
      await nc.close()

      const summary = await expectReported(["--nats", server.url], "from-nats", at)
      expect(summary.episodes).toBe(sound.episodes)
      // The foreign message took nothing away: every trajectory is whole.
      expect(sftOf(path.join(cwd, "from-nats"))).toEqual(sftOf(path.join(cwd, "sound")))
    }, 120_000)
  })
})
