/**
 * The embedded log's index of its file of lines: where each position's line is, which subject it
 * belongs to, and the recent event ids for dedupe. It is rebuilt by scanning the file on open and
 * extended by later scans (a reader following another process's writes) or by the writer's own
 * appends. A scan indexes complete lines only, remembers which of them do not decode (their
 * positions are the log's damage report), and returns the incomplete last line, if any, to its
 * owner: the writer cuts and records it, a reader reports it. Reads go by position, coalescing
 * adjacent positions into one large read. The index never opens or closes the file: its owner
 * lends the descriptor to each call.
 */
import * as fs from "node:fs"
import * as Result from "effect/Result"
import { decodeStoredLine, peekLineType, UndecodableEvent } from "../codec.ts"
import { subjectMatches } from "../subjects.ts"
import { DedupeWindow } from "./dedupeWindow.ts"
import { type LogEntry, PassedOver } from "./eventLog.ts"

const SUBJECT_AT_START = /^\{"position":\d+,"subject":"((?:[^"\\]|\\.){1,512})"/

/**
 * The subject a line names at its start, as every line is written (`{"position":…,"subject":"…"`),
 * even when the rest of it does not decode: a broken line is then still reported to the readers of
 * its entity instead of vanishing from them. Undefined when the start itself is broken.
 */
export const subjectClaimedBy = (text: string): string | undefined => {
  const raw = SUBJECT_AT_START.exec(text)?.[1]
  if (raw === undefined) return undefined
  try {
    const subject = JSON.parse(`"${raw}"`) as string
    return subject.length > 0 ? subject : undefined
  } catch {
    return undefined
  }
}

/** The most positions one read returns. */
export const MAX_BATCH = 4096
const READ_CHUNK = 4 * 1024 * 1024
const NEWLINE = 10

/** Splits complete lines out of a buffer, calling `onLine(start, end)`; returns the bytes consumed. */
const forEachLine = (buf: Buffer, length: number, onLine: (start: number, end: number) => void): number => {
  let start = 0
  for (;;) {
    const nl = buf.indexOf(NEWLINE, start)
    if (nl === -1 || nl >= length) return start
    onLine(start, nl)
    start = nl + 1
  }
}

/** The ascending `positions` within `[from, upTo]`. */
const inRange = (positions: ReadonlyArray<number>, from: number, upTo: number): number[] => {
  let lo = 0
  let hi = positions.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (positions[mid]! < from) lo = mid + 1
    else hi = mid
  }
  const out: number[] = []
  for (let i = lo; i < positions.length && positions[i]! <= upTo; i++) out.push(positions[i]!)
  return out
}

/** The in-memory index of one log file. */
export class EmbeddedIndex {
  /** Byte offset of each position's line; position p is at index p - 1 (embedded positions are contiguous). */
  private readonly offsets: number[] = []
  private readonly lengths: number[] = []
  /** The subject of each position; `undefined` for a line that could not be decoded. */
  private readonly subjects: Array<string | undefined> = []
  private readonly bySubject = new Map<string, number[]>()
  /** Broken lines that still name their subject, by that subject: its readers are told of them. */
  private readonly claimed = new Map<string, number[]>()
  readonly recentIds: DedupeWindow<number>
  /** Bytes of the file covered by the index (always ends on a line boundary). */
  size = 0
  /** Positions of lines whose envelope does not decode or that claim another position, in order. */
  readonly brokenPositions: number[] = []

  constructor(
    private readonly file: string,
    dedupeWindow: number,
  ) {
    this.recentIds = new DedupeWindow(dedupeWindow)
  }

  /** The last position in the index (positions are contiguous from 1). */
  get lastPosition(): number {
    return this.offsets.length
  }

  /** How many distinct subjects the indexed lines belong to. */
  get subjectCount(): number {
    return this.bySubject.size
  }

  /** How many indexed lines do not decode. */
  get broken(): number {
    return this.brokenPositions.length
  }

  /**
   * Indexes the file's complete lines from `size` on. Returns the bytes after the last complete
   * line (a torn line, or a line still being written), which the index leaves out: the caller
   * decides what they are. A reader picks such a line up once it is complete.
   */
  scan(fd: number): { readonly offset: number; readonly bytes: number } | undefined {
    const total = fs.fstatSync(fd).size
    const buf = Buffer.allocUnsafe(READ_CHUNK)
    let offset = this.size
    while (offset < total) {
      const want = Math.min(READ_CHUNK, total - offset)
      const got = fs.readSync(fd, buf, 0, want, offset)
      if (got === 0) break
      let consumed = forEachLine(buf, got, (start, end) => this.indexLine(buf, start, end, offset + start))
      if (consumed === 0 && got === READ_CHUNK) {
        // A single line longer than the chunk: read it whole.
        const line = this.readLineAt(fd, offset, total)
        if (line === undefined) break
        this.indexLine(line, 0, line.length - 1, offset)
        consumed = line.length
      }
      if (consumed === 0) break
      offset += consumed
    }
    this.size = offset
    return offset < total ? { offset, bytes: total - offset } : undefined
  }

  private readLineAt(fd: number, offset: number, total: number): Buffer | undefined {
    let size = READ_CHUNK * 2
    for (;;) {
      const want = Math.min(size, total - offset)
      const buf = Buffer.allocUnsafe(want)
      fs.readSync(fd, buf, 0, want, offset)
      const nl = buf.indexOf(NEWLINE)
      if (nl !== -1) return buf.subarray(0, nl + 1)
      if (want < size) return undefined
      size *= 2
    }
  }

