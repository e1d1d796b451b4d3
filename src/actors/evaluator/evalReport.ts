/**
 * An evaluation run's report files, from the scoreboard (so a report written live and one written
 * again from the log are the same): `report.json` (the metrics and every sample's status),
 * `report.md` (Avg@k ± std, the 95% interval, pass@k, breakdowns, failures — infrastructure
 * failures counted by reason — and usage) and
 * `samples.csv` (one row per task × sample). No question, ground truth or answer is written: the
 * files hold ids, statuses and numbers only.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { GroupMetrics, Metrics } from "../../projections/scoreboard/metrics.ts"
import type { RunBoard, ScoreboardState } from "../../projections/scoreboard/scoreboard.ts"
import {
  type BoardSample,
  boardSamples,
  type InfrastructureFailures,
  infrastructureFailures,
} from "../../projections/scoreboard/scoreboardMetrics.ts"

export interface EvalReport {
  readonly runId: string
  readonly benchmark: string | null
  readonly model: string
  readonly scorer: string | null
  readonly judgeModel: string | null
  readonly k: number
  readonly status: RunBoard["status"]
  readonly reason: string | null
  readonly startedAt: string
  readonly finishedAt: string | null
  readonly metrics: Metrics
  /** Samples the model server or the tools ended (counted as wrong), by reason. */
  readonly infrastructure: InfrastructureFailures
  /** Bad rows of the data file the run left out (`--skip-bad-rows`), or null. */
  readonly skippedBadRows: { readonly count: number; readonly rows: ReadonlyArray<string> } | null
  readonly samples: ReadonlyArray<BoardSample>
}

export const evalReport = (state: ScoreboardState, board: RunBoard, metrics: Metrics): EvalReport => {
  const samples = boardSamples(state, board)
  return {
    runId: board.runId,
    benchmark: board.benchmark,
    model: board.model,
    scorer: board.scorer,
    judgeModel: board.judgeModel,
    k: metrics.k,
    status: board.status,
    reason: board.reason,
    startedAt: board.startedAt,
    finishedAt: board.finishedAt,
    metrics,
    infrastructure: infrastructureFailures(samples),
    skippedBadRows: board.skippedBadRows ?? null,
    samples,
  }
}

/** `3 of 20 samples: model: connection refused (ECONNREFUSED) at http://… ×3`, or undefined. */
export const infrastructureLine = (r: Pick<EvalReport, "infrastructure" | "metrics">): string | undefined => {
  const { samples, reasons } = r.infrastructure
  if (samples === 0) return undefined
  const counted = Object.entries(reasons).map(([reason, n]) => `${reason} ×${n}`)
  return `${samples} of ${r.metrics.runs} samples: ${counted.join("; ")}`
}

/** `2 bad rows of the data file left out (--skip-bad-rows): bench.jsonl:2, bench.jsonl:3`, or undefined. */
export const skippedRowsLine = (r: Pick<EvalReport, "skippedBadRows">): string | undefined => {
  const skipped = r.skippedBadRows
  if (skipped === null || skipped.count === 0) return undefined
  const shown = skipped.rows.slice(0, 10).join(", ")
  const more = skipped.count > 10 ? `, … and ${skipped.count - 10} more` : ""
  return `${skipped.count} bad row(s) of the data file left out (--skip-bad-rows): ${shown}${more}`
}

/** A fraction as a percentage with two decimals ("–" when undefined). */
export const percent = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(2)}%`

const mdTable = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => " --- ").join("|")}|`,
    ...rows.map((r) => `| ${r.map((c) => String(c).replaceAll("|", "\\|")).join(" | ")} |`),
  ].join("\n")

/** The pass@ columns of a breakdown: pass@1 and pass@k, one column when k = 1 (they are the same). */
export const passAtColumns = (k: number): ReadonlyArray<string> => (k === 1 ? ["1"] : ["1", String(k)])

/** Rows of a breakdown (by level, by category …): tasks, correct runs, Avg@k, then `passAtColumns(k)`. */
export const breakdownRows = (
  groups: { readonly [key: string]: GroupMetrics },
  k: number,
): ReadonlyArray<ReadonlyArray<string | number>> =>
  Object.entries(groups).map(([key, g]) => [
    key,
    g.tasks,
    g.correct,
    percent(g.avgAtK),
    ...passAtColumns(k).map((n) => percent(g.passAtK[n])),
  ])

/** Avg@k ± std over runs, e.g. `62.50% ± 4.33`. */
export const headline = (m: Metrics): string =>
  `${percent(m.avgAtK)}${m.stdOverRuns === undefined ? "" : ` ± ${(100 * m.stdOverRuns).toFixed(2)}`}`

