/**
 * How a CLI command runs: global options become a decoded configuration, the command's Effect
 * runs with the runtime it asks for, and any failure is printed as one clear line (what, where,
 * what to do) with a non-zero exit code. Data goes to stdout (one JSON object with `--json`),
 * progress and diagnostics to stderr. Text that came from outside (the log, a tool, an error
 * quoting either) passes through `terminalText` on its way out: tables, error lines, warnings.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import type * as Scope from "effect/Scope"
import { type OpenOptions, openRuntime, type Runtime } from "../../app/wiring.ts"
import { terminalText } from "../../projections/terminalText.ts"
import { type ConfigOverrides, loadConfig, type RolloutConfig } from "../../runtime/config.ts"
import { damageLines } from "./damageReport.ts"

export interface GlobalOptions {
  readonly log?: string
  readonly nats?: string
  readonly dataDir?: string
  readonly config?: string
}

export const overridesFrom = (g: GlobalOptions, extra: Partial<ConfigOverrides> = {}): ConfigOverrides => ({
  ...(g.log === undefined ? {} : { log: g.log }),
  // Naming a server implies the NATS backend unless --log says otherwise.
  ...(g.nats === undefined ? {} : { nats: g.nats, ...(g.log === undefined ? { log: "nats" } : {}) }),
  ...(g.dataDir === undefined ? {} : { dataDir: g.dataDir }),
  ...extra,
})

export const configFrom = (g: GlobalOptions, extra: Partial<ConfigOverrides> = {}) =>
  loadConfig({ dir: g.config ?? "config", overrides: overridesFrom(g, extra) })

/**
 * Runs `body` with the runtime the configuration describes, closing it afterwards. Opening the
 * embedded log tells what it found damaged (lines that do not decode, an incomplete last line, a
 * cut this writer made): every command prints that on stderr first, one line per finding, unless
 * it reports the damage itself (`reportDamage: false`, as `log stats` does).
 */
export const withRuntime = <A, E>(
  config: RolloutConfig,
  options: OpenOptions & { readonly reportDamage?: boolean },
  body: (runtime: Runtime) => Effect.Effect<A, E, Scope.Scope>,
) =>
  Effect.scoped(
    Effect.flatMap(openRuntime(config, options), (runtime) =>
      options.reportDamage === false || runtime.log.backend !== "embedded"
        ? body(runtime)
        : Effect.flatMap(runtime.log.stats, (stats) => {
            if (stats.damage !== undefined)
              for (const line of damageLines(stats.damage, stats.location))
                process.stderr.write(`rollout: ${line}\n`)
            return body(runtime)
          }),
    ),
  )

const messageOf = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message)
  return String(error)
}

/**
 * Where the CLI's Effect log lines go: stderr (stdout carries data, and `--json` one object),
 * as `rollout: warning: …`, escaped, since warnings quote log entries and tool output.
 */
const cliLogger = Logger.make(({ logLevel, message, cause }) => {
  const parts = (Array.isArray(message) ? message : [message]).map((m) =>
    typeof m === "string" ? m : messageOf(m),
  )
  if (cause.reasons.length > 0) parts.push(Cause.pretty(cause))
  process.stderr.write(
    `rollout: ${logLevel.toLowerCase()}: ${terminalText(parts.join(" "), { multiline: true })}\n`,
  )
})

/** Runs a command's program to completion and exits with its status. */
export const execute = async (program: Effect.Effect<unknown, unknown>): Promise<void> => {
  const exit = await Effect.runPromiseExit(Effect.provide(program, Logger.layer([cliLogger])))
  if (Exit.isSuccess(exit)) return
  if (Cause.hasInterruptsOnly(exit.cause)) {
    process.exitCode = 130
    return
  }
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure?._tag === "Fail") {
    process.stderr.write(`rollout: ${terminalText(messageOf(failure.error), { multiline: true })}\n`)
    process.exitCode = exitCodeOf(failure.error)
    return
  }
  process.stderr.write(
    `rollout: internal error (a bug; please report it):\n${terminalText(Cause.pretty(exit.cause), { multiline: true })}\n`,
  )
  process.exitCode = 70
}

/** A failure may carry its own exit code (e.g. replay's verdicts); otherwise 1. */
const exitCodeOf = (error: unknown): number => {
  const code =
    typeof error === "object" && error !== null ? (error as { exitCode?: unknown }).exitCode : undefined
  return typeof code === "number" && Number.isInteger(code) && code > 0 && code < 126 ? code : 1
}

/** A failure the user can fix, with the message they see. */
export class UsageError extends Error {
  readonly _tag = "UsageError"
}

/** Parses an integer flag (absent → undefined); a bad value is a usage error naming the flag. */
export const integerFlag = (
  flag: string,
  value: string | undefined,
  min = 1,
): Effect.Effect<number | undefined, UsageError> => {
  if (value === undefined) return Effect.succeed(undefined)
  const n = Number(value)
  return Number.isInteger(n) && n >= min
    ? Effect.succeed(n)
    : Effect.fail(
        new UsageError(
          min === 1
            ? `${flag} must be a positive integer, got "${value}"`
            : `${flag} must be an integer ≥ ${min}, got "${value}"`,
        ),
      )
}

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** A one-line progress display on stderr, redrawn in place on a terminal, throttled elsewhere. */
export const progressLine = () => {
  const tty = process.stderr.isTTY === true
  let lastPrint = 0
  return {
    update: (text: string, force = false) => {
      const now = Date.now()
      if (!force && now - lastPrint < (tty ? 100 : 2000)) return
      lastPrint = now
      const safe = terminalText(text)
      process.stderr.write(tty ? `\r\x1b[2K${safe}` : `${safe}\n`)
    },
    done: (text: string) => {
      const safe = terminalText(text)
      process.stderr.write(tty ? `\r\x1b[2K${safe}\n` : `${safe}\n`)
    },
  }
}
