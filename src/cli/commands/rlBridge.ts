/**
 * `rollout rl bridge --run <id>`: serves the trainer bridge of one run (docs/training.md) until
 * SIGINT/SIGTERM — the HTTP API on 127.0.0.1 (a free port unless `--port`), and on NATS the same
 * operations as request/reply subjects. Its state comes from the log, so a bridge killed and
 * started again goes on where it was. The bearer token is read from `--token-file` (or the
 * default file under the data dir), or generated and written there (0600); it is never printed.
 * The model is `--model`, else the run's (its `RunStarted`); its group in models.yaml must have
 * `weightUpdates: vllm | sglang` for published weights to reach the servers.
 */
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { loadModelsConfig, unknownModelMessage } from "../../actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../actors/inference/pool.ts"
import { startTrainerBridge } from "../../actors/trainer/bridge.ts"
import {
  BridgeTokenError,
  bridgeTokenFile,
  loadOrCreateBridgeToken,
} from "../../actors/trainer/bridgeToken.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface RlBridgeOptions {
  readonly run?: string
  readonly model?: string
  readonly port?: string
  readonly host?: string
  readonly tokenFile?: string
  readonly json?: boolean
}

export const rlBridgeCommand = (global: GlobalOptions, options: RlBridgeOptions) =>
  Effect.gen(function* () {
    const runId = options.run
    if (runId === undefined || runId.trim() === "")
      return yield* Effect.fail(
        new UsageError("--run <id> is required: the run whose batches the bridge serves"),
      )
    const port = (yield* integerFlag("--port", options.port, 0)) ?? 0
    if (port > 65535)
      return yield* Effect.fail(new UsageError(`--port must be at most 65535, got "${options.port}"`))
    const host = options.host ?? "127.0.0.1"
    const config = yield* configFrom(global)
    const models = yield* loadModelsConfig({ dir: global.config ?? "config" })
    if (options.model !== undefined && models.models[options.model] === undefined)
      return yield* Effect.fail(new UsageError(`--model: ${unknownModelMessage(models, options.model)}`))
    const tokenFile =
      options.tokenFile === undefined
        ? bridgeTokenFile(config.log.dataDir, config.log.namespace, runId)
        : path.resolve(options.tokenFile)
    const { generated, token } = yield* Effect.try({
      try: () => loadOrCreateBridgeToken(tokenFile),
      catch: (error) => new UsageError(error instanceof BridgeTokenError ? error.message : String(error)),
    })
    return yield* withRuntime(config, { clientName: "rollout-rl-bridge" }, (runtime) =>
      Effect.gen(function* () {
        const pool = yield* makeInferencePool(models, { log: runtime.log, namespace: runtime.log.namespace })
        const bridge = yield* startTrainerBridge({
          log: runtime.log,
          blobs: runtime.blobs,
          pool,
          runId,
          ...(options.model === undefined ? {} : { model: options.model }),
          host,
          port,
          token,
          ...(runtime.nats === undefined ? {} : { nats: runtime.nats }),
        }).pipe(Effect.mapError((fault) => new UsageError(fault.error)))
        const model = bridge.core.model()
        if (model === undefined)
          return yield* Effect.fail(
            new UsageError(
              `run ${runId} has no RunStarted in the log at ${runtime.location}: give the RL model group with --model`,
            ),
          )
        if (models.models[model] === undefined)
          return yield* Effect.fail(
            new UsageError(`run ${runId}'s model: ${unknownModelMessage(models, model)}`),
          )
        const status = yield* bridge.core.status
        const summary = {
          run: runId,
          model,
          url: bridge.http.url,
          tokenFile,
          token: generated ? "generated" : "read from the token file",
          nats: bridge.nats === undefined ? null : bridge.nats.subjects,
          published: status.published,
          acknowledged: status.acknowledged,
          next: status.next,
          version: status.version,
          pid: process.pid,
        }
        if (options.json === true) printJson(summary)
        else
          process.stdout.write(
            `trainer bridge of run ${runId} (model ${model}): ${bridge.http.url} (Authorization: Bearer <token in ${tokenFile}>)\n` +
              (bridge.nats === undefined
                ? ""
                : `NATS subjects: ${bridge.nats.subjects.next} (and .batch, .weights, .metrics, .status)\n`) +
              `published ${status.published} batch(es), ${status.acknowledged} acknowledged; next step ${status.next}, weight version ${status.version} | Ctrl-C to stop\n`,
          )
        yield* Effect.promise(
          () =>
            new Promise<void>((resolve) => {
              process.once("SIGINT", resolve)
              process.once("SIGTERM", resolve)
            }),
        )
        process.stderr.write("rollout rl bridge: stopping\n")
      }),
    )
  })
