/**
 * The training-step plan of RL runs, pure (issue 12, point 5): a fold over envelopes that embeds
 * the rewards fold and, per RL run (`RunStarted` kind `rl`, its config the decoded RL config), puts
 * every GRPO group into the run's open training step the moment its reward decision first becomes
 * available, passes each kept sample through the staleness gate at that step's index, counts every
 * drop, and closes the step when it holds `batch.groups` groups with kept samples or its trained
 * tokens reach `batch.tokens` (`RunFinished` closes a non-empty open step, so no sample is lost).
 * Beside the plan it folds what `rollout rl status` and the sampler's back-pressure read: groups
 * started, batches published and consumed, the trainer's last report and the weight versions live
 * on each endpoint. The batch file of a closed step is laid out from the plan by `sequences.ts`.
 *
 * Order: the plan depends only on the log order in which groups complete (total in any log), never
 * on wall time, and a group's decision is a function of its facts, so events of different episodes
 * of a group may arrive in any order. An episode's own events are read in log order: its
 * `EpisodeStarted` first (the agent writes it first); events of an episode not yet placed in an RL
 * run are ignored, which keeps evaluation episodes out of this state. Redelivery: a group is placed
 * once (its id is remembered), and every other fact is overwritten, never accumulated.
 *
 * Size: per-episode facts of a group are pruned once it is placed (its step keeps what the batch
 * needs), and the per-sample details of a step are pruned once the trainer consumed it (its
 * summary stays); a derivation of an old step folds with `keepConsumed` instead.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { WeightVersionSpan } from "../../events/chat.ts"
import type { BlobRef, Envelope, EventOf } from "../../events/schema.ts"
import { type Buckets, bucketGet, bucketSet } from "../buckets.ts"
import { ownValue, type Projection } from "../projection.ts"
import {
  addCounts,
  countReasons,
  type DropReason,
  noDrops,
  type ReasonCounts,
} from "../rewards/dropReasons.ts"
import type { KeptSample } from "../rewards/groupDecision.ts"
import { applyRewards, initialRewards, type RewardsState } from "../rewards/rewardsProjection.ts"
import {
  decodeStalenessConfig,
  defaultStaleness,
  gateSample,
  type LagHistogram,
  mergeLagHistograms,
  type StalenessConfig,
  type TokenRange,
} from "./staleness.ts"

/** How many samples make a step: whole groups, or a budget of trained tokens filled by whole groups. */
export type BatchSize = { readonly groups: number } | { readonly tokens: number }

/** The RL config's default (`batch: {groups: 4}`), for a recorded config without the section. */
export const defaultBatchSize: BatchSize = { groups: 4 }

/** What the plan needs of one model turn: whether its token-exact record is whole, its size, its versions. */
export interface TurnTokens {
  /** Prompt ids, sampled ids, log-probs (one per sampled id), temperature and versions all present. */
  readonly exact: boolean
  /** Sampled tokens (its `tokenIds`' length, else its usage). */
  readonly tokens: number
  readonly spans: ReadonlyArray<WeightVersionSpan> | null
}

/** A turn of a planned sample that trains, with its advantage. */
export interface PlannedTurn {
  readonly turn: number
  readonly advantage: number
}

/** A kept sample as placed in a step: what the batch layout needs besides the episode's tokens. */
export interface PlannedSample {
  readonly episode: string
  readonly group: string
  readonly task: string
  /** Its index in the group. */
  readonly sample: number
  readonly score: number
  readonly advantage: number
  /** The turns that train, in turn order. */
  readonly turns: ReadonlyArray<PlannedTurn>
  /** Sampled tokens masked as stale (policy `mask`), `turn` being the turn number. */
  readonly masked: ReadonlyArray<TokenRange>
  readonly trainedTokens: number
  readonly lags: LagHistogram
}

export type StepCloser = "groups" | "tokens" | "run_finished"

export interface PlannedStep {
  readonly runId: string
  readonly step: number
  /** Groups with at least one kept sample, in the order they completed. */
  readonly groups: ReadonlyArray<string>
  /** Every group placed while the step filled, kept samples or not. */
  readonly placedGroups: number
  readonly samples: ReadonlyArray<PlannedSample>
  /** Kept samples (stays right after the details are pruned). */
  readonly sampleCount: number
  /** Samples dropped while the step filled, by reason (group rules, sample rules, tokens, staleness). */
  readonly drops: ReasonCounts
  /** Trained tokens by version lag (the plan's count; the batch recounts it from its tensors). */
  readonly lags: LagHistogram
  readonly trainedTokens: number
  readonly closedBy: StepCloser | null
  /** The per-sample details were pruned (the trainer consumed the step). */
  readonly pruned: boolean
}

