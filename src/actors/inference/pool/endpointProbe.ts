/**
 * The probe a command makes before its first model call, so a wrong endpoint stops it in seconds
 * with one line naming the URL and the cause, before anything is written (the pool itself rides out
 * outages: a refused connection there waits `queueTimeoutMs` for the endpoint to return). Each
 * endpoint of a model group is asked `GET /models` with a short timeout through the official
 * client; a refused connection, a host not found, a timeout, 401, 403, 404 and an answer that is
 * not a model list are told apart. A 404 (or 405) there is checked once more with a one-token chat
 * completion, since a proxy may serve chat without the model list; if that route is missing too,
 * the base URL is wrong (it usually ends in `/v1`). A group is reachable when one endpoint answers;
 * the others, and a served name the server does not list, become warnings.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { APIConnectionTimeoutError, APIError } from "openai"
import { errnoCause, errorCodes, statusCause } from "../../../events/failureCause.ts"
import { type Clock, systemClock } from "../../../runtime/clock.ts"
import type { EndpointConfig, ModelConfig, ModelsConfig } from "../modelsConfig.ts"
import { TEST_DOUBLE_OWNER } from "../testDouble.ts"
import { makeClient, PLACEHOLDER_API_KEY } from "./openAiCall.ts"

/** What one endpoint answered. */
export interface EndpointProbe {
  readonly url: string
  /** True when it answered as an OpenAI-compatible server would. */
  readonly ok: boolean
  /** Why it cannot be used (when not ok): `connection refused`, `HTTP 401 unauthorized …`, … */
  readonly cause?: string
  /** What to do about it. */
  readonly hint?: string
  /** Something to know although it answered. */
  readonly warning?: string
  readonly elapsedMs: number
}

/** One model group as probed: reachable when any endpoint answered. */
export interface GroupProbe {
  readonly model: string
  /** What the command uses it for (`agent`, `judge`), for the messages. */
  readonly role: string
  readonly ok: boolean
  readonly endpoints: ReadonlyArray<EndpointProbe>
}

/** No endpoint of a model group the command needs answered its probe. */
export class ModelUnreachable extends Schema.TaggedError<ModelUnreachable>()("ModelUnreachable", {
  model: Schema.String,
  role: Schema.String,
  /** The one line to print: the model, each URL and its cause, and what to do. */
  line: Schema.String,
}) {
  override get message(): string {
    return this.line
  }
}

export interface ProbeOptions {
  /** Where API keys are read (the variables named by `apiKeyEnv`); default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Per request; default 5000 ms (never more than the group's `timeoutMs`). */
  readonly timeoutMs?: number
  /** Measures how long each endpoint took (`elapsedMs`, monotonic); default `systemClock`. */
  readonly clock?: Clock
}

/** The default per-request bound: a live server answers `GET /models` in milliseconds. */
export const PROBE_TIMEOUT_MS = 5000

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A piece of an unexpected body, on one line. */
const snippet = (value: unknown): string => {
  const text = (typeof value === "string" ? value : (JSON.stringify(value) ?? String(value)))
    .replace(/\s+/g, " ")
    .trim()
  return text.length > 60 ? `${text.slice(0, 60)}…` : text
}

type Failure = { readonly cause: string; readonly hint?: string }

/** Names what the client threw; `keyVariable` is the endpoint's `apiKeyEnv`, for a refused key. */
const failureOf = (error: unknown, timeoutMs: number, keyVariable: string | undefined): Failure => {
  if (error instanceof APIConnectionTimeoutError)
    return {
      cause: "timeout",
      hint: `no answer within ${timeoutMs} ms (a firewall, a wrong host, or a hung server?)`,
    }
  if (error instanceof APIError && typeof error.status === "number") {
    const status = error.status
    const cause = statusCause(status)
    if (status === 401)
      return {
        cause,
        hint:
          keyVariable === undefined
            ? "no apiKeyEnv is configured for this endpoint, so the placeholder key was sent: name the variable holding the key in apiKeyEnv (models.yaml)"
            : `the key in ${keyVariable} was refused`,
      }
    if (status === 403) return { cause, hint: "the key has no access to this server or model" }
    return { cause, hint: snippet(error.message) }
  }
  const codes = errorCodes(error)
  for (const code of codes) {
    const cause = errnoCause(code)
    if (cause === undefined) continue
    const hint =
      code === "ECONNREFUSED"
        ? "nothing listens there: is the server running, on that host and port?"
        : code === "ENOTFOUND" || code === "EAI_NODATA"
          ? "check the host name"
          : undefined
    return { cause: `${cause} (${code})`, ...(hint === undefined ? {} : { hint }) }
  }
  // The client wraps what fetch threw ("Connection error." ← "fetch failed" ← the reason): name the reason.
  let innermost: unknown = error
  for (let depth = 0; depth < 6 && innermost instanceof Error && innermost.cause instanceof Error; depth++)
    innermost = innermost.cause
  const message = innermost instanceof Error ? innermost.message : String(innermost)
  const cause = `cannot connect: ${snippet(message)}${codes.length === 0 ? "" : ` (${codes.join(", ")})`}`
  // fetch refuses a fixed list of ports (9, 25, 6000, …) before any connection is tried.
  return message === "bad port"
    ? {
        cause,
        hint: "HTTP clients refuse this port (fetch's blocked-port list): serve the model on another port",
      }
    : { cause }
}

