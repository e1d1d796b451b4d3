/**
 * `rollout export <run> --format sft|agenttoleap`: an evaluation run's trajectories from the log,
 * as chat JSONL for supervised fine-tuning (`sft.jsonl`, one `{messages, metadata}` per sample) or
 * in AgentToLeaP's layout (`<task>/<sample>/dialog.json` and `result.json`); the shapes are in
 * `exportTrajectories.ts` and in the command's help. Default folder: `<data-dir>/runs/<run>/export-<format>`.
 */
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { EXPORT_FORMATS, type ExportFormat, exportRun } from "../actors/evaluator/exportTrajectories.ts"
import { ownValue } from "../projections/projection.ts"
import { configFrom, type GlobalOptions, printJson, UsageError, withRuntime } from "./invocation.ts"
import { loadScoreboard } from "./scoresCommand.ts"

export interface ExportOptions {
  readonly format?: string
  readonly out?: string
  readonly correctOnly?: boolean
  readonly json?: boolean
}

export const exportCommand = (global: GlobalOptions, runId: string, options: ExportOptions) =>
  Effect.gen(function* () {
    const format = options.format
    if (format === undefined || !(EXPORT_FORMATS as ReadonlyArray<string>).includes(format))
      return yield* Effect.fail(
        new UsageError(`--format must be one of ${EXPORT_FORMATS.join(", ")}, got "${format ?? ""}"`),
      )
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const state = yield* loadScoreboard(runtime)
        const run = ownValue(state.runs, runId)
        if (run === undefined)
          return yield* Effect.fail(
            new UsageError(
              `no evaluation run "${runId}" in the log at ${runtime.location} (rollout scores lists them)`,
            ),
          )
        const dir = path.resolve(
          options.out ?? path.join(config.log.dataDir, "runs", runId, `export-${format}`),
        )
        const summary = yield* exportRun(runtime.log, state, run, format as ExportFormat, dir, {
          ...(options.correctOnly === true ? { correctOnly: true } : {}),
        })
        if (options.json === true)
          return printJson({
            runId,
            format,
            dir,
            episodes: summary.episodes,
            skipped: summary.skipped,
            files: summary.files.length,
          })
        process.stdout.write(
          `exported ${summary.episodes} trajectories of ${runId} as ${format} to ${dir}` +
            (summary.skipped > 0
              ? ` (${summary.skipped} samples left out: unfinished${options.correctOnly === true ? " or not correct" : ""})`
              : "") +
            "\n",
        )
      }),
    )
  })
