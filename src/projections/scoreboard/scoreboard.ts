/**
 * The `scoreboard` projection: per evaluation run, one row per task × sample — how its episode
 * ended, its turns, tool calls and tokens, and its verdict — from `RunStarted` (kind `eval`; its
 * `config.tasks` lists the tasks with level and category), the run's episodes (`EpisodeStarted`
 * with the `runId`, `ModelResponded`, `ToolCallRequested`, `EpisodeFinished`), `SampleScored` and
 * `RunFinished`. An episode ended by its infrastructure (`model_error`,
 * `tool_infrastructure_error`) keeps the reason its `ModelCallFailed` or infrastructure
 * `ToolCallFailed` gave, named by cause (`failureCause.ts`), so a report can count the reasons.
 * Metrics (Avg@k, pass@k, intervals, breakdowns) are computed from a run's rows on demand
 * (`scoreboardMetrics.ts`), so the state holds facts only and stays plain JSON.
 *
 * Counters of a running episode live in `open` (as many entries as episodes in flight); a finished
 * episode moves into its run's rows. Rows are arrays indexed by the task's place in `tasks` (then
 * by sample), so an update copies one task's k slots and an array of references — never an object
 * with a key per task, whose copy would make a large run's fold quadratic.
 */
import { failureCause } from "../../events/failureCause.ts"
import type { Envelope, EpisodeOutcome, EventOf } from "../../events/schema.ts"
import { type Buckets, bucketGet, bucketSet, bucketValues } from "../buckets.ts"
import { ownValue, type Projection } from "../projection.ts"

export type Verdict = EventOf<"SampleScored">["verdict"]

/** A task of a run as its `RunStarted` config lists it (never its question or answer). */
export interface TaskMeta {
  readonly taskId: string
  readonly level: string | null
  readonly category: string | null
}

/** One task × sample. */
export interface SampleRow {
  readonly episodeId: string
  /** null until the episode's `EpisodeFinished` is folded. */
  readonly outcome: EpisodeOutcome | null
  readonly turns: number | null
  readonly toolCalls: number
  readonly promptTokens: number
  readonly completionTokens: number
  /** Model answers the episode got; 0 when it never reached the model. */
  readonly responses: number
  /** Why an infrastructure ending happened (`model: connection refused at <url>`), else null. */
  readonly failure: string | null
  /** null until the sample's `SampleScored` is folded. */
  readonly verdict: Verdict | null
  readonly scorer: string | null
}

export type RunBoardStatus = "running" | EventOf<"RunFinished">["status"]

export interface RunBoard {
  readonly runId: string
  readonly model: string
  readonly benchmark: string | null
  readonly k: number | null
  /** The run's tasks as `RunStarted` listed them, then any task only its samples named. */
  readonly tasks: ReadonlyArray<TaskMeta>
  /** How many of `tasks` `RunStarted` listed. */
  readonly listed: number
  /** taskId → its index in `tasks` and `rows`. */
  readonly taskIndex: Readonly<Record<string, number>>
  readonly scorer: string | null
  readonly judgeModel: string | null
  /** Bad rows of the data file the run was told to leave out (`--skip-bad-rows`): count and `file:row`s. */
  readonly skippedBadRows?: { readonly count: number; readonly rows: ReadonlyArray<string> } | null
  /** USD per million tokens of the run's model, from its models.yaml `pricing` (null: unknown). */
  readonly pricing?: { readonly promptPerMillion: number; readonly completionPerMillion: number } | null
  readonly status: RunBoardStatus
  readonly reason: string | null
  readonly startedAt: string
  readonly finishedAt: string | null
  /** Per task (as indexed in `tasks`), the rows of samples 0, 1, … (null where nothing is known yet). */
  readonly rows: ReadonlyArray<ReadonlyArray<SampleRow | null>>
  /** The highest position folded into this run. */
  readonly lastPosition: number
}

/** A started, unfinished episode of an evaluation run and its counters so far. */
export interface OpenEpisode {
  readonly runId: string
  readonly taskId: string
  readonly sample: number
  readonly toolCalls: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly responses: number
  /** The last infrastructure failure seen (the one that ends the episode, when one does). */
  readonly failure: string | null
}

export interface ScoreboardState {
  readonly runs: Readonly<Record<string, RunBoard>>
  /**
   * Open episodes in 16 buckets by a hash of the episode id: an update copies one small bucket and
   * the 16 bucket slots, not every open episode (that copy per event was most of a rebuild's fold).
   */
  readonly open: Buckets<OpenEpisode>
}

export const initialScoreboard: ScoreboardState = { runs: {}, open: {} }