/** `GET <url>/models`: the list's model ids, or what went wrong. */
const listModels = (
  endpoint: EndpointConfig,
  key: string,
  timeoutMs: number,
): Effect.Effect<{ ids: ReadonlyArray<string>; owners: ReadonlyArray<string> }, unknown> =>
  Effect.tryPromise({
    try: (signal) =>
      makeClient(endpoint.url, key, timeoutMs).get<unknown>("/models", { signal, timeout: timeoutMs }),
    catch: (error) => error,
  }).pipe(
    Effect.flatMap((body) => {
      const data = isRecord(body) ? body.data : undefined
      if (!Array.isArray(data)) return Effect.fail(new NotAModelList(snippet(body)))
      const entries = data.filter(isRecord)
      return Effect.succeed({
        ids: entries.map((m) => m.id).filter((id): id is string => typeof id === "string"),
        owners: entries.map((m) => m.owned_by).filter((o): o is string => typeof o === "string"),
      })
    }),
  )

/** `GET /models` answered, but not with `{ "data": [...] }`. */
class NotAModelList {
  constructor(readonly body: string) {}
}

/** A one-token chat completion: does the chat route exist where `/models` does not? */
const chatOnce = (endpoint: EndpointConfig, key: string, model: ModelConfig, timeoutMs: number) =>
  Effect.tryPromise({
    try: (signal) =>
      makeClient(endpoint.url, key, timeoutMs).chat.completions.create(
        { model: model.served, messages: [{ role: "user", content: "ping" }], max_tokens: 1 },
        { signal, timeout: timeoutMs },
      ),
    catch: (error) => error,
  })

