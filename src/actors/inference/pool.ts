/**
 * The inference pool's shell: every model name of `models.yaml` maps to a group of
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
 * (`addEndpoint`, `removeEndpoint` with drain). When to eject, return, join or leave, and what to
 * record, is the decider's (`decider.ts`); here are the HTTP calls, the waiting and the retries.
 * Membership and weight-version changes are events on the model's `inference` subject; the
 * completion itself is the caller's to record (`ModelResponded`). API keys come from env vars named
 * in the config and never reach an event.
 *
 * A published weight version (`publishWeights`) is loaded on every endpoint of the group through
 * the server's own API (`pool/weightUpdate.ts`), all endpoints at once rather than one at a time:
 * every member is paused together, so from the publish on no call starts on the old version
 * anywhere (one at a time would let calls keep landing on not-yet-updated endpoints, mixing
 * versions across a group of samples). Each paused endpoint first finishes its calls in flight, so
 * no call spans two versions and the version read around each call is the one that produced it;
 * then it is updated, read back and resumed on its own, taking the waiting calls as soon as it
 * serves the new version. The price is a pause as long as the slowest endpoint's longest call in
 * flight plus its load; calls wait meanwhile (up to `queueTimeoutMs`), none fails for it.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import { type InferenceEvent, withoutCredentials } from "./decider.ts"
import type { ModelConfig, ModelsConfig } from "./modelsConfig.ts"
import { endpointConfigFrom, modelUrlVariable, unknownModelMessage } from "./modelsConfig.ts"
import { EndpointGroup, type LiveEndpoint, type RecordEvent, type Ticket } from "./pool/endpointGroup.ts"
import {
  type AttemptFailure,
  attempt,
  type Completion,
  type CompletionRequest,
  makeClient,
  PLACEHOLDER_API_KEY,
} from "./pool/openAiCall.ts"
import { makePoolEventSink } from "./pool/poolEvents.ts"
import { backoffDelay } from "./pool/routing.ts"
import { attemptStreaming } from "./pool/streamingCall.ts"
import {
  serverRoot,
  type UpdateFailure,
  updateSglang,
  updateVllm,
  type WeightServer,
} from "./pool/weightUpdate.ts"
import {
  type EndpointSpec,
  type EndpointStats,
  type EndpointUpdate,
  type InferencePool,
  type InferencePoolOptions,
  ModelUnavailable,
  PoolMembershipError,
  type PoolSleep,
  type PoolStats,
  type PublishedWeights,
  type PublishReport,
  type RemoveEndpointOptions,
  WeightPublishError,
} from "./ports.ts"

export type {
  Completion,
  CompletionDelta,
  CompletionRequest,
  CompletionToolCall,
  ToolSpec,
} from "./pool/openAiCall.ts"
export type {
  EndpointSpec,
  EndpointStats,
  EndpointUpdate,
  InferencePool,
  InferencePoolOptions,
  PoolSleep,
  PoolStats,
  PublishedWeights,
  PublishReport,
  RemoveEndpointOptions,
} from "./ports.ts"
export { ModelUnavailable, PoolMembershipError, WeightPublishError } from "./ports.ts"

type Env = Readonly<Record<string, string | undefined>>

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
  /** One publish at a time per group, in call order. */
  readonly publishing: Semaphore.Semaphore
  /**
   * vLLM servers (by root) this pool has sent `/init_weight_transfer_engine`: once per server, and
   * again after an update of it failed (a server restarted since has lost its transfer engine).
   */
  readonly initialized: Set<string>
}

/** The running pool's parts, which each of its operations takes explicitly. */
interface PoolParts {
  readonly config: ModelsConfig
  readonly groups: ReadonlyMap<string, GroupEntry>
  readonly clock: Clock
  readonly sleep: PoolSleep
  readonly env: Env
}

/** The failure of an attempt whose endpoint was removed without draining: retried, not counted. */
const EVICTED: AttemptFailure = {
  kind: "transient",
  code: "endpoint_removed",
  message: "the endpoint was removed while the call ran",
}

/** Fails with `EVICTED` when `endpoint` is removed without draining. */
const evicted = (endpoint: LiveEndpoint): Effect.Effect<never, AttemptFailure> =>
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

