/**
 * The `eventCounts` projection: how many events of each type and from each actor the log holds,
 * the first and last position folded, and how many entries could not be decoded (and where the last
 * one was). It is the cheapest whole-log fold, so it doubles as the log's health summary in the CLI.
 */
import type { UndecodableEvent } from "../../events/codec.ts"
import type { Envelope } from "../../events/schema.ts"
import { ownValue, type Projection } from "../projection.ts"

export interface EventCountsState {
  readonly total: number
  readonly byType: Readonly<Record<string, number>>
  readonly byActor: Readonly<Record<string, number>>
  /** Positions of the first and last decoded event; null before any. */
  readonly firstPosition: number | null
  readonly lastPosition: number | null
  readonly undecodable: number
  readonly lastUndecodablePosition: number | null
}

export const initialEventCounts: EventCountsState = {
  total: 0,
  byType: {},
  byActor: {},
  firstPosition: null,
  lastPosition: null,
  undecodable: 0,
  lastUndecodablePosition: null,
}

const increment = (counts: Readonly<Record<string, number>>, key: string): Record<string, number> => ({
  ...counts,
  [key]: (ownValue(counts, key) ?? 0) + 1,
})

export const eventCounts: Projection<EventCountsState> = {
  name: "eventCounts",
  version: 1,
  initial: initialEventCounts,
  apply(state: EventCountsState, envelope: Envelope): EventCountsState {
    return {
      ...state,
      total: state.total + 1,
      byType: increment(state.byType, envelope.event.type),
      byActor: increment(state.byActor, envelope.actor),
      firstPosition: state.firstPosition ?? envelope.position,
      lastPosition: envelope.position,
    }
  },
  onUndecodable(state: EventCountsState, event: UndecodableEvent): EventCountsState {
    return { ...state, undecodable: state.undecodable + 1, lastUndecodablePosition: event.position }
  },
}
