/**
 * The scoreboard rendered, as strings and JSON shapes: the leaderboard table, one run's report as
 * text (what `rollout eval` and `rollout scores --run` print), as `report.md` and as
 * `samples.csv` (one row per task × sample: ids, statuses and numbers, never a question, ground
 * truth or answer), and the JSON objects `rollout scores --json` prints. Pure: the CLI prints
 * these, the evaluator writes the files, a viewer can show them.
 */
import { table, terminalText } from "../terminalText.ts"
import type { GroupMetrics, Metrics } from "./metrics.ts"
import type { EvalReport, Scoreboard } from "./queries.ts"
import type { BoardSample, LeaderboardRow } from "./scoreboardMetrics.ts"

/** A fraction as a percentage with two decimals ("–" when undefined). */
export const percent = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(2)}%`

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

/** The leaderboard as a text table, one line per run (no trailing newline). */
export const leaderboardText = (rows: ReadonlyArray<LeaderboardRow>): string =>
  table(
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
      r.infrastructureFailures === 0 ? r.status : `${r.status} (${r.infrastructureFailures} infra failures)`,
    ]),
  )

/** What the read met: entries it could not decode, and the run a torn last line may hold back. */
const readJson = (read: Pick<Scoreboard, "undecodable" | "tornRun" | "damage">) => ({
  undecodable: read.undecodable,
  ...(read.tornRun === undefined ? {} : { tornRun: read.tornRun, tornTail: read.damage?.tornTail }),
})

/** `rollout scores --json`: every run's leaderboard line and what the read met. */
export const leaderboardJson = (
  rows: ReadonlyArray<LeaderboardRow>,
  read: Pick<Scoreboard, "undecodable" | "tornRun" | "damage">,
) => ({ runs: rows, ...readJson(read) })

/** `rollout scores --run <id> --json`: the run's report without its samples, and what the read met. */
export const runReportJson = (
  report: EvalReport,
  read: Pick<Scoreboard, "undecodable" | "tornRun" | "damage">,
) => {
  const { samples: _samples, ...summary } = report
  return { ...summary, ...readJson(read) }
}

/** `report.md`: Avg@k ± std, the 95% interval, pass@k, breakdowns, failures by reason, usage. */
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

/** `samples.csv`: one row per task × sample. */
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
