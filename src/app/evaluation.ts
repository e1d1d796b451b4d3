/**
 * What an evaluation runs on, built from the runtime: where its episodes run (on the agent
 * workers that take `RunEpisode` commands, or in this process with the live agent ports) and a
 * judge model behind an inference pool. `rollout eval` and `rollout score` take them from here.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type EpisodeRunner, runHere, runOnWorkers } from "../actors/evaluator/episodeRunner.ts"
import type { JudgePort } from "../actors/evaluator/scoring/judge.ts"
import { poolJudgePort } from "../actors/evaluator/scoring/judgePort.ts"
import type { ModelsConfig } from "../actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../actors/inference/pool.ts"
import type { EventLogShape, LogUnavailable } from "../events/log/eventLog.ts"
import type { ConfigError } from "../runtime/yamlFile.ts"
import { type DockStartFailed, liveAgentPorts } from "./actors.ts"
import type { Runtime } from "./wiring.ts"

/**
 * Where an evaluation's episodes run: with `dispatch`, on `rollout worker --roles agent`
 * processes (their models and tools); otherwise here, on the agent's live ports with the tools.yaml
 * servers named (default: all). `invocation` tells this invocation's commands from an earlier one's.
 */
export const episodeRunnerFor = (
  runtime: Runtime,
  options: {
    readonly dispatch: boolean
    readonly configDir: string
    readonly servers?: ReadonlyArray<string> | undefined
    readonly invocation: string
  },
): Effect.Effect<EpisodeRunner, LogUnavailable | ConfigError | DockStartFailed, Scope.Scope> =>
  options.dispatch
    ? runOnWorkers(runtime.log, { bus: runtime.bus, invocation: options.invocation })
    : Effect.map(
        liveAgentPorts({
          log: runtime.log,
          configDir: options.configDir,
          ...(options.servers === undefined ? {} : { servers: options.servers }),
        }),
        runHere,
      )

/**
 * The judge model `model` through an inference pool of `models`; its calls are recorded when a
 * log is given.
 */
export const poolJudge = (
  models: ModelsConfig,
  model: string,
  log?: EventLogShape,
): Effect.Effect<JudgePort, never, Scope.Scope> =>
  Effect.map(makeInferencePool(models, log === undefined ? {} : { log, namespace: log.namespace }), (pool) =>
    poolJudgePort(pool, model),
  )
