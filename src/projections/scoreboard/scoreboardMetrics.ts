/**
 * What the scoreboard's rows mean: each task × sample of a run becomes a `SampleRecord` with a
 * status (`sampleStatus.ts`: a run that never started, never finished, crashed or timed out
 * counts as wrong and is listed), and `computeMetrics` turns a run's records into Avg@k, std, the
 * 95% interval, pass@k and the breakdowns; `infrastructureFailures` counts the samples the model
 * server or the tools ended, by reason; `leaderboard` sums every run up in one line. Pure; the
 * live report of `rollout eval` and `rollout scores` both come from here, so they cannot disagree.
 */

import type { EpisodeOutcome } from "../../events/schema.ts"
import { computeMetrics, type Metrics, type SampleRecord } from "./metrics.ts"
import { sampleStatus } from "./sampleStatus.ts"
import {
  infrastructureEndings,
  openEpisodes,
  type RunBoard,
  type RunBoardStatus,
  type SampleRow,
  type ScoreboardState,
} from "./scoreboard.ts"

/** The run's k: as started, else the highest sample seen + 1. */
export const runK = (run: RunBoard): number => {
  if (run.k !== null && run.k > 0) return run.k
  let k = 1
  for (const slots of run.rows) k = Math.max(k, slots.length)
  return k
}

/** Samples started and not finished, by task and sample (`open` episodes of the run). */
const openSamples = (state: ScoreboardState, runId: string): ReadonlySet<string> => {
  const out = new Set<string>()
  for (const open of openEpisodes(state))
    if (open.runId === runId) out.add(JSON.stringify([open.taskId, open.sample]))
  return out
}

export interface BoardSample extends SampleRecord {
  readonly episodeId: string | null
  readonly outcome: EpisodeOutcome | null
  readonly verdict: SampleRow["verdict"]
  /** Why the model server or the tools ended the episode (see `SampleRow.failure`), else null. */
  readonly failure: string | null
  /** True while the episode has started and not finished. */
  readonly running: boolean
}

/**
 * Every task × sample of the run (tasks in the run's order, then any task only the samples name),
 * with its status, correctness, level, category and usage.
 */
export const boardSamples = (state: ScoreboardState, run: RunBoard): ReadonlyArray<BoardSample> => {
  const k = runK(run)
  const running = openSamples(state, run.runId)
  const out: BoardSample[] = []
  // Listed tasks in their order; the others by id, so the order does not depend on the events'.
  const order = run.tasks.map((_, i) => i)
  const unlisted = order
    .slice(run.listed)
    .sort((a, b) => (run.tasks[a]!.taskId < run.tasks[b]!.taskId ? -1 : 1))
  for (const index of [...order.slice(0, run.listed), ...unlisted]) {
    const task = run.tasks[index]!
    const slots = run.rows[index] ?? []
    for (let sample = 0; sample < Math.max(k, slots.length); sample++) {
      const row = slots[sample] ?? null
      const isRunning = running.has(JSON.stringify([task.taskId, sample]))
      const status = sampleStatus(row, isRunning, run.status)
      const finished = row !== null && row.outcome !== null
      out.push({
        taskId: task.taskId,
        sample,
        status,
        ...(status === "scored" ? { correct: row?.verdict === "correct" } : {}),
        ...(task.level === null ? {} : { level: task.level }),
        ...(task.category === null ? {} : { category: task.category }),
        ...(finished
          ? {
              ...(row.turns === null ? {} : { turns: row.turns }),
              toolCalls: row.toolCalls,
              promptTokens: row.promptTokens,
              completionTokens: row.completionTokens,
              ...(run.pricing == null
                ? {}
                : {
                    costUsd:
                      (row.promptTokens * run.pricing.promptPerMillion +
                        row.completionTokens * run.pricing.completionPerMillion) /
                      1e6,
                  }),
            }
          : {}),
        episodeId: row?.episodeId ?? null,
        outcome: row?.outcome ?? null,
        verdict: row?.verdict ?? null,
        failure: row?.failure ?? null,
        running: isRunning,
      })
    }
  }
  return out
}

