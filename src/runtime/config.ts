/**
 * Runtime configuration: `config/*.yaml`, then `ROLLOUT_*` environment variables, then CLI flags,
 * decoded by one Effect Schema (`RolloutConfig`) with a default for every key. Loading fails fast
 * with a `ConfigError` naming the file (or variable, or flag), the config path, the YAML
 * line:column and the reason, so a typo is never silently ignored. Reading and decoding YAML files
 * with positioned errors lives in `yamlFile`; its API is re-exported here for other loaders.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { commandsFilter, streamsFor } from "../events/subjects.ts"
import { ConfigError, decodeConfigData, decodeYamlFile, readYamlFile } from "./yamlFile.ts"

export {
  ConfigError,
  decodeYamlFile,
  type LoadedSection,
  loadSection,
  parseYaml,
  readYamlFile,
  type YamlFile,
} from "./yamlFile.ts"

// Every key is optional in the file (absent, or `null` when all of a section's children are
// commented out) and decodes to its default, so the decoded type has no optional keys.
const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefault(Effect.succeed(value)))

// The naming rules live in subjects.ts; validating through it keeps one source of truth.
const acceptedBy = (check: (value: string) => unknown) =>
  Schema.makeFilter<string>((value) => {
    try {
      check(value)
      return true
    } catch (error) {
      return error instanceof Error ? error.message : String(error)
    }
  })

const atLeast = (minimum: number) => Schema.Int.check(Schema.isGreaterThanOrEqualTo(minimum))

const natsSchemes = new Set(["nats:", "tls:", "ws:", "wss:"])

/** Splits a `log.nats.url` value (one server or a comma-separated list) into server URLs. */
export const natsServerList = (url: string): ReadonlyArray<string> =>
  url
    .split(",")
    .map((server) => server.trim())
    .filter((server) => server.length > 0)

const checkNatsUrl = (url: string): string | true => {
  const servers = natsServerList(url)
  if (servers.length === 0) return "expected at least one server URL, like nats://127.0.0.1:4222"
  for (const server of servers) {
    let parsed: URL
    try {
      parsed = new URL(server.includes("://") ? server : `nats://${server}`)
    } catch {
      return `"${server}" is not a URL (expected nats://host:port)`
    }
    if (!natsSchemes.has(parsed.protocol)) return `"${server}" must use nats://, tls://, ws:// or wss://`
    if (parsed.hostname === "") return `"${server}" has no host`
    // Never echo the URL here: its user-info part may be the very secret we refuse to store.
    if (parsed.username !== "" || parsed.password !== "")
      return "credentials must not be in the URL; put the token in the env var named by log.nats.tokenEnv"
  }
  return true
}

const NatsSection = Schema.Struct({
  url: withDefault(Schema.String.check(Schema.makeFilter(checkNatsUrl)), "nats://127.0.0.1:4222"),
  tokenEnv: withDefault(
    Schema.String.check(
      Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "expected an environment variable name" }),
    ),
    "NATS_TOKEN",
  ),
  replicas: withDefault(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 })), 1),
  duplicateWindowMs: withDefault(atLeast(1), 120_000),
})

const LogSection = Schema.Struct({
  backend: withDefault(Schema.Literals(["embedded", "nats"]), "embedded"),
  dataDir: withDefault(Schema.NonEmptyString, ".rollout"),
  namespace: withDefault(Schema.String.check(acceptedBy(streamsFor)), "rollout"),
  fsync: withDefault(Schema.Literals(["always", "interval", "never"]), "interval"),
  // Up to JetStream's largest message limit (64 MiB); the default leaves room under its usual 1 MB.
  inlineLimitBytes: withDefault(
    Schema.Int.check(Schema.isBetween({ minimum: 1024, maximum: 64 * 1024 * 1024 })),
    262_144,
  ),
  nats: withDefault(NatsSection, {}),
})

const Role = Schema.String.check(acceptedBy((role) => commandsFilter("rollout", role)))

