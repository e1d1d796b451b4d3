/**
 * The rewards read model's queries, as plain data: the `rewards` projection folded to the end of
 * the log (resumed from its checkpoint) with what the read could not decode, and one run's summary
 * — its profile, its groups decided, waiting and refused, and the drops summed per reason. No
 * printing, flags or exit codes: a command prints these, and a viewer can show them.
 */
import * as Effect from "effect/Effect"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { CheckpointStoreShape } from "../../runtime/checkpointStore.ts"
import { bucketGet, bucketValues } from "../buckets.ts"
import { ownValue } from "../projection.ts"
import { type ProjectionRunError, runProjection } from "../runner/runner.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../undecodable.ts"
import { addCounts, noDrops, type ReasonCounts } from "./dropReasons.ts"
import type { GroupDecision } from "./groupDecision.ts"
import type { RewardProfileName } from "./rewardConfig.ts"
import { type RewardsState, rewards } from "./rewardsProjection.ts"

/** Where the rewards are read from: the log, its checkpoints, and how often to save one. */
export interface RewardsSource {
  readonly log: EventLogShape
  readonly checkpoints: CheckpointStoreShape
  readonly checkpointEvery?: number
}

export interface FoldedRewards {
  readonly state: RewardsState
  readonly undecodable: UndecodableSummary
}

/** Folds the rewards projection up to the end of the log, resuming from its checkpoint. */
export const foldRewards = (source: RewardsSource): Effect.Effect<FoldedRewards, ProjectionRunError> =>
  Effect.gen(function* () {
    const met: Array<{ readonly position: number }> = []
    const result = yield* runProjection(source.log, source.checkpoints, rewards, {
      live: false,
      ...(source.checkpointEvery === undefined ? {} : { checkpointEvery: source.checkpointEvery }),
      onUndecodable: (u) => met.push(u),
    })
    return { state: result.state, undecodable: summarizeUndecodable(met, result.undecodable) }
  })

export interface DecidedGroup {
  readonly taskId: string
  readonly decision: GroupDecision
}

export interface RunRewardsSummary {
  readonly runId: string
  readonly k: number | null
  /** Whether the run's `RunStarted` was folded (without it no group is decided). */
  readonly started: boolean
  readonly profile: RewardProfileName
  readonly configError: string | null
  /** Groups with all k samples finished and scored, with their decisions, by task id. */
  readonly decided: ReadonlyArray<DecidedGroup>
  /** Groups still waiting for a sample, by task id. */
  readonly pending: ReadonlyArray<string>
  /** Complete groups `decideGroup` refused, with why. */
  readonly refused: ReadonlyArray<{ readonly taskId: string; readonly error: string }>
  readonly keptSamples: number
  readonly keptTurns: number
  /** Dropped samples summed over the decided groups, by reason. */
  readonly droppedSamples: ReasonCounts
  /** Dropped turns of kept samples summed over the decided groups, by reason. */
  readonly droppedTurns: ReasonCounts
}

const byTask = <T extends { readonly taskId: string }>(a: T, b: T): number =>
  a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0

/** One run's rewards from a folded state, or undefined when the state knows no such run. */
export const runRewards = (state: RewardsState, runId: string): RunRewardsSummary | undefined => {
  const run = ownValue(state.runs, runId)
  if (run === undefined) return undefined
  const groups = [...bucketValues(run.groups)].sort(byTask)
  const decided: DecidedGroup[] = []
  const refused: Array<{ taskId: string; error: string }> = []
  const pending: string[] = []
  for (const group of groups) {
    if (group.decision !== null) decided.push({ taskId: group.taskId, decision: group.decision })
    else if (group.error !== null) refused.push({ taskId: group.taskId, error: group.error })
    else pending.push(group.taskId)
  }
  return {
    runId,
    k: run.k,
    started: run.started,
    profile: run.config.profile,
    configError: run.configError,
    decided,
    pending,
    refused,
    keptSamples: decided.reduce((sum, g) => sum + g.decision.kept, 0),
    keptTurns: decided.reduce((sum, g) => sum + g.decision.keptTurns, 0),
    droppedSamples: decided.reduce((sum, g) => addCounts(sum, g.decision.droppedSamples), noDrops),
    droppedTurns: decided.reduce((sum, g) => addCounts(sum, g.decision.droppedTurns), noDrops),
  }
}

/** The decision of one group, or undefined while it is not decided. */
export const groupRewards = (
  state: RewardsState,
  runId: string,
  taskId: string,
): GroupDecision | undefined => {
  const run = ownValue(state.runs, runId)
  return (run === undefined ? undefined : bucketGet(run.groups, taskId)?.decision) ?? undefined
}

/** Run `runId`'s rewards read from the log (resumed from the checkpoint), with what did not decode. */
export const rewardsOf = (
  source: RewardsSource,
  runId: string,
): Effect.Effect<
  { readonly run: RunRewardsSummary | undefined; readonly undecodable: UndecodableSummary },
  ProjectionRunError
> =>
  Effect.map(foldRewards(source), ({ state, undecodable }) => ({
    run: runRewards(state, runId),
    undecodable,
  }))
