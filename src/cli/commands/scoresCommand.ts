/**
 * `rollout scores`: the leaderboard of every evaluation run, rebuilt from the log by the
 * `scoreboard` projection (from its checkpoint when there is one): Avg@k ± std, the 95% interval,
 * pass@1 and pass@k, progress and judge failures per run. `--run <id>` prints one run's full report
 * instead — the same report `rollout eval` printed when the run ended. Entries the scoreboard could
 * not decode are counted with their positions (stderr; `undecodable` in the JSON), and a run whose
 * last event is in a torn last line of the log is named, since its status is then behind.
 */
import * as Effect from "effect/Effect"
import {
  breakdownRows,
  type EvalReport,
  evalReport,
  headline,
  infrastructureLine,
  passAtColumns,
  percent,
  skippedRowsLine,
} from "../../actors/evaluator/evalReport.ts"
import type { Runtime } from "../../app/wiring.ts"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { LogDamage } from "../../events/log/eventLog.ts"
import { parseEntitySubject } from "../../events/subjects.ts"
import { ownValue } from "../../projections/projection.ts"
import { runProjection } from "../../projections/runner/runner.ts"
import { type ScoreboardState, scoreboard } from "../../projections/scoreboard/scoreboard.ts"
import { boardMetrics, leaderboard } from "../../projections/scoreboard/scoreboardMetrics.ts"
import { table, terminalText } from "../../projections/terminalText.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../../projections/undecodable.ts"
import { beforeCheckpoint, undecodableLine } from "../terminal/damageReport.ts"
import { configFrom, type GlobalOptions, printJson, UsageError, withRuntime } from "../terminal/invocation.ts"

export interface ScoresOptions {
  readonly run?: string
  readonly json?: boolean
}

/** Folds the scoreboard up to the end of the log (resuming from its checkpoint). */
export const loadScoreboard = (runtime: Runtime): Effect.Effect<ScoreboardState, unknown> =>
  Effect.map(foldScoreboard(runtime), (folded) => folded.state)

/**
 * The scoreboard and what it could not decode: the count since position 0 and the positions met
 * this time (entries before its checkpoint were counted by an earlier run, their positions not kept).
 */
const foldScoreboard = (runtime: Runtime, known?: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const met: UndecodableEvent[] = []
    const result = yield* runProjection(runtime.log, runtime.checkpoints, scoreboard, {
      live: false,
      checkpointEvery: runtime.config.projections.checkpointEvery,
      onUndecodable: (u) => met.push(u),
    })
    return {
      state: result.state,
      undecodable: summarizeUndecodable(met, result.undecodable, known),
      first: met[0],
    }
  })

/** The one line on stderr about what the scoreboard skipped, and about a run whose end is torn. */
const reportDamage = (
  runtime: Runtime,
  undecodable: UndecodableSummary,
  first: UndecodableEvent | undefined,
  tornRun: string | undefined,
) => {
  const line = undecodableLine("scores", undecodable, { first, unlisted: beforeCheckpoint("scoreboard") })
  if (line !== undefined) process.stderr.write(`rollout: ${line}\n`)
  if (tornRun !== undefined)
    process.stderr.write(
      `rollout: scores: run ${terminalText(tornRun)} may be further on than shown: its latest event is in the incomplete last line of the log at ${terminalText(runtime.location)}\n`,
    )
}

/** The run whose event the log's incomplete last line holds, when its subject says so. */
const tornRunOf = (damage: LogDamage | undefined): string | undefined => {
  const subject = damage?.tornTail?.subject
  const entity = subject === undefined ? undefined : parseEntitySubject(subject)
  return entity?.kind === "run" ? entity.id : undefined
}