/** A model's group from its config: a client per endpoint (or why it has none), its joins recorded. */
const makeGroup = (config: ModelConfig, env: Env, record: RecordEvent): GroupEntry => {
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
  return {
    group: new EndpointGroup(config, clients, record),
    redactor,
    publishing: Semaphore.makeUnsafe(1),
    initialized: new Set(),
  }
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Starts the pool: one endpoint group per configured model, an `EndpointJoined` per endpoint, and
 * the probe fibers per model, all ended with the scope (queued events are flushed first).
 */
export const makeInferencePool = (
  config: ModelsConfig,
  options: InferencePoolOptions = {},
): Effect.Effect<InferencePool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = options.clock ?? systemClock
    const events = yield* makePoolEventSink({
      log: options.log,
      namespace: options.namespace ?? options.log?.namespace ?? "rollout",
      clock,
      poolId: `pool-${randomUUID()}`,
    })
    const env = options.env ?? process.env
    const groups = new Map<string, GroupEntry>()
    for (const [name, model] of Object.entries(config.models))
      groups.set(name, makeGroup(model, env, events.emit))
    const parts: PoolParts = {
      config,
      groups,
      clock,
      sleep: options.sleep ?? ((ms: number) => Effect.sleep(ms)),
      env,
    }
    for (const entry of groups.values()) yield* startProbes(entry, parts)
    return {
      models: [...groups.keys()],
      complete: (request) => complete(parts, request),
      addEndpoint: (model, spec) => addEndpoint(parts, model, spec),
      removeEndpoint: (model, url, removeOptions) => removeEndpoint(parts, model, url, removeOptions),
      probeNow: (model) => probeNow(parts, model),
      publishWeights: (model, weights) => publishWeights(parts, model, weights),
      stats: poolStats(parts, events.dropped),
    }
  })

/**
 * The group of `model`. A model defined only by ROLLOUT_MODEL_<NAME>_URL has a normalized name
 * (`golden_model` for `golden-model`): match on the variable's form so either spelling finds it.
 */
const groupOf = (groups: ReadonlyMap<string, GroupEntry>, model: string): GroupEntry | undefined =>
  groups.get(model) ??
  [...groups.entries()].find(([name]) => modelUrlVariable(name) === modelUrlVariable(model))?.[1]

const unavailable = (
  model: string,
  fields: {
    readonly attempts: number
    readonly code: string
    readonly lastError: string
    readonly retryable: boolean
    readonly endpoint?: string | undefined
  },
): ModelUnavailable => {
  const { endpoint, ...rest } = fields
  return new ModelUnavailable({ model, ...rest, ...(endpoint === undefined ? {} : { endpoint }) })
}

/** How one attempt of a call ended. */
type AttemptOutcome =
  | { readonly _tag: "Done"; readonly completion: Completion }
  /** No endpoint could take the call within the queue timeout: no attempt was made. */
  | { readonly _tag: "NoCapacity" }
  | {
      readonly _tag: "Failed"
      readonly failure: AttemptFailure
      readonly endpoint: string
      /** Ended by the endpoint's removal without drain: retried at once, not counted. */
      readonly evicted: boolean
    }

/**
 * One attempt of `request`: a slot on an endpoint this call has not failed on if possible (added to
 * `tried`), the HTTP call (raced against the endpoint's eviction), and what the group's decider
 * makes of its outcome. The slot is released however the attempt ends.
 */
const attemptOnce = (
  { group, redactor }: GroupEntry,
  request: CompletionRequest,
  tried: Set<number>,
  attemptNumber: number,
  clock: Clock,
): Effect.Effect<AttemptOutcome> => {
  const model = group.config
  const ticket: Ticket = { endpoint: undefined }
  return Effect.gen(function* () {
    yield* group.acquire(ticket, request.affinityKey, tried, model.queueTimeoutMs)
    const endpoint = ticket.endpoint
    if (endpoint === undefined) return { _tag: "NoCapacity" } as const
    tried.add(endpoint.id)
    const call = model.stream
      ? attemptStreaming(endpoint.client!, model, request, endpoint.url, clock.monotonicMs, attemptNumber)
      : attempt(endpoint.client!, model, request, endpoint.url, clock.monotonicMs)
    const result = yield* Effect.result(Effect.raceFirst(call, evicted(endpoint)))
    if (result._tag === "Success") {
      group.observeSuccess(endpoint, result.success.latencyMs, result.success.policyVersion)
      return { _tag: "Done", completion: result.success } as const
    }
    const failure = { ...result.failure, message: redactor.redact(result.failure.message) }
    if (failure.code === EVICTED.code)
      return { _tag: "Failed", failure, endpoint: endpoint.url, evicted: true } as const
    group.observeFailure(endpoint, failure, clock.wallMs())
    return { _tag: "Failed", failure, endpoint: endpoint.url, evicted: false } as const
  }).pipe(Effect.ensuring(Effect.sync(() => group.release(ticket))))
}