export interface StartedGroup {
  readonly group: string
  readonly taskId: string
  readonly epoch: number
  readonly samples: number
  readonly version: string
}

export interface PublishedBatch {
  readonly hash: string
  readonly blob: BlobRef
}

export type TrainerReport = Omit<EventOf<"TrainerStepReported">, "type" | "runId">

export interface RunPlanState {
  readonly runId: string
  readonly model: string
  readonly batch: BatchSize
  readonly staleness: StalenessConfig
  /** Why the run's `batch` or `staleness` did not decode; nothing of the run is planned then. */
  readonly configError: string | null
  readonly finished: boolean
  readonly open: PlannedStep
  /** step → the closed step. */
  readonly closed: Readonly<Record<string, PlannedStep>>
  /** Groups started (`GroupStarted`) and not yet placed, by group id. */
  readonly started: Readonly<Record<string, StartedGroup>>
  readonly groupsStarted: number
  readonly groupsCompleted: number
  /** group → the step it went into: a group is placed once. */
  readonly placed: Readonly<Record<string, number>>
  readonly published: Readonly<Record<string, PublishedBatch>>
  readonly consumed: Readonly<Record<string, true>>
  readonly lastReport: TrainerReport | null
}

/** What an endpoint serves, as its last update (or its own report) said; null after a failed update. */
export interface EndpointVersion {
  readonly version: string | null
  readonly ok: boolean
}

export interface BatchesState {
  /** The rewards fold, for the episodes of RL runs only, pruned as groups are placed. */
  readonly rewards: RewardsState
  /** episode → turn → its token facts. */
  readonly tokens: Buckets<Readonly<Record<string, TurnTokens>>>
  readonly runs: Readonly<Record<string, RunPlanState>>
  /** model → endpoint → its version. */
  readonly endpoints: Readonly<Record<string, Readonly<Record<string, EndpointVersion>>>>
  /** model → the last version announced without an endpoint (by the trainer bridge). */
  readonly announced: Readonly<Record<string, string>>
}

export const initialBatches: BatchesState = {
  rewards: initialRewards,
  tokens: {},
  runs: {},
  endpoints: {},
  announced: {},
}

const emptyStep = (runId: string, step: number): PlannedStep => ({
  runId,
  step,
  groups: [],
  placedGroups: 0,
  samples: [],
  sampleCount: 0,
  drops: noDrops,
  lags: [],
  trainedTokens: 0,
  closedBy: null,
  pruned: false,
})

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const decodeBatchSize = Schema.decodeUnknownResult(
  Schema.Union([Schema.Struct({ groups: PositiveInt }), Schema.Struct({ tokens: PositiveInt })]),
  { onExcessProperty: "error" },
)

/** The run's batch size and staleness bound from its recorded config, or why they are unusable. */
export const planConfigOf = (
  config: unknown,
): { batch: BatchSize; staleness: StalenessConfig; error: string | null } => {
  const record =
    typeof config === "object" && config !== null && !Array.isArray(config)
      ? (config as Record<string, unknown>)
      : {}
  const batch = Object.hasOwn(record, "batch")
    ? decodeBatchSize(record.batch)
    : Result.succeed(defaultBatchSize)
  const staleness = Object.hasOwn(record, "staleness")
    ? decodeStalenessConfig(record.staleness)
    : Result.succeed(defaultStaleness)
  const errors = [
    ...(Result.isFailure(batch) ? [`batch: ${batch.failure.message} (give {groups: n} or {tokens: n})`] : []),
    ...(Result.isFailure(staleness) ? [staleness.failure.reason] : []),
  ]
  return {
    batch: Result.isSuccess(batch) ? batch.success : defaultBatchSize,
    staleness: Result.isSuccess(staleness) ? staleness.success : defaultStaleness,
    error: errors.length === 0 ? null : errors.join("; "),
  }
}

