/**
 * Every actor kind a worker can run, by the name used in `--roles`, how each is built from the
 * runtime (`probe` needs nothing; `agent` needs the inference pool, from config/models.yaml or
 * `ROLLOUT_MODEL_<NAME>_URL`, and the tools this worker has), and how actors are hosted on the
 * runtime's bus and log with the worker settings of its configuration.
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
import { loadModelsConfig, type ModelsConfig } from "../actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../actors/inference/pool.ts"
import type { InferencePool } from "../actors/inference/ports.ts"
import { probeActor } from "../actors/probe/index.ts"
import { dockToolPort } from "../actors/tools/agentToolPort.ts"
import { startDock } from "../actors/tools/dock.ts"
import { checkToolsStart, loadToolsConfig, type ToolsConfig } from "../actors/tools/toolsConfig.ts"
import type { EventLogShape } from "../events/log/eventLog.ts"
import type { AnyActor } from "../runtime/actor.ts"
import { type Host, startHost } from "../runtime/actorHost.ts"
import type { ConfigError } from "../runtime/yamlFile.ts"
import type { Runtime } from "./wiring.ts"

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
  Effect.map(liveAgentPortsAndPool(context), ({ ports }) => ports)

/**
 * The same, with the inference pool the ports call: an RL run loads new weights through it
 * (`publishWeights` pauses the very pool its episodes sample from).
 */
export const liveAgentPortsAndPool = (context: {
  readonly log: EventLogShape
  readonly configDir: string
  readonly servers?: ReadonlyArray<string>
}): Effect.Effect<{ ports: EpisodePorts; pool: InferencePool }, ConfigError | DockStartFailed, Scope.Scope> =>
  Effect.gen(function* () {
    // Both files are read and checked before the pool starts: its first events are writes.
    const models = yield* loadModelsConfig({ dir: context.configDir })
    const toolsConfig = yield* agentToolsConfig(context.configDir, context.servers)
    const pool = yield* makeInferencePool(models, { log: context.log, namespace: context.log.namespace })
    return { ports: agentPorts(poolModelPort(pool), yield* agentTools(context, toolsConfig)), pool }
  })

/** The agent's ports: a model (the inference pool's) and `tools`. */
const agentPorts = (
  model: EpisodePorts["model"],
  tools: { readonly port: EpisodePorts["tools"]; readonly specs: NonNullable<EpisodePorts["toolSpecs"]> },
): EpisodePorts => ({
  model,
  tools: tools.port,
  toolSpecs: tools.specs,
  parse: parseForEpisode,
})

/** An agent actor on the models given, with the built-in tools only (`rollout demo --actors`). */
export const builtinToolsAgent = (
  log: EventLogShape,
  models: ModelsConfig,
): Effect.Effect<AnyActor, never, Scope.Scope> =>
  Effect.map(makeInferencePool(models, { log, namespace: log.namespace }), (pool) =>
    agentActor(agentPorts(poolModelPort(pool), { port: builtinTools, specs: builtinToolSpecs })),
  )

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

/**
 * Hosts `actors` on the runtime's command bus and log, with the worker settings of its
 * configuration (concurrency and the ack deadline unless given).
 */
export const hostActors = (
  runtime: Runtime,
  actors: ReadonlyArray<AnyActor>,
  options: { readonly worker: string; readonly concurrency?: number; readonly ackWaitMs?: number },
): Effect.Effect<Host> => {
  const worker = runtime.config.worker
  return startHost(runtime.log, runtime.bus, actors, {
    worker: options.worker,
    concurrency: options.concurrency ?? worker.concurrency,
    ackWaitMs: options.ackWaitMs ?? worker.ackWaitMs,
    maxDeliver: worker.maxDeliver,
    drainTimeoutMs: worker.drainTimeoutMs,
    conflictRetries: worker.conflictRetries,
  })
}