/** Probes one endpoint of `model`; never fails (the outcome says what happened). */
export const probeEndpoint = (
  model: ModelConfig,
  index: number,
  options: ProbeOptions = {},
): Effect.Effect<EndpointProbe> =>
  Effect.suspend(() => {
    const endpoint = model.endpoints[index]!
    const clock = options.clock ?? systemClock
    const started = clock.monotonicMs()
    const done = (fields: Omit<EndpointProbe, "url" | "elapsedMs">): EndpointProbe => ({
      url: endpoint.url,
      ...fields,
      elapsedMs: Math.round(clock.monotonicMs() - started),
    })
    const env = options.env ?? process.env
    const timeoutMs = Math.min(options.timeoutMs ?? PROBE_TIMEOUT_MS, model.timeoutMs)
    let key = PLACEHOLDER_API_KEY
    if (endpoint.apiKeyEnv !== undefined) {
      const value = env[endpoint.apiKeyEnv]
      if (value === undefined || value === "")
        return Effect.succeed(
          done({
            ok: false,
            cause: `env var ${endpoint.apiKeyEnv} is not set`,
            hint: `models.${model.name}.endpoints[${index}].apiKeyEnv names it: export the API key in it`,
          }),
        )
      key = value
    }
    const failed = (error: unknown) => done({ ok: false, ...failureOf(error, timeoutMs, endpoint.apiKeyEnv) })
    return listModels(endpoint, key, timeoutMs).pipe(
      Effect.map(({ ids, owners }) => {
        // The scripted test double lists one placeholder name and answers any.
        const anyName = owners.length > 0 && owners.every((o) => o === TEST_DOUBLE_OWNER)
        if (ids.length === 0 || ids.includes(model.served) || anyName) return done({ ok: true })
        const listed = ids.length > 5 ? `${ids.slice(0, 5).join(", ")}, …` : ids.join(", ")
        return done({
          ok: true,
          warning: `it does not list "${model.served}", the model name sent (it lists ${listed}); if calls are refused, set served: for ${model.name} in models.yaml`,
        })
      }),
      Effect.catch((error) => {
        if (error instanceof NotAModelList)
          return Effect.succeed(
            done({
              ok: false,
              cause: "not an OpenAI-compatible server",
              hint: `GET /models answered ${JSON.stringify(error.body)}, not a model list`,
            }),
          )
        const missing = error instanceof APIError && (error.status === 404 || error.status === 405)
        if (!missing) return Effect.succeed(failed(error))
        return chatOnce(endpoint, key, model, timeoutMs).pipe(
          Effect.map(() =>
            done({
              ok: true,
              ...(model.healthProbeIntervalMs > 0
                ? {
                    warning: `it answers chat completions but not GET /models, which the pool's health probe asks: set healthProbeIntervalMs: 0 for ${model.name} in models.yaml`,
                  }
                : {}),
            }),
          ),
          Effect.catch((chatError) => {
            if (chatError instanceof APIError && (chatError.status === 404 || chatError.status === 405))
              return Effect.succeed(
                done({
                  ok: false,
                  cause: statusCause(chatError.status),
                  hint: "neither GET /models nor POST /chat/completions exists there: is the base URL right (it usually ends in /v1)?",
                }),
              )
            // A request the server understood and refused (400, 422, 429) means the route is there.
            if (
              chatError instanceof APIError &&
              typeof chatError.status === "number" &&
              chatError.status < 500
            )
              return chatError.status === 401 || chatError.status === 403
                ? Effect.succeed(failed(chatError))
                : Effect.succeed(done({ ok: true }))
            return Effect.succeed(failed(chatError))
          }),
        )
      }),
    )
  })

/** Probes every endpoint of `model` at once. */
export const probeModelGroup = (
  model: ModelConfig,
  role: string,
  options: ProbeOptions = {},
): Effect.Effect<GroupProbe> =>
  Effect.map(
    Effect.forEach(model.endpoints, (_, index) => probeEndpoint(model, index, options), {
      concurrency: "unbounded",
    }),
    (endpoints) => ({ model: model.name, role, ok: endpoints.some((e) => e.ok), endpoints }),
  )

const describe = (e: EndpointProbe): string =>
  `${e.url}: ${e.cause ?? "unknown cause"}${e.hint === undefined ? "" : ` — ${e.hint}`}`

/** The line that stops a command whose model group did not answer. */
export const unreachableLine = (group: GroupProbe): string =>
  `cannot use the ${group.role} model "${group.model}": ${group.endpoints.map(describe).join("; ")}`

/** Warnings about a reachable group: endpoints that did not answer, names not listed. */
export const probeWarnings = (group: GroupProbe): ReadonlyArray<string> =>
  group.ok
    ? group.endpoints.flatMap((e) =>
        e.ok
          ? e.warning === undefined
            ? []
            : [`${group.role} model "${group.model}" at ${e.url}: ${e.warning}`]
          : [`${group.role} model "${group.model}": ${describe(e)} (its other endpoints answer)`],
      )
    : []

/**
 * Probes the groups a command needs (`uses`: model name → role), all at once; fails with the first
 * unreachable one (in `uses` order), else returns the warnings to print.
 */
export const requireReachable = (
  config: ModelsConfig,
  uses: ReadonlyArray<{ readonly model: string; readonly role: string }>,
  options: ProbeOptions = {},
): Effect.Effect<ReadonlyArray<string>, ModelUnreachable> =>
  Effect.gen(function* () {
    // One probe per group, however many roles it plays (the agent may judge itself).
    const roles = new Map<string, Array<string>>()
    for (const { model, role } of uses) {
      if (config.models[model] === undefined) continue
      const list = roles.get(model) ?? []
      if (!list.includes(role)) list.push(role)
      roles.set(model, list)
    }
    const groups = yield* Effect.forEach(
      [...roles.entries()],
      ([model, list]) => probeModelGroup(config.models[model]!, list.join(" and "), options),
      { concurrency: "unbounded" },
    )
    const down = groups.find((g) => !g.ok)
    if (down !== undefined)
      return yield* new ModelUnreachable({ model: down.model, role: down.role, line: unreachableLine(down) })
    return groups.flatMap(probeWarnings)
  })
