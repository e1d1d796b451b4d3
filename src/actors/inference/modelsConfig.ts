/**
 * `config/models.yaml`: which OpenAI-compatible endpoints serve each model name the episodes use,
 * and how the inference pool treats them (streaming, timeouts, retries, caps, health probing). Every
 * key added since the first version is optional, so older files still decode. Decoded by an
 * Effect Schema with file:line errors through `loadSection`; a missing file means no models (the
 * pool says so clearly when one is asked for). `ROLLOUT_MODEL_<NAME>_URL` (a comma list) replaces
 * one model's endpoint list, or defines the model when the file does not. Secrets are never here:
 * an endpoint names the environment variable that holds its API key.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { ConfigError, decodeConfigData, loadSection } from "../../runtime/yamlFile.ts"

// Every tuning key may be absent (or `null`) and decodes to its default.
const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefault(Effect.succeed(value)))

const atLeast = (minimum: number) => Schema.Int.check(Schema.isGreaterThanOrEqualTo(minimum))

const checkEndpointUrl = (url: string): string | true => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `"${url}" is not a URL (expected http://host:port/v1)`
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return `"${url}" must use http:// or https://`
  // Never echo the URL here: its user-info part may be the very secret we refuse to store.
  if (parsed.username !== "" || parsed.password !== "")
    return "credentials must not be in the URL; put the key in the env var named by apiKeyEnv"
  if (parsed.search !== "" || parsed.hash !== "") return `"${url}" must not have a query or fragment`
  return true
}

const EnvVarName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "expected an environment variable name" }),
)

/**
 * The response header that carries the policy (weight) version by default; the scripted test
 * double stamps its served version in it.
 */
export const DEFAULT_POLICY_VERSION_HEADER = "x-policy-version"

const EndpointSection = Schema.Struct({
  /** The OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`. */
  url: Schema.String.check(Schema.makeFilter(checkEndpointUrl)),
  /** The env var holding the API key; unset means the placeholder key `EMPTY` (vLLM's convention). */
  apiKeyEnv: Schema.optionalKey(EnvVarName),
  maxConcurrency: withDefault(atLeast(1), 64),
})

const ModelSection = Schema.Struct({
  served: Schema.optionalKey(Schema.NonEmptyString),
  endpoints: Schema.Array(EndpointSection).check(
    Schema.isMinLength(1, { message: "expected at least one endpoint" }),
  ),
  timeoutMs: withDefault(atLeast(1), 180_000),
  retries: withDefault(atLeast(0), 4),
  backoffMs: withDefault(atLeast(0), 500),
  maxBackoffMs: withDefault(atLeast(0), 30_000),
  queueTimeoutMs: withDefault(atLeast(0), 60_000),
  probeIntervalMs: withDefault(atLeast(1), 5_000),
  healthProbeIntervalMs: withDefault(atLeast(0), 10_000),
  ejectAfterFailures: withDefault(atLeast(1), 3),
  policyVersionHeader: withDefault(
    Schema.String.check(Schema.isPattern(/^[A-Za-z0-9-]+$/, { message: "expected an HTTP header name" })),
    DEFAULT_POLICY_VERSION_HEADER,
  ),
  fingerprintAsPolicyVersion: withDefault(Schema.Boolean, false),
  returnTokenIds: withDefault(Schema.Boolean, false),
  tokens: withDefault(Schema.Literals(["text", "exact"]), "text"),
  stream: withDefault(Schema.Boolean, false),
  weightUpdates: withDefault(Schema.Literals(["none", "vllm", "sglang"]), "none"),
  extraBody: Schema.optionalKey(Schema.Record(Schema.String, Schema.Json)),
  /** USD per million tokens, for the cost per sample in evaluation reports. */
  pricing: Schema.optionalKey(
    Schema.Struct({
      promptPerMillion: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
      completionPerMillion: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
    }),
  ),
})

const ModelName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
    message: "a model name is letters, digits, '.', '_' and '-' (at most 64)",
  }),
)

/** The whole `models.yaml` file. */
export const ModelsFile = Schema.Struct({
  models: withDefault(Schema.Record(ModelName, ModelSection), {}),
})
export type ModelsFile = typeof ModelsFile.Type

export interface EndpointConfig {
  readonly url: string
  readonly apiKeyEnv?: string
  readonly maxConcurrency: number
}

/** The server API a group's weights are updated through (see `ModelConfig.weightUpdates`). */
export type WeightUpdateApi = "none" | "vllm" | "sglang"

