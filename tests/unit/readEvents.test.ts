/**
 * The read-decode-fold helper on a real embedded log: decoded events are folded in log order,
 * an entry that does not decode is kept aside with its position (never dropped), and `last` is
 * the last position read whether it decoded or not.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { foldEvents, readEvents } from "../../src/events/log/readEvents.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import { probe } from "../contract/eventLogContract.ts"
import { acquire } from "../support/scoped.ts"

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const openLog = async (dir: string) =>
  acquire(makeEmbeddedLog({ dataDir: dir, namespace: "ns", mode: "writer", fsync: "never" }))

describe("readEvents / foldEvents", () => {
  it("folds decoded events in order and keeps a broken line aside with its position", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-read-"))
    dirs.push(dir)
    const subject = entitySubject("ns", "probe", "p1")
    const first = await openLog(dir)
    await Effect.runPromise(first.value.append(subject, [probe("e1", 1), probe("e2", 2), probe("e3", 3)]))
    await first.close()
    // Damage the middle line's payload in place: the envelope still names its position and subject.
    const file = path.join(dir, "log", "ns", "events.ndjson")
    const lines = fs.readFileSync(file, "utf8").split("\n")
    lines[1] = lines[1]!.replace('"seq":2', '"seq":"two"')
    fs.writeFileSync(file, lines.join("\n"))

    const log = await openLog(dir)
    try {
      const folded = await Effect.runPromise(
        foldEvents(log.value, { filter: subject }, [] as number[], (seqs, envelope) =>
          envelope.event.type === "ProbeRecorded" ? [...seqs, envelope.event.seq] : seqs,
        ),
      )
      expect(folded.state).toEqual([1, 3])
      expect(folded.undecodable.map((u) => u.position)).toEqual([2])
      expect(folded.last).toBe(3)
      const read = await Effect.runPromise(readEvents(log.value, { filter: subject, from: 3 }))
      expect(read.state.map((e) => e.position)).toEqual([3])
      expect(read.undecodable).toEqual([])
    } finally {
      await log.close()
    }
  })
})
