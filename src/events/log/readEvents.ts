/**
 * The one "read a stream, decode, fold" of the code base: reads entries by subject filter from a
 * position, decodes each (upcasting retired shapes), folds the events that decoded and keeps the
 * ones that did not, with their positions, so every caller can report damage instead of
 * skipping it silently. The fold runs as entries arrive; nothing is collected unless the caller
 * collects (`readEvents`).
 */
import type * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../codec.ts"
import { upcasters as productionUpcasters, type UpcasterTable } from "../legacy.ts"
import type { Envelope } from "../schema.ts"
import type { EventLogShape, LogUnavailable, ReadOptions } from "./eventLog.ts"

export interface FoldedEvents<S> {
  readonly state: S
  /** Entries that did not decode (envelope or payload), in log order, each naming its position. */
  readonly undecodable: ReadonlyArray<UndecodableEvent>
  /** The last position read, decodable or not (0 when nothing was read). */
  readonly last: number
}

export interface ReadEventsOptions extends ReadOptions {
  readonly upcasters?: UpcasterTable
}

/** Folds the decoded events of a read; undecodable entries are kept aside, never dropped. */
export const foldEvents = <S>(
  log: EventLogShape,
  options: ReadEventsOptions,
  initial: S,
  step: (state: S, envelope: Envelope) => S,
): Effect.Effect<FoldedEvents<S>, LogUnavailable> => {
  const { upcasters = productionUpcasters, ...read } = options
  return Stream.runFold(
    log.read(read),
    (): { state: S; undecodable: UndecodableEvent[]; last: number } => ({
      state: initial,
      undecodable: [],
      last: 0,
    }),
    (acc, entry) => {
      acc.last = Math.max(acc.last, entry.position)
      if (entry instanceof UndecodableEvent) {
        acc.undecodable.push(entry)
        return acc
      }
      const decoded = decodeEvent(entry, upcasters)
      if (Result.isFailure(decoded)) acc.undecodable.push(decoded.failure)
      else acc.state = step(acc.state, decoded.success)
      return acc
    },
  )
}

/** Every decoded event of a read, in log order, with the entries that did not decode. */
export const readEvents = (
  log: EventLogShape,
  options: ReadEventsOptions = {},
): Effect.Effect<FoldedEvents<ReadonlyArray<Envelope>>, LogUnavailable> =>
  foldEvents<ReadonlyArray<Envelope>>(log, options, [], (events, envelope) => {
    ;(events as Envelope[]).push(envelope)
    return events
  })