/** One model group, with every default filled in. */
export interface ModelConfig {
  /** The name episodes use. */
  readonly name: string
  /** The model name sent to the servers (default: `name`). */
  readonly served: string
  readonly endpoints: ReadonlyArray<EndpointConfig>
  /** Per attempt; past it the attempt is a timeout and is retried. */
  readonly timeoutMs: number
  /** Further attempts after the first, on 408/409/429/5xx, timeouts, connection errors, broken streams. */
  readonly retries: number
  /** The first retry waits up to this (full jitter), doubling per retry up to `maxBackoffMs`. */
  readonly backoffMs: number
  readonly maxBackoffMs: number
  /** How long one attempt may wait for a free slot on a healthy endpoint before the call gives up. */
  readonly queueTimeoutMs: number
  /** How often ejected endpoints are probed with `GET /models`; an answer returns them. */
  readonly probeIntervalMs: number
  /**
   * How often healthy endpoints with no call in flight are probed with `GET /models`, so an idle
   * endpoint's death is noticed before traffic hits it; 0 turns it off.
   */
  readonly healthProbeIntervalMs: number
  /** Consecutive failed attempts, or consecutive failed probes of a healthy endpoint, that eject it. */
  readonly ejectAfterFailures: number
  /** The response header carrying the policy (weight) version, e.g. set by the trainer bridge. */
  readonly policyVersionHeader: string
  /** Without that header, use the body's `system_fingerprint` as the policy version. */
  readonly fingerprintAsPolicyVersion: boolean
  /** Ask for vLLM's `return_token_ids` (OpenAI itself refuses unknown fields: leave it off there). */
  readonly returnTokenIds: boolean
  /**
   * `exact` makes this an RL model group: every completion carries the prompt ids as the server's
   * chat template rendered them, the sampled ids with their log-probs (`return_token_ids`,
   * `logprobs`, `top_logprobs: 0`), the temperature sent (always sent, 1 unless the call or
   * `extraBody` sets one) and the weight version of each sampled token; an answer without them is
   * the endpoint's fault (`bad_response`). Assistant turns go back with their reasoning
   * (`reasoning_content`) so the template can render them as sampled. `text` (the default): none of this.
   */
  readonly tokens: "text" | "exact"
  /**
   * Run completions as server-sent-event streams (`stream: true`, with usage), assembled into the
   * same completion; a stream that breaks mid-way is retried like any failed attempt.
   */
  readonly stream: boolean
  /**
   * Which server API a published weight version is loaded through (`InferencePool.publishWeights`):
   * `vllm`, vLLM's native update sequence (`/pause` … `/resume`, read back by `/weight_info`);
   * `sglang`, `/update_weights_from_disk` (read back by `/model_info`); `none` (the default), the
   * group's weights are not the pool's to change and a publish is refused.
   */
  readonly weightUpdates: WeightUpdateApi
  /** Fields merged into every request body (e.g. vLLM's `chat_template_kwargs`). */
  readonly extraBody?: Readonly<Record<string, Schema.Json>>
  /** USD per million prompt and completion tokens (evaluation reports show cost per sample). */
  readonly pricing?: { readonly promptPerMillion: number; readonly completionPerMillion: number }
}

export interface ModelsConfig {
  /** Where the models came from, for error messages: the file path, or a note that there is none. */
  readonly source: string
  readonly models: Readonly<Record<string, ModelConfig>>
}

export interface LoadModelsConfigOptions {
  /** The config directory; default `config`. */
  readonly dir?: string
  readonly env?: Readonly<Record<string, string | undefined>>
}

export const MODELS_FILE = "models.yaml"

/** The variable that overrides the endpoints of `model`: `ROLLOUT_MODEL_<NAME>_URL`. */
export const modelUrlVariable = (model: string): string =>
  `ROLLOUT_MODEL_${model.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_URL`

const URL_VARIABLE = /^ROLLOUT_MODEL_([A-Z0-9_]+)_URL$/

type ModelSectionType = typeof ModelSection.Type

const complete = (name: string, section: ModelSectionType): ModelConfig => {
  const { served, extraBody, endpoints, pricing, ...tuning } = section
  return {
    name,
    served: served ?? name,
    endpoints: endpoints.map((endpoint) => ({ ...endpoint, url: endpoint.url.replace(/\/+$/, "") })),
    ...tuning,
    ...(extraBody === undefined ? {} : { extraBody }),
    ...(pricing === undefined ? {} : { pricing }),
  }
}

