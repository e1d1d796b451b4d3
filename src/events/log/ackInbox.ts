/**
 * Publish acks for the JetStream log's appends, matched by reply token on one wildcard inbox
 * subscription per connection. `js.publish` builds a request with its own timer and
 * stack-capturing Errors per message (a "cancelled" Error even on success), which spent over a
 * third of the CPU of pipelined appends; side by side on two cores it managed 15-19k/s where
 * matching acks by reply token here managed 21-27k/s. Timeouts are swept once a second instead of
 * one timer per message, and a disconnect fails every waiting append at once.
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import { LogUnavailable } from "./eventLog.ts"
import { natsFailure } from "./natsConnection.ts"

const ACK_TIMEOUT_MS = 10_000

/** What became of one publish: stored (or recognised as a duplicate), refused by the server, or unknown. */
export type AckOutcome =
  | { readonly seq: number; readonly duplicate: boolean }
  | { readonly refused: { readonly errCode: number; readonly description: string } }
  | { readonly unavailable: LogUnavailable }

interface Waiter {
  readonly done: (outcome: AckOutcome) => void
  readonly subject: string
  readonly deadline: number
}

const textDecoder = new TextDecoder()

const SEQ = Buffer.from('"seq":')
const DUPLICATE = Buffer.from('"duplicate":')
const ERROR = Buffer.from('"error"')

const isSpace = (c: number | undefined) => c === 32 || c === 9 || c === 10 || c === 13

/**
 * The common ack, `{"stream":…, "seq":N}` or `{"stream":…, "seq":N,"duplicate": true}` (nats-server
 * writes them with those spaces), read without decoding and parsing the JSON — an ack per event
 * made that a visible share of an append. Anything else (an error, an unexpected shape) is
 * undefined and goes through `JSON.parse`.
 */
export const storedAck = (data: Uint8Array): { seq: number; duplicate: boolean } | undefined => {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (bytes.indexOf(ERROR) !== -1) return undefined
  const at = bytes.indexOf(SEQ)
  if (at === -1) return undefined
  let i = at + SEQ.length
  while (isSpace(bytes[i])) i++
  let seq = 0
  let digits = 0
  for (; i < bytes.length; i++) {
    const c = bytes[i]!
    if (c < 48 || c > 57) break
    seq = seq * 10 + (c - 48)
    digits++
  }
  while (isSpace(bytes[i])) i++
  if (digits === 0 || digits > 15 || (bytes[i] !== 44 && bytes[i] !== 125)) return undefined
  const flag = bytes.indexOf(DUPLICATE)
  if (flag === -1) return { seq, duplicate: false }
  let j = flag + DUPLICATE.length
  while (isSpace(bytes[j])) j++
  // true, false, or a shape this reader does not know (JSON.parse decides).
  if (bytes.toString("latin1", j, j + 4) === "true") return { seq, duplicate: true }
  if (bytes.toString("latin1", j, j + 5) === "false") return { seq, duplicate: false }
  return undefined
}
const noop = () => undefined

const disconnected = (what: string) =>
  new LogUnavailable({
    backend: "nats",
    operation: "append",
    code: "disconnected",
    reason: `${what}; the event may or may not be stored, and a retry with the same event ids is safe`,
  })

/** The inbox of one connection; get it with `ackInbox` so a connection never has two. */
class AckInbox {
  private readonly prefix: string
  private readonly waiters = new Map<string, Waiter>()
  private next = 0
  private sweeper: ReturnType<typeof setInterval> | undefined

  /** False between a disconnect and the reconnect: the client drops what is published meanwhile. */
  private connected = true

  /**
   * Publishes of this event-loop turn, handed to the client together at its end. The client flushes
   * its buffer in a microtask after the first write into it, so publishes made from many callbacks
   * (one per agent step) went out as many small socket writes — a fifth of an agent run's CPU.
   */
  private outbox: Array<{ subject: string; data: Uint8Array; hdrs: MsgHdrs; token: string }> = []
  private outboxScheduled = false

  constructor(private readonly nc: NatsConnection) {
    this.prefix = createInbox()
    nc.subscribe(`${this.prefix}.*`, {
      callback: (error, msg) =>
        error === null ? this.onAck(msg) : this.failAll(natsFailure("append", error)),
    })
    nc.closed().then(() => this.failAll(natsFailure("append", "the NATS connection closed before the ack")))
    this.watch().catch(noop)
  }

