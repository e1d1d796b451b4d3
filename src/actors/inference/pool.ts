/**
 * The inference pool actor group: every model name of `models.yaml` maps to a group of
 * OpenAI-compatible endpoints (vLLM, SGLang, llama.cpp, Ollama, OpenAI), called through the
 * official `openai` client, plainly or (per group, `stream: true`) as server-sent-event streams
 * assembled into the same completion. A call goes to its episode's endpoint while that one is
 * healthy and has room (KV-cache reuse), else to the least in-flight healthy endpoint; it waits
 * (bounded) when every endpoint is at its cap; it is retried with backoff (a server's `retry-after`
 * raises it) on 408/409/429/5xx, timeouts, connection errors and broken streams, on another endpoint
 * when there is one, so a crashed endpoint's in-flight calls finish elsewhere. Consecutive failures
 * (429 included, also counted apart) eject an endpoint; so do consecutive failed health probes of an
 * idle one, so its death is noticed before traffic hits it. A background `GET /models` probe returns
 * an ejected endpoint (not before its `retry-after` has passed). Endpoints join and leave at run time
 * (`addEndpoint`, `removeEndpoint` with drain). Membership and weight-version changes are events on
 * the model's `inference` subject; the completion itself is the caller's to record
 * (`ModelResponded`). API keys come from env vars named in the config and never reach an event.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { ModelConfig, ModelsConfig } from "./modelsConfig.ts"
import { endpointConfigFrom, modelUrlVariable, unknownModelMessage } from "./modelsConfig.ts"
import { EndpointGroup, type EndpointState, type Ticket } from "./pool/endpointGroup.ts"
import {
  type AttemptFailure,
  attempt,
  type Completion,
  type CompletionRequest,
  makeClient,
  PLACEHOLDER_API_KEY,
} from "./pool/openAiCall.ts"
import { makePoolEventSink, type PoolEvent } from "./pool/poolEvents.ts"
import { backoffDelay } from "./pool/routing.ts"
import { attemptStreaming } from "./pool/streamingCall.ts"

export type {
  Completion,
  CompletionDelta,
  CompletionRequest,
  CompletionToolCall,
  ToolSpec,
} from "./pool/openAiCall.ts"

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

export interface InferencePoolOptions {
  /** Where membership and weight-version events go; without it the pool records nothing. */
  readonly log?: EventLogShape
  /** Default: the log's namespace, else `rollout`. */
  readonly namespace?: string
  /** Wall-clock milliseconds for event timestamps and `retry-after` windows; default `Date.now`. */
  readonly clock?: () => number
  /** Where API keys are read (the variables named by `apiKeyEnv`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /**
   * Every wait the pool makes on its own: the backoff before a retry, and the interval between
   * probe rounds. Default `Effect.sleep(ms)`; tests inject one that records or steps (a `"probe"`
   * wait must still wait for something, or the probe loop spins).
   */
  readonly sleep?: (ms: number, purpose: "backoff" | "probe") => Effect.Effect<void>
}

// Latency uses a monotonic clock: wall-clock steps (NTP) must not produce negative latencies.
const monotonic = (): number => performance.now()

/** Redacts the keys the group's endpoints use; a key added later is redacted from then on. */
class Redactor {
  private readonly secrets: Array<string> = []
  add(secret: string): void {
    if (secret.length >= 4 && !this.secrets.includes(secret)) this.secrets.push(secret)
  }
  readonly redact = (text: string): string =>
    this.secrets.reduce((out, secret) => out.split(secret).join("<redacted>"), text)
}

interface GroupEntry {
  readonly group: EndpointGroup
  readonly redactor: Redactor
}

/** The failure of an attempt whose endpoint was removed without draining: retried, not counted. */
const EVICTED: AttemptFailure = {
  kind: "transient",
  code: "endpoint_removed",
  message: "the endpoint was removed while the call ran",
}

