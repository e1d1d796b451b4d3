/**
 * `rollout export <run> --format sft|agenttoleap`: an evaluation run's trajectories from the log,
 * as chat JSONL for supervised fine-tuning (`sft.jsonl`, one `{messages, metadata}` per sample) or
 * in the layout AgentCPM-Explore's AgentToLeaP report code reads (`<task>/traj_<i>/result.json` and
 * `dialog.json`); the shapes are in `exportTrajectories.ts`, `agentToLeaPLayout.ts` and the command's
 * help. Task ids that are not safe folder names are printed with the folder they got, since
 * AgentToLeaP takes the folder name as the task id. Default folder: `<data-dir>/runs/<run>/export-<format>`.
 * Entries it could not decode are counted with their positions (stderr; `undecodable` in the JSON),
 * and those of the exported episodes, which their trajectories are written without, apart.
 */
import * as path from "node:path"
import * as Effect from "effect/Effect"
import {
  EXPORT_FORMATS,
  type ExportFormat,
  exportRun,
  MANIFEST,
} from "../../actors/evaluator/exportTrajectories.ts"
import { ownValue } from "../../projections/projection.ts"
import { foldScoreboard } from "../../projections/scoreboard/queries.ts"
import { summarizeUndecodable } from "../../projections/undecodable.ts"
import { beforeCheckpoint, undecodableLine } from "../terminal/damageReport.ts"
import { configFrom, type GlobalOptions, printJson, UsageError, withRuntime } from "../terminal/invocation.ts"

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
        const board = yield* foldScoreboard({
          log: runtime.log,
          checkpoints: runtime.checkpoints,
          checkpointEvery: runtime.config.projections.checkpointEvery,
        })
        const { state } = board
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
        const mapped = summary.mappedTaskIds.map((m) => ({ taskId: m.taskId, folder: m.folder }))
        // What could not be decoded: everything the export read (the scoreboard, which found the
        // run's samples, and the episodes), and of that what the trajectories were written without.
        const undecodable = summarizeUndecodable(
          summary.undecodable,
          board.undecodable.count,
          board.undecodable.positions,
        )
        const inTrajectories = summarizeUndecodable(summary.undecodable)
        for (const line of [
          undecodableLine("export", undecodable, {
            first: board.first ?? summary.undecodable[0],
            unlisted: beforeCheckpoint("scoreboard"),
          }),
          undecodableLine("export: trajectories", inTrajectories, {
            done:
              inTrajectories.count === 1
                ? "is left out of its trajectory"
                : "are left out of their trajectories",
            first: summary.undecodable[0],
          }),
        ])
          if (line !== undefined) process.stderr.write(`rollout: ${line}\n`)
        if (options.json === true)
          return printJson({
            runId,
            format,
            dir,
            episodes: summary.episodes,
            skipped: summary.skipped,
            files: summary.files.length,
            ...(format === "agenttoleap" ? { mapped, renumbered: summary.renumberedTasks } : {}),
            undecodable,
            undecodableInTrajectories: inTrajectories,
          })
        const lines = [
          `exported ${summary.episodes} trajectories of ${runId} as ${format} to ${dir}` +
            (summary.skipped > 0
              ? ` (${summary.skipped} samples left out: unfinished${options.correctOnly === true ? " or not correct" : ""})`
              : ""),
        ]
        if (format === "agenttoleap")
          lines.push(
            `layout: <task id>/traj_<i>/result.json and dialog.json, i = 0, 1, … per task; ${MANIFEST} lists the folders`,
          )
        if (mapped.length > 0) {
          lines.push(
            `${mapped.length} task id${mapped.length === 1 ? " is not a safe folder name" : "s are not safe folder names"}, ` +
              "so the folder is not the id (AgentToLeaP reads the folder name as the task id): characters other than " +
              "A-Z a-z 0-9 . _ - are written as %XX (their UTF-8 bytes; decodeURIComponent gives the id back), and " +
              "an id still over 255 bytes is cut to 200 characters followed by ~ and 16 hex digits of its SHA-256:",
          )
          for (const m of mapped) lines.push(`  ${JSON.stringify(m.taskId)} → ${m.folder}`)
        }
        if (summary.renumberedTasks.length > 0)
          lines.push(
            `${summary.renumberedTasks.length} task${summary.renumberedTasks.length === 1 ? " has" : "s have"} gaps in the exported samples, ` +
              `so traj_<i> counts them from 0 and result.json's "sample" keeps the number: ${summary.renumberedTasks.join(", ")}`,
          )
        process.stdout.write(`${lines.join("\n")}\n`)
      }),
    )
  })
