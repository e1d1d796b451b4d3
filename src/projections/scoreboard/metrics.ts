/**
 * Evaluation metrics over sample records (one per task × run), pure:
 *   - Avg@k = Σ correct runs / (N·k) over every task and every run 0..k−1. A run that is missing,
 *     crashed, timed out or whose judge failed counts as wrong, and is listed (`notScored`); no
 *     task ever leaves the denominator.
 *   - std over runs: the sample standard deviation (n − 1) of the k per-run accuracies.
 *   - a 95% interval clustered by task: the task-level means m_t = c_t / k, their standard error
 *     s / √N, and Student's t with N − 1 degrees of freedom (not the normal approximation, which is
 *     too narrow for a few dozen tasks); clamped to [0, 1].
 *   - unbiased pass@k (exact, `passAtK.ts`) and naive pass@k (any of the first k runs correct) for
 *     k = 1, 2, 4, … up to k, and k itself;
 *   - breakdowns by level, by category and by both; status counts (judge failures among them);
 *     turns, tool calls, tokens and cost per sample, from the records' own fields.
 */
import { meanPassAtK } from "./passAtK.ts"
import { studentTQuantile } from "./studentT.ts"

export type SampleStatus = "scored" | "missing" | "crashed" | "timeout" | "judge_failed"

export interface SampleRecord {
  readonly taskId: string
  /** The run, 0..k−1. */
  readonly sample: number
  readonly status: SampleStatus
  /** Meaningful for `scored`; anything but `true` counts as wrong. */
  readonly correct?: boolean
  readonly level?: string
  readonly category?: string
  readonly turns?: number
  readonly toolCalls?: number
  readonly promptTokens?: number
  readonly completionTokens?: number
  readonly costUsd?: number
}

export interface TaskInfo {
  readonly taskId: string
  readonly level?: string
  readonly category?: string
}

export interface MetricsInput {
  /** Runs per task. */
  readonly k: number
  /** Every task of the evaluation; default: the tasks that appear in the records. */
  readonly tasks?: ReadonlyArray<TaskInfo>
  readonly samples: ReadonlyArray<SampleRecord>
}

export interface GroupMetrics {
  readonly tasks: number
  readonly correct: number
  readonly avgAtK: number
  readonly passAtK: { readonly [k: string]: number }
}

export interface UsageStat {
  /** Records that carried the field. */
  readonly samples: number
  readonly total: number
  readonly mean: number
}

export interface Interval {
  readonly low: number
  readonly high: number
  readonly standardError: number
  readonly method: string
}

export interface Metrics extends GroupMetrics {
  readonly k: number
  /** N·k: every run of every task. */
  readonly runs: number
  readonly naivePassAtK: { readonly [k: string]: number }
  /** Accuracy of run j over all tasks, j = 0..k−1. */
  readonly perRunAccuracy: ReadonlyArray<number>
  /** Absent for k < 2. */
  readonly stdOverRuns?: number
  /** Absent for fewer than 2 tasks. */
  readonly interval95?: Interval
  readonly statusCounts: { readonly [S in SampleStatus]: number }
  /** Runs that count as wrong without a verdict: missing, crashed, timed out, judge failed. */
  readonly notScored: ReadonlyArray<{
    readonly taskId: string
    readonly sample: number
    readonly status: SampleStatus
  }>
  /** Records not used, and why (unknown task, run out of range, replaced by a later record). */
  readonly ignored: ReadonlyArray<{
    readonly taskId: string
    readonly sample: number
    readonly reason: string
  }>
  readonly byLevel: { readonly [level: string]: GroupMetrics }
  readonly byCategory: { readonly [category: string]: GroupMetrics }
  /** Keyed `level × category`. */
  readonly byLevelAndCategory: { readonly [key: string]: GroupMetrics }
  readonly usage: {
    readonly turns?: UsageStat
    readonly toolCalls?: UsageStat
    readonly promptTokens?: UsageStat
    readonly completionTokens?: UsageStat
    readonly costUsd?: UsageStat
  }
}

/** The k values pass@k is reported for: 1, 2, 4, … ≤ k, and k. */
export const passAtKValues = (k: number): ReadonlyArray<number> => {
  const values: Array<number> = []
  for (let v = 1; v <= k; v *= 2) values.push(v)
  if (values[values.length - 1] !== k) values.push(k)
  return values
}

const mean = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0) / xs.length

/** Sample standard deviation (n − 1); undefined for fewer than 2 values. */
export const sampleStd = (xs: ReadonlyArray<number>): number | undefined => {
  if (xs.length < 2) return undefined
  const m = mean(xs)
  return Math.sqrt(xs.reduce((acc, x) => acc + (x - m) ** 2, 0) / (xs.length - 1))
}

/** The task-clustered 95% interval of a mean of task-level means (Student's t, df = N − 1). */
export const clusteredInterval95 = (taskMeans: ReadonlyArray<number>): Interval | undefined => {
  const sd = sampleStd(taskMeans)
  if (sd === undefined) return undefined
  const m = mean(taskMeans)
  const standardError = sd / Math.sqrt(taskMeans.length)
  const half = studentTQuantile(0.975, taskMeans.length - 1) * standardError
  return {
    low: Math.max(0, m - half),
    high: Math.min(1, m + half),
    standardError,
    method: `Student t (df ${taskMeans.length - 1}) over task-level means, clustered by task`,
  }
}

interface TaskRuns {
  readonly info: TaskInfo
  /** correct per run 0..k−1 (missing runs false). */
  readonly correct: Array<boolean>
}

