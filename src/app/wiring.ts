/**
 * Wiring: turns a decoded configuration into the running pieces, the log, the command bus and
 * the checkpoint store, on the embedded default or on NATS JetStream, for the life of a scope.
 * Every command of the CLI opens its runtime here, so both backends are wired in one place.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { BlobStoreShape } from "../events/log/blobStore.ts"
import { embeddedLogFile, makeEmbeddedLog } from "../events/log/embeddedLog.ts"
import { type EventLogShape, LogUnavailable } from "../events/log/eventLog.ts"
import { fileBlobDir, fileBlobStore } from "../events/log/fileBlobStore.ts"
import { makeJetStreamLog } from "../events/log/jetStreamLog.ts"
import { connectNats, type NatsHandle, redactUrl } from "../events/log/natsConnection.ts"
import { blobBucketFor, objectBlobStore } from "../events/log/objectBlobStore.ts"
import {
  type CheckpointStoreShape,
  checkpointBucketFor,
  fileCheckpointDir,
  fileCheckpointStore,
  kvCheckpointStore,
} from "../runtime/checkpointStore.ts"
import type { BusUnavailable, CommandBusShape } from "../runtime/commandBus.ts"
import { natsServers, type RolloutConfig, resolveNatsToken } from "../runtime/config.ts"
import { makeInProcessBus } from "../runtime/inProcessBus.ts"
import { makeJetStreamBus } from "../runtime/jetStreamBus.ts"

export interface Runtime {
  readonly config: RolloutConfig
  readonly log: EventLogShape
  readonly bus: CommandBusShape
  readonly checkpoints: CheckpointStoreShape
  /**
   * The blob store the log keeps large fields in (files beside the embedded log, the Object Store
   * on NATS); training batches are stored there too.
   */
  readonly blobs: BlobStoreShape
  /** Where the log is, for messages: the data dir or the server URLs (credentials removed). */
  readonly location: string
  readonly nats: NatsHandle | undefined
}

export interface OpenOptions {
  /** `reader` opens the embedded log without the writer lock (for inspection while a run writes). */
  readonly mode?: "writer" | "reader"
  readonly clientName?: string
}

/** Why there is nothing to read at `dataDir` for `namespace`, and what is there instead. */
const noLogThere = (dataDir: string, namespace: string): string => {
  const file = embeddedLogFile(dataDir, namespace)
  if (!fs.existsSync(dataDir))
    return `no log at ${dataDir}: the directory does not exist (--data-dir names the data directory of an embedded log, default .rollout; a command that records, such as rollout demo or rollout eval, creates it)`
  const others = (() => {
    try {
      return fs
        .readdirSync(path.join(dataDir, "log"))
        .filter((name) => fs.existsSync(embeddedLogFile(dataDir, name)))
    } catch {
      return []
    }
  })()
  return others.length === 0
    ? `no log of namespace "${namespace}" in ${dataDir} (no ${path.relative(dataDir, file)}; it holds no log at all)`
    : `no log of namespace "${namespace}" in ${dataDir} (no ${path.relative(dataDir, file)}); it holds the namespace(s) ${others.map((n) => `"${n}"`).join(", ")}: set ROLLOUT_NAMESPACE or namespace in rollout.yaml`
}

export const openRuntime = (
  config: RolloutConfig,
  options: OpenOptions = {},
): Effect.Effect<Runtime, LogUnavailable | BusUnavailable, Scope.Scope> =>
  Effect.gen(function* (): Effect.fn.Return<Runtime, LogUnavailable | BusUnavailable, Scope.Scope> {
    const { namespace } = config.log
    if (config.log.backend === "embedded") {
      const dataDir = path.resolve(config.log.dataDir)
      // A command that only reads needs a log to read: a mistyped --data-dir or namespace would
      // otherwise print an empty one (and leave an empty directory behind).
      if (options.mode === "reader" && !fs.existsSync(embeddedLogFile(dataDir, namespace)))
        return yield* Effect.fail(
          new LogUnavailable({
            backend: "embedded",
            operation: "open",
            reason: noLogThere(dataDir, namespace),
          }),
        )
      const log = yield* makeEmbeddedLog({
        dataDir,
        namespace,
        fsync: config.log.fsync,
        mode: options.mode ?? "writer",
        inlineLimitBytes: config.log.inlineLimitBytes,
      })
      const checkpoints = yield* Effect.sync(() => fileCheckpointStore(fileCheckpointDir(dataDir, namespace)))
      return {
        config,
        log,
        blobs: fileBlobStore(fileBlobDir(dataDir, namespace)),
        bus: makeInProcessBus({ dataDir: path.join(dataDir, "log", namespace) }),
        checkpoints,
        location: dataDir,
        nats: undefined,
      }
    }
    const servers = natsServers(config)
    const token = resolveNatsToken(config)
    const handle = yield* connectNats({
      servers,
      name: options.clientName ?? "rollout",
      ...(token === undefined ? {} : { token }),
    })
    const shared = {
      namespace,
      replicas: config.log.nats.replicas,
      duplicateWindowMs: config.log.nats.duplicateWindowMs,
    }
    // One blob store for the log and the bus: large fields of events and of commands alike.
    const largeFields = {
      inlineLimitBytes: config.log.inlineLimitBytes,
      blobStore: objectBlobStore(handle, { bucket: blobBucketFor(namespace), replicas: shared.replicas }),
    }
    const log = yield* makeJetStreamLog(handle, { ...shared, ...largeFields })
    const bus = yield* makeJetStreamBus(handle, { ...shared, ...largeFields })
    const checkpoints = yield* kvCheckpointStore(handle, {
      bucket: checkpointBucketFor(namespace),
      replicas: config.log.nats.replicas,
    }).pipe(
      Effect.mapError(
        (e) => new LogUnavailable({ backend: "nats", operation: "open checkpoints", reason: e.message }),
      ),
    )
    return {
      config,
      log,
      bus,
      checkpoints,
      blobs: largeFields.blobStore,
      location: servers.map(redactUrl).join(","),
      nats: handle,
    }
  })
