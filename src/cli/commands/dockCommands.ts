/**
 * `rollout dock …`: AgentDock from the command line. `up` starts the pools of `config/tools.yaml`
 * and the MCP gateway (127.0.0.1, bearer token) and runs until SIGINT/SIGTERM; it leaves a state
 * file (mode 0600: it holds the token) that `status`, `swap` and `call` use to reach it. Without a
 * running dock, `call` starts the one server it needs, calls once and stops it, and `status` reads
 * what the log recorded. A running dock's status also says how many lifecycle events wait for the
 * log (held while it is unreachable) and how many were dropped. The dock and its sandbox are
 * started by the composition root (`app/toolDock.ts`).
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { DockCallResult, ServerStatus } from "../../actors/tools/dockTypes.ts"
import type { RecordingStatus } from "../../actors/tools/lifecycleRecorder.ts"
import { argumentPath } from "../../actors/tools/toolArguments.ts"
import { serverOfToolName } from "../../actors/tools/toolNames.ts"
import { loadToolsConfig } from "../../actors/tools/toolsConfig.ts"
import { startToolDock } from "../../app/toolDock.ts"
import { terminalText } from "../../projections/terminalText.ts"
import { toolHealthText } from "../../projections/toolHealth/render.ts"
import type { RolloutConfig } from "../../runtime/config.ts"
import { undecodableLine } from "../terminal/damageReport.ts"
import { configFrom, type GlobalOptions, printJson, UsageError, withRuntime } from "../terminal/invocation.ts"

interface DockState {
  readonly url: string
  readonly admin: string
  readonly token: string
  readonly pid: number
  readonly startedAt: string
}

const stateFile = (config: RolloutConfig) =>
  path.resolve(config.log.dataDir, "dock", `${config.log.namespace}.json`)

const readState = (config: RolloutConfig): DockState | undefined => {
  try {
    const state = JSON.parse(fs.readFileSync(stateFile(config), "utf8")) as DockState
    process.kill(state.pid, 0)
    return state
  } catch {
    return undefined
  }
}

const admin = async (
  state: DockState,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Promise<unknown> => {
  const response = await fetch(`${state.admin}${route}`, {
    method,
    headers: { authorization: `Bearer ${state.token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = { error: text }
  }
  if (!response.ok)
    throw new UsageError(`dock at ${state.admin}: ${(parsed as { error?: string }).error ?? response.status}`)
  return parsed
}

const toolsConfig = (global: GlobalOptions) =>
  Effect.flatMap(loadToolsConfig(global.config ?? "config"), (config) =>
    Object.keys(config.servers).length === 0
      ? Effect.fail(new UsageError(`no MCP servers configured: add them under servers: in ${config.source}`))
      : Effect.succeed(config),
  )

export const dockUpCommand = (
  global: GlobalOptions,
  options: { servers?: string; port?: string; host?: string; json?: boolean },
) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    const tools = yield* toolsConfig(global)
    const { startGateway } = yield* Effect.promise(() => import("../../actors/tools/gateway.ts"))
    return yield* withRuntime(config, { clientName: "rollout-dock" }, (runtime) =>
      Effect.gen(function* () {
        const servers = options.servers?.split(",").map((s) => s.trim())
        const { dock, sandbox } = yield* startToolDock(runtime.log, tools, { servers }).pipe(
          Effect.mapError((error) => new UsageError(error.message)),
        )
        const token = process.env[tools.gateway.tokenEnv] ?? randomBytes(24).toString("base64url")
        const port = options.port === undefined ? tools.gateway.port : Number(options.port)
        const gateway = yield* Effect.tryPromise({
          try: () =>
            startGateway(dock, {
              host: options.host ?? tools.gateway.host,
              port,
              token,
              allowedHosts: [...tools.gateway.allowedHosts],
            }),
          catch: (error) => new UsageError(`gateway: ${(error as Error).message}`),
        })
        const file = stateFile(config)
        const base = new URL(gateway.url)
        const state: DockState = {
          url: gateway.url,
          admin: `${base.protocol}//${base.host}/admin`,
          token,
          pid: process.pid,
          startedAt: new Date().toISOString(),
        }
        fs.mkdirSync(path.dirname(file), { recursive: true })
        fs.writeFileSync(file, JSON.stringify(state), { mode: 0o600 })
        const summary = {
          url: gateway.url,
          tokenFrom:
            process.env[tools.gateway.tokenEnv] === undefined
              ? `generated (in ${file})`
              : tools.gateway.tokenEnv,
          servers: dock
            .status()
            .map((s) => ({ server: s.server, version: s.version, replicas: s.replicas.length })),
          tools: dock.tools().length,
        }
        if (options.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`)
        else
          process.stdout.write(
            `AgentDock up: ${summary.tools} tools from ${summary.servers.map((s) => `${s.server}@${s.version}×${s.replicas}`).join(", ")}\n` +
              `MCP gateway: ${gateway.url} (Authorization: Bearer <token>; token ${summary.tokenFrom})\n` +
              `rollout dock status | rollout dock call <server>${tools.separator}<tool> --args '{...}' | Ctrl-C to stop\n`,
          )
        yield* Effect.promise(
          () =>
            new Promise<void>((resolve) => {
              process.once("SIGINT", resolve)
              process.once("SIGTERM", resolve)
            }),
        )
        process.stderr.write("rollout dock: stopping (draining calls in flight)\n")
        yield* Effect.promise(() => gateway.close())
        yield* Effect.promise(() => dock.close())
        if (sandbox !== undefined) yield* Effect.promise(() => sandbox.close())
        fs.rmSync(file, { force: true })
      }),
    )
  })

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1))

const printStatus = (servers: ReadonlyArray<ServerStatus>, source: string) => {
  process.stdout.write(toolHealthText(servers, source))
}

const recordingLine = (r: RecordingStatus): string => {
  const failing =
    r.failingSince === undefined
      ? ""
      : ` (the log has not taken them since ${r.failingSince}: ${terminalText(r.lastError ?? "")})`
  return `lifecycle events: ${r.pending} pending for the log${failing}, ${r.dropped} dropped (buffer ${r.buffer}); ${r.recorded} recorded`
}

export const dockStatusCommand = (global: GlobalOptions, options: { json?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    const state = readState(config)
    if (state !== undefined) {
      const servers = (yield* Effect.promise(() =>
        admin(state, "GET", "/status"),
      )) as ReadonlyArray<ServerStatus>
      const recording = (yield* Effect.promise(() =>
        admin(state, "GET", "/recording").catch(() => null),
      )) as RecordingStatus | null
      if (options.json === true)
        printJson({ running: true, url: state.url, pid: state.pid, servers, recording })
      else {
        printStatus(servers, `AgentDock running (pid ${state.pid}) at ${state.url}`)
        if (recording !== null) process.stdout.write(`\n${recordingLine(recording)}\n`)
      }
      return
    }
    // No dock running: what the log says about the pools.
    const { toolHealthOf } = yield* Effect.promise(() => import("../../projections/toolHealth/queries.ts"))
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        // The fold of the whole log, saying what it could not decode and where.
        const { servers, undecodable, firstUndecodable } = yield* toolHealthOf(runtime.log)
        const report = undecodableLine("dock status", undecodable, { first: firstUndecodable })
        if (report !== undefined) process.stderr.write(`rollout: ${report}\n`)
        if (options.json === true) printJson({ running: false, servers, undecodable })
        else printStatus(servers, `no AgentDock running; from the log at ${runtime.location}`)
      }),
    )
  })

export const dockSwapCommand = (
  global: GlobalOptions,
  server: string,
  options: { to?: string; json?: boolean },
) =>
  Effect.gen(function* () {
    if (options.to === undefined) return yield* Effect.fail(new UsageError("dock swap needs --to <version>"))
    const config = yield* configFrom(global)
    const state = readState(config)
    if (state === undefined)
      return yield* Effect.fail(
        new UsageError("no AgentDock is running here: start one with `rollout dock up`"),
      )
    const report = yield* Effect.tryPromise({
      try: () => admin(state, "POST", "/swap", { server, version: options.to }),
      catch: (error) => new UsageError((error as Error).message),
    })
    if (options.json === true) printJson(report)
    else {
      const r = report as { from: string; to: string; drainedCalls: number; ms: number }
      process.stdout.write(`${server}: ${r.from} → ${r.to} in ${r.ms} ms (${r.drainedCalls} calls drained)\n`)
    }
  })

const printCall = (name: string, result: DockCallResult, json: boolean) => {
  if (json) {
    printJson({ tool: name, ...result, mcpContent: undefined })
    return
  }
  for (const c of result.content)
    process.stdout.write(`${c.type === "text" ? c.text : JSON.stringify(c.type === "json" ? c.value : c)}\n`)
  const readAs =
    result.coerced === undefined
      ? ""
      : `; read ${result.coerced.map((c) => `${argumentPath(c.path)} ${JSON.stringify(c.from)} as ${JSON.stringify(c.to)}`).join(", ")}`
  process.stderr.write(
    `[${result.outcome}${result.replayed ? ", from the log" : ""}; ${result.replica || "no replica"}; ${result.attempts} attempt(s); ${fmt(result.latencyMs)} ms${readAs}]\n`,
  )
  if (result.isError) process.exitCode = 1
}

export const dockCallCommand = (
  global: GlobalOptions,
  name: string,
  options: { args?: string; key?: string; json?: boolean },
) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    const args = options.args ?? "{}"
    const state = readState(config)
    if (state !== undefined) {
      const result = (yield* Effect.tryPromise({
        try: () =>
          admin(state, "POST", "/call", {
            name,
            args,
            ...(options.key === undefined ? {} : { idempotencyKey: options.key }),
          }),
        catch: (error) => new UsageError((error as Error).message),
      })) as DockCallResult
      printCall(name, result, options.json === true)
      return
    }
    const tools = yield* toolsConfig(global)
    const server = serverOfToolName(name, tools.separator, Object.keys(tools.servers))?.server
    if (server === undefined)
      return yield* Effect.fail(
        new UsageError(
          `no server in "${name}": tools are named <server>${tools.separator}<tool> (or <server>.<tool>) and ${tools.source} defines ${Object.keys(tools.servers).join(", ") || "no servers"}`,
        ),
      )
    return yield* withRuntime(config, { clientName: "rollout-dock-call" }, (runtime) =>
      Effect.gen(function* () {
        const { dock, sandbox } = yield* startToolDock(runtime.log, tools, {
          servers: [server],
          sampleEveryMs: 0,
        }).pipe(Effect.mapError((error) => new UsageError(error.message)))
        const result = yield* Effect.tryPromise({
          try: () => dock.call(name, args, options.key === undefined ? {} : { idempotencyKey: options.key }),
          catch: (error) => new UsageError((error as Error).message),
        }).pipe(Effect.ensuring(Effect.promise(() => dock.close())))
        if (sandbox !== undefined) yield* Effect.promise(() => sandbox.close())
        printCall(name, result, options.json === true)
      }),
    )
  })

/** `rollout mcp-server <name>`: one of the repo's tool servers on stdio (what tools.yaml runs). */
export const mcpServerCommand = (name: string, options: { options?: string }) =>
  Effect.gen(function* () {
    let json: unknown = {}
    if (options.options !== undefined) {
      try {
        json = JSON.parse(options.options)
      } catch (error) {
        return yield* Effect.fail(new UsageError(`--options must be JSON: ${(error as Error).message}`))
      }
    }
    if (name === "calculator") {
      // The toy RL task's tool (data/calc): no options, so a stray --options is a mistake worth naming.
      if (
        options.options !== undefined &&
        (typeof json !== "object" || json === null || Object.keys(json).length > 0)
      )
        return yield* Effect.fail(new UsageError("--options: the calculator takes no options"))
      const [{ createCalculatorServer }, { StdioServerTransport }] = yield* Effect.promise(() =>
        Promise.all([
          import("../../programs/toolServers/calculator/server.ts"),
          import("@modelcontextprotocol/sdk/server/stdio.js"),
        ]),
      )
      yield* Effect.tryPromise({
        try: () => createCalculatorServer().connect(new StdioServerTransport()),
        catch: (e) => new UsageError((e as Error).message),
      })
    } else if (name === "execute_code") {
      const { serveExecuteCodeStdio } = yield* Effect.promise(
        () => import("../../programs/toolServers/executeCode/stdio.ts"),
      )
      yield* Effect.tryPromise({
        try: () => serveExecuteCodeStdio(json),
        catch: (e) => new UsageError((e as Error).message),
      })
    } else {
      const { serveStdioFromConfig } = yield* Effect.promise(
        () => import("../../programs/toolServers/serve.ts"),
      )
      yield* Effect.tryPromise({
        try: () => serveStdioFromConfig(name, json, { baseDir: process.cwd() }),
        catch: (e) => new UsageError((e as Error).message),
      })
    }
    // Serve until stdin closes (the pool ended the session).
    yield* Effect.promise(() => new Promise<void>((resolve) => process.stdin.once("close", resolve)))
  })
