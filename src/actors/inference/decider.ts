/**
 * The inference pool's decider: what one model's group of endpoints owns and writes, as a pure
 * state machine — membership (joined, left and draining, removed once drained), health (ejected
 * after consecutive failed calls or probes, returned by a probe answered after its `retry-after`)
 * and weight versions (the policy version each endpoint reports, the version published for the
 * model, an endpoint paused for a weight update, and one whose update failed: ejected, its weights
 * in doubt, until an update on it succeeds). The shell (`pool.ts`, `pool/endpointGroup.ts`)
 * makes the HTTP calls and holds the queues; it turns what it saw into a command, and `decide`
 * answers with the events that follow, some of them to record on the model's `inference` subject
 * (`recordable`), the others (failure tallies, a drained endpoint) kept in memory only. `decide`
 * and `evolve` are total and synchronous; time comes in with the command (`now`), never read here.
 */
import * as Result from "effect/Result"
import type { DomainEvent, EventOf } from "../../events/schema.ts"

/** The rules a group is decided by (from its `models.yaml` entry). */
export interface InferencePolicy {
  /** Consecutive failed calls, or failed probes of an idle endpoint, that eject it. */
  readonly ejectAfterFailures: number
}

/** One endpoint of the group, as the decider knows it. */
export interface EndpointRecord {
  /** Stable and never reused within the group (unlike a URL, which may leave and join again). */
  readonly id: number
  /** The base URL as configured (the config refuses credentials in it). */
  readonly url: string
  /** `left`: removed from the group, finishing its calls; the record goes once they are done. */
  readonly membership: "joined" | "left"
  /** Why it can never take a call (its key variable is unset); such an endpoint is listed, not joined. */
  readonly disabled?: string
  readonly health: "healthy" | "ejected"
  readonly consecutiveFailures: number
  /** Failed health probes in a row while healthy (reset by an answered probe or a successful call). */
  readonly consecutiveProbeFailures: number
  /** Wall-clock ms before which an ejected endpoint is not probed for its return (`retry-after`). */
  readonly retryAfterUntil?: number
  /** The policy (weight) version its last answers reported. */
  readonly policyVersion?: string
  /**
   * The version it is being updated to: paused, it takes no new call and no probe until the update
   * ends (an ejection meanwhile does not end it: the update's outcome still has to be known).
   */
  readonly updatingTo?: string
  /**
   * The version its last weight update failed to load. The disk backends are not transactional, so
   * its weights are in doubt: no probe returns it, only an update that succeeds.
   */
  readonly failedUpdate?: string
}

export interface InferenceState {
  readonly model: string
  readonly policy: InferencePolicy
  /** In joining order. */
  readonly endpoints: ReadonlyArray<EndpointRecord>
  /** The id the next endpoint to join gets. */
  readonly nextId: number
  /** The latest version published for the whole model (by the trainer), when one was. */
  readonly publishedVersion?: string
}

export const initialState = (model: string, policy: InferencePolicy): InferenceState => ({
  model,
  policy,
  endpoints: [],
  nextId: 0,
})

/** The events the pool records on the model's `inference` subject. */
export type PoolEvent =
  | EventOf<"EndpointJoined">
  | EventOf<"EndpointLeft">
  | EventOf<"EndpointEjected">
  | EventOf<"EndpointReturned">
  | EventOf<"WeightsPublished">
  | EventOf<"EndpointWeightsUpdated">

const POOL_EVENT_TYPES: ReadonlySet<string> = new Set<PoolEvent["type"]>([
  "EndpointJoined",
  "EndpointLeft",
  "EndpointEjected",
  "EndpointReturned",
  "WeightsPublished",
  "EndpointWeightsUpdated",
])

/** True for the events the pool records (what a reader of an `inference` subject folds). */
export const isPoolEvent = (event: DomainEvent): event is PoolEvent => POOL_EVENT_TYPES.has(event.type)

/**
 * A recorded event as decided: with the id of the endpoint it concerns, since a URL may be listed
 * twice (the config allows it) or join again while its old self drains. Read back from the log,
 * where there is no id, it concerns the first joined endpoint of its URL.
 */
type WithEndpointId<E> = E & { readonly endpointId?: number }