export const reportMarkdown = (r: EvalReport): string => {
  const m = r.metrics
  const k = m.k
  const breakdownHeader = ["tasks", "correct runs", `Avg@${k}`, ...passAtColumns(k).map((n) => `pass@${n}`)]
  const usage = Object.entries(m.usage)
  const parts = [
    `# Evaluation ${r.runId}`,
    mdTable(
      ["benchmark", "model", "scorer", "judge", "k", "tasks", "status"],
      [[r.benchmark ?? "–", r.model, r.scorer ?? "–", r.judgeModel ?? "–", k, m.tasks, r.status]],
    ),
    ...(r.reason === null ? [] : [`Run ended: ${r.reason}`]),
    ...(skippedRowsLine(r) === undefined ? [] : [`Data: ${skippedRowsLine(r)}.`]),
    `## Avg@${k}`,
    mdTable(
      ["metric", "value"],
      [
        [`Avg@${k} ± std over runs`, headline(m)],
        [
          "95% interval",
          m.interval95 === undefined
            ? "–"
            : `[${percent(m.interval95.low)}, ${percent(m.interval95.high)}] (${m.interval95.method})`,
        ],
        ["correct runs", `${m.correct} of ${m.runs}`],
        ["per run", m.perRunAccuracy.map((x) => percent(x)).join(", ")],
      ],
    ),
    "## pass@k",
    mdTable(
      ["k", "unbiased pass@k", "naive pass@k (any of the first k)"],
      Object.keys(m.passAtK).map((v) => [v, percent(m.passAtK[v]), percent(m.naivePassAtK[v])]),
    ),
    ...(Object.keys(m.byLevel).length === 0
      ? []
      : ["## By level", mdTable(["level", ...breakdownHeader], breakdownRows(m.byLevel, k))]),
    ...(Object.keys(m.byCategory).length === 0
      ? []
      : ["## By category", mdTable(["category", ...breakdownHeader], breakdownRows(m.byCategory, k))]),
    ...(r.infrastructure.samples === 0
      ? []
      : [
          "## Infrastructure failures",
          `${r.infrastructure.samples} of ${m.runs} samples ended on the model server or the tools, not on the agent (counted as wrong):`,
          mdTable(["reason", "samples"], Object.entries(r.infrastructure.reasons)),
        ]),
    "## Samples by status",
    mdTable(Object.keys(m.statusCounts), [Object.values(m.statusCounts)]),
    ...(m.notScored.length === 0
      ? []
      : [
          "Counted as wrong without a verdict:",
          m.notScored.map((n) => `- ${n.taskId} #${n.sample}: ${n.status}`).join("\n"),
        ]),
    ...(usage.length === 0
      ? []
      : [
          "## Usage per sample",
          mdTable(
            ["", "mean", "total", "samples"],
            usage.map(([name, u]) => [name, u.mean.toFixed(2), u.total, u.samples]),
          ),
        ]),
  ]
  return `${parts.join("\n\n")}\n`
}

const csvCell = (value: string | number | boolean | null | undefined): string => {
  if (value === null || value === undefined) return ""
  const text = String(value)
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

export const samplesCsv = (samples: ReadonlyArray<BoardSample>): string => {
  const header = [
    "task_id",
    "sample",
    "episode_id",
    "status",
    "verdict",
    "correct",
    "outcome",
    "turns",
    "tool_calls",
    "prompt_tokens",
    "completion_tokens",
    "level",
    "category",
    "failure",
  ]
  const rows = samples.map((s) =>
    [
      s.taskId,
      s.sample,
      s.episodeId,
      s.status,
      s.verdict,
      s.status === "scored" ? s.correct === true : null,
      s.outcome,
      s.turns,
      s.toolCalls,
      s.promptTokens,
      s.completionTokens,
      s.level,
      s.category,
      s.failure,
    ]
      .map(csvCell)
      .join(","),
  )
  return `${[header.join(","), ...rows].join("\n")}\n`
}

export interface ReportFiles {
  readonly dir: string
  readonly markdown: string
  readonly json: string
  readonly csv: string
}

/** Writes `report.md`, `report.json` and `samples.csv` into `dir` (created if needed). */
export const writeReportFiles = (dir: string, report: EvalReport): Effect.Effect<ReportFiles, Error> =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(dir, { recursive: true })
      const files = {
        dir,
        markdown: path.join(dir, "report.md"),
        json: path.join(dir, "report.json"),
        csv: path.join(dir, "samples.csv"),
      }
      await fs.writeFile(files.markdown, reportMarkdown(report))
      await fs.writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`)
      await fs.writeFile(files.csv, samplesCsv(report.samples))
      return files
    },
    catch: (error) =>
      new Error(
        `cannot write the report under ${dir}: ${error instanceof Error ? error.message : String(error)}`,
      ),
  })
