/**
 * `config/tools.yaml`: the MCP servers AgentDock pools, and its gateway. Each server runs over
 * stdio (a child process), streamable HTTP (a remote URL) or Docker (a container through the
 * sandbox port), with replicas, a concurrency cap per replica, a bounded queue, a call timeout, a
 * retry policy that applies only to tools declared idempotent, output caps and an environment whose
 * secrets come from variables (`${NAME}`), never from the file and never into the log. A server may
 * list other `versions` (overrides of its base entry) to hot-swap to. Decoded by an Effect Schema
 * with file:line errors; a missing file means no servers. `separator` joins server and tool in the
 * names the dock offers (`search__search`, see toolNames.ts).
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { ConfigError, decodeConfigData, loadSection } from "../../runtime/yamlFile.ts"
import { DEFAULT_TOOL_NAME_SEPARATOR, separatorProblem, serverNameProblem } from "./toolNames.ts"

const withDefault = <S extends Schema.Top>(schema: S, value: S["Encoded"]) =>
  schema.pipe(Schema.withDecodingDefault(Effect.succeed(value)))
const atLeast = (minimum: number) => Schema.Int.check(Schema.isGreaterThanOrEqualTo(minimum))

const Name = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, {
    message: "a server or version name is letters, digits, '_' and '-' (at most 64; no '.')",
  }),
)

/** Values may reference environment variables as `${NAME}`; they are resolved when a replica starts. */
const EnvMap = Schema.Record(Schema.String, Schema.String)

const ServerFields = {
  transport: Schema.optionalKey(Schema.Literals(["stdio", "http", "docker"])),
  /** stdio/docker: the program; stdio also finds the project's `node_modules/.bin`. */
  command: Schema.optionalKey(Schema.NonEmptyString),
  args: Schema.optionalKey(Schema.Array(Schema.String)),
  env: Schema.optionalKey(EnvMap),
  /** http: the streamable-HTTP endpoint. */
  url: Schema.optionalKey(Schema.String),
  /** http: request headers, e.g. `Authorization: Bearer ${TOKEN}`. */
  headers: Schema.optionalKey(EnvMap),
  /** docker: the image (built locally), and the container's limits. */
  image: Schema.optionalKey(Schema.NonEmptyString),
  memoryMb: Schema.optionalKey(atLeast(16)),
  cpus: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThan(0))),
  pids: Schema.optionalKey(atLeast(1)),
  mounts: Schema.optionalKey(
    Schema.Array(
      Schema.Struct({
        hostPath: Schema.NonEmptyString,
        containerPath: Schema.NonEmptyString,
        readOnly: withDefault(Schema.Boolean, true),
      }),
    ),
  ),
  replicas: Schema.optionalKey(atLeast(1)),
  concurrency: Schema.optionalKey(atLeast(1)),
  queueLimit: Schema.optionalKey(atLeast(0)),
  timeoutMs: Schema.optionalKey(atLeast(1)),
  retries: Schema.optionalKey(atLeast(0)),
  backoffMs: Schema.optionalKey(atLeast(0)),
  /** Tools whose calls may be retried or replayed: `true` for all, or a list of names. */
  idempotent: Schema.optionalKey(Schema.Union([Schema.Boolean, Schema.Array(Schema.String)])),
  maxOutputChars: Schema.optionalKey(atLeast(64)),
  healthIntervalMs: Schema.optionalKey(atLeast(0)),
  restartBackoffMs: Schema.optionalKey(atLeast(1)),
  maxRestartBackoffMs: Schema.optionalKey(atLeast(1)),
  breakerFailures: Schema.optionalKey(atLeast(1)),
  breakerResetMs: Schema.optionalKey(atLeast(1)),
}

const VersionSection = Schema.Struct(ServerFields)
const ServerSection = Schema.Struct({
  ...ServerFields,
  version: withDefault(Name, "v1"),
  versions: withDefault(Schema.Record(Name, VersionSection), {}),
})

const GatewaySection = Schema.Struct({
  host: withDefault(Schema.NonEmptyString, "127.0.0.1"),
  port: withDefault(atLeast(0), 8765),
  /** The variable holding the bearer token; unset, `rollout dock up` makes one and prints it. */
  tokenEnv: withDefault(Schema.String, "ROLLOUT_DOCK_TOKEN"),
  /** Extra Host header values accepted (DNS-rebinding protection allows only these and loopback). */
  allowedHosts: withDefault(Schema.Array(Schema.String), []),
})