  private indexLine(buf: Buffer, start: number, end: number, fileOffset: number): void {
    const expected = this.offsets.length + 1
    const decoded = decodeStoredLine(buf.toString("utf8", start, end), expected, this.where(expected))
    this.offsets.push(fileOffset)
    this.lengths.push(end - start)
    if (Result.isSuccess(decoded) && decoded.success.position === expected) {
      const record = decoded.success
      this.subjects.push(record.subject)
      this.remember(record.subject, expected, record.eventId)
    } else {
      this.subjects.push(undefined)
      this.brokenPositions.push(expected)
      const subject = Result.isSuccess(decoded)
        ? decoded.success.subject
        : subjectClaimedBy(buf.toString("utf8", start, Math.min(end, start + 1024)))
      if (subject !== undefined) {
        const claims = this.claimed.get(subject)
        if (claims === undefined) this.claimed.set(subject, [expected])
        else claims.push(expected)
      }
    }
  }

  /** Indexes a line the owner has just written at `offset` (`length` bytes without its newline). */
  add(subject: string, position: number, eventId: string, offset: number, length: number): void {
    this.offsets.push(offset)
    this.lengths.push(length)
    this.subjects.push(subject)
    this.remember(subject, position, eventId)
  }

  /** The "subject" of an entry too broken to name its own: the file (the error adds the position). */
  private where(_position: number): string {
    return this.file
  }

  private remember(subject: string, position: number, eventId: string): void {
    let positions = this.bySubject.get(subject)
    if (positions === undefined) {
      positions = []
      this.bySubject.set(subject, positions)
    }
    positions.push(position)
    this.recentIds.add(eventId, position)
  }

  /** Every position of `subject`, in order (the index's own array: do not change it). */
  positionsOf(subject: string): ReadonlyArray<number> {
    return this.bySubject.get(subject) ?? []
  }

  /** The last position of `subject`, 0 when it has none. */
  lastOf(subject: string): number {
    const positions = this.bySubject.get(subject)
    return positions === undefined ? 0 : positions[positions.length - 1]!
  }

  /**
   * Positions matching the filter in `[from, upTo]`; the caller skips this for "every position".
   * A broken line goes to the readers of the subject it names, or to every wildcard reader.
   */
  candidates(filter: string, from: number, upTo: number): number[] {
    if (!filter.includes("*") && !filter.includes(">")) {
      const own = inRange(this.bySubject.get(filter) ?? [], from, upTo)
      const broken = inRange(this.claimed.get(filter) ?? [], from, upTo)
      return broken.length === 0 ? own : [...own, ...broken].sort((a, b) => a - b)
    }
    const out: number[] = []
    for (let p = from; p <= upTo; p++) {
      const s = this.subjects[p - 1]
      // Broken lines have no subject: they are reported to every reader so nothing is silently lost.
      if (s === undefined || subjectMatches(filter, s)) out.push(p)
    }
    return out
  }

  private decodeAt(
    buf: Buffer,
    start: number,
    end: number,
    position: number,
    types: ReadonlySet<string> | undefined,
  ): LogEntry | PassedOver {
    if (types !== undefined) {
      // A line the index could read has a subject; broken ones (no subject) are always decoded.
      const subject = this.subjects[position - 1]
      const type = subject === undefined ? undefined : peekLineType(buf, start, end)
      if (type !== undefined && !types.has(type)) return new PassedOver(position, subject!, type)
    }
    const decoded = decodeStoredLine(buf.toString("utf8", start, end), position, this.where(position))
    if (Result.isFailure(decoded)) {
      const failure = decoded.failure
      // A broken line may still claim a position: it is reported where it is, or a reader would
      // take it for a redelivery of an earlier position and pass it over without a word.
      return failure.position === position
        ? failure
        : new UndecodableEvent({
            position,
            subject: this.where(position),
            ...(failure.eventId === undefined ? {} : { eventId: failure.eventId }),
            stage: failure.stage,
            reason: `${failure.reason} (the line claims position ${failure.position} on ${failure.subject})`,
          })
    }
    const record = decoded.success
    if (record.position !== position) {
      return new UndecodableEvent({
        position,
        subject: this.where(position),
        stage: "envelope",
        reason: `line claims position ${record.position}`,
      })
    }
    return record
  }

  /**
   * Reads a contiguous run of positions (at most `MAX_BATCH`) with one large read; with `types`,
   * entries of other types are passed over undecoded.
   */
  readRange(fd: number, from: number, to: number, types?: ReadonlySet<string>): Array<LogEntry | PassedOver> {
    const start = this.offsets[from - 1]!
    const endPos = Math.min(to, from + MAX_BATCH - 1)
    const end = this.offsets[endPos - 1]! + this.lengths[endPos - 1]! + 1
    const buf = Buffer.allocUnsafe(end - start)
    fs.readSync(fd, buf, 0, end - start, start)
    const out: Array<LogEntry | PassedOver> = []
    for (let p = from; p <= endPos; p++) {
      const s = this.offsets[p - 1]! - start
      out.push(this.decodeAt(buf, s, s + this.lengths[p - 1]!, p, types))
    }
    return out
  }

  readPositions(
    fd: number,
    positions: ReadonlyArray<number>,
    types?: ReadonlySet<string>,
  ): Array<LogEntry | PassedOver> {
    const out: Array<LogEntry | PassedOver> = []
    let i = 0
    while (i < positions.length) {
      // Coalesce runs of adjacent positions into one read.
      let j = i
      while (j + 1 < positions.length && positions[j + 1] === positions[j]! + 1 && j - i < MAX_BATCH - 1) j++
      for (const entry of this.readRange(fd, positions[i]!, positions[j]!, types)) out.push(entry)
      i = j + 1
    }
    return out
  }
}
