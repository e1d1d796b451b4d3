/**
 * The inference pool's ports: what it offers (`InferencePool`: completions, membership changes, a
 * probe round, weight updates, stats) with its typed failures, and what it needs from the outside (`InferencePoolOptions`:
 * the log its events go to, the clock, where API keys are read, how it waits). The agent's model
 * port and the judge call it through these; the shell (`pool.ts`) implements them.
 */
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { Clock } from "../../runtime/clock.ts"
import type { Completion, CompletionRequest } from "./pool/openAiCall.ts"

/** A model call that did not produce a completion: after retries, or at once when retrying is futile. */
export class ModelUnavailable extends Schema.TaggedError<ModelUnavailable>()("ModelUnavailable", {
  model: Schema.String,
  /** HTTP attempts made (0 when none could be: unknown model, no capacity, no usable endpoint). */
  attempts: Schema.Number,
  /** `unknown_model`, `no_endpoint`, `no_capacity`, `timeout`, `connection`, `http_<status>`, … */
  code: Schema.String,
  lastError: Schema.String,
  /** The endpoint of the last attempt, when there was one. */
  endpoint: Schema.optionalKey(Schema.String),
  /** True when the same call may succeed later (overload, outage); false for a bad request or config. */
  retryable: Schema.Boolean,
}) {
  override get message(): string {
    const where = this.endpoint === undefined ? "" : ` (last endpoint ${this.endpoint})`
    return `model ${this.model} unavailable after ${this.attempts} attempt(s)${where}: [${this.code}] ${this.lastError}`
  }
}

/** An endpoint could not be added to or removed from a group. */
export class PoolMembershipError extends Schema.TaggedError<PoolMembershipError>()("PoolMembershipError", {
  model: Schema.String,
  endpoint: Schema.String,
  /** `unknown_model`, `invalid_endpoint`, `missing_key`, `already_member`, `not_member` */
  code: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `model ${this.model}, endpoint ${this.endpoint}: [${this.code}] ${this.reason}`
  }
}

/** A weight version could not be published to a model's group (no endpoint was touched). */
export class WeightPublishError extends Schema.TaggedError<WeightPublishError>()("WeightPublishError", {
  model: Schema.String,
  /** `unknown_model`, `no_weight_updates` (the group's `weightUpdates` is `none`), `invalid_weights` */
  code: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `model ${this.model}: cannot publish weights: [${this.code}] ${this.reason}`
  }
}

export interface EndpointStats {
  readonly model: string
  readonly endpoint: string
  readonly healthy: boolean
  /** Why the endpoint never takes calls (e.g. its key variable is unset). */
  readonly disabled?: string
  /** Removed from the group, finishing the calls it had (it disappears from the stats after). */
  readonly removed?: true
  readonly inFlight: number
  readonly maxConcurrency: number
  /** Attempts finished (successes and failures). */
  readonly calls: number
  readonly failures: number
  /** 429 answers (rate limited), also counted in `failures`. */
  readonly rateLimited: number
  readonly consecutiveFailures: number
  /** Failed health probes (of a healthy or an ejected endpoint). */
  readonly probeFailures: number
  /** Over the last 1024 successful attempts. */
  readonly p50LatencyMs?: number
  readonly p99LatencyMs?: number
  /** The weight version it serves: from its last update, else from its answers' version header. */
  readonly policyVersion?: string
  /** Paused for an update to this version: it takes no new call until the update ends. */
  readonly updatingTo?: string
  /** Its last update, to this version, failed: ejected, its weights in doubt, until an update succeeds. */
  readonly failedUpdate?: string
  readonly lastError?: string
}

export interface PoolStats {
  readonly endpoints: ReadonlyArray<EndpointStats>
  /** Calls waiting for a free slot, per model. */
  readonly waiting: Readonly<Record<string, number>>
  /** 429 answers per model, over the pool's life (endpoints that left included). */
  readonly rateLimited: Readonly<Record<string, number>>
  /** Membership/version events the log refused (see `poolEvents`). */
  readonly droppedEvents: number
  /** The last weight version published per model (models never published to are absent). */
  readonly publishedVersions: Readonly<Record<string, string>>
}

/** A weight version to load on every endpoint of a group (`InferencePool.publishWeights`). */
export interface PublishedWeights {
  readonly version: string
  /** The checkpoint (a safetensors directory) as the servers see it on their disks. */
  readonly path: string
  /** The trainer's checksum of the files, recorded with each endpoint's result as given. */
  readonly checksum?: string
}

