/**
 * Idempotent replay of a call by its key: every served call is recorded under its idempotency key
 * (subject `toolcall.<key>`, event id `toolcall/<key>`), so the same key asked again — a retry in
 * this process, or another worker after a crash — is answered from the record instead of running
 * the tool twice. Recent answers stay in memory, so a retry here needs no read; when two processes
 * answer one key at once, the log keeps the first and both return it. A call without a key cannot
 * be asked for again: it is recorded off the call path.
 */
import * as Effect from "effect/Effect"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import { readEvents } from "../../events/log/readEvents.ts"
import type { EventOf, NewEvent } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { Clock } from "../../runtime/clock.ts"
import type { DockCallResult } from "./dockTypes.ts"

export type Served = EventOf<"ToolCallServed">

/** How many answers are kept in memory, the oldest going first. */
const REMEMBERED = 10_000

/** A served call as the caller sees it. */
export const resultOf = (
  served: Served,
  mcpContent: ReadonlyArray<Record<string, unknown>>,
  replayed: boolean,
): DockCallResult => ({
  outcome: served.outcome,
  content: served.content,
  mcpContent,
  isError: served.outcome !== "ok",
  truncated: served.truncated,
  replica: served.replica,
  version: served.version,
  attempts: served.attempts,
  latencyMs: served.latencyMs,
  ...(served.error === undefined ? {} : { error: served.error }),
  replayed,
  ...(served.coerced === undefined ? {} : { coerced: served.coerced }),
})

/** A recorded answer: images and blobs come back as their recorded description (no bytes). */
export const fromRecord = (served: Served): DockCallResult =>
  resultOf(
    served,
    served.content.map((c) =>
      c.type === "text" ? { type: "text", text: c.text } : { type: "text", text: JSON.stringify(c) },
    ),
    true,
  )

/** The record of a call: its event id is the key's, so a second write of the key is a duplicate. */
export const callRecord = (key: string, served: Served, recordedAt: string): NewEvent => ({
  eventId: `toolcall/${key}`,
  recordedAt,
  correlationId: key,
  causationId: key,
  actor: "dock",
  event: served,
})

/**
 * The answer the log holds for a key, if any. Entries of the key that do not decode are said:
 * without a readable answer the call runs again.
 */
export const recordedAnswer = async (
  log: EventLogShape,
  key: string,
  say: (line: string) => void,
): Promise<Served | undefined> => {
  const subject = entitySubject(log.namespace, "toolcall", key)
  // Most keys are new: a position lookup is cheaper than a read.
  if ((await Effect.runPromise(log.lastPosition(subject))) === 0) return undefined
  const read = await Effect.runPromise(readEvents(log, { filter: subject }))
  const served = read.state.find((e) => e.event.type === "ToolCallServed")?.event as Served | undefined
  if (read.undecodable.length > 0)
    say(
      `the record of call ${key} has ${read.undecodable.length} entr${read.undecodable.length === 1 ? "y" : "ies"} that do not decode (first: ${read.undecodable[0]!.message}); ${served === undefined ? "the call runs again" : "the readable answer is used"}`,
    )
  return served
}

export class CallReplay {
  /** Recent answers by key, so a retried call within this process needs no read. */
  private readonly answered = new Map<string, Served>()
  /** Records written off the call path; `settle` waits for them. */
  private readonly pending = new Set<Promise<void>>()

  constructor(
    private readonly log: EventLogShape,
    private readonly clock: Clock,
    private readonly say: (line: string) => void,
  ) {}

  /** The answer of record for a key: from memory, else from the log. */
  async recorded(key: string): Promise<Served | undefined> {
    return this.answered.get(key) ?? (await recordedAnswer(this.log, key, this.say))
  }

  private write(key: string, served: Served) {
    const subject = entitySubject(this.log.namespace, "toolcall", key)
    return Effect.runPromise(
      Effect.result(this.log.append(subject, [callRecord(key, served, this.clock.iso())])),
    )
  }

  /**
   * Records a call nobody can ask for again by key, off the call path: a crash in the next
   * milliseconds may lose the record, never the answer already given.
   */
  recordUnkeyed(key: string, served: Served): void {
    const written = this.write(key, served).then((w) => {
      if (w._tag === "Failure") this.say(`could not record call ${key}: ${w.failure.message}`)
    })
    this.pending.add(written)
    written.finally(() => this.pending.delete(written))
  }

  /**
   * Records a keyed call before it is answered. Returns the answer of record when another
   * process recorded the same key first (its answer is the one to give), else undefined.
   */
  async recordKeyed(key: string, served: Served): Promise<Served | undefined> {
    const written = await this.write(key, served)
    if (written._tag === "Failure") this.say(`could not record call ${key}: ${written.failure.message}`)
    else if (written.success.duplicates > 0) {
      const first = await recordedAnswer(this.log, key, this.say)
      if (first !== undefined) return first
    }
    this.answered.set(key, served)
    if (this.answered.size > REMEMBERED) this.answered.delete(this.answered.keys().next().value!)
    return undefined
  }

  /** Waits for the records written off the call path. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.pending])
  }
}