export const ToolsFile = Schema.Struct({
  /**
   * What joins a server's name to its tools' names (`search__search`): '_' and '-' only, so the
   * names stay valid OpenAI function names. Server names must not hold it.
   */
  separator: withDefault(Schema.String, DEFAULT_TOOL_NAME_SEPARATOR),
  servers: withDefault(Schema.Record(Name, ServerSection), {}),
  gateway: withDefault(GatewaySection, {}),
})
export type ToolsFile = typeof ToolsFile.Type

/** One version of one server, with every default filled in. */
export interface ServerConfig {
  readonly name: string
  readonly version: string
  readonly transport: "stdio" | "http" | "docker"
  readonly command?: string
  readonly args: ReadonlyArray<string>
  /** Unresolved: values may hold `${NAME}` references (see `resolveEnv`). */
  readonly env: Readonly<Record<string, string>>
  readonly url?: string
  readonly headers: Readonly<Record<string, string>>
  readonly image?: string
  readonly memoryMb: number
  readonly cpus: number
  readonly pids: number
  readonly mounts: ReadonlyArray<{
    readonly hostPath: string
    readonly containerPath: string
    readonly readOnly: boolean
  }>
  readonly replicas: number
  readonly concurrency: number
  readonly queueLimit: number
  readonly timeoutMs: number
  readonly retries: number
  readonly backoffMs: number
  readonly idempotent: boolean | ReadonlyArray<string>
  readonly maxOutputChars: number
  readonly healthIntervalMs: number
  readonly restartBackoffMs: number
  readonly maxRestartBackoffMs: number
  readonly breakerFailures: number
  readonly breakerResetMs: number
}

export interface ServerEntry {
  /** The version that runs at start. */
  readonly current: ServerConfig
  /** Every version by name, the current one included. */
  readonly versions: Readonly<Record<string, ServerConfig>>
}

export interface ToolsConfig {
  readonly source: string
  /** Joins server and tool in the names the dock offers (see toolNames.ts). */
  readonly separator: string
  readonly servers: Readonly<Record<string, ServerEntry>>
  readonly gateway: ToolsFile["gateway"]
}

export const TOOLS_FILE = "tools.yaml"

const defaults = {
  transport: "stdio" as const,
  args: [] as ReadonlyArray<string>,
  env: {},
  headers: {},
  memoryMb: 512,
  cpus: 1,
  pids: 128,
  mounts: [],
  replicas: 1,
  concurrency: 16,
  queueLimit: 1024,
  timeoutMs: 30_000,
  retries: 2,
  backoffMs: 50,
  idempotent: false,
  maxOutputChars: 20_000,
  healthIntervalMs: 5_000,
  restartBackoffMs: 100,
  maxRestartBackoffMs: 10_000,
  breakerFailures: 5,
  breakerResetMs: 2_000,
}

type Fields = typeof VersionSection.Type

const complete = (
  name: string,
  version: string,
  base: Fields,
  over: Fields,
  source: string,
): Result.Result<ServerConfig, ConfigError> => {
  const merged = { ...defaults, ...base, ...over }
  const at = `servers.${name}`
  const fail = (reason: string) => Result.fail(new ConfigError({ source, path: at, reason }))
  if (merged.transport === "http") {
    if (merged.url === undefined) return fail("transport http needs url:")
    try {
      const u = new URL(merged.url)
      if (u.protocol !== "http:" && u.protocol !== "https:")
        return fail(`url "${merged.url}" must be http(s)`)
      if (u.username !== "" || u.password !== "")
        // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
        return fail("credentials must not be in the url; use headers with ${VAR}")
    } catch {
      return fail(`url "${merged.url}" is not a URL`)
    }
  } else if (merged.command === undefined) return fail(`transport ${merged.transport} needs command:`)
  if (merged.transport === "docker" && merged.image === undefined)
    return fail("transport docker needs image:")
  const { version: _v, versions: _vs, ...rest } = merged as Fields & { version?: string; versions?: unknown }
  return Result.succeed({ ...rest, name, version } as ServerConfig)
}