/** An event that changes the state without being recorded: tallies, and what only this pool saw. */
export type TallyEvent =
  | {
      /** A configured endpoint whose key variable is unset: listed (stats, errors), never routed to. */
      readonly type: "EndpointListedDisabled"
      readonly endpointId: number
      readonly url: string
      readonly reason: string
    }
  /** A left endpoint's last call ended: it is removed from the group. */
  | { readonly type: "EndpointDrained"; readonly endpointId: number }
  /** A call succeeded after failures: both failure tallies start again. */
  | { readonly type: "CallSucceeded"; readonly endpointId: number }
  | {
      readonly type: "CallFailed"
      readonly endpointId: number
      /** False for a bad request, which says nothing about the endpoint's health. */
      readonly counted: boolean
      /** A 429 answer (counted apart in the stats). */
      readonly rateLimited: boolean
      readonly retryAfterUntil?: number
    }
  /** A healthy endpoint answered its probe after failed ones. */
  | { readonly type: "ProbeAnswered"; readonly endpointId: number }
  | {
      readonly type: "ProbeFailed"
      readonly endpointId: number
      /** True while the endpoint is a healthy member: only then do failed probes lead to ejection. */
      readonly counted: boolean
    }
  /** The endpoint is paused for a weight update to `version`. */
  | { readonly type: "UpdateStarted"; readonly endpointId: number; readonly version: string }

export type InferenceEvent =
  | WithEndpointId<EventOf<"EndpointJoined">>
  | WithEndpointId<EventOf<"EndpointLeft">>
  | WithEndpointId<EventOf<"EndpointEjected">>
  | WithEndpointId<EventOf<"EndpointReturned">>
  | WithEndpointId<EventOf<"WeightsPublished">>
  | WithEndpointId<EventOf<"EndpointWeightsUpdated">>
  | TallyEvent

/** How a failed call is to be taken (the attempt's classification). */
export type FailureKind = "transient" | "endpoint" | "request"

export type InferenceCommand =
  | {
      /** An endpoint joins: from the config at start (`config`), or at run time (`operator`). */
      readonly type: "Join"
      readonly url: string
      readonly source: "config" | "operator"
      /**
       * Why its API key cannot be had (the variable it names is unset): a configured endpoint is
       * then listed disabled (the run may not need it), one an operator adds is refused.
       */
      readonly keyProblem?: string
    }
  | { readonly type: "Leave"; readonly url: string; readonly reason: string }
  /** The shell saw the last call of a left endpoint end. */
  | { readonly type: "Drained"; readonly endpointId: number }
  | { readonly type: "ObserveSuccess"; readonly endpointId: number; readonly policyVersion?: string }
  | {
      readonly type: "ObserveFailure"
      readonly endpointId: number
      readonly kind: FailureKind
      /** `http_429`, `timeout`, `connection`, … */
      readonly code: string
      /** Already free of secrets (the shell redacts keys). */
      readonly message: string
      /** The server's `retry-after`, when it sent one. */
      readonly retryAfterMs?: number
      /** Wall-clock ms when the failure was seen. */
      readonly now: number
    }
  | {
      readonly type: "ObserveProbe"
      readonly endpointId: number
      /** What the probe was sent for (see `probeDue`): a healthy idle endpoint, or an ejected one's return. */
      readonly probe: "health" | "return"
      readonly outcome: { readonly answered: true } | { readonly answered: false; readonly reason: string }
      /** Wall-clock ms when the answer (or the failure) came. */
      readonly now: number
    }
  /** A new version of the model's weights is published (by the trainer). */
  | { readonly type: "PublishWeights"; readonly version: string }
  /**
   * Pause an endpoint for a weight update: it takes no new call meanwhile. An ejected member may be
   * updated too (a successful update returns it: its weights are then known).
   */
  | { readonly type: "StartUpdate"; readonly endpointId: number; readonly version: string }
  /** The paused endpoint now serves the version it was updated to, `ms` after its pause. */
  | {
      readonly type: "ObserveUpdated"
      readonly endpointId: number
      readonly version: string
      readonly ms: number
      readonly checksum?: string
      /** What the update found an earlier one had left on the server. */
      readonly recovered?: string
    }
  /**
   * The update of a paused endpoint failed (a step refused, or it reports another version after):
   * it is ejected until an update on it succeeds.
   */
  | {
      readonly type: "ObserveUpdateFailed"
      readonly endpointId: number
      readonly reason: string
      readonly ms: number
      readonly checksum?: string
    }

export interface InferenceRejection {
  readonly code:
    | "already_member"
    | "missing_key"
    | "not_member"
    | "disabled"
    | "already_updating"
    | "not_updating"
  readonly reason: string
}

// ---------------------------------------------------------------------------------------------
// Queries: what the shell asks of the state.

