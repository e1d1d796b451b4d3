/**
 * An evaluation run's own stream, `ev.run.<runId>`: what `RunStarted` records about the run (model,
 * benchmark, k, scorer, judge, episode policy, and the tasks with level and category — never a
 * question or an answer), reading the stream back (the start, the samples already scored, how
 * often it finished), and whether a resume's options fit the run that was started.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import type { EpisodePolicy, EventOf } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { Json } from "../../projections/projection.ts"
import type { Task } from "./datasets/task.ts"

export const runSubject = (namespace: string, runId: string): string => entitySubject(namespace, "run", runId)

export const sampleKey = (taskId: string, sample: number): string => JSON.stringify([taskId, sample])

export interface RunStream {
  readonly started: EventOf<"RunStarted"> | undefined
  /** By `sampleKey`. */
  readonly scored: ReadonlyMap<string, EventOf<"SampleScored">>
  /** `RunFinished` events so far. */
  readonly finished: number
  /** The stream's last position (0 when empty). */
  readonly last: number
}

/** Reads the run's stream: its start, the samples already scored and how many times it finished. */
export const readRun = (log: EventLogShape, runId: string): Effect.Effect<RunStream, LogUnavailable> =>
  Effect.map(Stream.runCollect(log.read({ filter: runSubject(log.namespace, runId) })), (entries) => {
    let started: EventOf<"RunStarted"> | undefined
    const scored = new Map<string, EventOf<"SampleScored">>()
    let finished = 0
    let last = 0
    for (const entry of entries) {
      last = Math.max(last, entry.position)
      if (entry instanceof UndecodableEvent) continue
      const decoded = decodeEvent(entry)
      if (Result.isFailure(decoded)) continue
      const e = decoded.success.event
      if (e.type === "RunStarted") started ??= e
      else if (e.type === "SampleScored") scored.set(sampleKey(e.taskId, e.sampleIndex), e)
      else if (e.type === "RunFinished") finished++
    }
    return { started, scored, finished, last }
  })

export interface RunDescription {
  readonly runId: string
  readonly model: string
  readonly benchmark: string
  readonly k: number
  readonly tasks: ReadonlyArray<Task>
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