const newRun = (runId: string, model: string, config: unknown): RunPlanState => {
  const { batch, staleness, error } = planConfigOf(config)
  return {
    runId,
    model,
    batch,
    staleness,
    configError: error,
    finished: false,
    open: emptyStep(runId, 0),
    closed: {},
    started: {},
    groupsStarted: 0,
    groupsCompleted: 0,
    placed: {},
    published: {},
    consumed: {},
    lastReport: null,
  }
}

const setRun = (state: BatchesState, run: RunPlanState): BatchesState => ({
  ...state,
  runs: { ...state.runs, [run.runId]: run },
})

/** A turn's token facts from its `ModelResponded`. */
export const turnTokensOf = (event: EventOf<"ModelResponded">): TurnTokens => {
  const exact =
    event.promptTokenIds !== undefined &&
    event.tokenIds !== undefined &&
    event.logprobs !== undefined &&
    event.logprobs.length === event.tokenIds.length &&
    event.temperature !== undefined &&
    event.weightVersions !== undefined
  return {
    exact,
    tokens: event.tokenIds?.length ?? event.usage.completionTokens,
    spans: event.weightVersions ?? null,
  }
}

/** What the gate and the token checks made of one kept sample at a step. */
type SampleVerdict =
  | { readonly kept: true; readonly sample: PlannedSample }
  | { readonly kept: false; readonly reason: DropReason }

/** Whether a turn's spans cover exactly its `tokens` sampled ids (the gate checks the tiling itself). */
const spansEnd = (spans: ReadonlyArray<WeightVersionSpan>): number =>
  spans.reduce((end, span) => Math.max(end, span.end), 0)

const judgeSample = (
  state: BatchesState,
  run: RunPlanState,
  group: string,
  decision: KeptSample,
  step: number,
): SampleVerdict => {
  const facts = bucketGet(state.rewards.episodes, decision.sampleId)
  const turns = bucketGet(state.tokens, decision.sampleId) ?? {}
  const spans: Array<ReadonlyArray<WeightVersionSpan>> = []
  for (const { turn } of decision.turns) {
    const tokens = ownValue(turns, String(turn))
    if (tokens === undefined || !tokens.exact || tokens.spans === null)
      return { kept: false, reason: "no_token_ids" }
    if (spansEnd(tokens.spans) !== tokens.tokens) return { kept: false, reason: "bad_versions" }
    spans.push(tokens.spans)
  }
  const gate = gateSample({ sample: decision.sampleId, turns: spans }, step, run.staleness)
  if (Result.isFailure(gate)) return { kept: false, reason: "bad_versions" }
  const verdict = gate.success
  if (verdict.verdict === "drop") return { kept: false, reason: verdict.reason }
  const masked =
    verdict.verdict === "mask"
      ? verdict.masked.map((range) => ({ ...range, turn: decision.turns[range.turn]!.turn }))
      : []
  const total = decision.turns.reduce((sum, { turn }) => sum + ownValue(turns, String(turn))!.tokens, 0)
  const maskedTokens = masked.reduce((sum, range) => sum + range.end - range.start, 0)
  return {
    kept: true,
    sample: {
      episode: decision.sampleId,
      group,
      task: facts?.taskId ?? "",
      sample: facts?.sampleIndex ?? 0,
      score: decision.score,
      advantage: decision.advantage,
      turns: decision.turns.map(({ turn, advantage }) => ({ turn, advantage })),
      masked,
      trainedTokens: total - maskedTokens,
      lags: verdict.lags,
    },
  }
}

const reachedSize = (step: PlannedStep, batch: BatchSize): StepCloser | null => {
  if (step.sampleCount === 0) return null
  if ("groups" in batch) return step.groups.length >= batch.groups ? "groups" : null
  return step.trainedTokens >= batch.tokens ? "tokens" : null
}

const closeOpen = (run: RunPlanState, closedBy: StepCloser): RunPlanState => ({
  ...run,
  closed: { ...run.closed, [String(run.open.step)]: { ...run.open, closedBy } },
  open: emptyStep(run.runId, run.open.step + 1),
})

