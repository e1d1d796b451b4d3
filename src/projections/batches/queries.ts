/**
 * The batches read model's queries, as plain data: one RL run's training plan as `rollout rl
 * status` and the sampler's back-pressure read it — steps closed, published and consumed, the open
 * step's fill, groups started, completed and in flight, drops and version lags per step, the
 * trainer's last report and the weight versions live on the endpoints of the run's model — plus
 * the closed steps still to publish, and the fold of the `batches` projection to the end of the log.
 */
import * as Effect from "effect/Effect"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { CheckpointStoreShape } from "../../runtime/checkpointStore.ts"
import { ownValue } from "../projection.ts"
import { addCounts, noDrops, type ReasonCounts } from "../rewards/dropReasons.ts"
import { type ProjectionRunError, runProjection } from "../runner/runner.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../undecodable.ts"
import {
  type BatchesState,
  type BatchSize,
  batches,
  type EndpointVersion,
  type PlannedStep,
  type PublishedBatch,
  type StartedGroup,
  type StepCloser,
  type TrainerReport,
} from "./batchPlan.ts"
import type { LagHistogram, StalenessConfig } from "./staleness.ts"

export interface StepView {
  readonly step: number
  readonly groups: number
  readonly samples: number
  readonly trainedTokens: number
  readonly lags: LagHistogram
  readonly drops: ReasonCounts
  /** Null for the open step. */
  readonly closedBy: StepCloser | null
  readonly published: PublishedBatch | null
  readonly consumed: boolean
}

export interface RunPlanView {
  readonly runId: string
  readonly model: string
  readonly batch: BatchSize
  readonly staleness: StalenessConfig
  readonly configError: string | null
  readonly finished: boolean
  /** Closed steps, in step order. */
  readonly steps: ReadonlyArray<StepView>
  readonly stepsClosed: number
  readonly published: ReadonlyArray<number>
  readonly consumed: ReadonlyArray<number>
  /** Published and not yet consumed: what back-pressure counts. */
  readonly unconsumed: number
  /** Closed and not yet published: what the sampler publishes next. */
  readonly publishable: ReadonlyArray<number>
  readonly open: StepView
  readonly groups: {
    readonly started: number
    readonly completed: number
    /** Started and not yet placed (waiting for samples or scores), by group id. */
    readonly inFlight: ReadonlyArray<StartedGroup>
  }
  /** Drops over every step, the open one included. */
  readonly drops: ReasonCounts
  readonly versions: {
    readonly endpoints: Readonly<Record<string, EndpointVersion>>
    readonly announced: string | null
  }
  readonly lastReport: TrainerReport | null
}

const viewOf = (step: PlannedStep, published: PublishedBatch | undefined, consumed: boolean): StepView => ({
  step: step.step,
  groups: step.groups.length,
  samples: step.sampleCount,
  trainedTokens: step.trainedTokens,
  lags: step.lags,
  drops: step.drops,
  closedBy: step.closedBy,
  published: published ?? null,
  consumed,
})

const byNumber = (a: number, b: number) => a - b

/** A closed step of a run (with its per-sample details unless pruned), or undefined. */
export const closedStep = (state: BatchesState, runId: string, step: number): PlannedStep | undefined => {
  const run = ownValue(state.runs, runId)
  return run === undefined ? undefined : ownValue(run.closed, String(step))
}

/** Closed steps of the run with no `BatchPublished` yet, in step order. */
export const publishableSteps = (state: BatchesState, runId: string): ReadonlyArray<number> => {
  const run = ownValue(state.runs, runId)
  if (run === undefined) return []
  return Object.keys(run.closed)
    .filter((step) => ownValue(run.published, step) === undefined)
    .map(Number)
    .sort(byNumber)
}

/** One RL run's plan from a folded state, or undefined when the state knows no such RL run. */
export const runPlan = (state: BatchesState, runId: string): RunPlanView | undefined => {
  const run = ownValue(state.runs, runId)
  if (run === undefined) return undefined
  const steps = Object.values(run.closed)
    .map((step) =>
      viewOf(
        step,
        ownValue(run.published, String(step.step)),
        ownValue(run.consumed, String(step.step)) !== undefined,
      ),
    )
    .sort((a, b) => a.step - b.step)
  const published = Object.keys(run.published).map(Number).sort(byNumber)
  const consumed = Object.keys(run.consumed).map(Number).sort(byNumber)
  const open = viewOf(run.open, undefined, false)
  return {
    runId,
    model: run.model,
    batch: run.batch,
    staleness: run.staleness,
    configError: run.configError,
    finished: run.finished,
    steps,
    stepsClosed: steps.length,
    published,
    consumed,
    unconsumed: published.filter((step) => ownValue(run.consumed, String(step)) === undefined).length,
    publishable: publishableSteps(state, runId),
    open,
    groups: {
      started: run.groupsStarted,
      completed: run.groupsCompleted,
      inFlight: Object.values(run.started).sort((a, b) =>
        a.group < b.group ? -1 : a.group > b.group ? 1 : 0,
      ),
    },
    drops: [...steps, open].reduce((sum, step) => addCounts(sum, step.drops), noDrops),
    versions: {
      endpoints: ownValue(state.endpoints, run.model) ?? {},
      announced: ownValue(state.announced, run.model) ?? null,
    },
    lastReport: run.lastReport,
  }
}

/** Where the plan is read from: the log, its checkpoints, and how often to save one. */
export interface BatchesSource {
  readonly log: EventLogShape
  readonly checkpoints: CheckpointStoreShape
  readonly checkpointEvery?: number
}

export interface FoldedBatches {
  readonly state: BatchesState
  readonly undecodable: UndecodableSummary
}

/** Folds the batches projection up to the end of the log, resuming from its checkpoint. */
export const foldBatches = (source: BatchesSource): Effect.Effect<FoldedBatches, ProjectionRunError> =>
  Effect.gen(function* () {
    const met: Array<{ readonly position: number }> = []
    const result = yield* runProjection(source.log, source.checkpoints, batches, {
      live: false,
      ...(source.checkpointEvery === undefined ? {} : { checkpointEvery: source.checkpointEvery }),
      onUndecodable: (u) => met.push(u),
    })
    return { state: result.state, undecodable: summarizeUndecodable(met, result.undecodable) }
  })