const WorkerSection = Schema.Struct({
  roles: withDefault(
    Schema.Array(Role).check(Schema.isMinLength(1, { message: "expected at least one role" })),
    ["probe"],
  ),
  concurrency: withDefault(atLeast(1), 16),
  ackWaitMs: withDefault(atLeast(1), 30_000),
  maxDeliver: withDefault(atLeast(1), 5),
  drainTimeoutMs: withDefault(atLeast(0), 10_000),
  conflictRetries: withDefault(atLeast(0), 8),
})

const ProjectionsSection = Schema.Struct({
  checkpointEvery: withDefault(atLeast(1), 1000),
})

/** The whole runtime configuration; every key has a default, so `{}` decodes to `defaultConfig`. */
export const RolloutConfig = Schema.Struct({
  log: withDefault(LogSection, {}),
  worker: withDefault(WorkerSection, {}),
  projections: withDefault(ProjectionsSection, {}),
})
export type RolloutConfig = typeof RolloutConfig.Type

export const defaultConfig: RolloutConfig = Schema.decodeUnknownSync(RolloutConfig)({})

/** The top-level keys `loadConfig` owns; a file holding one of them is decoded as a whole. */
export const rolloutConfigKeys: ReadonlyArray<string> = Object.keys(RolloutConfig.fields)

/** Values from CLI flags; strings as typed, validated here like everything else. */
export interface ConfigOverrides {
  /** `--log embedded|nats` */
  readonly log?: string
  /** `--nats <url[,url...]>` */
  readonly nats?: string
  /** `--data-dir <dir>` */
  readonly dataDir?: string
  /** `--roles <kind[,kind...]>` */
  readonly roles?: string | ReadonlyArray<string>
}

export interface LoadConfigOptions {
  readonly dir?: string
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly overrides?: ConfigOverrides
}

const commaList = (value: string): ReadonlyArray<string> => value.split(",").map((item) => item.trim())

interface Setting {
  readonly source: string
  readonly path: ReadonlyArray<string>
  readonly value: unknown
}

const envSettings = (env: Readonly<Record<string, string | undefined>>): ReadonlyArray<Setting> => {
  const table: ReadonlyArray<readonly [string, ReadonlyArray<string>, (raw: string) => unknown]> = [
    ["ROLLOUT_LOG", ["log", "backend"], (raw) => raw],
    ["ROLLOUT_NATS_URL", ["log", "nats", "url"], (raw) => raw],
    ["ROLLOUT_DATA_DIR", ["log", "dataDir"], (raw) => raw],
    ["ROLLOUT_NAMESPACE", ["log", "namespace"], (raw) => raw],
    ["ROLLOUT_WORKER_ROLES", ["worker", "roles"], commaList],
  ]
  const settings: Array<Setting> = []
  for (const [name, path, parse] of table) {
    const raw = env[name]
    // An empty variable counts as unset, so compose files can pass `${ROLLOUT_LOG:-}` through.
    if (raw !== undefined && raw !== "") settings.push({ source: `env ${name}`, path, value: parse(raw) })
  }
  return settings
}

const flagSettings = (overrides: ConfigOverrides): ReadonlyArray<Setting> => {
  const settings: Array<Setting> = []
  if (overrides.log !== undefined)
    settings.push({ source: "--log", path: ["log", "backend"], value: overrides.log })
  if (overrides.nats !== undefined)
    settings.push({ source: "--nats", path: ["log", "nats", "url"], value: overrides.nats })
  if (overrides.dataDir !== undefined)
    settings.push({ source: "--data-dir", path: ["log", "dataDir"], value: overrides.dataDir })
  if (overrides.roles !== undefined) {
    const roles = typeof overrides.roles === "string" ? commaList(overrides.roles) : overrides.roles
    settings.push({ source: "--roles", path: ["worker", "roles"], value: roles })
  }
  return settings
}

