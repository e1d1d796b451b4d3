/**
 * The trainer bridge's decisions, pure: the state of one run as the bridge sees it (published
 * batches, acknowledged steps, the last weight version, whether the run finished), folded from the
 * run stream's events; what a `next` with an `ack` records and hands out; whether a weight version
 * may be published; and the parsing of every request (query, path, body) into a value or an error
 * naming the field. The HTTP server (`bridge.ts`) and the NATS subjects (`bridgeNats.ts`) both
 * answer through these functions, so the two transports cannot disagree, and a bridge restarted
 * after `kill -9` rebuilds the same state from the log.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { DomainEvent, EventOf } from "../../events/schema.ts"

export type BatchOf = EventOf<"BatchPublished">

export interface BridgeState {
  readonly runId: string
  /** The run's model (its `RunStarted`), when the run has started. */
  readonly model?: string
  readonly published: ReadonlyMap<number, BatchOf>
  readonly acknowledged: ReadonlySet<number>
  /** The last weight version published for the run; the run starts on version 0. */
  readonly lastVersion: number
  readonly finished: boolean
  /** How many batches the finished run publishes in all (`RunFinished.batches`), when it says. */
  readonly batches?: number
}

export const initialBridgeState = (runId: string): BridgeState => ({
  runId,
  published: new Map(),
  acknowledged: new Set(),
  lastVersion: 0,
  finished: false,
})

/** `"0"`, `"1"`, … : a weight version or step as text, with no sign, leading zero, space or exponent. */
const canonicalInteger = /^(0|[1-9][0-9]*)$/