/**
 * After a counted failure (the `counted`-th): give up (a bad request, retries spent, or an
 * endpoint fault with no other member left to try), retry at once (an untried endpoint has room),
 * or back off first.
 */
const nextStep = (
  group: EndpointGroup,
  failure: AttemptFailure,
  counted: number,
  tried: ReadonlySet<number>,
): "give_up" | "retry_now" | "back_off" => {
  if (
    failure.kind === "request" ||
    counted > group.config.retries ||
    (failure.kind === "endpoint" && !group.hasUntriedMember(tried))
  )
    return "give_up"
  return group.hasUntriedCapacity(tried) ? "retry_now" : "back_off"
}

/** The wait before trying an endpoint again: retries count from when every member was tried. */
const backoffBefore = (group: EndpointGroup, failure: AttemptFailure, counted: number): number => {
  const model = group.config
  const retry = Math.max(1, counted - group.members.length + 1)
  return backoffDelay(retry, model.backoffMs, model.maxBackoffMs, Math.random(), failure.retryAfterMs)
}

/** A completion of `request`, retried and failed over as the module says; or why there is none. */
const complete = (
  parts: PoolParts,
  request: CompletionRequest,
): Effect.Effect<Completion, ModelUnavailable> =>
  Effect.gen(function* () {
    const entry = groupOf(parts.groups, request.model)
    if (entry === undefined)
      return yield* unavailable(request.model, {
        attempts: 0,
        code: "unknown_model",
        lastError: unknownModelMessage(parts.config, request.model),
        retryable: false,
      })
    const { group } = entry
    const unusable = group.unusable
    if (unusable !== undefined)
      return yield* unavailable(request.model, {
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
      const outcome = yield* attemptOnce(entry, request, tried, attempts + 1, parts.clock)
      if (outcome._tag === "Done") return outcome.completion
      if (outcome._tag === "NoCapacity")
        return yield* unavailable(request.model, {
          attempts,
          code: "no_capacity",
          lastError:
            `no endpoint could take the call within queueTimeoutMs (${group.config.queueTimeoutMs} ms): ` +
            group.capacitySummary() +
            (last === undefined ? "" : `; last error: ${last.failure.code}: ${last.failure.message}`),
          endpoint: last?.endpoint,
          retryable: true,
        })
      attempts++
      last = { failure: outcome.failure, endpoint: outcome.endpoint }
      // The endpoint left mid-call: go again at once (waiting for a slot if needed).
      if (outcome.evicted) continue
      counted++
      const { failure } = outcome
      const step = nextStep(group, failure, counted, tried)
      if (step === "give_up")
        return yield* unavailable(request.model, {
          attempts,
          code: failure.code,
          lastError: failure.message,
          endpoint: outcome.endpoint,
          retryable: failure.kind === "transient",
        })
      // Fail over at once when an untried endpoint has room; back off before trying one again.
      if (step === "back_off") yield* parts.sleep(backoffBefore(group, failure, counted), "backoff")
    }
  })

/** Adds an endpoint to `model`'s group at run time, refused with a reason when it cannot join. */
const addEndpoint = (
  parts: PoolParts,
  model: string,
  spec: EndpointSpec,
): Effect.Effect<void, PoolMembershipError> =>
  Effect.suspend(() => {
    const refuse = (code: string, reason: string) =>
      Effect.fail(
        new PoolMembershipError({ model, endpoint: withoutCredentials(String(spec.url)), code, reason }),
      )
    const entry = groupOf(parts.groups, model)
    if (entry === undefined) return refuse("unknown_model", unknownModelMessage(parts.config, model))
    const { group, redactor } = entry
    const decoded = endpointConfigFrom(spec, `addEndpoint(${group.config.name})`)
    if (Result.isFailure(decoded)) return refuse("invalid_endpoint", decoded.failure.message)
    const endpoint = decoded.success
    const key = endpoint.apiKeyEnv === undefined ? PLACEHOLDER_API_KEY : parts.env[endpoint.apiKeyEnv]
    const problem =
      key === undefined || key === "" ? keyProblem(endpoint.apiKeyEnv ?? "", "apiKeyEnv") : undefined
    const joined = group.join(
      endpoint,
      problem === undefined
        ? { client: makeClient(endpoint.url, key!, group.config.timeoutMs), disabled: undefined }
        : { client: undefined, disabled: problem },
      "operator",
    )
    if (Result.isFailure(joined)) return refuse(joined.failure.code, joined.failure.reason)
    if (endpoint.apiKeyEnv !== undefined) redactor.add(key!)
    return Effect.void
  })

/** Removes the member serving `url` from `model`'s group; ends once it has drained (or its calls moved). */
const removeEndpoint = (
  parts: PoolParts,
  model: string,
  url: string,
  options: RemoveEndpointOptions = {},
): Effect.Effect<void, PoolMembershipError> =>
  Effect.suspend(() => {
    const refuse = (code: string, reason: string) =>
      Effect.fail(new PoolMembershipError({ model, endpoint: withoutCredentials(url), code, reason }))
    const entry = groupOf(parts.groups, model)
    if (entry === undefined) return refuse("unknown_model", unknownModelMessage(parts.config, model))
    const drain = options.drain ?? true
    const reason = options.reason ?? `operator request (${drain ? "drain" : "no drain"})`
    const left = entry.group.leave(url, reason, drain)
    return Result.isFailure(left) ? refuse(left.failure.code, left.failure.reason) : left.success
  })

/** One probe round now, of `model`'s group or (no model) of every group. */
const probeNow = (parts: PoolParts, model?: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const selected =
      model === undefined
        ? [...parts.groups.values()]
        : [groupOf(parts.groups, model)].filter((e) => e !== undefined)
    return Effect.forEach(selected, (entry) => probeRound(entry, "all", parts.clock), {
      concurrency: "unbounded",
      discard: true,
    })
  })