const text = (value: unknown): string | null =>
  typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : null

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The config keys the eval driver writes into `RunStarted.config` (see `evalRun.ts`). */
const configOf = (config: unknown) => {
  const c = isRecord(config) ? config : {}
  const tasks: TaskMeta[] = []
  if (Array.isArray(c.tasks))
    for (const t of c.tasks) {
      if (!isRecord(t)) continue
      const taskId = text(t.taskId)
      if (taskId !== null) tasks.push({ taskId, level: text(t.level), category: text(t.category) })
    }
  const p = isRecord(c.pricing) ? c.pricing : undefined
  const pricing =
    p !== undefined && typeof p.promptPerMillion === "number" && typeof p.completionPerMillion === "number"
      ? { promptPerMillion: p.promptPerMillion, completionPerMillion: p.completionPerMillion }
      : null
  const b = isRecord(c.skippedBadRows) ? c.skippedBadRows : undefined
  const skippedBadRows =
    b !== undefined && typeof b.count === "number"
      ? { count: b.count, rows: Array.isArray(b.rows) ? b.rows.filter((r) => typeof r === "string") : [] }
      : null
  return { tasks, scorer: text(c.scorer), judgeModel: text(c.judgeModel), pricing, skippedBadRows }
}

/** The row of one sample of a run, or null when nothing is known of it. */
export const boardRow = (run: RunBoard, taskId: string, sample: number): SampleRow | null => {
  const index = ownValue(run.taskIndex, taskId)
  return index === undefined ? null : (run.rows[index]?.[sample] ?? null)
}

const emptyRow = (episodeId: string): SampleRow => ({
  episodeId,
  outcome: null,
  turns: null,
  toolCalls: 0,
  promptTokens: 0,
  completionTokens: 0,
  responses: 0,
  failure: null,
  verdict: null,
  scorer: null,
})

/** Endings caused by the model server or the tools rather than the agent (see `failure`). */
export const infrastructureEndings: ReadonlySet<EpisodeOutcome> = new Set([
  "model_error",
  "tool_infrastructure_error",
])

/** A tool's infrastructure message, cut so that reasons with the same start count together. */
const toolFailure = (tool: string, message: string): string => {
  const line = message.replace(/\s+/g, " ").trim()
  return `tool ${tool}: ${line.length > 80 ? `${line.slice(0, 80)}…` : line}`
}

const setRun = (state: ScoreboardState, run: RunBoard): ScoreboardState["runs"] => ({
  ...state.runs,
  [run.runId]: run,
})

/** The run with one sample's row replaced by `change(row)` (a task it did not list is added). */
const withRow = (
  run: RunBoard,
  taskId: string,
  sample: number,
  position: number,
  change: (row: SampleRow | null) => SampleRow,
): RunBoard => {
  let index = ownValue(run.taskIndex, taskId)
  let { tasks, taskIndex } = run
  if (index === undefined) {
    index = tasks.length
    tasks = [...tasks, { taskId, level: null, category: null }]
    taskIndex = { ...taskIndex, [taskId]: index }
  }
  const rows = [...run.rows]
  while (rows.length <= index) rows.push([])
  const slots = [...rows[index]!]
  while (slots.length <= sample) slots.push(null)
  slots[sample] = change(slots[sample] ?? null)
  rows[index] = slots
  return { ...run, tasks, taskIndex, rows, lastPosition: Math.max(run.lastPosition, position) }
}

/** A run's listed tasks, with the tasks only its samples named (and their rows) kept after them. */
const relist = (previous: RunBoard | undefined, given: ReadonlyArray<TaskMeta>) => {
  const tasks: TaskMeta[] = []
  const taskIndex: Record<string, number> = {}
  for (const t of given)
    if (ownValue(taskIndex, t.taskId) === undefined) {
      taskIndex[t.taskId] = tasks.length
      tasks.push(t)
    }
  const listed = tasks.length
  const rows: Array<ReadonlyArray<SampleRow | null>> = tasks.map(() => [])
  if (previous !== undefined)
    previous.tasks.forEach((t, i) => {
      let at = ownValue(taskIndex, t.taskId)
      if (at === undefined) {
        at = tasks.length
        tasks.push({ taskId: t.taskId, level: null, category: null })
        taskIndex[t.taskId] = at
        rows.push([])
      }
      rows[at] = previous.rows[i] ?? []
    })
  return { tasks, listed, taskIndex, rows }
}

/** Every open episode. */
export const openEpisodes = (state: ScoreboardState): ReadonlyArray<OpenEpisode> => bucketValues(state.open)

const updateOpen = (
  state: ScoreboardState,
  episodeId: string,
  change: (open: OpenEpisode) => OpenEpisode,
): ScoreboardState => {
  const open = bucketGet(state.open, episodeId)
  return open === undefined ? state : { ...state, open: bucketSet(state.open, episodeId, change(open)) }
}