/** Removes a placed group's per-episode facts (rewards and tokens); its step keeps what it needs. */
const pruneGroup = (state: BatchesState, runId: string, group: string): BatchesState => {
  const rewardsRun = ownValue(state.rewards.runs, runId)
  const rewardGroup = rewardsRun === undefined ? undefined : bucketGet(rewardsRun.groups, group)
  if (rewardsRun === undefined || rewardGroup === undefined) return state
  let episodes = state.rewards.episodes
  let tokens = state.tokens
  for (const episode of Object.values(rewardGroup.samples)) {
    episodes = bucketSet(episodes, episode, undefined)
    tokens = bucketSet(tokens, episode, undefined)
  }
  const runs = {
    ...state.rewards.runs,
    [runId]: { ...rewardsRun, groups: bucketSet(rewardsRun.groups, group, undefined) },
  }
  return { ...state, tokens, rewards: { runs, episodes } }
}

/** Places group `group` of `runId` in the open step if its decision is there and it is not placed yet. */
const placeGroup = (state: BatchesState, runId: string, group: string): BatchesState => {
  const run = ownValue(state.runs, runId)
  if (run === undefined || run.configError !== null || ownValue(run.placed, group) !== undefined) return state
  const rewardsRun = ownValue(state.rewards.runs, runId)
  const decision = rewardsRun === undefined ? undefined : bucketGet(rewardsRun.groups, group)?.decision
  if (decision === undefined || decision === null) return state
  const step = run.open.step
  const kept: PlannedSample[] = []
  const drops: DropReason[] = []
  for (const sample of decision.samples) {
    if (!sample.kept) continue
    const verdict = judgeSample(state, run, group, sample, step)
    if (verdict.kept) kept.push(verdict.sample)
    else drops.push(verdict.reason)
  }
  const open = run.open
  const filled: PlannedStep = {
    ...open,
    groups: kept.length > 0 ? [...open.groups, group] : open.groups,
    placedGroups: open.placedGroups + 1,
    samples: [...open.samples, ...kept],
    sampleCount: open.sampleCount + kept.length,
    drops: addCounts(addCounts(open.drops, decision.droppedSamples), countReasons(drops)),
    lags: mergeLagHistograms([open.lags, ...kept.map((sample) => sample.lags)]),
    trainedTokens: open.trainedTokens + kept.reduce((sum, sample) => sum + sample.trainedTokens, 0),
  }
  const { [group]: _placedNow, ...started } = run.started
  let next: RunPlanState = {
    ...run,
    open: filled,
    started,
    groupsCompleted: run.groupsCompleted + 1,
    placed: { ...run.placed, [group]: step },
  }
  const closer =
    reachedSize(filled, run.batch) ?? (run.finished && filled.sampleCount > 0 ? "run_finished" : null)
  if (closer !== null) next = closeOpen(next, closer)
  return pruneGroup(setRun(state, next), runId, group)
}

/** Places every group of a run whose decision is available, in group-key order (a `RunStarted` late). */
const placeRun = (state: BatchesState, runId: string): BatchesState => {
  const rewardsRun = ownValue(state.rewards.runs, runId)
  if (rewardsRun === undefined) return state
  const keys = Object.values(rewardsRun.groups)
    .flatMap((bucket) => Object.keys(bucket))
    .sort()
  return keys.reduce((acc, key) => placeGroup(acc, runId, key), state)
}

/** The run and group an episode's facts place it in, or undefined when it is not in an RL run. */
const placementOf = (
  state: BatchesState,
  episodeId: string,
): { runId: string; group: string } | undefined => {
  const facts = bucketGet(state.rewards.episodes, episodeId)
  if (facts === undefined || facts.runId === null || facts.group === null) return undefined
  return { runId: facts.runId, group: facts.group }
}

/** Whether an event placing an episode in `runId`'s group is one to fold: an RL run, a group not yet placed. */
const opensEpisode = (state: BatchesState, runId: string | undefined, group: string): runId is string => {
  if (runId === undefined) return false
  const run = ownValue(state.runs, runId)
  return run !== undefined && ownValue(run.placed, group) === undefined
}

const updateRun = (
  state: BatchesState,
  runId: string,
  change: (run: RunPlanState) => RunPlanState,
): BatchesState => {
  const run = ownValue(state.runs, runId)
  return run === undefined ? state : setRun(state, change(run))
}

/** Drops the per-sample details of a consumed step (its summary stays). */
const pruneStep = (run: RunPlanState, step: number): RunPlanState => {
  const closed = ownValue(run.closed, String(step))
  if (closed === undefined || closed.pruned) return run
  return { ...run, closed: { ...run.closed, [String(step)]: { ...closed, samples: [], pruned: true } } }
}

