/**
 * Every actor kind a worker can run, by the name used in `--roles`, and how each is built from
 * the runtime: `probe` needs nothing; `agent` needs the inference pool (config/models.yaml or
 * `ROLLOUT_MODEL_<NAME>_URL`) and the tools this worker has.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { agentActor } from "../actors/agent/actor.ts"
import { builtinToolSpecs, builtinTools } from "../actors/agent/builtinTools.ts"
import { parseForEpisode } from "../actors/agent/index.ts"
import { poolModelPort } from "../actors/agent/modelPort.ts"
import type { EpisodePorts } from "../actors/agent/ports.ts"
import { loadModelsConfig } from "../actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../actors/inference/pool.ts"
import { probeActor } from "../actors/probe/index.ts"
import { dockToolPort } from "../actors/tools/agentToolPort.ts"
import { startDock } from "../actors/tools/dock.ts"
import { checkToolsStart, loadToolsConfig, type ToolsConfig } from "../actors/tools/toolsConfig.ts"
import type { EventLogShape } from "../events/log/eventLog.ts"
import type { AnyActor } from "../runtime/actor.ts"
import type { ConfigError } from "../runtime/yamlFile.ts"

export const roles: ReadonlyArray<string> = ["probe", "agent"]

/** The tool pools of tools.yaml could not start (a server failed, an unknown server was named). */
export class DockStartFailed extends Schema.TaggedError<DockStartFailed>()("DockStartFailed", {
  reason: Schema.String,
}) {
  override get message(): string {
    return `tools: ${this.reason}`
  }
}

/**
 * The tools.yaml the agent's tools come from, checked to start (server names, `${NAME}` variables);
 * undefined when the built-in tools are used (`ROLLOUT_TOOLS=builtin`, or no servers defined).
 * Nothing is started or written: a command calls it before its first append.
 */
export const agentToolsConfig = (
  configDir: string,
  servers?: ReadonlyArray<string>,
): Effect.Effect<ToolsConfig | undefined, ConfigError> =>
  Effect.gen(function* () {
    if (process.env.ROLLOUT_TOOLS === "builtin") return undefined
    const config = yield* loadToolsConfig(configDir)
    if (Object.keys(config.servers).length === 0) return undefined
    const checked = checkToolsStart(config, process.env, servers)
    if (Result.isFailure(checked)) return yield* checked.failure
    return config
  })

/** The agent's live ports: the inference pool from the models config, and this worker's tools. */
export const liveAgentPorts = (context: {
  readonly log: EventLogShape
  readonly configDir: string
  /** Only these tools.yaml servers (default: all). */
  readonly servers?: ReadonlyArray<string>
}): Effect.Effect<EpisodePorts, ConfigError | DockStartFailed, Scope.Scope> =>
  Effect.gen(function* () {
    // Both files are read and checked before the pool starts: its first events are writes.
    const models = yield* loadModelsConfig({ dir: context.configDir })
    const toolsConfig = yield* agentToolsConfig(context.configDir, context.servers)
    const pool = yield* makeInferencePool(models, { log: context.log, namespace: context.log.namespace })
    const tools = yield* agentTools(context, toolsConfig)
    return {
      model: poolModelPort(pool),
      tools: tools.port,
      toolSpecs: tools.specs,
      parse: parseForEpisode,
      now: () => new Date().toISOString(),
    }
  })

/**
 * The agent's tools: AgentDock's pools when `tools.yaml` defines servers (with the built-in `echo`
 * beside them), else the built-in tools alone (`config` undefined, see `agentToolsConfig`).
 */
const agentTools = (
  context: {
    readonly log: EventLogShape
    readonly servers?: ReadonlyArray<string>
  },
  config: ToolsConfig | undefined,
) =>
  Effect.gen(function* () {
    const builtin = { port: builtinTools, specs: builtinToolSpecs }
    if (config === undefined) return builtin
    const dock = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          startDock({
            log: context.log,
            config,
            ...(context.servers === undefined ? {} : { servers: context.servers }),
          }),
        catch: (error) => new DockStartFailed({ reason: (error as Error).message }),
      }),
      (d) => Effect.promise(() => d.close()),
    )
    const pooled = dockToolPort(dock)
    const names = new Set(pooled.specs.map((s) => s.name))
    return {
      port: {
        call: (request: Parameters<typeof builtinTools.call>[0]) =>
          names.has(request.tool) ? pooled.port.call(request) : builtinTools.call(request),
      },
      specs: [...pooled.specs, ...builtinToolSpecs.filter((s) => !names.has(s.name))],
    }
  })

export const makeActors = (
  wanted: ReadonlyArray<string>,
  context: { readonly log: EventLogShape; readonly configDir: string },
): Effect.Effect<ReadonlyArray<AnyActor>, ConfigError | DockStartFailed, Scope.Scope> =>
  Effect.gen(function* () {
    const out: AnyActor[] = []
    for (const role of wanted) {
      if (role === "probe") out.push(probeActor)
      else if (role === "agent") out.push(agentActor(yield* liveAgentPorts(context)))
    }
    return out
  })
