/**
 * The inference pool's ports: what it offers (`InferencePool`: completions, membership changes, a
 * probe round, stats) with its typed failures, and what it needs from the outside (`InferencePoolOptions`:
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
  readonly policyVersion?: string
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