export const endpointById = (state: InferenceState, id: number): EndpointRecord | undefined =>
  state.endpoints.find((endpoint) => endpoint.id === id)

/** Trailing slashes do not make another URL (`http://h/v1/` is `http://h/v1`). */
const normalized = (url: string): string => url.replace(/\/+$/, "")

/** The first joined endpoint serving `url` (trailing slashes ignored), if any. */
export const memberByUrl = (state: InferenceState, url: string): EndpointRecord | undefined => {
  const wanted = normalized(url)
  return state.endpoints.find((endpoint) => endpoint.membership === "joined" && endpoint.url === wanted)
}

/** The endpoints that belong to the group (not left), disabled ones included. */
export const members = (state: InferenceState): ReadonlyArray<EndpointRecord> =>
  state.endpoints.filter((endpoint) => endpoint.membership === "joined")

/** True when a new call may be routed to the endpoint (its capacity aside): never when ejected. */
export const routable = (endpoint: EndpointRecord): boolean =>
  endpoint.membership === "joined" &&
  endpoint.disabled === undefined &&
  endpoint.health === "healthy" &&
  endpoint.updatingTo === undefined

/**
 * True when a publish of `version` updates the endpoint: every enabled member not being updated
 * already, unless it is healthy and known to serve that version (a publish repeated changes
 * nothing there). Ejected members are included: an update that succeeds returns them, one that
 * fails keeps them out with their weights in doubt — so none ever returns on weights older than
 * the last publish it missed.
 */
export const needsUpdate = (endpoint: EndpointRecord, version: string): boolean =>
  endpoint.membership === "joined" &&
  endpoint.disabled === undefined &&
  endpoint.updatingTo === undefined &&
  !(
    endpoint.health === "healthy" &&
    endpoint.failedUpdate === undefined &&
    endpoint.policyVersion === version
  )

/**
 * Why no call can ever succeed in the group (every member disabled), or undefined. A group with no
 * member at all is not unusable: calls wait (bounded) for one to join.
 */
export const unusable = (state: InferenceState): string | undefined => {
  const reasons = members(state).map((endpoint) => endpoint.disabled)
  if (reasons.length === 0) return undefined
  return reasons.every((reason) => reason !== undefined) ? reasons.join("; ") : undefined
}

/** True when some member a call has not tried yet (by id) could ever take it. */
export const hasUntriedMember = (state: InferenceState, tried: ReadonlySet<number>): boolean =>
  state.endpoints.some(
    (endpoint) =>
      endpoint.membership === "joined" && endpoint.disabled === undefined && !tried.has(endpoint.id),
  )

/**
 * Whether a probe round at `now` asks the endpoint `GET /models`, and what for: an ejected endpoint
 * past its `retry-after`, to return it; with `"all"`, also a healthy one, to notice its death before
 * traffic does (the shell adds: only when idle). Never a left, disabled or paused endpoint, nor
 * one whose weight update failed (an answer to `GET /models` says nothing about its weights).
 */
export const probeDue = (
  endpoint: EndpointRecord,
  now: number,
  which: "ejected" | "all",
): "return" | "health" | undefined => {
  if (
    endpoint.membership !== "joined" ||
    endpoint.disabled !== undefined ||
    endpoint.updatingTo !== undefined
  )
    return undefined
  if (endpoint.health === "ejected") {
    if (endpoint.failedUpdate !== undefined) return undefined
    return endpoint.retryAfterUntil === undefined || now >= endpoint.retryAfterUntil ? "return" : undefined
  }
  return which === "all" ? "health" : undefined
}