/** Fails with `EVICTED` when `endpoint` is removed without draining. */
const evicted = (endpoint: EndpointState): Effect.Effect<never, AttemptFailure> =>
  Effect.callback<never, AttemptFailure>((resume) => {
    const signal = endpoint.eviction.signal
    const fire = () => resume(Effect.fail(EVICTED))
    if (signal.aborted) {
      fire()
      return
    }
    signal.addEventListener("abort", fire, { once: true })
    return Effect.sync(() => signal.removeEventListener("abort", fire))
  })

const keyProblem = (variable: string, where: string) => `env var ${variable} (${where}) is not set`

const makeGroup = (config: ModelConfig, env: Readonly<Record<string, string | undefined>>): GroupEntry => {
  const redactor = new Redactor()
  const clients = config.endpoints.map((endpoint, index) => {
    if (endpoint.apiKeyEnv === undefined)
      return { client: makeClient(endpoint.url, PLACEHOLDER_API_KEY, config.timeoutMs), disabled: undefined }
    const key = env[endpoint.apiKeyEnv]
    if (key === undefined || key === "")
      return {
        client: undefined,
        disabled: keyProblem(endpoint.apiKeyEnv, `models.${config.name}.endpoints[${index}].apiKeyEnv`),
      }
    redactor.add(key)
    return { client: makeClient(endpoint.url, key, config.timeoutMs), disabled: undefined }
  })
  return { group: new EndpointGroup(config, clients), redactor }
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** A URL fit for an error message: any user-info part (a credential) replaced. */
const withoutCredentials = (url: string): string => url.replace(/\/\/[^/?#]*@/, "//<credentials>@")

/**
 * Starts the pool: one endpoint group per configured model, an `EndpointJoined` per endpoint, and
 * the probe fibers per model, all ended with the scope (queued events are flushed first).
 */
export const makeInferencePool = (
  config: ModelsConfig,
  options: InferencePoolOptions = {},
): Effect.Effect<InferencePool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = options.clock ?? Date.now
    const sleep = options.sleep ?? ((ms: number) => Effect.sleep(ms))
    const events = yield* makePoolEventSink({
      log: options.log,
      namespace: options.namespace ?? options.log?.namespace ?? "rollout",
      clock,
      poolId: `pool-${randomUUID()}`,
    })
    const emit = events.emit
    const env = options.env ?? process.env
    const groups = new Map<string, GroupEntry>()
    for (const [name, model] of Object.entries(config.models)) {
      const entry = makeGroup(model, env)
      groups.set(name, entry)
      for (const endpoint of entry.group.endpoints)
        if (endpoint.disabled === undefined)
          emit({ type: "EndpointJoined", model: name, endpoint: endpoint.url })
    }
    for (const entry of groups.values()) yield* startProbes(entry, { emit, clock, sleep })

    // A model defined only by ROLLOUT_MODEL_<NAME>_URL has a normalized name (`golden_model` for
    // `golden-model`): match on the variable's form so either spelling finds it.
    const entryOf = (model: string): GroupEntry | undefined =>
      groups.get(model) ??
      [...groups.entries()].find(([name]) => modelUrlVariable(name) === modelUrlVariable(model))?.[1]

    const observeVersion = (model: string, endpoint: EndpointState, version: string | undefined) => {
      if (version === undefined || version === endpoint.policyVersion) return
      endpoint.policyVersion = version
      emit({ type: "WeightsPublished", model, version, endpoint: endpoint.url })
    }

    const complete = (request: CompletionRequest): Effect.Effect<Completion, ModelUnavailable> =>
      Effect.gen(function* () {
        const entry = entryOf(request.model)
        const unavailable = (fields: {
          attempts: number
          code: string
          lastError: string
          retryable: boolean
          endpoint?: string | undefined
        }) => {
          const { endpoint, ...rest } = fields
          return new ModelUnavailable({
            model: request.model,
            ...rest,
            ...(endpoint === undefined ? {} : { endpoint }),
          })
        }
        if (entry === undefined)
          return yield* unavailable({
            attempts: 0,
            code: "unknown_model",
            lastError: unknownModelMessage(config, request.model),
            retryable: false,
          })
        const { group, redactor } = entry
        const model = group.config
        const unusable = group.unusable
        if (unusable !== undefined)
          return yield* unavailable({
            attempts: 0,
            code: "no_endpoint",
            lastError: unusable,
            retryable: false,
          })

        /** Ids of the endpoints this call failed on. */
        const tried = new Set<number>()
        let attempts = 0
        /** Attempts that count toward `retries` (not those ended by a removal). */
        let counted = 0
        let last: { failure: AttemptFailure; endpoint: string } | undefined
        for (;;) {
          const ticket: Ticket = { endpoint: undefined }
          const outcome = yield* Effect.gen(function* () {
            yield* group.acquire(ticket, request.affinityKey, tried, model.queueTimeoutMs)
            const endpoint = ticket.endpoint
            if (endpoint === undefined) return { _tag: "NoCapacity" } as const
            attempts++
            tried.add(endpoint.id)
            const call = model.stream
              ? attemptStreaming(endpoint.client!, model, request, endpoint.url, monotonic, attempts)
              : attempt(endpoint.client!, model, request, endpoint.url, monotonic)
            const result = yield* Effect.result(Effect.raceFirst(call, evicted(endpoint)))
            if (result._tag === "Success") {
              group.recordSuccess(endpoint, result.success.latencyMs)
              observeVersion(model.name, endpoint, result.success.policyVersion)
              return { _tag: "Done", completion: result.success } as const
            }
            const failure = { ...result.failure, message: redactor.redact(result.failure.message) }
            if (failure.code === EVICTED.code)
              return { _tag: "Failed", failure, endpoint: endpoint.url, evicted: true } as const
            if (failure.retryAfterMs !== undefined) endpoint.retryAfterUntil = clock() + failure.retryAfterMs
            // A bad request says nothing about the endpoint's health.
            if (
              failure.kind !== "request" &&
              group.recordFailure(
                endpoint,
                `${failure.code}: ${failure.message}`,
                failure.code === "http_429",
              )
            )
              emit({
                type: "EndpointEjected",
                model: model.name,
                endpoint: endpoint.url,
                reason: `${failure.code}: ${failure.message}`,
                failures: endpoint.consecutiveFailures,
              })
            return { _tag: "Failed", failure, endpoint: endpoint.url, evicted: false } as const
          }).pipe(Effect.ensuring(Effect.sync(() => group.release(ticket))))

          if (outcome._tag === "Done") return outcome.completion
          if (outcome._tag === "NoCapacity")
            return yield* unavailable({
              attempts,
              code: "no_capacity",
              lastError:
                `no endpoint could take the call within queueTimeoutMs (${model.queueTimeoutMs} ms): ` +
                group.capacitySummary() +
                (last === undefined ? "" : `; last error: ${last.failure.code}: ${last.failure.message}`),
              endpoint: last?.endpoint,
              retryable: true,
            })
          last = { failure: outcome.failure, endpoint: outcome.endpoint }
          // The endpoint left mid-call: go again at once (waiting for a slot if needed).
          if (outcome.evicted) continue
          counted++
          const { failure } = outcome
          const giveUp =
            failure.kind === "request" ||
            counted > model.retries ||
            (failure.kind === "endpoint" && !group.hasUntriedMember(tried))
          if (giveUp)
            return yield* unavailable({
              attempts,
              code: failure.code,
              lastError: failure.message,
              endpoint: outcome.endpoint,
              retryable: failure.kind === "transient",
            })
          // Fail over at once when an untried endpoint has room; back off before trying one again.
          if (!group.hasUntriedCapacity(tried)) {
            const retry = Math.max(1, counted - group.members.length + 1)
            yield* sleep(
              backoffDelay(retry, model.backoffMs, model.maxBackoffMs, Math.random(), failure.retryAfterMs),
              "backoff",
            )
          }
        }
      })

    const addEndpoint = (model: string, spec: EndpointSpec): Effect.Effect<void, PoolMembershipError> =>
      Effect.suspend(() => {
        const refuse = (code: string, reason: string) =>
          Effect.fail(
            new PoolMembershipError({ model, endpoint: withoutCredentials(String(spec.url)), code, reason }),
          )
        const entry = entryOf(model)
        if (entry === undefined) return refuse("unknown_model", unknownModelMessage(config, model))
        const { group, redactor } = entry
        const decoded = endpointConfigFrom(spec, `addEndpoint(${group.config.name})`)
        if (Result.isFailure(decoded)) return refuse("invalid_endpoint", decoded.failure.message)
        const endpoint = decoded.success
        if (group.member(endpoint.url) !== undefined)
          return refuse("already_member", `${endpoint.url} already serves ${group.config.name}`)
        let key = PLACEHOLDER_API_KEY
        if (endpoint.apiKeyEnv !== undefined) {
          const value = env[endpoint.apiKeyEnv]
          if (value === undefined || value === "")
            return refuse("missing_key", keyProblem(endpoint.apiKeyEnv, "apiKeyEnv"))
          redactor.add(value)
          key = value
        }
        group.add(endpoint, {
          client: makeClient(endpoint.url, key, group.config.timeoutMs),
          disabled: undefined,
        })
        emit({ type: "EndpointJoined", model: group.config.name, endpoint: endpoint.url })
        return Effect.void
      })

    const removeEndpoint = (
      model: string,
      url: string,
      removeOptions: RemoveEndpointOptions = {},
    ): Effect.Effect<void, PoolMembershipError> =>
      Effect.suspend(() => {
        const refuse = (code: string, reason: string) =>
          Effect.fail(new PoolMembershipError({ model, endpoint: withoutCredentials(url), code, reason }))
        const entry = entryOf(model)
        if (entry === undefined) return refuse("unknown_model", unknownModelMessage(config, model))
        const { group } = entry
        const endpoint = group.member(url)
        if (endpoint === undefined)
          return refuse(
            "not_member",
            `no endpoint ${withoutCredentials(url)} in ${group.config.name} (it has ${
              group.members.map((e) => e.url).join(", ") || "none"
            })`,
          )
        const drain = removeOptions.drain ?? true
        emit({
          type: "EndpointLeft",
          model: group.config.name,
          endpoint: endpoint.url,
          reason: removeOptions.reason ?? `operator request (${drain ? "drain" : "no drain"})`,
        })
        return group.remove(endpoint, drain)
      })

    const probeNow = (model?: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const selected =
          model === undefined ? [...groups.values()] : [entryOf(model)].filter((e) => e !== undefined)
        return Effect.forEach(selected, (entry) => probeRound(entry, "all", { emit, clock, sleep }), {
          concurrency: "unbounded",
          discard: true,
        })
      })

    const stats = Effect.sync(
      (): PoolStats => ({
        endpoints: [...groups.entries()].flatMap(([model, { group }]) =>
          group.endpoints.map((e) => {
            const p50 = e.latencies.percentile(50)
            const p99 = e.latencies.percentile(99)
            return {
              model,
              endpoint: e.url,
              healthy: e.healthy && e.disabled === undefined,
              ...(e.disabled === undefined ? {} : { disabled: e.disabled }),
              ...(e.removed ? { removed: true as const } : {}),
              inFlight: e.inFlight,
              maxConcurrency: e.maxConcurrency,
              calls: e.calls,
              failures: e.failures,
              rateLimited: e.rateLimited,
              consecutiveFailures: e.consecutiveFailures,
              probeFailures: e.probeFailures,
              ...(p50 === undefined ? {} : { p50LatencyMs: p50 }),
              ...(p99 === undefined ? {} : { p99LatencyMs: p99 }),
              ...(e.policyVersion === undefined ? {} : { policyVersion: e.policyVersion }),
              ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
            }
          }),
        ),
        waiting: Object.fromEntries(
          [...groups.entries()].map(([model, { group }]) => [model, group.waiting]),
        ),
        rateLimited: Object.fromEntries(
          [...groups.entries()].map(([model, { group }]) => [model, group.rateLimited]),
        ),
        droppedEvents: events.dropped(),
      }),
    )

    return { models: [...groups.keys()], complete, addEndpoint, removeEndpoint, probeNow, stats }
  })

