/**
 * What an evaluation run is, as its `RunStarted` records it: model, benchmark, k, scorer, judge,
 * episode policy, and the tasks with level and category — never a question or an answer — and
 * whether a resume's options fit the run that was started. Pure: the evaluator's decider decides
 * the start from these.
 */
import type { EpisodePolicy, EventOf } from "../../events/schema.ts"
import type { Json } from "../../projections/projection.ts"
import type { Task } from "./datasets/task.ts"

export interface RunDescription {
  readonly runId: string
  readonly model: string
  readonly benchmark: string
  readonly k: number
  /** Only ids, levels and categories are recorded (ground truths stay with the caller). */
  readonly tasks: ReadonlyArray<Pick<Task, "taskId" | "level" | "category">>
  readonly scorer: string
  readonly judgeModel: string | undefined
  readonly policy: EpisodePolicy
  readonly concurrency: number
  readonly limit: number | undefined
  readonly extra: { readonly [key: string]: Json } | undefined
}

export const runStartedEvent = (d: RunDescription): EventOf<"RunStarted"> => ({
  type: "RunStarted",
  runId: d.runId,
  kind: "eval",
  model: d.model,
  benchmark: d.benchmark,
  k: d.k,
  taskCount: d.tasks.length,
  config: {
    ...d.extra,
    scorer: d.scorer,
    judgeModel: d.judgeModel ?? null,
    concurrency: d.concurrency,
    limit: d.limit ?? null,
    policy: { ...d.policy },
    tasks: d.tasks.map((t) => ({ taskId: t.taskId, level: t.level ?? null, category: t.category ?? null })),
  },
})

/** JSON with object keys sorted, to compare recorded and current settings. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )

/** Why a resume with `d` would not continue the run `recorded` started, or undefined when it would. */
export const resumeMismatch = (recorded: EventOf<"RunStarted">, d: RunDescription): string | undefined => {
  const config = (typeof recorded.config === "object" && recorded.config !== null ? recorded.config : {}) as {
    readonly tasks?: ReadonlyArray<{ readonly taskId?: unknown }>
    readonly scorer?: unknown
    readonly judgeModel?: unknown
    readonly policy?: unknown
  }
  if (recorded.kind !== "eval") return `the log holds a ${recorded.kind} run with this id`
  if (recorded.model !== d.model)
    return `it was started with model ${recorded.model}, not ${d.model}; use another run id`
  if (recorded.k !== d.k) return `it was started with k = ${recorded.k ?? "?"}, not ${d.k}`
  if ((recorded.benchmark ?? "") !== d.benchmark)
    return `it was started on ${recorded.benchmark ?? "?"}, not ${d.benchmark}`
  if (config.scorer !== d.scorer)
    return `it was started with the ${String(config.scorer)} scorer, not ${d.scorer}`
  if ((config.judgeModel ?? null) !== (d.judgeModel ?? null))
    return `it was started with judge ${String(config.judgeModel ?? "none")}, not ${d.judgeModel ?? "none"}`
  if (config.policy !== undefined && canonical(config.policy) !== canonical(d.policy))
    return "it was started with another episode policy (e.g. --max-turns)"
  const ids = (config.tasks ?? []).map((t) => String(t.taskId))
  if (ids.length !== d.tasks.length || ids.some((id, i) => id !== d.tasks[i]!.taskId))
    return (
      `it was started with ${ids.length} tasks and these options give ${d.tasks.length} ` +
      "(or other ones): use the same data file, --limit and id list"
    )
  return undefined
}
