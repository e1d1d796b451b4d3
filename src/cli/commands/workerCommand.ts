/**
 * `rollout worker`: a process that runs actor kinds (`--roles`) from the shared JetStream command
 * queues. Start as many as you like, anywhere that reaches the NATS servers: each takes a share.
 * SIGTERM or SIGINT drains it: it stops taking commands, finishes those in flight, and exits 0.
 */
import * as os from "node:os"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { hostActors, makeActors, roles } from "../../app/actors.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface WorkerOptions {
  readonly roles?: string
  readonly name?: string
  readonly concurrency?: string
  readonly ackWait?: string
  readonly json?: boolean
}

export const workerCommand = (global: GlobalOptions, options: WorkerOptions) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global, options.roles === undefined ? {} : { roles: options.roles })
    if (config.log.backend !== "nats") {
      return yield* Effect.fail(
        new UsageError(
          "rollout worker takes commands from NATS JetStream: pass --nats <url> (or set log.backend: nats); " +
            "on the embedded log, actors run inside the command that needs them",
        ),
      )
    }
    const unknown = config.worker.roles.filter((role) => !roles.includes(role))
    if (unknown.length > 0) {
      return yield* Effect.fail(
        new UsageError(`unknown role "${unknown[0]}"; known roles: ${roles.join(", ")}`),
      )
    }
    const worker = options.name ?? `${os.hostname()}-${process.pid}`
    const concurrency =
      (yield* integerFlag("--concurrency", options.concurrency)) ?? config.worker.concurrency
    const ackWaitMs = (yield* integerFlag("--ack-wait", options.ackWait)) ?? config.worker.ackWaitMs
    return yield* withRuntime(config, { clientName: `rollout-worker-${worker}` }, (runtime) =>
      Effect.gen(function* () {
        const kinds = yield* makeActors(config.worker.roles, {
          log: runtime.log,
          configDir: global.config ?? "config",
        })
        const host = yield* hostActors(runtime, kinds, { worker, concurrency, ackWaitMs })
        const signalled = yield* Deferred.make<string>()
        const onSignal = (signal: string) => () => Deferred.doneUnsafe(signalled, Effect.succeed(signal))
        const term = onSignal("SIGTERM")
        const int = onSignal("SIGINT")
        process.once("SIGTERM", term)
        process.once("SIGINT", int)
        process.stderr.write(
          `worker ${worker} ready: roles ${kinds.map((k) => k.kind).join(",")} on ${runtime.location} ` +
            `(namespace ${config.log.namespace}, concurrency ${concurrency})\n`,
        )
        const signal = yield* Deferred.await(signalled)
        process.stderr.write(`worker ${worker}: ${signal}, draining\n`)
        yield* host.drain
        const counters = Object.fromEntries(host.counters)
        if (options.json === true) printJson({ worker, signal, counters })
        else process.stderr.write(`worker ${worker} stopped: ${JSON.stringify(counters)}\n`)
      }),
    )
  })