interface ProbeContext {
  readonly emit: (event: PoolEvent) => void
  readonly clock: () => number
  readonly sleep: (ms: number, purpose: "backoff" | "probe") => Effect.Effect<void>
}

/** `GET /models` on one endpoint, bounded by the interval it is probed at. */
const askModels = (endpoint: EndpointState, model: ModelConfig, intervalMs: number) =>
  Effect.tryPromise({
    try: (signal) =>
      endpoint.client!.models.list({
        signal,
        timeout: Math.min(model.timeoutMs, Math.max(1000, intervalMs)),
      }),
    catch: (error) => error,
  })

/**
 * One probe round: each ejected endpoint (past its `retry-after`) is asked `GET /models` and any
 * answer returns it; with `"all"`, each healthy endpoint with no call in flight is asked too, and
 * `ejectAfterFailures` failed probes in a row eject it. Endpoints removed, disabled, or already
 * being probed are skipped.
 */
const probeRound = (
  { group, redactor }: GroupEntry,
  which: "ejected" | "all",
  context: ProbeContext,
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const model = group.config
    const now = context.clock()
    const due = group.endpoints.filter((e) => {
      if (e.removed || e.disabled !== undefined || e.probing) return false
      if (!e.healthy) return e.retryAfterUntil === undefined || now >= e.retryAfterUntil
      return which === "all" && e.inFlight === 0
    })
    const probe = (endpoint: EndpointState) => {
      const wasHealthy = endpoint.healthy
      endpoint.probing = true
      return askModels(
        endpoint,
        model,
        wasHealthy ? model.healthProbeIntervalMs : model.probeIntervalMs,
      ).pipe(
        Effect.match({
          onFailure: (error) => {
            const reason = `probe: ${redactor.redact(errorText(error))}`
            if (group.recordProbeFailure(endpoint, reason))
              context.emit({
                type: "EndpointEjected",
                model: model.name,
                endpoint: endpoint.url,
                reason,
                failures: endpoint.consecutiveProbeFailures,
              })
          },
          onSuccess: () => {
            if (wasHealthy) group.recordProbeSuccess(endpoint)
            else if (group.markReturned(endpoint))
              context.emit({ type: "EndpointReturned", model: model.name, endpoint: endpoint.url })
          },
        }),
        Effect.ensuring(
          Effect.sync(() => {
            endpoint.probing = false
          }),
        ),
      )
    }
    return Effect.forEach(due, probe, { concurrency: "unbounded", discard: true })
  })

/**
 * The background probes of one group, ended with the pool's scope: ejected endpoints every
 * `probeIntervalMs`, healthy idle ones every `healthProbeIntervalMs` (unless 0).
 */
const startProbes = (entry: GroupEntry, context: ProbeContext): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const model = entry.group.config
    const every = (intervalMs: number, which: "ejected" | "all") =>
      Effect.forever(
        Effect.gen(function* () {
          yield* context.sleep(intervalMs, "probe")
          yield* probeRound(entry, which, context)
        }),
      )
    yield* Effect.forkScoped(every(model.probeIntervalMs, "ejected"))
    if (model.healthProbeIntervalMs > 0) yield* Effect.forkScoped(every(model.healthProbeIntervalMs, "all"))
  })
