/**
 * The evaluator's decider: an evaluation run as a pure state machine over the stream the run owns
 * and writes, `ev.run.<runId>` — `RunStarted` (what the run is), one `SampleScored` per task ×
 * sample, `RunFinished`. The state says which samples are done and which are still to run (a resume
 * skips every scored one), and `decide` turns the shell's inputs into those events: a start (a
 * resume whose options do not fit the recorded run is refused), a score (refused for a sample that
 * is scored already or not in the run), and the finish (how the run ended, said again only when
 * this invocation ran anything). `decide` and `evolve` are total and synchronous and read no
 * clock: the events carry no time, the shell stamps their envelopes.
 */
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type { DomainEvent, Envelope, EventOf } from "../../events/schema.ts"
import { type RunDescription, resumeMismatch, runStartedEvent } from "./runDescription.ts"

/** A sample of a run: the task and the sample's index, 0..k−1. */
export interface SampleRef {
  readonly taskId: string
  readonly sample: number
}

/** The key of a sample in `EvaluationState.scored` (unambiguous for any task id). */
export const sampleKey = (taskId: string, sample: number): string => JSON.stringify([taskId, sample])

interface AtPosition<E> {
  readonly position: number
  readonly event: E
}

export interface EvaluationState {
  /** The run's first `RunStarted` in the log (a repeated one describes the same run). */
  readonly started: AtPosition<EventOf<"RunStarted">> | undefined
  /** The task ids `RunStarted` listed, in order, and its k (empty and 0 before the start). */
  readonly tasks: ReadonlyArray<string>
  /** The same ids, to look up. */
  readonly listed: ReadonlySet<string>
  readonly k: number
  /**
   * Scored samples by `sampleKey`; of two scores of one sample, the later in the log stands (as on
   * the scoreboard), whatever order they are folded in. A persistent map: a fold of a large run
   * copies no more than a path per event.
   */
  readonly scored: HashMap.HashMap<string, AtPosition<EventOf<"SampleScored">>>
  /** Positions of the run's `RunFinished` events, ascending: once per invocation that ran samples. */
  readonly finished: ReadonlyArray<number>
}

export const initial: EvaluationState = {
  started: undefined,
  tasks: [],
  listed: new Set(),
  k: 0,
  scored: HashMap.empty(),
  finished: [],
}

/** The task ids a `RunStarted` config lists (see `runStartedEvent`). */
const listedTasks = (started: EventOf<"RunStarted">): ReadonlyArray<string> => {
  const config = started.config
  const tasks =
    typeof config === "object" && config !== null && !Array.isArray(config)
      ? (config as { readonly tasks?: unknown }).tasks
      : undefined
  if (!Array.isArray(tasks)) return []
  const ids: string[] = []
  for (const t of tasks) {
    const id = typeof t === "object" && t !== null ? (t as { readonly taskId?: unknown }).taskId : undefined
    if (typeof id === "string") ids.push(id)
  }
  return ids
}

/**
 * Folds one event of the run's stream. Idempotent per position and independent of the order the
 * events arrive in: the first `RunStarted` and the last score of a sample are chosen by position.
 */
export const evolve = (state: EvaluationState, envelope: Envelope): EvaluationState => {
  const { event, position } = envelope
  switch (event.type) {
    case "RunStarted": {
      if (state.started !== undefined && state.started.position <= position) return state
      const tasks = listedTasks(event)
      return { ...state, started: { position, event }, tasks, listed: new Set(tasks), k: event.k ?? 0 }
    }
    case "SampleScored": {
      const key = sampleKey(event.taskId, event.sampleIndex)
      const before = HashMap.get(state.scored, key)
      if (Option.isSome(before) && before.value.position >= position) return state
      return { ...state, scored: HashMap.set(state.scored, key, { position, event }) }
    }
    case "RunFinished": {
      if (state.finished.includes(position)) return state
      return { ...state, finished: [...state.finished, position].sort((a, b) => a - b) }
    }
    default:
      return state
  }
}

/** The score recorded for a sample, if any. */
export const scoreOf = (
  state: EvaluationState,
  taskId: string,
  sample: number,
): EventOf<"SampleScored"> | undefined =>
  Option.getOrUndefined(Option.map(HashMap.get(state.scored, sampleKey(taskId, sample)), (s) => s.event))

/** Every sample of the run in passes (every task's sample 0, then 1, …): an interrupted run has whole passes. */
export const runSamples = (state: EvaluationState): ReadonlyArray<SampleRef> => {
  const all: SampleRef[] = []
  for (let sample = 0; sample < state.k; sample++)
    for (const taskId of state.tasks) all.push({ taskId, sample })
  return all
}