const group = (tasks: ReadonlyArray<TaskRuns>, k: number): GroupMetrics => {
  const correct = tasks.reduce((acc, t) => acc + t.correct.filter(Boolean).length, 0)
  const passAtK: Record<string, number> = {}
  for (const v of passAtKValues(k))
    passAtK[String(v)] = meanPassAtK(
      tasks.map((t) => ({ n: k, c: t.correct.filter(Boolean).length })),
      v,
    )
  return {
    tasks: tasks.length,
    correct,
    avgAtK: tasks.length === 0 ? Number.NaN : correct / (tasks.length * k),
    passAtK,
  }
}

const groupBy = (
  tasks: ReadonlyArray<TaskRuns>,
  k: number,
  keyOf: (info: TaskInfo) => string | undefined,
): { [key: string]: GroupMetrics } => {
  if (tasks.every((t) => keyOf(t.info) === undefined)) return {}
  const groups = new Map<string, Array<TaskRuns>>()
  for (const t of tasks) {
    const key = keyOf(t.info) ?? "(none)"
    const members = groups.get(key)
    if (members === undefined) groups.set(key, [t])
    else members.push(t)
  }
  const out: Record<string, GroupMetrics> = {}
  for (const key of [...groups.keys()].sort()) out[key] = group(groups.get(key)!, k)
  return out
}

const usageStat = (
  records: ReadonlyArray<SampleRecord>,
  field: keyof SampleRecord,
): UsageStat | undefined => {
  const values = records
    .map((r) => r[field])
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v))
  if (values.length === 0) return undefined
  const total = values.reduce((a, b) => a + b, 0)
  return { samples: values.length, total, mean: total / values.length }
}

export const computeMetrics = (input: MetricsInput): Metrics => {
  const { k } = input
  if (!Number.isInteger(k) || k < 1)
    throw new RangeError(`computeMetrics: k must be a positive integer, got ${k}`)
  const ignored: Array<{ taskId: string; sample: number; reason: string }> = []

  // The tasks: as given, else as they appear; level/category from the records when not given.
  const infos = new Map<string, TaskInfo>()
  const declared: ReadonlyArray<TaskInfo> = input.tasks ?? input.samples.map((r) => ({ taskId: r.taskId }))
  for (const t of declared) if (!infos.has(t.taskId)) infos.set(t.taskId, t)
  for (const r of input.samples) {
    const info = infos.get(r.taskId)
    if (info === undefined) continue
    if (info.level === undefined && r.level !== undefined) infos.set(r.taskId, { ...info, level: r.level })
    const again = infos.get(r.taskId)!
    if (again.category === undefined && r.category !== undefined)
      infos.set(r.taskId, { ...again, category: r.category })
  }

  // One record per (task, run): the last one given.
  const chosen = new Map<string, SampleRecord>()
  for (const r of input.samples) {
    if (!infos.has(r.taskId)) {
      ignored.push({ taskId: r.taskId, sample: r.sample, reason: "not a task of this evaluation" })
      continue
    }
    if (!Number.isInteger(r.sample) || r.sample < 0 || r.sample >= k) {
      ignored.push({ taskId: r.taskId, sample: r.sample, reason: `run index outside 0..${k - 1}` })
      continue
    }
    const key = JSON.stringify([r.taskId, r.sample])
    if (chosen.has(key))
      ignored.push({
        taskId: r.taskId,
        sample: r.sample,
        reason: "replaced by a later record of the same run",
      })
    chosen.set(key, r)
  }

  const statusCounts: Record<SampleStatus, number> = {
    scored: 0,
    missing: 0,
    crashed: 0,
    timeout: 0,
    judge_failed: 0,
  }
  const notScored: Array<{ taskId: string; sample: number; status: SampleStatus }> = []
  const tasks: Array<TaskRuns> = []
  for (const info of infos.values()) {
    const correct: Array<boolean> = []
    for (let j = 0; j < k; j++) {
      const record = chosen.get(JSON.stringify([info.taskId, j]))
      const status: SampleStatus = record?.status ?? "missing"
      statusCounts[status]++
      if (status !== "scored") notScored.push({ taskId: info.taskId, sample: j, status })
      correct.push(status === "scored" && record?.correct === true)
    }
    tasks.push({ info, correct })
  }

  const overall = group(tasks, k)
  const perRunAccuracy = Array.from({ length: k }, (_, j) =>
    tasks.length === 0 ? Number.NaN : tasks.filter((t) => t.correct[j]).length / tasks.length,
  )
  const naivePassAtK: Record<string, number> = {}
  for (const v of passAtKValues(k))
    naivePassAtK[String(v)] =
      tasks.length === 0
        ? Number.NaN
        : tasks.filter((t) => t.correct.slice(0, v).some(Boolean)).length / tasks.length
  const std = sampleStd(perRunAccuracy)
  const interval = clusteredInterval95(tasks.map((t) => t.correct.filter(Boolean).length / k))
  const used = [...chosen.values()]
  const usage: Record<string, UsageStat> = {}
  for (const field of ["turns", "toolCalls", "promptTokens", "completionTokens", "costUsd"] as const) {
    const stat = usageStat(used, field)
    if (stat !== undefined) usage[field] = stat
  }
  return {
    k,
    runs: tasks.length * k,
    ...overall,
    naivePassAtK,
    perRunAccuracy,
    ...(std === undefined ? {} : { stdOverRuns: std }),
    ...(interval === undefined ? {} : { interval95: interval }),
    statusCounts,
    notScored,
    ignored,
    byLevel: groupBy(tasks, k, (t) => t.level),
    byCategory: groupBy(tasks, k, (t) => t.category),
    byLevelAndCategory: groupBy(tasks, k, (t) =>
      t.level === undefined && t.category === undefined
        ? undefined
        : `${t.level ?? "(none)"} × ${t.category ?? "(none)"}`,
    ),
    usage,
  }
}