// defineProperty, not assignment, so a `__proto__` key in a layer stays an ordinary (unknown) key
// instead of replacing the object's prototype.
const setOwn = (target: Record<string, unknown>, key: string, value: unknown): void => {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

/** Later layers win key by key; lists are replaced whole, `undefined` never overrides. */
const mergeData = (base: unknown, layer: unknown): unknown => {
  if (layer === undefined) return base
  if (!isPlainObject(base) || !isPlainObject(layer)) return layer
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(layer)) setOwn(out, key, mergeData(out[key], value))
  return out
}

const nest = (path: ReadonlyArray<string>, value: unknown): unknown =>
  path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value)

const isYamlName = (name: string): boolean => name.endsWith(".yaml") || name.endsWith(".yml")
const isOwnFile = (name: string): boolean => name === "rollout.yaml" || name === "rollout.yml"

/** `rollout.yaml` first, then the rest alphabetically: a later file overrides an earlier one. */
const configFileNames = (dir: string): Effect.Effect<ReadonlyArray<string>, ConfigError> =>
  Effect.suspend(() => {
    let names: Array<string>
    try {
      names = fs.readdirSync(dir).filter(isYamlName)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return Effect.succeed([])
      return Effect.fail(
        new ConfigError({
          source: dir,
          path: "",
          reason: `cannot read config dir: ${error instanceof Error ? error.message : String(error)}`,
        }),
      )
    }
    const files = names.filter((name) => {
      try {
        return fs.statSync(nodePath.join(dir, name)).isFile()
      } catch {
        return false
      }
    })
    return Effect.succeed(
      files.sort((a, b) => Number(isOwnFile(b)) - Number(isOwnFile(a)) || a.localeCompare(b)),
    )
  })

// A file is ours when it is rollout.yaml or holds one of our top-level keys; then every top-level
// key in it must be ours, so a misspelt section is an error rather than another loader's business.
const holdsOurKeys = (name: string, data: unknown): boolean =>
  isOwnFile(name) || (isPlainObject(data) && Object.keys(data).some((key) => rolloutConfigKeys.includes(key)))

/**
 * Loads the runtime configuration: defaults, then `dir/*.yaml` files that hold rollout keys, then
 * `ROLLOUT_*` variables from `env`, then `overrides` (CLI flags). A missing dir or file means
 * defaults; anything present and wrong is a `ConfigError`.
 */
export const loadConfig = (options: LoadConfigOptions = {}): Effect.Effect<RolloutConfig, ConfigError> =>
  Effect.gen(function* () {
    const dir = options.dir ?? "config"
    let merged: unknown = {}
    for (const name of yield* configFileNames(dir)) {
      const file = yield* readYamlFile(nodePath.join(dir, name))
      if (file === undefined || !holdsOurKeys(name, file.data)) continue
      yield* decodeYamlFile(file, RolloutConfig)
      merged = mergeData(merged, file.data)
    }
    const settings = [...envSettings(options.env ?? process.env), ...flagSettings(options.overrides ?? {})]
    for (const setting of settings) {
      // Each setting is checked on its own so the error names the variable or flag that set it.
      const layer = nest(setting.path, setting.value)
      const checked = decodeConfigData(RolloutConfig, layer, setting.source)
      if (Result.isFailure(checked)) return yield* checked.failure
      merged = mergeData(merged, layer)
    }
    const result = decodeConfigData(RolloutConfig, merged, "config")
    if (Result.isFailure(result)) return yield* result.failure
    return result.success
  })

/** The server URLs to connect to, from `log.nats.url`. */
export const natsServers = (config: RolloutConfig): ReadonlyArray<string> =>
  natsServerList(config.log.nats.url)

/** The NATS token from the env var named by `log.nats.tokenEnv`; undefined when unset or empty. */
export const resolveNatsToken = (
  config: RolloutConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined => {
  const token = env[config.log.nats.tokenEnv]
  return token === undefined || token === "" ? undefined : token
}