/** The samples still to run, in passes: a resume runs these and skips every scored one. */
export const pendingSamples = (state: EvaluationState): ReadonlyArray<SampleRef> =>
  runSamples(state).filter((s) => !HashMap.has(state.scored, sampleKey(s.taskId, s.sample)))

/** The samples of the run that are scored, in passes. */
export const scoredSamples = (state: EvaluationState): ReadonlyArray<SampleRef> =>
  runSamples(state).filter((s) => HashMap.has(state.scored, sampleKey(s.taskId, s.sample)))

/** A sample the episode runner could not run to an end, and why. */
export interface GaveUp extends SampleRef {
  readonly reason: string
}

export type EvaluationInput =
  /** Start the run described, or resume it when the log holds it already. */
  | { readonly kind: "start"; readonly run: RunDescription }
  /** Record a sample's score (the verdict and score come from scoring, `sampleScore`). */
  | {
      readonly kind: "score"
      readonly taskId: string
      readonly sample: number
      readonly episodeId: string
      readonly scorer: string
      readonly verdict: EventOf<"SampleScored">["verdict"]
      readonly score: number
    }
  /** This invocation ran its samples: finish the run. */
  | {
      readonly kind: "finish"
      /** Samples this invocation tried (scored or given up on). */
      readonly attempted: number
      /** Of them, how many got at least one answer from the model. */
      readonly reachedModel: number
      readonly gaveUp: ReadonlyArray<GaveUp>
      /** This invocation's infrastructure endings by reason, most first. */
      readonly reasons: ReadonlyArray<readonly [string, number]>
    }

export interface EvaluationRejection {
  readonly kind: "mismatch" | "not_started" | "not_in_run" | "already_scored"
  readonly reason: string
}

/** How a run ends: failed when a sample could not run, or when none of the tried samples reached the model. */
export const runEnding = (
  state: EvaluationState,
  input: Extract<EvaluationInput, { kind: "finish" }>,
): { readonly status: "completed" | "failed"; readonly reason?: string } => {
  const unreached = input.attempted > 0 && input.reachedModel === 0
  if (unreached) {
    const model = state.started?.event.model ?? "?"
    const counted = input.reasons.map(([r, n]) => `${r} ×${n}`).join("; ")
    return {
      status: "failed",
      reason: `no sample reached model ${model} (${input.attempted} tried): ${counted}`,
    }
  }
  const first = input.gaveUp[0]
  if (first === undefined) return { status: "completed" }
  return {
    status: "failed",
    reason: `${input.gaveUp.length} sample(s) could not run to an end; first: ${first.taskId}#${first.sample}: ${first.reason}`,
  }
}

export const decide = (
  state: EvaluationState,
  input: EvaluationInput,
): Result.Result<ReadonlyArray<DomainEvent>, EvaluationRejection> => {
  if (input.kind === "start") {
    if (state.started === undefined) return Result.succeed([runStartedEvent(input.run)])
    const mismatch = resumeMismatch(state.started.event, input.run)
    return mismatch === undefined ? Result.succeed([]) : Result.fail({ kind: "mismatch", reason: mismatch })
  }
  const started = state.started?.event
  if (started === undefined) return Result.fail({ kind: "not_started", reason: "the run has not started" })
  if (input.kind === "score") {
    const where = `${input.taskId}#${input.sample}`
    if (!state.listed.has(input.taskId) || !(input.sample >= 0 && input.sample < state.k))
      return Result.fail({
        kind: "not_in_run",
        reason: `sample ${where} is not one of run ${started.runId}'s`,
      })
    if (HashMap.has(state.scored, sampleKey(input.taskId, input.sample)))
      return Result.fail({ kind: "already_scored", reason: `sample ${where} is scored already` })
    return Result.succeed([
      {
        type: "SampleScored",
        runId: started.runId,
        taskId: input.taskId,
        sampleIndex: input.sample,
        episodeId: input.episodeId,
        scorer: input.scorer,
        verdict: input.verdict,
        score: input.score,
      },
    ])
  }
  // A resume that had nothing left to do does not finish the run again.
  if (state.finished.length > 0 && input.attempted === 0) return Result.succeed([])
  const ending = runEnding(state, input)
  return Result.succeed([
    {
      type: "RunFinished",
      runId: started.runId,
      status: ending.status,
      ...(ending.reason === undefined ? {} : { reason: ending.reason }),
    },
  ])
}