const build = (file: ToolsFile, source: string): Result.Result<ToolsConfig, ConfigError> => {
  const servers: Record<string, ServerEntry> = {}
  const badSeparator = separatorProblem(file.separator)
  if (badSeparator !== undefined)
    return Result.fail(new ConfigError({ source, path: "separator", reason: badSeparator }))
  for (const [name, section] of Object.entries(file.servers)) {
    const badName = serverNameProblem(name, file.separator)
    if (badName !== undefined)
      return Result.fail(new ConfigError({ source, path: `servers.${name}`, reason: badName }))
    const { version, versions, ...base } = section
    const current = complete(name, version, base, {}, source)
    if (Result.isFailure(current)) return Result.fail(current.failure)
    const all: Record<string, ServerConfig> = { [version]: current.success }
    for (const [v, over] of Object.entries(versions)) {
      if (v === version) continue
      const c = complete(name, v, base, over, source)
      if (Result.isFailure(c))
        return Result.fail(new ConfigError({ ...c.failure, path: `servers.${name}.versions.${v}` }))
      all[v] = c.success
    }
    servers[name] = { current: current.success, versions: all }
  }
  return Result.succeed({ source, separator: file.separator, servers, gateway: file.gateway })
}

/** Reads `dir/tools.yaml` (absent = no servers). */
export const loadToolsConfig = (dir = "config"): Effect.Effect<ToolsConfig, ConfigError> =>
  Effect.gen(function* () {
    const loaded = yield* loadSection(dir, TOOLS_FILE, ToolsFile)
    const source = loaded?.path ?? `${dir}/${TOOLS_FILE} (absent)`
    const decoded = decodeConfigData(ToolsFile, loaded?.data ?? {}, source)
    if (Result.isFailure(decoded)) return yield* decoded.failure
    const built = build(decoded.success, source)
    if (Result.isFailure(built)) return yield* built.failure
    return built.success
  })

/** Builds a config in code (tests, benchmarks), with the file's defaults and checks. */
export const toolsConfigFrom = (
  data: unknown,
  source = "(in code)",
): Result.Result<ToolsConfig, ConfigError> => {
  const decoded = decodeConfigData(ToolsFile, data, source)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
  return build(decoded.success, source)
}

/**
 * Resolves `${NAME}` references against the environment; a missing variable is an error naming the
 * key (never the value: values are secrets).
 */
export const resolveEnv = (
  values: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string | undefined>>,
  where: string,
): Result.Result<Record<string, string>, string> => {
  const out: Record<string, string> = {}
  for (const [key, raw] of Object.entries(values)) {
    let missing: string | undefined
    out[key] = raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const value = env[name]
      if (value === undefined) missing ??= name
      return value ?? ""
    })
    if (missing !== undefined)
      return Result.fail(`${where}.${key} needs the environment variable ${missing}, which is not set`)
  }
  return Result.succeed(out)
}

/**
 * What would stop the pools of `servers` (default: all) from starting, found before anything
 * starts or is written: a server name the file lacks, or a `${NAME}` in the env or headers of a
 * server's starting version whose variable is unset. Later versions are checked when swapped to.
 */
export const checkToolsStart = (
  config: ToolsConfig,
  env: Readonly<Record<string, string | undefined>>,
  servers?: ReadonlyArray<string>,
): Result.Result<void, ConfigError> => {
  const known = Object.keys(config.servers)
  for (const name of servers ?? known) {
    const entry = config.servers[name]
    if (entry === undefined)
      return Result.fail(
        new ConfigError({
          source: config.source,
          path: "servers",
          reason: `unknown server "${name}" (it defines ${known.join(", ") || "none"})`,
        }),
      )
    const where = `servers.${name}`
    for (const [values, part] of [
      [entry.current.env, "env"],
      [entry.current.headers, "headers"],
    ] as const) {
      const resolved = resolveEnv(values, env, `${where}.${part}`)
      if (Result.isFailure(resolved))
        return Result.fail(new ConfigError({ source: config.source, path: "", reason: resolved.failure }))
    }
  }
  return Result.succeed(undefined)
}

/** Whether calls of `tool` on this server may be retried or answered from the log. */
export const isIdempotent = (server: ServerConfig, tool: string): boolean =>
  server.idempotent === true || (Array.isArray(server.idempotent) && server.idempotent.includes(tool))