/** The report of one run as text: the headline table, pass@k, breakdowns, failures and usage. */
export const reportText = (r: EvalReport): string => {
  const m = r.metrics
  const k = m.k
  const lines = [
    `run ${r.runId}: ${r.benchmark ?? "?"} · model ${r.model} · scorer ${r.scorer ?? "?"}${
      r.judgeModel === null ? "" : ` (judge ${r.judgeModel})`
    } · k = ${k} · ${m.tasks} tasks · ${r.status}`,
    "",
    table(
      [`Avg@${k} ± std`, "95% interval", "correct runs", ...Object.keys(m.passAtK).map((v) => `pass@${v}`)],
      [
        [
          headline(m),
          m.interval95 === undefined ? "–" : `[${percent(m.interval95.low)}, ${percent(m.interval95.high)}]`,
          `${m.correct}/${m.runs}`,
          ...Object.values(m.passAtK).map((x) => percent(x)),
        ],
      ],
    ),
  ]
  const header = ["tasks", "correct", `Avg@${k}`, ...passAtColumns(k).map((n) => `pass@${n}`)]
  if (Object.keys(m.byLevel).length > 0)
    lines.push("", table(["level", ...header], breakdownRows(m.byLevel, k)))
  if (Object.keys(m.byCategory).length > 0)
    lines.push("", table(["category", ...header], breakdownRows(m.byCategory, k)))
  const counts = Object.entries(m.statusCounts)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s} ${n}`)
  lines.push("", `samples: ${counts.join(", ")}`)
  const infrastructure = infrastructureLine(r)
  if (infrastructure !== undefined) lines.push(`infrastructure failures: ${infrastructure}`)
  if (m.notScored.length > 0) {
    const shown = m.notScored.slice(0, 10).map((n) => `${n.taskId}#${n.sample} ${n.status}`)
    lines.push(
      `counted as wrong without a verdict: ${shown.join(", ")}${
        m.notScored.length > shown.length ? `, … and ${m.notScored.length - shown.length} more` : ""
      }`,
    )
  }
  const usage = Object.entries(m.usage).map(([name, u]) => `${name} ${u.mean.toFixed(1)}`)
  if (usage.length > 0) lines.push(`per sample (mean): ${usage.join(", ")}`)
  if (r.reason !== null) lines.push(`run ended: ${r.reason}`)
  const skipped = skippedRowsLine(r)
  if (skipped !== undefined) lines.push(`data: ${skipped}`)
  // Names, models and reasons come from the log.
  return `${terminalText(lines.join("\n"), { multiline: true })}\n`
}

export const scoresCommand = (global: GlobalOptions, options: ScoresOptions) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const { damage } = yield* runtime.log.stats
        // Broken lines reach every projection: the index's positions are the scoreboard's too.
        const { state, undecodable, first } = yield* foldScoreboard(runtime, damage?.undecodablePositions)
        const tornRun = tornRunOf(damage)
        reportDamage(runtime, undecodable, first, tornRun)
        const damaged = {
          undecodable,
          ...(tornRun === undefined ? {} : { tornRun, tornTail: damage?.tornTail }),
        }
        if (options.run !== undefined) {
          const board = ownValue(state.runs, options.run)
          if (board === undefined)
            return yield* Effect.fail(
              new UsageError(`no evaluation run "${options.run}" in the log at ${runtime.location}`),
            )
          const { samples: _samples, ...report } = evalReport(state, board, boardMetrics(state, board))
          if (options.json === true) return printJson({ ...report, ...damaged })
          return process.stdout.write(reportText({ ...report, samples: [] }))
        }
        const rows = leaderboard(state)
        if (options.json === true) return printJson({ runs: rows, ...damaged })
        if (rows.length === 0) {
          process.stdout.write(
            `no evaluation runs in the log at ${runtime.location} (start one with rollout eval)\n`,
          )
          return
        }
        process.stdout.write(
          `${table(
            [
              "run",
              "benchmark",
              "model",
              "k",
              "tasks",
              "done",
              "Avg@k",
              "± std",
              "95% interval",
              "pass@1",
              "pass@k",
              "judge failed",
              "status",
            ],
            rows.map((r) => [
              r.runId,
              r.benchmark ?? "-",
              r.model,
              r.k,
              r.tasks,
              `${r.done}/${r.total}`,
              percent(r.avgAtK ?? undefined),
              r.stdOverRuns === null ? "–" : (100 * r.stdOverRuns).toFixed(2),
              r.interval95 === null ? "–" : `[${percent(r.interval95.low)}, ${percent(r.interval95.high)}]`,
              percent(r.passAt1 ?? undefined),
              percent(r.passAtK ?? undefined),
              r.judgeFailed,
              r.infrastructureFailures === 0
                ? r.status
                : `${r.status} (${r.infrastructureFailures} infra failures)`,
            ]),
          )}\n`,
        )
      }),
    )
  })