  /**
   * On reconnect the client discards its unsent buffer, and acks for what was sent are lost with
   * the old socket, so waiting would only end in a timeout: fail those appends now, and refuse new
   * ones until the connection is back.
   */
  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === "disconnect") {
        this.connected = false
        this.failAll(disconnected("the connection to NATS dropped before the ack"))
      } else if (status.type === "reconnect") this.connected = true
    }
  }

  publish(subject: string, data: Uint8Array, hdrs: MsgHdrs, done: (outcome: AckOutcome) => void): void {
    if (!this.connected) {
      done({ unavailable: disconnected("NATS is disconnected (reconnecting)") })
      return
    }
    const token = (this.next++).toString(36)
    this.waiters.set(token, { done, subject, deadline: Date.now() + ACK_TIMEOUT_MS })
    this.outbox.push({ subject, data, hdrs, token })
    if (!this.outboxScheduled) {
      this.outboxScheduled = true
      setImmediate(() => this.send())
    }
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), 1_000)
      this.sweeper.unref()
    }
  }

  private send(): void {
    this.outboxScheduled = false
    const batch = this.outbox
    this.outbox = []
    for (const { subject, data, hdrs, token } of batch) {
      // Already answered (a disconnect failed every waiting append): not published at all.
      if (!this.waiters.has(token)) continue
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers: hdrs })
      } catch (error) {
        const waiter = this.waiters.get(token)
        this.waiters.delete(token)
        waiter?.done({ unavailable: natsFailure("append", error) })
      }
    }
  }

  private onAck(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1)
    const waiter = this.waiters.get(token)
    if (waiter === undefined) return // timed out already
    this.waiters.delete(token)
    if (msg.data.length === 0) {
      const code = msg.headers?.code ?? 0
      const reason =
        code === 503
          ? `no JetStream stream stores ${waiter.subject} (was the events stream deleted?)`
          : `unexpected empty ack (status ${code}) for ${waiter.subject}`
      waiter.done({
        unavailable: new LogUnavailable({ backend: "nats", operation: "append", code: String(code), reason }),
      })
      return
    }
    const fast = storedAck(msg.data)
    if (fast !== undefined) {
      waiter.done(fast)
      return
    }
    try {
      const ack = JSON.parse(textDecoder.decode(msg.data)) as {
        seq?: number
        duplicate?: boolean
        error?: { err_code?: number; code?: number; description?: string }
      }
      if (ack.error !== undefined) {
        const errCode = ack.error.err_code ?? ack.error.code ?? 0
        waiter.done({ refused: { errCode, description: ack.error.description ?? "refused" } })
      } else if (typeof ack.seq === "number") {
        waiter.done({ seq: ack.seq, duplicate: ack.duplicate === true })
      } else throw new Error("ack without a sequence")
    } catch (error) {
      waiter.done({ unavailable: natsFailure("append", error, `unreadable ack for ${waiter.subject}`) })
    }
  }

  private sweep(): void {
    const now = Date.now()
    // Map order is publish order, so the expired waiters are at the front.
    for (const [token, waiter] of this.waiters) {
      if (waiter.deadline > now) break
      this.waiters.delete(token)
      const reason = `no ack for ${waiter.subject} within ${ACK_TIMEOUT_MS} ms; the event may or may not be stored, and a retry with the same event ids is safe`
      waiter.done({
        unavailable: new LogUnavailable({ backend: "nats", operation: "append", code: "timeout", reason }),
      })
    }
    if (this.waiters.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper)
      this.sweeper = undefined
    }
  }

  private failAll(error: LogUnavailable): void {
    const waiters = [...this.waiters.values()]
    this.waiters.clear()
    for (const waiter of waiters) waiter.done({ unavailable: error })
  }
}

const inboxes = new WeakMap<NatsConnection, AckInbox>()

/** The connection's ack inbox, subscribed on first use. */
export const ackInbox = (nc: NatsConnection): AckInbox => {
  let inbox = inboxes.get(nc)
  if (inbox === undefined) {
    inbox = new AckInbox(nc)
    inboxes.set(nc, inbox)
  }
  return inbox
}

export type { AckInbox }