const applyScoreboard = (state: ScoreboardState, envelope: Envelope): ScoreboardState => {
  const { event, position } = envelope
  switch (event.type) {
    case "RunStarted": {
      if (event.kind !== "eval") return state
      const config = configOf(event.config)
      const previous = ownValue(state.runs, event.runId)
      return {
        ...state,
        runs: setRun(state, {
          runId: event.runId,
          model: event.model,
          benchmark: event.benchmark ?? null,
          k: event.k ?? null,
          ...relist(previous, config.tasks),
          scorer: config.scorer,
          judgeModel: config.judgeModel,
          pricing: config.pricing,
          skippedBadRows: config.skippedBadRows,
          // A repeated RunStarted refreshes the description; it never reopens a finished run.
          status: previous?.status ?? "running",
          reason: previous?.reason ?? null,
          startedAt: previous?.startedAt ?? envelope.recordedAt,
          finishedAt: previous?.finishedAt ?? null,
          lastPosition: Math.max(previous?.lastPosition ?? 0, position),
        }),
      }
    }
    case "RunFinished": {
      const run = ownValue(state.runs, event.runId)
      if (run === undefined) return state
      return {
        ...state,
        runs: setRun(state, {
          ...run,
          status: event.status,
          reason: event.reason ?? null,
          finishedAt: envelope.recordedAt,
          lastPosition: Math.max(run.lastPosition, position),
        }),
      }
    }
    case "EpisodeStarted": {
      const runId = event.runId
      // Only episodes of known evaluation runs are tracked; RL and ad-hoc episodes pass by.
      if (runId === undefined || ownValue(state.runs, runId) === undefined) return state
      if (bucketGet(state.open, event.episodeId) !== undefined) return state
      return {
        ...state,
        open: bucketSet(state.open, event.episodeId, {
          runId,
          taskId: event.taskId,
          sample: event.sampleIndex,
          toolCalls: 0,
          promptTokens: 0,
          completionTokens: 0,
          responses: 0,
          failure: null,
        }),
      }
    }
    case "ModelResponded":
      return updateOpen(state, event.episodeId, (o) => ({
        ...o,
        promptTokens: o.promptTokens + event.usage.promptTokens,
        completionTokens: o.completionTokens + event.usage.completionTokens,
        responses: o.responses + 1,
      }))
    case "ModelCallFailed":
      return updateOpen(state, event.episodeId, (o) => ({
        ...o,
        failure: `model: ${failureCause(event.code, event.message)}${
          event.endpoint === undefined ? "" : ` at ${event.endpoint}`
        }`,
      }))
    case "ToolCallFailed":
      if (event.kind !== "infrastructure") return state
      return updateOpen(state, event.episodeId, (o) => ({
        ...o,
        failure: toolFailure(event.tool, event.message),
      }))
    case "ToolCallRequested":
      return updateOpen(state, event.episodeId, (o) => ({ ...o, toolCalls: o.toolCalls + 1 }))
    case "EpisodeFinished": {
      const open = bucketGet(state.open, event.episodeId)
      if (open === undefined) return state
      const run = ownValue(state.runs, open.runId)
      const rest = bucketSet(state.open, event.episodeId, undefined)
      if (run === undefined) return { ...state, open: rest }
      const finished = withRow(run, open.taskId, open.sample, position, (row) => ({
        ...(row ?? emptyRow(event.episodeId)),
        episodeId: event.episodeId,
        outcome: event.outcome,
        turns: event.turns,
        toolCalls: open.toolCalls,
        promptTokens: open.promptTokens,
        completionTokens: open.completionTokens,
        responses: open.responses,
        failure: infrastructureEndings.has(event.outcome) ? open.failure : null,
      }))
      return { runs: setRun(state, finished), open: rest }
    }
    case "SampleScored": {
      const run = ownValue(state.runs, event.runId)
      if (run === undefined) return state
      const scored = withRow(run, event.taskId, event.sampleIndex, position, (row) => ({
        ...(row ?? emptyRow(event.episodeId)),
        verdict: event.verdict,
        scorer: event.scorer,
      }))
      return { ...state, runs: setRun(state, scored) }
    }
    default:
      return state
  }
}

export const scoreboard: Projection<ScoreboardState> = {
  name: "scoreboard",
  types: [
    "RunStarted",
    "RunFinished",
    "EpisodeStarted",
    "ModelResponded",
    "ModelCallFailed",
    "ToolCallRequested",
    "ToolCallFailed",
    "EpisodeFinished",
    "SampleScored",
  ],
  version: 5,
  initial: initialScoreboard,
  apply: applyScoreboard,
}