/** The number a canonical integer label stands for, or undefined (not canonical, or past 2^53). */
export const canonicalIntegerOf = (text: string): number | undefined => {
  if (!canonicalInteger.test(text)) return undefined
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * Folds one event of the run stream. Every case is idempotent (sets and maxima), so an event seen
 * twice (once as the bridge appended it, once from the tail) changes nothing the second time.
 */
export const evolveBridge = (state: BridgeState, event: DomainEvent): BridgeState => {
  switch (event.type) {
    case "RunStarted":
      return event.runId === state.runId ? { ...state, model: event.model } : state
    case "RunFinished":
      if (event.runId !== state.runId) return state
      return event.batches === undefined
        ? { ...state, finished: true }
        : { ...state, finished: true, batches: event.batches }
    case "BatchPublished": {
      // The first announcement of a step is the batch; a later one for the same step is ignored.
      if (event.runId !== state.runId || state.published.has(event.step)) return state
      const published = new Map(state.published)
      published.set(event.step, event)
      return { ...state, published }
    }
    case "BatchConsumed": {
      if (event.runId !== state.runId || state.acknowledged.has(event.step)) return state
      const acknowledged = new Set(state.acknowledged)
      acknowledged.add(event.step)
      return { ...state, acknowledged }
    }
    case "WeightsPublished": {
      // Only the bridge's own announcements are on the run stream; an endpoint's report is not.
      if (event.endpoint !== undefined) return state
      const version = canonicalIntegerOf(event.version)
      return version === undefined || version <= state.lastVersion
        ? state
        : { ...state, lastVersion: version }
    }
    default:
      return state
  }
}

/** The lowest step not yet acknowledged: the one `next` hands out (published or not). */
export const lowestUnacknowledged = (state: BridgeState): number => {
  let step = 0
  while (state.acknowledged.has(step)) step++
  return step
}

/** What `next` answers now, acknowledgements done. */
export type NextAnswer =
  | { readonly kind: "batch"; readonly batch: BatchOf }
  /** Nothing to hand out yet: wait for a `BatchPublished`, else 204. */
  | { readonly kind: "wait"; readonly step: number }
  /** The run finished, published every batch it said it would, and all were acknowledged: 410. */
  | { readonly kind: "finished" }

export const nextAnswer = (state: BridgeState): NextAnswer => {
  const step = lowestUnacknowledged(state)
  const batch = state.published.get(step)
  if (batch !== undefined) return { kind: "batch", batch }
  const unacknowledged = [...state.published.keys()].some((s) => !state.acknowledged.has(s))
  // A run that says how many batches it publishes may publish its last one after it finished.
  const allPublished = state.batches === undefined || state.published.size >= state.batches
  return state.finished && allPublished && !unacknowledged ? { kind: "finished" } : { kind: "wait", step }
}

/** A request the bridge refuses, with the HTTP status it answers and what was wrong. */
export interface Refusal {
  readonly status: 400 | 404 | 409
  readonly error: string
}

const refuse = (status: Refusal["status"], error: string): Result.Result<never, Refusal> =>
  Result.fail({ status, error })

/** The event an acknowledgement records: its id is fixed by run and step, so it is written once. */
export const consumedEventId = (runId: string, step: number): string => `${runId}/consumed/${step}`

/**
 * An acknowledgement of `step`. A step already acknowledged records nothing (a repeated or
 * redelivered ack, or a trainer that restarted); the step `next` hands out, once published,
 * records `BatchConsumed`. Any other step was never handed out: acknowledging it would skip the
 * steps before it, so it is refused (409). "Handed out" is decided from the log alone (published
 * and the lowest not acknowledged), so a bridge restarted between hand-out and ack accepts it.
 */
export const decideAck = (
  state: BridgeState,
  step: number,
  trainer?: string,
): Result.Result<ReadonlyArray<EventOf<"BatchConsumed">>, Refusal> => {
  if (state.acknowledged.has(step)) return Result.succeed([])
  const handedOut = lowestUnacknowledged(state)
  if (step !== handedOut)
    return refuse(
      409,
      `ack=${step}: step ${step} was never handed out (the next step to hand out is ${handedOut}; acknowledge steps in order)`,
    )
  if (!state.published.has(step))
    return refuse(409, `ack=${step}: step ${step} was never handed out (it is not published yet)`)
  return Result.succeed([
    {
      type: "BatchConsumed",
      runId: state.runId,
      step,
      ...(trainer === undefined ? {} : { trainer }),
    },
  ])
}

/** The id of the bridge's `WeightsPublished` for a version: a retried publish writes it once. */
export const weightsEventId = (runId: string, version: number): string => `${runId}/weights/${version}`

/** The id of a step's `TrainerStepReported`: the first report of a step is the one kept. */
export const trainerStepEventId = (runId: string, step: number): string => `${runId}/trainer-step/${step}`

/** What a publish of `version` does. */
export type WeightsDecision =
  /** A new version: recorded (`WeightsPublished`) and loaded on the endpoints. */
  | { readonly kind: "publish"; readonly event: EventOf<"WeightsPublished"> }
  /**
   * The last version again (a trainer retrying after a lost answer or a bridge restart): loaded on
   * the endpoints that do not serve it yet, nothing new recorded.
   */
  | { readonly kind: "repeat" }

export const decideWeights = (
  state: BridgeState,
  model: string,
  version: number,
): Result.Result<WeightsDecision, Refusal> => {
  if (version === state.lastVersion && version > 0) return Result.succeed({ kind: "repeat" })
  if (version <= state.lastVersion)
    return refuse(
      400,
      `version: ${version} is not greater than the last published version ${state.lastVersion}`,
    )
  return Result.succeed({
    kind: "publish",
    event: { type: "WeightsPublished", model, version: String(version) },
  })
}

// ---------------------------------------------------------------------------------------------
// Requests: every way in is parsed here, and every refusal names the field.

/** `next`'s parameters: the step to acknowledge, how long to wait, who the trainer is. */
export interface NextRequest {
  readonly ack?: number
  readonly waitMs: number
  readonly trainer?: string
}

export const DEFAULT_WAIT_SECONDS = 30
export const MAX_WAIT_SECONDS = 60
const MAX_TRAINER_LENGTH = 200

const parseStep = (field: string, text: string): Result.Result<number, Refusal> => {
  const step = canonicalIntegerOf(text)
  return step === undefined
    ? refuse(
        400,
        `${field}: ${JSON.stringify(text.slice(0, 40))} is not a step (a non-negative integer, e.g. 0, 1, 2)`,
      )
    : Result.succeed(step)
}

const parseWait = (text: string): Result.Result<number, Refusal> => {
  // Seconds, possibly fractional; more than the maximum is held to the maximum, as documented.
  const seconds = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isFinite(seconds))
    return refuse(
      400,
      `wait: ${JSON.stringify(text.slice(0, 40))} is not a number of seconds (0 to ${MAX_WAIT_SECONDS})`,
    )
  return Result.succeed(Math.round(Math.min(seconds, MAX_WAIT_SECONDS) * 1000))
}