/** The run's metrics: every listed task × k, missing and crashed samples counted as wrong. */
export const boardMetrics = (state: ScoreboardState, run: RunBoard): Metrics => {
  const samples = boardSamples(state, run).map(
    ({ episodeId: _e, outcome: _o, verdict: _v, failure: _f, running: _r, ...record }) => record,
  )
  return computeMetrics({
    k: runK(run),
    ...(run.listed === 0
      ? {}
      : {
          tasks: run.tasks.slice(0, run.listed).map((t) => ({
            taskId: t.taskId,
            ...(t.level === null ? {} : { level: t.level }),
            ...(t.category === null ? {} : { category: t.category }),
          })),
        }),
    samples,
  })
}

/** Samples the model server or the tools ended, and how many for each reason (most first). */
export interface InfrastructureFailures {
  readonly samples: number
  readonly reasons: Readonly<Record<string, number>>
}

export const infrastructureFailures = (samples: ReadonlyArray<BoardSample>): InfrastructureFailures => {
  const counts = new Map<string, number>()
  let total = 0
  for (const s of samples) {
    if (s.outcome === null || !infrastructureEndings.has(s.outcome)) continue
    total++
    // Episodes recorded before reasons were kept say only their ending.
    const reason = s.failure ?? `${s.outcome} (no reason recorded)`
    counts.set(reason, (counts.get(reason) ?? 0) + 1)
  }
  const reasons = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  return { samples: total, reasons: Object.fromEntries(reasons) }
}

/** One line of the leaderboard. */
export interface LeaderboardRow {
  readonly runId: string
  readonly benchmark: string | null
  readonly model: string
  readonly scorer: string | null
  readonly status: RunBoardStatus
  readonly k: number
  readonly tasks: number
  /** Samples finished and scored (judge failures included). */
  readonly done: number
  readonly total: number
  readonly avgAtK: number | null
  readonly stdOverRuns: number | null
  readonly interval95: { readonly low: number; readonly high: number } | null
  readonly passAt1: number | null
  readonly passAtK: number | null
  readonly judgeFailed: number
  /** Samples the model server or the tools ended (counted as wrong). */
  readonly infrastructureFailures: number
  readonly notScored: number
  readonly startedAt: string
  readonly finishedAt: string | null
}

const finite = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x)

/** Every evaluation run, best Avg@k first within a benchmark; benchmarks by name. */
export const leaderboard = (state: ScoreboardState): ReadonlyArray<LeaderboardRow> => {
  const rows: LeaderboardRow[] = []
  for (const run of Object.values(state.runs)) {
    const m = boardMetrics(state, run)
    const infrastructure = infrastructureFailures(boardSamples(state, run))
    rows.push({
      runId: run.runId,
      benchmark: run.benchmark,
      model: run.model,
      scorer: run.scorer,
      status: run.status,
      k: m.k,
      tasks: m.tasks,
      done: m.statusCounts.scored + m.statusCounts.judge_failed,
      total: m.runs,
      avgAtK: finite(m.avgAtK),
      stdOverRuns: finite(m.stdOverRuns),
      interval95: m.interval95 === undefined ? null : { low: m.interval95.low, high: m.interval95.high },
      passAt1: finite(m.passAtK["1"]),
      passAtK: finite(m.passAtK[String(m.k)]),
      judgeFailed: m.statusCounts.judge_failed,
      infrastructureFailures: infrastructure.samples,
      notScored: m.notScored.length,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
    })
  }
  return rows.sort(
    (a, b) =>
      (a.benchmark ?? "").localeCompare(b.benchmark ?? "") ||
      (b.avgAtK ?? -1) - (a.avgAtK ?? -1) ||
      a.runId.localeCompare(b.runId),
  )
}
