/**
 * `rollout probe`: sends N probe commands through the command bus and waits until the log shows
 * each one recorded exactly once. On the embedded log the probe actor runs in this process; on
 * NATS the running `rollout worker --roles probe` processes take the commands. It checks a
 * deployment end to end (bus, workers, log) and shows how the work was shared.
 */
import { randomUUID } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { probeActor } from "../../actors/probe/index.ts"
import { hostActors } from "../../app/actors.ts"
import { UndecodableEvent } from "../../events/codec.ts"
import { eventsFilter } from "../../events/subjects.ts"
import { table } from "../../projections/terminalText.ts"
import type { Command } from "../../runtime/command.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  progressLine,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface ProbeOptions {
  readonly count?: string
  readonly entities?: string
  readonly timeout?: string
  readonly json?: boolean
}

export const probeCommand = (global: GlobalOptions, options: ProbeOptions) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    const count = (yield* integerFlag("--count", options.count)) ?? 1000
    const entities = (yield* integerFlag("--entities", options.entities)) ?? 10
    const timeoutS = (yield* integerFlag("--timeout", options.timeout)) ?? 120
    return yield* withRuntime(config, { clientName: "rollout-probe" }, (runtime) =>
      Effect.gen(function* () {
        const probeId = `probe-${randomUUID().slice(0, 8)}`
        const start = (yield* runtime.log.stats).lastPosition
        const local = config.log.backend === "embedded"
        const host = local ? yield* hostActors(runtime, [probeActor], { worker: "local" }) : undefined
        const issuedAt = new Date().toISOString()
        const commands: Command[] = Array.from({ length: count }, (_, i) => ({
          commandId: `${probeId}.${i}`,
          actorKind: "probe",
          entityId: `${probeId}-${i % entities}`,
          type: "RecordProbe",
          payload: { seq: i },
          issuedAt,
          correlationId: probeId,
        }))
        const t0 = performance.now()
        yield* runtime.bus.send(commands)
        const byWorker = new Map<string, number>()
        const seen = new Set<string>()
        let duplicates = 0
        const progress = progressLine()
        const watch = runtime.log
          .tail({ from: start + 1, filter: eventsFilter(config.log.namespace, "probe") })
          .pipe(
            Stream.runForEachWhile((entry) =>
              Effect.sync(() => {
                if (entry instanceof UndecodableEvent || entry.correlationId !== probeId) return true
                if (seen.has(entry.causationId)) duplicates++
                seen.add(entry.causationId)
                const payload = entry.payload as { worker?: string }
                const worker = payload.worker ?? "?"
                byWorker.set(worker, (byWorker.get(worker) ?? 0) + 1)
                if (options.json !== true) progress.update(`probe ${probeId}: ${seen.size}/${count} recorded`)
                return seen.size < count
              }),
            ),
          )
        const finished = yield* Effect.timeoutOption(watch, timeoutS * 1000)
        const seconds = (performance.now() - t0) / 1000
        if (host !== undefined) yield* host.drain
        const letters = (yield* runtime.bus.deadLetters("probe")).filter(
          (l) => l.command?.correlationId === probeId,
        )
        const summary = {
          probeId,
          backend: config.log.backend,
          commands: count,
          recorded: seen.size,
          duplicates,
          deadLetters: letters.length,
          seconds: Number(seconds.toFixed(3)),
          commandsPerSecond: Math.round(seen.size / seconds),
          byWorker: Object.fromEntries(byWorker),
        }
        if (options.json === true) printJson(summary)
        else {
          progress.done(`probe ${probeId}: ${seen.size}/${count} recorded in ${seconds.toFixed(2)} s`)
          process.stdout.write(
            `${table(
              ["worker", "commands"],
              [...byWorker].sort((a, b) => b[1] - a[1]),
            )}\n\n${summary.commandsPerSecond} commands/s, ${duplicates} duplicates, ${letters.length} dead letters\n`,
          )
        }
        if (finished._tag === "None" || seen.size < count) {
          const hint = local
            ? ""
            : "; are workers running? start one with `rollout worker --roles probe --nats <url>`"
          return yield* Effect.fail(
            new UsageError(
              `only ${seen.size} of ${count} probe commands were recorded within ${timeoutS} s${hint}`,
            ),
          )
        }
        if (duplicates > 0 || letters.length > 0) {
          return yield* Effect.fail(
            new UsageError(`${duplicates} duplicates and ${letters.length} dead letters`),
          )
        }
      }),
    )
  })