/** The event as the log records it, or undefined for one kept in memory only. */
export const recordable = (event: InferenceEvent): PoolEvent | undefined => {
  switch (event.type) {
    case "EndpointJoined":
    case "EndpointLeft":
    case "EndpointEjected":
    case "EndpointReturned":
    case "WeightsPublished":
    case "EndpointWeightsUpdated": {
      const { endpointId: _id, ...recorded } = event
      return recorded
    }
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// decide

const reject = (code: InferenceRejection["code"], reason: string) =>
  Result.fail<InferenceRejection>({ code, reason })

const none = Result.succeed<ReadonlyArray<InferenceEvent>>([])

/** A URL fit for an error message: any user-info part (a credential) replaced. */
export const withoutCredentials = (url: string): string => url.replace(/\/\/[^/?#]*@/, "//<credentials>@")

const decideJoin = (
  state: InferenceState,
  command: Extract<InferenceCommand, { type: "Join" }>,
): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> => {
  const url = normalized(command.url)
  // The config may list a URL twice (its own business); at run time a second copy is a mistake.
  if (command.source === "operator") {
    if (memberByUrl(state, url) !== undefined)
      return reject("already_member", `${url} already serves ${state.model}`)
    if (command.keyProblem !== undefined) return reject("missing_key", command.keyProblem)
  }
  const endpointId = state.nextId
  return Result.succeed([
    command.keyProblem === undefined
      ? { type: "EndpointJoined", model: state.model, endpoint: url, endpointId }
      : { type: "EndpointListedDisabled", endpointId, url, reason: command.keyProblem },
  ])
}

const decideLeave = (
  state: InferenceState,
  command: Extract<InferenceCommand, { type: "Leave" }>,
): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> => {
  const endpoint = memberByUrl(state, command.url)
  if (endpoint === undefined)
    return reject(
      "not_member",
      `no endpoint ${withoutCredentials(command.url)} in ${state.model} (it has ${
        members(state)
          .map((e) => e.url)
          .join(", ") || "none"
      })`,
    )
  return Result.succeed([
    {
      type: "EndpointLeft",
      model: state.model,
      endpoint: endpoint.url,
      reason: command.reason,
      endpointId: endpoint.id,
    },
  ])
}

/** The endpoint is taken out of routing until a probe returns it; `failures` in a row did it. */
const ejection = (
  state: InferenceState,
  endpoint: EndpointRecord,
  reason: string,
  failures: number,
): InferenceEvent => ({
  type: "EndpointEjected",
  model: state.model,
  endpoint: endpoint.url,
  reason,
  failures,
  endpointId: endpoint.id,
})

const decideFailure = (
  state: InferenceState,
  endpoint: EndpointRecord,
  command: Extract<InferenceCommand, { type: "ObserveFailure" }>,
): ReadonlyArray<InferenceEvent> => {
  const retryAfterUntil = command.retryAfterMs === undefined ? undefined : command.now + command.retryAfterMs
  const until = retryAfterUntil === undefined ? {} : { retryAfterUntil }
  // A bad request says nothing about the endpoint's health; only its retry-after is kept.
  if (command.kind === "request")
    return retryAfterUntil === undefined
      ? []
      : [{ type: "CallFailed", endpointId: endpoint.id, counted: false, rateLimited: false, ...until }]
  const failures = endpoint.consecutiveFailures + 1
  const failed: InferenceEvent = {
    type: "CallFailed",
    endpointId: endpoint.id,
    counted: true,
    rateLimited: command.code === "http_429",
    ...until,
  }
  // A left endpoint is never ejected (it is leaving anyway), nor one ejected already.
  const ejects =
    endpoint.membership === "joined" &&
    endpoint.health === "healthy" &&
    failures >= state.policy.ejectAfterFailures
  return ejects
    ? [failed, ejection(state, endpoint, `${command.code}: ${command.message}`, failures)]
    : [failed]
}

const decideProbe = (
  state: InferenceState,
  endpoint: EndpointRecord,
  command: Extract<InferenceCommand, { type: "ObserveProbe" }>,
): ReadonlyArray<InferenceEvent> => {
  const { outcome } = command
  if (!outcome.answered) {
    const counted = endpoint.membership === "joined" && endpoint.health === "healthy"
    const failed: InferenceEvent = { type: "ProbeFailed", endpointId: endpoint.id, counted }
    const failures = endpoint.consecutiveProbeFailures + 1
    if (!counted || failures < state.policy.ejectAfterFailures) return [failed]
    return [failed, ejection(state, endpoint, outcome.reason, failures)]
  }
  if (command.probe === "health")
    return endpoint.consecutiveProbeFailures > 0 ? [{ type: "ProbeAnswered", endpointId: endpoint.id }] : []
  // A return probe: only an ejected member returns, never within its retry-after, and never one
  // whose weights are in doubt (an answer sent before its update failed may arrive after).
  const returns =
    endpoint.membership === "joined" &&
    endpoint.health === "ejected" &&
    endpoint.failedUpdate === undefined &&
    (endpoint.retryAfterUntil === undefined || command.now >= endpoint.retryAfterUntil)
  return returns
    ? [{ type: "EndpointReturned", model: state.model, endpoint: endpoint.url, endpointId: endpoint.id }]
    : []
}

const decideSuccess = (
  state: InferenceState,
  endpoint: EndpointRecord,
  policyVersion: string | undefined,
): ReadonlyArray<InferenceEvent> => {
  const events: Array<InferenceEvent> = []
  if (endpoint.consecutiveFailures > 0 || endpoint.consecutiveProbeFailures > 0)
    events.push({ type: "CallSucceeded", endpointId: endpoint.id })
  if (policyVersion !== undefined && policyVersion !== endpoint.policyVersion)
    events.push({
      type: "WeightsPublished",
      model: state.model,
      version: policyVersion,
      endpoint: endpoint.url,
      endpointId: endpoint.id,
    })
  return events
}

const decideStartUpdate = (
  endpoint: EndpointRecord,
  version: string,
): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> => {
  if (endpoint.membership !== "joined") return reject("not_member", `${endpoint.url} has left the group`)
  if (endpoint.disabled !== undefined)
    return reject("disabled", `${endpoint.url} is disabled: ${endpoint.disabled}`)
  if (endpoint.updatingTo !== undefined)
    return reject("already_updating", `${endpoint.url} is being updated to ${endpoint.updatingTo}`)
  return Result.succeed([{ type: "UpdateStarted", endpointId: endpoint.id, version }])
}

const decideUpdateEnd = (
  state: InferenceState,
  endpoint: EndpointRecord,
  command: Extract<InferenceCommand, { type: "ObserveUpdated" | "ObserveUpdateFailed" }>,
): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> => {
  const target = endpoint.updatingTo
  if (target === undefined) return reject("not_updating", `${endpoint.url} is not being updated`)
  const result = {
    type: "EndpointWeightsUpdated",
    model: state.model,
    endpoint: endpoint.url,
    version: target,
    ms: command.ms,
    ...(command.checksum === undefined ? {} : { checksum: command.checksum }),
    endpointId: endpoint.id,
  } as const
  if (command.type === "ObserveUpdated") {
    if (command.version !== target)
      return reject("not_updating", `${endpoint.url} is being updated to ${target}, not ${command.version}`)
    // Its weights are known again: an ejected member returns (its failure tallies start again).
    const returned: ReadonlyArray<InferenceEvent> =
      endpoint.health === "ejected"
        ? [{ type: "EndpointReturned", model: state.model, endpoint: endpoint.url, endpointId: endpoint.id }]
        : []
    const recovered = command.recovered === undefined ? {} : { recovered: command.recovered }
    return Result.succeed([{ ...result, ok: true, ...recovered }, ...returned])
  }
  const error = `weight update to ${target} failed: ${command.reason}`
  // One failed update ejects (a partial load may serve garbage); an ejected member stays out.
  const ejected = endpoint.health === "healthy" ? [ejection(state, endpoint, error, 1)] : []
  return Result.succeed([{ ...result, ok: false, error: command.reason }, ...ejected])
}

/**
 * The events that follow a command, or why it is refused. An observation about an endpoint that
 * is no longer in the group (its record gone) decides nothing.
 */
export const decide = (
  state: InferenceState,
  command: InferenceCommand,
): Result.Result<ReadonlyArray<InferenceEvent>, InferenceRejection> => {
  switch (command.type) {
    case "Join":
      return decideJoin(state, command)
    case "Leave":
      return decideLeave(state, command)
    case "PublishWeights":
      return command.version === state.publishedVersion
        ? none
        : Result.succeed([{ type: "WeightsPublished", model: state.model, version: command.version }])
    default: {
      const endpoint = endpointById(state, command.endpointId)
      if (endpoint === undefined) return none
      switch (command.type) {
        case "Drained":
          return endpoint.membership === "left"
            ? Result.succeed([{ type: "EndpointDrained", endpointId: endpoint.id }])
            : none
        case "ObserveSuccess":
          return Result.succeed(decideSuccess(state, endpoint, command.policyVersion))
        case "ObserveFailure":
          return Result.succeed(decideFailure(state, endpoint, command))
        case "ObserveProbe":
          return Result.succeed(decideProbe(state, endpoint, command))
        case "StartUpdate":
          return decideStartUpdate(endpoint, command.version)
        case "ObserveUpdated":
        case "ObserveUpdateFailed":
          return decideUpdateEnd(state, endpoint, command)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// evolve

/** The endpoint an event concerns: by its id, else (an event read back from the log) by its URL. */
const targetOf = (
  state: InferenceState,
  event: { endpointId?: number; endpoint?: string },
): number | undefined =>
  event.endpointId ?? (event.endpoint === undefined ? undefined : memberByUrl(state, event.endpoint)?.id)

const updateEndpoint = (
  state: InferenceState,
  id: number | undefined,
  change: (endpoint: EndpointRecord) => EndpointRecord,
): InferenceState => {
  if (id === undefined || endpointById(state, id) === undefined) return state
  return {
    ...state,
    endpoints: state.endpoints.map((endpoint) => (endpoint.id === id ? change(endpoint) : endpoint)),
  }
}

const withoutKey = <T extends object, K extends keyof T>(value: T, key: K): Omit<T, K> => {
  const { [key]: _dropped, ...rest } = value
  return rest
}

const listed = (
  state: InferenceState,
  id: number | undefined,
  url: string,
  disabled?: string,
): InferenceState => {
  const endpointId = id ?? state.nextId
  if (endpointById(state, endpointId) !== undefined) return state
  const endpoint: EndpointRecord = {
    id: endpointId,
    url,
    membership: "joined",
    ...(disabled === undefined ? {} : { disabled }),
    health: "healthy",
    consecutiveFailures: 0,
    consecutiveProbeFailures: 0,
  }
  return {
    ...state,
    endpoints: [...state.endpoints, endpoint],
    nextId: Math.max(state.nextId, endpointId + 1),
  }
}

/** The state after an event. Total: an event about an endpoint it does not know changes nothing. */
export const evolve = (state: InferenceState, event: InferenceEvent): InferenceState => {
  switch (event.type) {
    case "EndpointJoined":
      return listed(state, event.endpointId, event.endpoint)
    case "EndpointListedDisabled":
      return listed(state, event.endpointId, event.url, event.reason)
    case "EndpointLeft":
      return updateEndpoint(state, targetOf(state, event), (e) => ({
        ...withoutKey(e, "updatingTo"),
        membership: "left",
      }))
    case "EndpointDrained":
      // Only a left endpoint goes: a member never disappears without leaving first.
      return endpointById(state, event.endpointId)?.membership === "left"
        ? { ...state, endpoints: state.endpoints.filter((e) => e.id !== event.endpointId) }
        : state
    case "EndpointEjected":
      // An update under way goes on: its outcome decides whether the weights are in doubt.
      return updateEndpoint(state, targetOf(state, event), (e) => ({ ...e, health: "ejected" }))
    case "EndpointReturned":
      return updateEndpoint(state, targetOf(state, event), (e) => ({
        ...withoutKey(e, "retryAfterUntil"),
        health: "healthy",
        consecutiveFailures: 0,
        consecutiveProbeFailures: 0,
      }))
    case "WeightsPublished": {
      if (event.endpoint === undefined && event.endpointId === undefined)
        return { ...state, publishedVersion: event.version }
      return updateEndpoint(state, targetOf(state, event), (e) => {
        const reported = { ...e, policyVersion: event.version }
        // An endpoint reporting the version it was being updated to has been updated.
        return e.updatingTo === event.version ? withoutKey(reported, "updatingTo") : reported
      })
    }
    case "EndpointWeightsUpdated":
      return updateEndpoint(state, targetOf(state, event), (e) => {
        const ended = withoutKey(e, "updatingTo")
        return event.ok
          ? { ...withoutKey(ended, "failedUpdate"), policyVersion: event.version }
          : { ...ended, failedUpdate: event.version }
      })
    case "CallSucceeded":
      return updateEndpoint(state, event.endpointId, (e) => ({
        ...e,
        consecutiveFailures: 0,
        consecutiveProbeFailures: 0,
      }))
    case "CallFailed":
      return updateEndpoint(state, event.endpointId, (e) => ({
        ...e,
        consecutiveFailures: e.consecutiveFailures + (event.counted ? 1 : 0),
        ...(event.retryAfterUntil === undefined ? {} : { retryAfterUntil: event.retryAfterUntil }),
      }))
    case "ProbeAnswered":
      return updateEndpoint(state, event.endpointId, (e) => ({ ...e, consecutiveProbeFailures: 0 }))
    case "ProbeFailed":
      return event.counted
        ? updateEndpoint(state, event.endpointId, (e) => ({
            ...e,
            consecutiveProbeFailures: e.consecutiveProbeFailures + 1,
          }))
        : state
    case "UpdateStarted":
      return updateEndpoint(state, event.endpointId, (e) =>
        e.membership === "joined" ? { ...e, updatingTo: event.version } : e,
      )
  }
}

/** Folds events into a state, in order. */
export const evolveAll = (state: InferenceState, events: ReadonlyArray<InferenceEvent>): InferenceState =>
  events.reduce(evolve, state)
