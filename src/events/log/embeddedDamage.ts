/**
 * Damage to the embedded log's file, found and reported rather than passed over: lines that do
 * not decode (the index keeps their positions as it scans), an incomplete last line, and the cut
 * a writer makes of such a line when it opens the file.
 *
 * A cut loses nothing and is never silent. The cut bytes go to a side file under `cuts/` beside
 * the log (fsynced before the log file is shortened: they may be the only copy of something a
 * person wants back, and they can be any bytes, so they do not fit in an event), then a
 * `LogTailCut` event records the cut in the log itself (where, how many bytes, their sha256, the
 * side file), so the log's own history says it was cut wherever the file is copied, and `log
 * stats` lists every cut. A crash between the two steps leaves a side file without its event; the
 * next writer finds it and records it, so the side files are the source of truth for "was cut".
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Result from "effect/Result"
import { decodeEvent, UndecodableEvent } from "../codec.ts"
import type { NewEvent } from "../schema.ts"
import { entitySubject } from "../subjects.ts"
import { type EmbeddedIndex, subjectClaimedBy } from "./embeddedIndex.ts"
import { DAMAGE_POSITIONS_KEPT, type LogDamage, PassedOver, type TailCut, type TornTail } from "./eventLog.ts"

/** The side directory of kept cuts, relative to the log's directory. */
const CUTS_DIR = "cuts"
const CUT_FILE = /^position-(\d+)-offset-(\d+)-([0-9a-f]{12})\.torn$/
/** How much of a torn line is read to say what it was (its subject and type come first). */
const PEEK_BYTES = 64 * 1024

/** The subject of the log's own records of its cuts. */
export const cutsSubject = (namespace: string): string => entitySubject(namespace, "log", "cuts")

/**
 * Cuts the incomplete last line `tail` off the file: keeps its bytes in a side file (written and
 * fsynced first), then shortens the file to the last complete line. The cut is recorded as an
 * event afterwards (`unrecordedCuts`), once the log can append.
 */
export const cutTornTail = (
  fd: number,
  logDir: string,
  position: number,
  tail: { readonly offset: number; readonly bytes: number },
): TailCut => {
  const bytes = Buffer.alloc(tail.bytes)
  fs.readSync(fd, bytes, 0, tail.bytes, tail.offset)
  const sha256 = createHash("sha256").update(bytes).digest("hex")
  const keptIn = path.join(CUTS_DIR, `position-${position}-offset-${tail.offset}-${sha256.slice(0, 12)}.torn`)
  const file = path.join(logDir, keptIn)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const out = fs.openSync(file, "w")
  try {
    fs.writeSync(out, bytes)
    fs.fsyncSync(out)
  } finally {
    fs.closeSync(out)
  }
  fs.ftruncateSync(fd, tail.offset)
  fs.fsyncSync(fd)
  return { recordedAtPosition: 0, offset: tail.offset, bytes: tail.bytes, sha256, position, keptIn }
}

/** The cuts the log has recorded (`LogTailCut` events on `cutsSubject`), oldest first. */
export const recordedCuts = (fd: number, index: EmbeddedIndex, namespace: string): TailCut[] => {
  const positions = index.positionsOf(cutsSubject(namespace))
  if (positions.length === 0) return []
  const out: TailCut[] = []
  for (const entry of index.readPositions(fd, positions)) {
    if (entry instanceof UndecodableEvent || entry instanceof PassedOver) continue
    const decoded = decodeEvent(entry)
    if (Result.isFailure(decoded) || decoded.success.event.type !== "LogTailCut") continue
    const { offset, bytes, sha256, position, keptIn } = decoded.success.event
    out.push({ recordedAtPosition: entry.position, offset, bytes, sha256, position, keptIn })
  }
  return out
}

/**
 * The `LogTailCut` events still to write: one per kept side file the log does not mention yet
 * (the cut this open made, or one whose record a crash prevented), in the order of the cuts.
 */
export const unrecordedCuts = (
  logDir: string,
  recorded: ReadonlyArray<TailCut>,
): Array<{ readonly cut: TailCut; readonly event: NewEvent }> => {
  let names: string[]
  try {
    names = fs.readdirSync(path.join(logDir, CUTS_DIR))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return []
    throw error
  }
  const known = new Set(recorded.map((c) => c.keptIn))
  const cuts: TailCut[] = []
  for (const name of names) {
    const match = CUT_FILE.exec(name)
    const keptIn = path.join(CUTS_DIR, name)
    if (match === null || known.has(keptIn)) continue
    const bytes = fs.readFileSync(path.join(logDir, keptIn))
    cuts.push({
      recordedAtPosition: 0,
      offset: Number(match[2]),
      bytes: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      position: Number(match[1]),
      keptIn,
    })
  }
  cuts.sort((a, b) => a.offset - b.offset || a.keptIn.localeCompare(b.keptIn))
  const now = new Date().toISOString()
  return cuts.map((cut) => ({
    cut,
    event: {
      eventId: `log/tail-cut/${cut.position}/${cut.offset}/${cut.sha256.slice(0, 16)}`,
      recordedAt: now,
      correlationId: "log",
      causationId: "log/open",
      actor: "embedded-log",
      event: {
        type: "LogTailCut",
        offset: cut.offset,
        bytes: cut.bytes,
        sha256: cut.sha256,
        position: cut.position,
        keptIn: cut.keptIn,
      },
    },
  }))
}

const TYPE_MARK = /,"event":\{"type":"([A-Za-z0-9]{1,64})"/

/**
 * The incomplete line after the index's last complete one, if there is one: where it is, the
 * position it would have had, and what its first bytes still say (subject, type). `writer` is
 * the live process holding the writer lock, if any (then it may be a write in progress).
 */
export const tornTailOf = (
  fd: number,
  index: EmbeddedIndex,
  writer: number | undefined,
): TornTail | undefined => {
  const total = fs.fstatSync(fd).size
  if (total <= index.size) return undefined
  const offset = index.size
  const bytes = total - offset
  const head = Buffer.alloc(Math.min(bytes, PEEK_BYTES))
  fs.readSync(fd, head, 0, head.length, offset)
  const text = head.toString("utf8")
  const readable = subjectClaimedBy(text)
  const type = TYPE_MARK.exec(text)?.[1]
  return {
    offset,
    bytes,
    position: index.lastPosition + 1,
    ...(readable === undefined ? {} : { subject: readable }),
    ...(type === undefined ? {} : { type }),
    ...(writer === undefined ? {} : { writer }),
  }
}

/** Everything the index and the file say is damaged, for `EventLog.stats`. */
export const damageOf = (
  fd: number,
  index: EmbeddedIndex,
  namespace: string,
  writer: number | undefined,
  cutOnOpen: TailCut | undefined,
): LogDamage => {
  const torn = tornTailOf(fd, index, writer)
  return {
    undecodable: index.brokenPositions.length,
    undecodablePositions: index.brokenPositions.slice(0, DAMAGE_POSITIONS_KEPT),
    ...(torn === undefined ? {} : { tornTail: torn }),
    ...(cutOnOpen === undefined ? {} : { cutOnOpen }),
    cuts: recordedCuts(fd, index, namespace),
  }
}
