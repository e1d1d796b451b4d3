/**
 * The JetStream log's append path: events go out through the connection's ack inbox with
 * `Nats-Msg-Id = eventId`, either pipelined (no expectation: a window of publishes in flight) or
 * chained one at a time (`Nats-Expected-Last-Subject-Sequence`), and a refused or missing ack
 * becomes an `AppendError` (10071 → `ConcurrencyConflict`).
 */
import { JetStreamApiCodes, PubHeaders } from "@nats-io/jetstream"
import { headers, type MsgHdrs } from "@nats-io/transport-node"
import type { NewEvent } from "../schema.ts"
import type { AckInbox, AckOutcome } from "./ackInbox.ts"
import { type AppendError, type Appended, ConcurrencyConflict, LogUnavailable } from "./eventLog.ts"

/** Publishes in flight per pipelined append: enough to hide the round trip, small enough to bound memory. */
const PUBLISH_WINDOW = 512

const publishHeaders = (eventId: string, expectedLast: number | undefined): MsgHdrs => {
  const h = headers()
  h.set(PubHeaders.MsgIdHdr, eventId)
  if (expectedLast !== undefined) h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, String(expectedLast))
  return h
}

const appendFailure = (outcome: AckOutcome, subject: string, expected: number | undefined): AppendError => {
  if ("unavailable" in outcome) return outcome.unavailable
  if ("refused" in outcome) {
    const { errCode, description } = outcome.refused
    if (errCode === JetStreamApiCodes.StreamWrongLastSequence && expected !== undefined) {
      const actual = /wrong last sequence: (\d+)/.exec(description)?.[1]
      return new ConcurrencyConflict(
        actual === undefined ? { subject, expected } : { subject, expected, actual: Number(actual) },
      )
    }
    return new LogUnavailable({
      backend: "nats",
      operation: "append",
      code: String(errCode),
      reason: description,
    })
  }
  throw new Error("appendFailure called with a successful ack")
}

export type AppendOutcome = { readonly ok: Appended } | { readonly error: AppendError }

/** No expectation: keep up to PUBLISH_WINDOW publishes in flight; one connection keeps them in order. */
export const appendPipelined = (
  inbox: AckInbox,
  subject: string,
  bodies: ReadonlyArray<Uint8Array>,
  events: ReadonlyArray<NewEvent>,
  resolve: (outcome: AppendOutcome) => void,
): void => {
  const positions = new Array<number>(bodies.length)
  let duplicates = 0
  let acked = 0
  let sent = 0
  let inFlight = 0
  let failed = false
  const pump = (): void => {
    while (!failed && inFlight < PUBLISH_WINDOW && sent < bodies.length) {
      const i = sent++
      inFlight++
      inbox.publish(subject, bodies[i]!, publishHeaders(events[i]!.eventId, undefined), (outcome) => {
        inFlight--
        if (failed) return
        if (!("seq" in outcome)) {
          failed = true
          resolve({ error: appendFailure(outcome, subject, undefined) })
          return
        }
        positions[i] = outcome.seq
        if (outcome.duplicate) duplicates++
        if (++acked === bodies.length) resolve({ ok: { positions, duplicates } })
        else pump()
      })
    }
  }
  pump()
}

/**
 * With an expectation: one at a time, each event expected right after the previous one (a
 * duplicate at its original position). The server checks `Nats-Msg-Id` before the expected
 * sequence (verified on 2.9.10), so a retried batch reports duplicates, not a conflict.
 */
export const appendChained = (
  inbox: AckInbox,
  subject: string,
  bodies: ReadonlyArray<Uint8Array>,
  events: ReadonlyArray<NewEvent>,
  expectedLastPosition: number,
  resolve: (outcome: AppendOutcome) => void,
): void => {
  const positions: number[] = []
  let duplicates = 0
  const next = (i: number, expected: number): void => {
    if (i === bodies.length) {
      resolve({ ok: { positions, duplicates } })
      return
    }
    inbox.publish(subject, bodies[i]!, publishHeaders(events[i]!.eventId, expected), (outcome) => {
      if (!("seq" in outcome)) {
        resolve({ error: appendFailure(outcome, subject, expected) })
        return
      }
      positions.push(outcome.seq)
      if (outcome.duplicate) duplicates++
      next(i + 1, outcome.seq)
    })
  }
  next(0, expectedLastPosition)
}
