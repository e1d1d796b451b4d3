/**
 * The eval driver's live scoreboard: the log the driver and its episodes use, wrapped so that every
 * entry read from it or appended to it (the run's stream, the run's episodes) is folded into a
 * `scoreboard` state as it passes. It is the projection's own `apply` over the run's events, each
 * once (by position), so the live report equals the one `rollout scores` rebuilds from the log.
 * Events of different episodes may pass in any order; the fold does not depend on it. It watches
 * reads that others make (the episode shell reading an episode it resumes), so it is a tap on the
 * log rather than a read of its own (`foldEvents`): the episodes are read once, not twice. An entry
 * that does not decode is kept with its position (`undecodable`), for the run's result to name.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import { type EventLogShape, type LogEntry, PassedOver } from "../../events/log/eventLog.ts"
import { currentVersions, type Envelope } from "../../events/schema.ts"
import { type ScoreboardState, scoreboard } from "../../projections/scoreboard/scoreboard.ts"

export interface LiveBoard {
  /** The log to run the evaluation on: the same log, watched. */
  readonly log: EventLogShape
  readonly state: () => ScoreboardState
  /** The entries read through `log` that did not decode, once each, by position. */
  readonly undecodable: () => ReadonlyArray<UndecodableEvent>
}

export const makeLiveBoard = (log: EventLogShape): LiveBoard => {
  let state = scoreboard.initial
  const seen = new Set<number>()
  const broken = new Map<number, UndecodableEvent>()
  const fold = (envelope: Envelope) => {
    if (seen.has(envelope.position)) return
    seen.add(envelope.position)
    state = scoreboard.apply(state, envelope)
  }
  const foldEntry = (entry: LogEntry) => {
    if (seen.has(entry.position) || broken.has(entry.position)) return
    if (entry instanceof UndecodableEvent) {
      broken.set(entry.position, entry)
      return
    }
    const decoded = decodeEvent(entry)
    if (Result.isSuccess(decoded)) fold(decoded.success)
    else broken.set(entry.position, decoded.failure)
  }
  return {
    state: () => state,
    undecodable: () => [...broken.values()].sort((a, b) => a.position - b.position),
    log: {
      ...log,
      read: (options) =>
        Stream.mapArray(log.read(options), (entries) => {
          for (const entry of entries) foldEntry(entry)
          return entries
        }),
      scan: (options) =>
        Stream.mapArray(log.scan(options), (entries) => {
          for (const entry of entries) if (!(entry instanceof PassedOver)) foldEntry(entry)
          return entries
        }),
      append: (subject, events, options) =>
        Effect.tap(log.append(subject, events, options), (appended) =>
          Effect.sync(() => {
            events.forEach((e, i) => {
              const position = appended.positions[i]
              if (position === undefined) return
              fold({
                eventId: e.eventId,
                recordedAt: e.recordedAt,
                correlationId: e.correlationId,
                causationId: e.causationId,
                actor: e.actor,
                position,
                subject,
                schemaVersion: currentVersions[e.event.type],
                event: e.event,
              })
            })
          }),
        ),
    },
  }
}