/** C0 controls and DEL: a trainer's name goes into events and terminals, where they could forge lines. */
const isControl = (ch: string): boolean => {
  const code = ch.codePointAt(0)!
  return code < 0x20 || code === 0x7f
}

const parseTrainer = (text: string): Result.Result<string, Refusal> =>
  text.length === 0 || text.length > MAX_TRAINER_LENGTH || [...text].some(isControl)
    ? refuse(400, `trainer: must be 1 to ${MAX_TRAINER_LENGTH} characters without control characters`)
    : Result.succeed(text)

const NEXT_PARAMETERS = new Set(["ack", "wait", "trainer"])

/** `GET /v1/batches/next`'s query: `ack`, `wait`, `trainer`, each at most once; nothing else. */
export const parseNextQuery = (query: URLSearchParams): Result.Result<NextRequest, Refusal> => {
  const seen = new Set<string>()
  for (const key of query.keys()) {
    if (!NEXT_PARAMETERS.has(key))
      return refuse(400, `${JSON.stringify(key.slice(0, 40))}: unknown parameter (known: ack, wait, trainer)`)
    if (seen.has(key)) return refuse(400, `${key}: given more than once`)
    seen.add(key)
  }
  const fields: { ack?: string; wait?: string; trainer?: string } = {}
  for (const key of seen) fields[key as "ack" | "wait" | "trainer"] = query.get(key) ?? ""
  return parseNextFields(fields)
}

/** The same parameters as a NATS request body (JSON): numbers or strings. */
export const parseNextBody = (body: unknown): Result.Result<NextRequest, Refusal> => {
  if (body === undefined || body === null) return parseNextFields({})
  if (typeof body !== "object" || Array.isArray(body))
    return refuse(400, "body: must be a JSON object {ack?, wait?, trainer?}")
  const fields: { ack?: string; wait?: string; trainer?: string } = {}
  for (const [key, value] of Object.entries(body)) {
    if (!NEXT_PARAMETERS.has(key))
      return refuse(400, `${JSON.stringify(key.slice(0, 40))}: unknown field (known: ack, wait, trainer)`)
    if (value === undefined || value === null) continue
    if (
      key === "trainer" ? typeof value !== "string" : typeof value !== "number" && typeof value !== "string"
    )
      return refuse(400, `${key}: must be ${key === "trainer" ? "a string" : "a number"}`)
    fields[key as "ack" | "wait" | "trainer"] = String(value)
  }
  return parseNextFields(fields)
}

const parseNextFields = (fields: {
  readonly ack?: string
  readonly wait?: string
  readonly trainer?: string
}): Result.Result<NextRequest, Refusal> => {
  const ack = fields.ack === undefined ? Result.succeed(undefined) : parseStep("ack", fields.ack)
  if (Result.isFailure(ack)) return Result.fail(ack.failure)
  const waitMs =
    fields.wait === undefined ? Result.succeed(DEFAULT_WAIT_SECONDS * 1000) : parseWait(fields.wait)
  if (Result.isFailure(waitMs)) return Result.fail(waitMs.failure)
  const trainer = fields.trainer === undefined ? Result.succeed(undefined) : parseTrainer(fields.trainer)
  if (Result.isFailure(trainer)) return Result.fail(trainer.failure)
  return Result.succeed({
    waitMs: waitMs.success,
    ...(ack.success === undefined ? {} : { ack: ack.success }),
    ...(trainer.success === undefined ? {} : { trainer: trainer.success }),
  })
}

/** The step of `GET /v1/batches/<step>`. */
export const parseStepSegment = (segment: string): Result.Result<number, Refusal> => {
  let text: string
  try {
    text = decodeURIComponent(segment)
  } catch {
    return refuse(400, "step: the path segment is not valid percent-encoding")
  }
  return parseStep("step", text)
}

