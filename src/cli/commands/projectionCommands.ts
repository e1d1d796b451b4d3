/**
 * `rollout projections list` and `rollout projections rebuild <name>`: the registered projections
 * with their checkpoints, and a rebuild from position 0 (also what happens by itself when a
 * projection's version changes). A rebuild says how many entries it could not decode and where
 * (one line on stderr; `undecodable` in the JSON), whether it rebuilt one projection or all.
 */
import * as Effect from "effect/Effect"
import { projectionRegistry } from "../../app/projections.ts"
import type { UndecodableEvent } from "../../events/codec.ts"
import {
  findProjection,
  listProjections,
  rebuildProjection,
  rebuildProjections,
} from "../../projections/runner/runner.ts"
import { table } from "../../projections/terminalText.ts"
import { summarizeUndecodable } from "../../projections/undecodable.ts"
import { undecodableLine } from "../terminal/damageReport.ts"
import {
  configFrom,
  type GlobalOptions,
  printJson,
  progressLine,
  withRuntime,
} from "../terminal/invocation.ts"

export const projectionsListCommand = (global: GlobalOptions, options: { json?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const list = yield* listProjections(runtime.checkpoints, projectionRegistry, runtime.log)
        if (options.json === true) return printJson({ projections: list })
        process.stdout.write(
          `${table(
            ["name", "version", "checkpoint", "position", "behind", "detail"],
            list.map((p) => [p.name, p.version, p.checkpoint, p.position ?? "-", p.behind ?? "-", p.detail]),
          )}\n`,
        )
      }),
    )
  })

export const projectionsRebuildCommand = (global: GlobalOptions, name: string, options: { json?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    if (name === "all") {
      // Every projection with one read of the log.
      return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
        Effect.gen(function* () {
          const t0 = performance.now()
          const skipped: UndecodableEvent[] = []
          const done = yield* rebuildProjections(runtime.log, runtime.checkpoints, projectionRegistry.all, {
            onUndecodable: (u) => skipped.push(u),
          })
          const seconds = (performance.now() - t0) / 1000
          const events = (yield* runtime.log.stats).events
          const undecodable = summarizeUndecodable(skipped)
          const summary = {
            projections: done,
            events,
            undecodable,
            seconds: Number(seconds.toFixed(3)),
            eventsPerSecond: seconds > 0 ? Math.round(events / seconds) : events,
          }
          if (options.json === true) return printJson(summary)
          process.stdout.write(
            `rebuilt ${done.map((d) => d.name).join(", ")} from one read: ${events} events in ${seconds.toFixed(2)} s (${summary.eventsPerSecond}/s)\n`,
          )
          const report = undecodableLine("projections rebuild all", undecodable, { first: skipped[0] })
          if (report !== undefined) process.stderr.write(`rollout: ${report}\n`)
        }),
      )
    }
    const projection = yield* findProjection(projectionRegistry, name)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const progress = progressLine()
        const t0 = performance.now()
        const result = yield* rebuildProjection(runtime.log, runtime.checkpoints, projection, {
          checkpointEvery: config.projections.checkpointEvery,
          // Reported once at the end, with their positions (not one warning each).
          onUndecodable: () => {},
          onProgress: (p) => {
            if (options.json !== true)
              progress.update(`rebuilding ${name}: position ${p.position}, ${p.applied} applied`)
          },
        })
        const seconds = (performance.now() - t0) / 1000
        const undecodable = summarizeUndecodable(result.undecodableSeen, result.undecodable)
        const summary = {
          projection: result.projection,
          version: result.version,
          position: result.position,
          applied: result.applied,
          undecodable: result.undecodable,
          undecodablePositions: result.undecodableSeen.map((u) => u.position),
          seconds: Number(seconds.toFixed(3)),
          eventsPerSecond: seconds > 0 ? Math.round(result.applied / seconds) : result.applied,
        }
        if (options.json === true) return printJson(summary)
        progress.done(
          `rebuilt ${name} v${result.version}: ${result.applied} events to position ${result.position} in ` +
            `${seconds.toFixed(2)} s (${summary.eventsPerSecond}/s)`,
        )
        const report = undecodableLine(`projections rebuild ${name}`, undecodable, {
          first: result.undecodableSeen[0],
        })
        if (report !== undefined) process.stderr.write(`rollout: ${report}\n`)
      }),
    )
  })
