/**
 * `rollout scores`: the leaderboard of every evaluation run, rebuilt from the log by the
 * `scoreboard` projection (from its checkpoint when there is one): Avg@k ± std, the 95% interval,
 * pass@1 and pass@k, progress and judge failures per run. `--run <id>` prints one run's full report
 * instead — the same report `rollout eval` printed when the run ended. Entries the scoreboard could
 * not decode are counted with their positions (stderr; `undecodable` in the JSON), and a run whose
 * last event is in a torn last line of the log is named, since its status is then behind. The
 * queries and renderings are the scoreboard's (`projections/scoreboard/`); this parses and prints.
 */
import * as Effect from "effect/Effect"
import { runReport, type Scoreboard, scoreboardOf } from "../../projections/scoreboard/queries.ts"
import {
  leaderboardJson,
  leaderboardText,
  reportText,
  runReportJson,
} from "../../projections/scoreboard/render.ts"
import { leaderboard } from "../../projections/scoreboard/scoreboardMetrics.ts"
import { terminalText } from "../../projections/terminalText.ts"
import { beforeCheckpoint, undecodableLine } from "../terminal/damageReport.ts"
import { configFrom, type GlobalOptions, printJson, UsageError, withRuntime } from "../terminal/invocation.ts"

export interface ScoresOptions {
  readonly run?: string
  readonly json?: boolean
}

/** The one line on stderr about what the scoreboard skipped, and about a run whose end is torn. */
const reportDamage = (board: Scoreboard, location: string) => {
  const line = undecodableLine("scores", board.undecodable, {
    first: board.first,
    unlisted: beforeCheckpoint("scoreboard"),
  })
  if (line !== undefined) process.stderr.write(`rollout: ${line}\n`)
  if (board.tornRun !== undefined)
    process.stderr.write(
      `rollout: scores: run ${terminalText(board.tornRun)} may be further on than shown: its latest event is in the incomplete last line of the log at ${terminalText(location)}\n`,
    )
}

export const scoresCommand = (global: GlobalOptions, options: ScoresOptions) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const board = yield* scoreboardOf({
          log: runtime.log,
          checkpoints: runtime.checkpoints,
          checkpointEvery: runtime.config.projections.checkpointEvery,
        })
        reportDamage(board, runtime.location)
        if (options.run !== undefined) {
          const report = runReport(board.state, options.run)
          if (report === undefined)
            return yield* Effect.fail(
              new UsageError(`no evaluation run "${options.run}" in the log at ${runtime.location}`),
            )
          if (options.json === true) return printJson(runReportJson(report, board))
          return process.stdout.write(reportText(report))
        }
        const rows = leaderboard(board.state)
        if (options.json === true) return printJson(leaderboardJson(rows, board))
        if (rows.length === 0) {
          process.stdout.write(
            `no evaluation runs in the log at ${runtime.location} (start one with rollout eval)\n`,
          )
          return
        }
        process.stdout.write(`${leaderboardText(rows)}\n`)
      }),
    )
  })