/** A version given as a non-negative integer or its canonical text (`1` or `"1"`). */
const VersionField = Schema.Union([Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), Schema.String])
const Text = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(4096))

const WeightsBody = Schema.Struct({
  version: VersionField,
  path: Text,
  checksum: Schema.optionalKey(Text),
})

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const MetricsBody = Schema.Struct({
  step: Count,
  version: VersionField,
  metrics: Schema.Record(Schema.String.check(Schema.isMaxLength(200)), Schema.Finite),
  ratioByLag: Schema.optionalKey(
    Schema.Array(Schema.Struct({ lag: Count, tokens: Count, meanRatio: Schema.Finite })),
  ),
})

const decodeWeightsBody = Schema.decodeUnknownResult(WeightsBody, { onExcessProperty: "error" })
const decodeMetricsBody = Schema.decodeUnknownResult(MetricsBody, { onExcessProperty: "error" })

/** A Schema failure as one line: the field's path first (`metrics.loss: Expected number`). */
const fieldError = (message: string): string => {
  const [reason = "invalid value", where] = message.split("\n")
  const at = where?.trim().replace(/^at /, "")
  if (at === undefined || at === "") return `body: ${reason}`
  // Keys read as `a.b[0]`; a key that is not a plain name keeps its JSON quotes: `["a b"]`.
  const keys = [...at.matchAll(/\[(?:("(?:[^"\\]|\\.)*")|(\d+))\]/g)]
  const unknown = reason === "Expected no excess property"
  const path = keys
    .map((m, index) => {
      if (m[2] !== undefined) return `[${m[2]}]`
      const key = JSON.parse(m[1]!) as string
      // An unknown key is the sender's text: it keeps its quotes, as does any key that is no plain name.
      const plain = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) && !(unknown && index === keys.length - 1)
      return plain ? `.${key}` : `[${m[1]}]`
    })
    .join("")
    .replace(/^\./, "")
  return `${path === "" ? "body" : path}: ${unknown ? "unknown field" : reason}`
}

const versionOf = (value: number | string): Result.Result<number, Refusal> => {
  const version = typeof value === "number" ? value : canonicalIntegerOf(value)
  return version === undefined || !Number.isSafeInteger(version)
    ? refuse(
        400,
        `version: ${JSON.stringify(String(value).slice(0, 40))} is not a weight version (a non-negative integer: 0, 1, 2, … as a number or decimal text without sign or leading zeros)`,
      )
    : Result.succeed(version)
}

export interface WeightsRequest {
  readonly version: number
  readonly path: string
  readonly checksum?: string
}

/** `POST /v1/weights`'s body: `{version, path, checksum?}`. */
export const parseWeightsBody = (body: unknown): Result.Result<WeightsRequest, Refusal> => {
  const decoded = decodeWeightsBody(body)
  if (Result.isFailure(decoded)) return refuse(400, fieldError(decoded.failure.message))
  const version = versionOf(decoded.success.version)
  if (Result.isFailure(version)) return Result.fail(version.failure)
  if (decoded.success.path.trim() === "") return refuse(400, "path: must not be blank")
  return Result.succeed({
    version: version.success,
    path: decoded.success.path,
    ...(decoded.success.checksum === undefined ? {} : { checksum: decoded.success.checksum }),
  })
}

/** `POST /v1/metrics`'s body as the `TrainerStepReported` it records. */
export const parseMetricsBody = (
  runId: string,
  body: unknown,
): Result.Result<EventOf<"TrainerStepReported">, Refusal> => {
  const decoded = decodeMetricsBody(body)
  if (Result.isFailure(decoded)) return refuse(400, fieldError(decoded.failure.message))
  const version = versionOf(decoded.success.version)
  if (Result.isFailure(version)) return Result.fail(version.failure)
  return Result.succeed({
    type: "TrainerStepReported",
    runId,
    step: decoded.success.step,
    version: String(version.success),
    metrics: decoded.success.metrics,
    ratioByLag: decoded.success.ratioByLag ?? [],
  })
}