const setEndpoint = (
  state: BatchesState,
  model: string,
  endpoint: string,
  version: EndpointVersion,
): BatchesState => ({
  ...state,
  endpoints: {
    ...state.endpoints,
    [model]: { ...(ownValue(state.endpoints, model) ?? {}), [endpoint]: version },
  },
})

export interface PlanOptions {
  /** Keep the per-sample details of consumed steps (a derivation of an old step needs them). */
  readonly keepConsumed: boolean
}

/** The plan fold with its options; `applyBatchPlan` is the projection's (consumed steps pruned). */
export const makeApplyBatchPlan =
  (options: PlanOptions) =>
  (state: BatchesState, envelope: Envelope): BatchesState => {
    const { event } = envelope
    switch (event.type) {
      case "RunStarted": {
        if (event.kind !== "rl" || ownValue(state.runs, event.runId) !== undefined) return state
        const withRun = setRun(state, newRun(event.runId, event.model, event.config))
        return placeRun({ ...withRun, rewards: applyRewards(withRun.rewards, envelope) }, event.runId)
      }
      case "RunFinished":
        return updateRun(state, event.runId, (run) => {
          const finished = { ...run, finished: true }
          return run.open.sampleCount > 0 ? closeOpen(finished, "run_finished") : finished
        })
      case "EpisodeStarted":
      case "SampleScored": {
        const group = event.group ?? event.taskId
        if (!opensEpisode(state, event.runId, group)) return state
        const next = { ...state, rewards: applyRewards(state.rewards, envelope) }
        return placeGroup(next, event.runId, group)
      }
      case "ModelResponded":
      case "TurnAssessed":
      case "EpisodeFinished": {
        const where = placementOf(state, event.episodeId)
        if (where === undefined) return state
        let next: BatchesState = { ...state, rewards: applyRewards(state.rewards, envelope) }
        if (event.type === "ModelResponded") {
          const turns = bucketGet(next.tokens, event.episodeId) ?? {}
          next = {
            ...next,
            tokens: bucketSet(next.tokens, event.episodeId, {
              ...turns,
              [String(event.turn)]: turnTokensOf(event),
            }),
          }
        }
        return placeGroup(next, where.runId, where.group)
      }
      case "GroupStarted":
        return updateRun(state, event.runId, (run) =>
          ownValue(run.started, event.group) !== undefined || ownValue(run.placed, event.group) !== undefined
            ? run
            : {
                ...run,
                groupsStarted: run.groupsStarted + 1,
                started: {
                  ...run.started,
                  [event.group]: {
                    group: event.group,
                    taskId: event.taskId,
                    epoch: event.epoch,
                    samples: event.samples,
                    version: event.version,
                  },
                },
              },
        )
      case "BatchPublished":
        return updateRun(state, event.runId, (run) => ({
          ...run,
          published: { ...run.published, [String(event.step)]: { hash: event.hash, blob: event.blob } },
        }))
      case "BatchConsumed":
        return updateRun(state, event.runId, (run) => {
          const consumed = { ...run, consumed: { ...run.consumed, [String(event.step)]: true as const } }
          return options.keepConsumed ? consumed : pruneStep(consumed, event.step)
        })
      case "TrainerStepReported": {
        const { type: _type, runId, ...report } = event
        return updateRun(state, runId, (run) => ({ ...run, lastReport: report }))
      }
      case "WeightsPublished":
        return event.endpoint === undefined
          ? { ...state, announced: { ...state.announced, [event.model]: event.version } }
          : setEndpoint(state, event.model, event.endpoint, { version: event.version, ok: true })
      case "EndpointWeightsUpdated":
        return setEndpoint(
          state,
          event.model,
          event.endpoint,
          event.ok ? { version: event.version, ok: true } : { version: null, ok: false },
        )
      default:
        return state
    }
  }

export const applyBatchPlan = makeApplyBatchPlan({ keepConsumed: false })

export const batches: Projection<BatchesState> = {
  name: "batches",
  types: [
    "RunStarted",
    "RunFinished",
    "EpisodeStarted",
    "ModelResponded",
    "TurnAssessed",
    "EpisodeFinished",
    "SampleScored",
    "GroupStarted",
    "BatchPublished",
    "BatchConsumed",
    "TrainerStepReported",
    "WeightsPublished",
    "EndpointWeightsUpdated",
  ],
  version: 1,
  initial: initialBatches,
  apply: applyBatchPlan,
}