/**
 * Replaces the endpoint list from `ROLLOUT_MODEL_<NAME>_URL`. The overridden endpoints keep the
 * first configured endpoint's key variable and cap, so `--base-url` can point a configured model
 * at another server without restating them. A variable for a model the file lacks defines it
 * (named in lower case) with the defaults.
 */
const applyEnvOverrides = (
  sections: Record<string, unknown>,
  env: Readonly<Record<string, string | undefined>>,
): Result.Result<Record<string, unknown>, ConfigError> => {
  const out: Record<string, unknown> = { ...sections }
  for (const [variable, raw] of Object.entries(env)) {
    const match = URL_VARIABLE.exec(variable)
    // An empty variable counts as unset, so compose files can pass `${VAR:-}` through.
    if (match === null || raw === undefined || raw.trim() === "") continue
    const urls = raw
      .split(",")
      .map((url) => url.trim())
      .filter((url) => url.length > 0)
    const targets = Object.keys(out).filter((name) => modelUrlVariable(name) === variable)
    const names = targets.length > 0 ? targets : [match[1]!.toLowerCase()]
    for (const name of names) {
      const existing = out[name] as { endpoints?: ReadonlyArray<Record<string, unknown>> } | undefined
      const template = existing?.endpoints?.[0] ?? {}
      const endpoints = urls.map((url) => ({
        url,
        ...(template.apiKeyEnv === undefined ? {} : { apiKeyEnv: template.apiKeyEnv }),
        ...(template.maxConcurrency === undefined ? {} : { maxConcurrency: template.maxConcurrency }),
      }))
      const layer = { models: { [name]: { ...(existing ?? {}), endpoints } } }
      // Checked on its own so an error names the variable rather than the merged whole.
      const checked = decodeConfigData(ModelsFile, layer, `env ${variable}`)
      if (Result.isFailure(checked)) return Result.fail(checked.failure)
      out[name] = layer.models[name]
    }
  }
  return Result.succeed(out)
}

/** Reads `dir/models.yaml` (absent = no models) and applies `ROLLOUT_MODEL_<NAME>_URL` overrides. */
export const loadModelsConfig = (
  options: LoadModelsConfigOptions = {},
): Effect.Effect<ModelsConfig, ConfigError> =>
  Effect.gen(function* () {
    const dir = options.dir ?? "config"
    const loaded = yield* loadSection(dir, MODELS_FILE, ModelsFile)
    const data = loaded?.data as { models?: Record<string, unknown> } | undefined
    const withEnv = applyEnvOverrides({ ...(data?.models ?? {}) }, options.env ?? process.env)
    if (Result.isFailure(withEnv)) return yield* withEnv.failure
    const source = loaded?.path ?? `${dir}/${MODELS_FILE} (absent)`
    const decoded = decodeConfigData(ModelsFile, { models: withEnv.success }, source)
    if (Result.isFailure(decoded)) return yield* decoded.failure
    const models: Record<string, ModelConfig> = {}
    for (const [name, section] of Object.entries(decoded.success.models))
      models[name] = complete(name, section)
    return { source, models }
  })

/** Builds a config in code (tests, the CLI's `--base-url`), with the same defaults as the file. */
export const modelsConfigFrom = (
  models: Readonly<Record<string, unknown>>,
  source = "(in code)",
): Result.Result<ModelsConfig, ConfigError> => {
  const decoded = decodeConfigData(ModelsFile, { models }, source)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
  const out: Record<string, ModelConfig> = {}
  for (const [name, section] of Object.entries(decoded.success.models)) out[name] = complete(name, section)
  return Result.succeed({ source, models: out })
}

/**
 * Checks one endpoint given at run time (`InferencePool.addEndpoint`) with the same rules and
 * defaults as an entry of `endpoints:` in the file.
 */
export const endpointConfigFrom = (
  spec: unknown,
  source = "(added at run time)",
): Result.Result<EndpointConfig, ConfigError> => {
  const decoded = decodeConfigData(EndpointSection, spec, source)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
  return Result.succeed({ ...decoded.success, url: decoded.success.url.replace(/\/+$/, "") })
}

/** Says what to do about a model name the config lacks. */
export const unknownModelMessage = (config: ModelsConfig, model: string): string => {
  const known = Object.keys(config.models)
  const fix = `add it under models: in ${MODELS_FILE}, or set ${modelUrlVariable(model)}=http://host:port/v1`
  return known.length === 0
    ? `unknown model "${model}": no models are configured (${config.source}); ${fix}`
    : `unknown model "${model}": ${config.source} defines ${known.join(", ")}; ${fix}`
}

export { ConfigError }