/** Why `weights` cannot be published, or undefined. */
const weightsProblem = (weights: PublishedWeights): string | undefined => {
  if (typeof weights.version !== "string" || weights.version.trim() === "")
    return "version must be a non-empty string"
  if (typeof weights.path !== "string" || weights.path.trim() === "") return "path must be a non-empty string"
  if (weights.checksum !== undefined && (typeof weights.checksum !== "string" || weights.checksum === ""))
    return "checksum, when given, must be a non-empty string"
  return undefined
}

/** Loads `weights` on every endpoint of `model`'s group (see `InferencePool.publishWeights`). */
const publishWeights = (
  parts: PoolParts,
  model: string,
  weights: PublishedWeights,
): Effect.Effect<PublishReport, WeightPublishError> =>
  Effect.suspend(() => {
    const refuse = (code: string, reason: string) =>
      Effect.fail(new WeightPublishError({ model, code, reason }))
    const entry = groupOf(parts.groups, model)
    if (entry === undefined) return refuse("unknown_model", unknownModelMessage(parts.config, model))
    const config = entry.group.config
    if (config.weightUpdates === "none")
      return refuse(
        "no_weight_updates",
        `models.${config.name}.weightUpdates is none in ${parts.config.source}: set it to vllm or sglang ` +
          "(the API its servers load weights through) to publish weights to this group",
      )
    const problem = weightsProblem(weights)
    if (problem !== undefined) return refuse("invalid_weights", problem)
    return Semaphore.withPermit(
      entry.publishing,
      runPublish(entry, config.weightUpdates, weights, parts.clock),
    )
  })

/**
 * One publish: the version announced for the model, every member that needs it paused at once,
 * then each server updated on its own (a URL listed twice is one server, updated once).
 */
const runPublish = (
  entry: GroupEntry,
  api: "vllm" | "sglang",
  weights: PublishedWeights,
  clock: Clock,
): Effect.Effect<PublishReport> =>
  Effect.gen(function* () {
    const { group } = entry
    group.apply({ type: "PublishWeights", version: weights.version })
    const paused = group.startUpdates(weights.version)
    const servers = new Map<string, Array<LiveEndpoint>>()
    for (const endpoint of paused) servers.set(endpoint.url, [...(servers.get(endpoint.url) ?? []), endpoint])
    const results = yield* Effect.forEach(
      [...servers.values()],
      (endpoints) => updateServer(entry, api, endpoints, weights, clock),
      { concurrency: "unbounded" },
    )
    return { model: group.config.name, version: weights.version, endpoints: results.flat() }
  })