/** How one endpoint's update went (its `EndpointWeightsUpdated` event says the same). */
export interface EndpointUpdate {
  readonly endpoint: string
  readonly ok: boolean
  /** Which step failed and what the server said (already free of secrets). */
  readonly error?: string
  /** From its pause (waiting for its calls in flight included) to the end of its update. */
  readonly ms: number
  /** What the update found an earlier one had left on the server (paused, an update still open). */
  readonly recovered?: string
}

export interface PublishReport {
  readonly model: string
  readonly version: string
  /**
   * One entry per endpoint updated, in the group's order. Members already serving the version
   * (healthy) are not updated again, nor disabled ones; a member that left mid-update has none.
   */
  readonly endpoints: ReadonlyArray<EndpointUpdate>
}

/** An endpoint to add at run time; the same keys and defaults as an entry of `endpoints:`. */
export interface EndpointSpec {
  readonly url: string
  readonly apiKeyEnv?: string
  readonly maxConcurrency?: number
}

export interface RemoveEndpointOptions {
  /**
   * Default true: the endpoint's in-flight calls finish there. False: they are stopped and retried
   * on the other endpoints (without counting as failures).
   */
  readonly drain?: boolean
  /** Recorded in the event; default `operator request (drain)` / `operator request (no drain)`. */
  readonly reason?: string
}

export interface InferencePool {
  readonly models: ReadonlyArray<string>
  readonly complete: (request: CompletionRequest) => Effect.Effect<Completion, ModelUnavailable>
  /** Adds an endpoint to `model`'s group; it takes calls at once (an `EndpointJoined`). */
  readonly addEndpoint: (model: string, spec: EndpointSpec) => Effect.Effect<void, PoolMembershipError>
  /**
   * Removes the endpoint serving `url` from `model`'s group: no new call goes there from now on (an
   * `EndpointLeft`, see `poolEvents`). Ends once its in-flight calls have finished (drain) or moved.
   */
  readonly removeEndpoint: (
    model: string,
    url: string,
    options?: RemoveEndpointOptions,
  ) => Effect.Effect<void, PoolMembershipError>
  /**
   * Runs one probe round now (of `model`, else of every model; an unknown name probes nothing):
   * ejected endpoints past their `retry-after` may return, healthy idle ones count a failed probe
   * toward ejection. The background rounds keep running as configured.
   */
  readonly probeNow: (model?: string) => Effect.Effect<void>
  /**
   * Loads a published weight version on every endpoint of `model`'s group through the server's
   * own API (the group's `weightUpdates`: vLLM's native sequence or SGLang's
   * `update_weights_from_disk`). All endpoints are paused at once, so no new call starts on the old
   * version anywhere; each finishes its calls in flight, is updated, read back, and takes calls
   * again (waiting ones first) as soon as it serves the new version. Calls made meanwhile wait (up
   * to `queueTimeoutMs`); none fails for the update. Each endpoint's result is an
   * `EndpointWeightsUpdated` event; one whose update fails is ejected and the rest go on. Publishes
   * to one group run one at a time, in call order. Fails only when nothing could be tried.
   */
  readonly publishWeights: (
    model: string,
    weights: PublishedWeights,
  ) => Effect.Effect<PublishReport, WeightPublishError>
  readonly stats: Effect.Effect<PoolStats>
}

/** How the pool waits on its own: the backoff before a retry, and the interval between probe rounds. */
export type PoolSleep = (ms: number, purpose: "backoff" | "probe") => Effect.Effect<void>

export interface InferencePoolOptions {
  /** Where membership and weight-version events go; without it the pool records nothing. */
  readonly log?: EventLogShape
  /** Default: the log's namespace, else `rollout`. */
  readonly namespace?: string
  /**
   * Wall-clock time for event timestamps and `retry-after` windows, monotonic time for latencies;
   * default `systemClock`.
   */
  readonly clock?: Clock
  /** Where API keys are read (the variables named by `apiKeyEnv`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /**
   * Every wait the pool makes on its own. Default `Effect.sleep(ms)`; tests inject one that
   * records or steps (a `"probe"` wait must still wait for something, or the probe loop spins).
   */
  readonly sleep?: PoolSleep
}
