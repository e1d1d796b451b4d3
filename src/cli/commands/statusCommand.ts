/**
 * `rollout status`: the log, the command queue of every actor kind (pending, in flight,
 * redelivered) and the dead letters, which are never dropped silently: `--dead-letters` lists them.
 * Damage the log found on open is summed up on the log's line (details on stderr, `log.damage` in
 * the JSON).
 */
import * as Effect from "effect/Effect"
import { roles } from "../../app/actors.ts"
import type { LogDamage } from "../../events/log/eventLog.ts"
import { table, terminalText } from "../../projections/terminalText.ts"
import { configFrom, type GlobalOptions, printJson, withRuntime } from "../terminal/invocation.ts"

/** "; damaged: 1 undecodable line, an incomplete last line", or nothing for a sound log. */
const damageSummary = (damage: LogDamage | undefined): string => {
  if (damage === undefined) return ""
  const parts = [
    damage.undecodable === 0
      ? undefined
      : `${damage.undecodable} undecodable line${damage.undecodable === 1 ? "" : "s"}`,
    damage.tornTail === undefined ? undefined : "an incomplete last line",
    damage.cutOnOpen === undefined ? undefined : "a torn tail cut on open",
  ].filter((p) => p !== undefined)
  return parts.length === 0 ? "" : `; damaged: ${parts.join(", ")} (see above)`
}

export const statusCommand = (global: GlobalOptions, options: { json?: boolean; deadLetters?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const log = yield* runtime.log.stats
        const queues = []
        for (const kind of roles) queues.push(yield* runtime.bus.stats(kind))
        const letters = options.deadLetters === true ? yield* runtime.bus.deadLetters() : undefined
        if (options.json === true) {
          printJson({ log, queues, ...(letters === undefined ? {} : { deadLetters: letters }) })
          return
        }
        process.stdout.write(
          `log: ${log.backend} ${terminalText(log.location)}, ${log.events} events, last position ${log.lastPosition}${damageSummary(log.damage)}\n\n`,
        )
        process.stdout.write(
          `${table(
            ["actor kind", "pending", "in flight", "redelivered", "dead letters"],
            queues.map((q) => [q.actorKind, q.pending, q.inFlight, q.redelivered, q.deadLetters]),
          )}\n`,
        )
        if (config.log.backend === "embedded") {
          process.stdout.write("\n(embedded log: command queues live inside the process that runs them)\n")
        }
        if (letters !== undefined) {
          process.stdout.write(
            `\n${table(
              ["at", "kind", "actor", "command", "attempts", "reason"],
              letters.map((l) => [
                l.at,
                l.kind,
                l.actorKind,
                l.commandId,
                l.attempts,
                l.reason.slice(0, 120),
              ]),
            )}\n`,
          )
        }
      }),
    )
  })