/**
 * One server's update, for the paused endpoints that share its URL: their calls in flight finish,
 * the server's own sequence runs, and the decider hears the outcome (interrupted, the update
 * counts as failed: the weights are in doubt).
 */
const updateServer = (
  { group, redactor, initialized }: GroupEntry,
  api: "vllm" | "sglang",
  endpoints: ReadonlyArray<LiveEndpoint>,
  weights: PublishedWeights,
  clock: Clock,
): Effect.Effect<ReadonlyArray<EndpointUpdate>> => {
  const first = endpoints[0]!
  const started = clock.monotonicMs()
  const elapsed = () => Math.max(0, Math.round(clock.monotonicMs() - started))
  const apiKey = first.client?.apiKey
  const server: WeightServer = {
    root: serverRoot(first.url),
    apiKey: apiKey === null || apiKey === undefined || apiKey === PLACEHOLDER_API_KEY ? undefined : apiKey,
    timeoutMs: group.config.timeoutMs,
  }
  const failed = (reason: string): ReadonlyArray<EndpointUpdate> => {
    const ms = elapsed()
    return endpoints.flatMap((endpoint) =>
      updateOf(group.observeUpdateFailed(endpoint, reason, ms, weights.checksum)),
    )
  }
  return Effect.gen(function* () {
    yield* Effect.forEach(endpoints, (endpoint) => group.idle(endpoint), { discard: true })
    const load = { version: weights.version, path: weights.path }
    const outcome = yield* Effect.result(
      api === "vllm"
        ? updateVllm(server, load, { initialized: initialized.has(server.root) })
        : updateSglang(server, load),
    )
    if (Result.isFailure(outcome)) {
      initialized.delete(server.root)
      return failed(redactor.redact(failureText(outcome.failure)))
    }
    if (api === "vllm") initialized.add(server.root)
    const ms = elapsed()
    const { recovered } = outcome.success
    if (recovered !== undefined)
      yield* Effect.logWarning(`weight update of ${server.root} to ${weights.version}: ${recovered}`)
    return endpoints.flatMap((endpoint) =>
      updateOf(group.observeUpdated(endpoint, weights.version, ms, weights.checksum, recovered)),
    )
  }).pipe(
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        failed("interrupted before the update was known to have ended")
      }),
    ),
  )
}

const failureText = (failure: UpdateFailure): string => `${failure.step}: ${failure.message}`

/** The result the decider recorded, if any (none for an endpoint that left while it was updated). */
const updateOf = (events: ReadonlyArray<InferenceEvent>): ReadonlyArray<EndpointUpdate> =>
  events.flatMap((event) =>
    event.type === "EndpointWeightsUpdated"
      ? [
          {
            endpoint: event.endpoint,
            ok: event.ok,
            ...(event.error === undefined ? {} : { error: event.error }),
            ms: event.ms,
            ...(event.recovered === undefined ? {} : { recovered: event.recovered }),
          },
        ]
      : [],
  )

/** One endpoint's stats: the shell's counters and the decider's view of it. */
const endpointStats = (model: string, group: EndpointGroup, e: LiveEndpoint): EndpointStats => {
  const record = group.recordOf(e)
  const p50 = e.latencies.percentile(50)
  const p99 = e.latencies.percentile(99)
  const disabled = record?.disabled
  const policyVersion = record?.policyVersion
  const updatingTo = record?.updatingTo
  const failedUpdate = record?.failedUpdate
  return {
    model,
    endpoint: e.url,
    healthy: record?.health === "healthy" && disabled === undefined,
    ...(disabled === undefined ? {} : { disabled }),
    ...(record?.membership === "left" ? { removed: true as const } : {}),
    inFlight: e.inFlight,
    maxConcurrency: e.maxConcurrency,
    calls: e.calls,
    failures: e.failures,
    rateLimited: e.rateLimited,
    consecutiveFailures: record?.consecutiveFailures ?? 0,
    probeFailures: e.probeFailures,
    ...(p50 === undefined ? {} : { p50LatencyMs: p50 }),
    ...(p99 === undefined ? {} : { p99LatencyMs: p99 }),
    ...(policyVersion === undefined ? {} : { policyVersion }),
    ...(updatingTo === undefined ? {} : { updatingTo }),
    ...(failedUpdate === undefined ? {} : { failedUpdate }),
    ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
  }
}

const poolStats = (parts: PoolParts, dropped: () => number): Effect.Effect<PoolStats> =>
  Effect.sync(() => {
    const groups = [...parts.groups.entries()]
    return {
      endpoints: groups.flatMap(([model, { group }]) =>
        group.endpoints.map((e) => endpointStats(model, group, e)),
      ),
      waiting: Object.fromEntries(groups.map(([model, { group }]) => [model, group.waiting])),
      rateLimited: Object.fromEntries(groups.map(([model, { group }]) => [model, group.rateLimited])),
      droppedEvents: dropped(),
      publishedVersions: Object.fromEntries(
        groups.flatMap(([model, { group }]) =>
          group.state.publishedVersion === undefined ? [] : [[model, group.state.publishedVersion]],
        ),
      ),
    }
  })

/** `GET /models` on one endpoint, bounded by the interval it is probed at. */
const askModels = (endpoint: LiveEndpoint, model: ModelConfig, intervalMs: number) =>
  Effect.tryPromise({
    try: (signal) =>
      endpoint.client!.models.list({
        signal,
        timeout: Math.min(model.timeoutMs, Math.max(1000, intervalMs)),
      }),
    catch: (error) => error,
  })

/**
 * One probe of `endpoint`, for its health or its return (see the decider's `probeDue`); what the
 * answer or the failure means is the group's decider's to say.
 */
const probeOne = (
  { group, redactor }: GroupEntry,
  endpoint: LiveEndpoint,
  probe: "health" | "return",
  clock: Clock,
): Effect.Effect<void> => {
  const model = group.config
  endpoint.probing = true
  return askModels(
    endpoint,
    model,
    probe === "health" ? model.healthProbeIntervalMs : model.probeIntervalMs,
  ).pipe(
    Effect.match({
      onFailure: (error) =>
        group.observeProbe(
          endpoint,
          probe,
          { answered: false, reason: `probe: ${redactor.redact(errorText(error))}` },
          clock.wallMs(),
        ),
      onSuccess: () => group.observeProbe(endpoint, probe, { answered: true }, clock.wallMs()),
    }),
    Effect.asVoid,
    Effect.ensuring(
      Effect.sync(() => {
        endpoint.probing = false
      }),
    ),
  )
}

/**
 * One probe round: each ejected endpoint (past its `retry-after`) is asked `GET /models` and any
 * answer returns it; with `"all"`, each healthy endpoint with no call in flight is asked too, and
 * `ejectAfterFailures` failed probes in a row eject it. Endpoints left, disabled, paused, or
 * already being probed are skipped.
 */
const probeRound = (entry: GroupEntry, which: "ejected" | "all", clock: Clock): Effect.Effect<void> =>
  Effect.suspend(() =>
    Effect.forEach(
      entry.group.probesDue(clock.wallMs(), which),
      (due) => probeOne(entry, due.endpoint, due.probe, clock),
      { concurrency: "unbounded", discard: true },
    ),
  )

/** Probe rounds of one group, one every `intervalMs`, forever (until the scope ends). */
const probeEvery = (
  entry: GroupEntry,
  intervalMs: number,
  which: "ejected" | "all",
  parts: PoolParts,
): Effect.Effect<never> =>
  Effect.forever(
    Effect.gen(function* () {
      yield* parts.sleep(intervalMs, "probe")
      yield* probeRound(entry, which, parts.clock)
    }),
  )

/**
 * The background probes of one group, ended with the pool's scope: ejected endpoints every
 * `probeIntervalMs`, healthy idle ones every `healthProbeIntervalMs` (unless 0).
 */
const startProbes = (entry: GroupEntry, parts: PoolParts): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const model = entry.group.config
    yield* Effect.forkScoped(probeEvery(entry, model.probeIntervalMs, "ejected", parts))
    if (model.healthProbeIntervalMs > 0)
      yield* Effect.forkScoped(probeEvery(entry, model.healthProbeIntervalMs, "all", parts))
  })
