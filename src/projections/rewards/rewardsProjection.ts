/**
 * The `rewards` projection: per run and GRPO group (the k samples of one task drawn together, k
 * from `RunStarted`; the group is `EpisodeStarted.group` / `SampleScored.group` when given, since an
 * RL run samples a task again in later epochs as a new group, else the task id, as in an
 * evaluation), it folds what each sample needs for `GroupSample` — the episode's end state
 * (`EpisodeFinished.outcome`), the flags of each model turn (`TurnAssessed`, which the agent records
 * only for flagged turns, so a turn with a `ModelResponded` and no assessment has none), the tokens
 * the policy sampled (each turn's `tokenIds` length when token-exact, else its
 * `usage.completionTokens`) and the verdict and score (`SampleScored`) — and once every one of the
 * k samples has finished and been scored, the group's decision by `decideGroup`. The profile is the
 * run's `RunStarted.config.rewards` section when it has one (decoded by `decodeRewardConfig`; a bad
 * section is recorded on the run and none of its groups is decided), else `agentcpm` with its
 * defaults.
 *
 * Order and redelivery: every fact is stored under its own key (episode, turn, sample index) and
 * overwritten, never accumulated, and flags merge as a set, so a redelivered event changes nothing;
 * a group's decision is recomputed from its stored facts whenever one of them changes, so it is a
 * function of the facts, not of the order events of different episodes arrived in. Two episodes
 * claiming one sample index of a group (never expected) resolve to the smaller episode id, again
 * independent of order. The state is plain JSON (decisions are stored as JSON reads them back, so a
 * `-0` advantage is a `0`), so the runner checkpoints it as it is.
 */
import * as Result from "effect/Result"
import type { Envelope, EpisodeOutcome, EventOf } from "../../events/schema.ts"
import { type Buckets, bucketGet, bucketSet, bucketValues } from "../buckets.ts"
import { ownValue, type Projection } from "../projection.ts"
import { decideGroup } from "./decideGroup.ts"
import type { GroupDecision } from "./groupDecision.ts"
import type { GroupSample } from "./groupSamples.ts"
import { decodeRewardConfig, defaultRewardConfig, type RewardConfig } from "./rewardConfig.ts"

type TurnFlag = EventOf<"TurnAssessed">["flags"][number]
type Verdict = EventOf<"SampleScored">["verdict"]

/** What one model turn contributes: its flags and the tokens sampled in it. */
export interface TurnFacts {
  readonly flags: ReadonlyArray<TurnFlag>
  readonly tokens: number
}

/** Everything folded about one episode, whichever of its events came first. */
export interface EpisodeFacts {
  readonly episodeId: string
  readonly runId: string | null
  readonly taskId: string | null
  /** The group key: the event's `group`, else the task id. */
  readonly group: string | null
  readonly sampleIndex: number | null
  readonly outcome: EpisodeOutcome | null
  /** Keyed by the turn number (as a string, JSON's only key type). */
  readonly turns: Readonly<Record<string, TurnFacts>>
  readonly verdict: Verdict | null
  readonly score: number | null
}

export interface RewardGroup {
  /** The key of the group in its run: `group` when the events name one, else the task id. */
  readonly group: string
  readonly taskId: string
  /** sample index → the episode that is that sample. */
  readonly samples: Readonly<Record<string, string>>
  /** Set once all k samples finished and were scored; recomputed if one of their facts changes. */
  readonly decision: GroupDecision | null
  /** Why `decideGroup` refused the complete group (e.g. a score outside [0, 1]), else null. */
  readonly error: string | null
}

export interface RunRewards {
  readonly runId: string
  /** Null until `RunStarted` is folded (or when it gave no k): no group completes without it. */
  readonly k: number | null
  readonly started: boolean
  readonly config: RewardConfig
  /** Why the run's `config.rewards` did not decode; its groups are then never decided. */
  readonly configError: string | null
  /** group key → group (bucketed: a run may have thousands of groups). */
  readonly groups: Buckets<RewardGroup>
}

export interface RewardsState {
  readonly runs: Readonly<Record<string, RunRewards>>
  /** episodeId → its facts (bucketed: an update copies one bucket, not every episode). */
  readonly episodes: Buckets<EpisodeFacts>
}

export const initialRewards: RewardsState = { runs: {}, episodes: {} }

const flagOrder: ReadonlyArray<TurnFlag> = ["FORMAT_ERROR", "REPEAT", "TOOL_FAILED", "FAILED"]

/** A set union in one fixed order, so merging flags commutes and is idempotent. */
const mergeFlags = (a: ReadonlyArray<TurnFlag>, b: ReadonlyArray<TurnFlag>): ReadonlyArray<TurnFlag> =>
  flagOrder.filter((flag) => a.includes(flag) || b.includes(flag))

const emptyEpisode = (episodeId: string): EpisodeFacts => ({
  episodeId,
  runId: null,
  taskId: null,
  group: null,
  sampleIndex: null,
  outcome: null,
  turns: {},
  verdict: null,
  score: null,
})

const emptyRun = (runId: string): RunRewards => ({
  runId,
  k: null,
  started: false,
  config: defaultRewardConfig,
  configError: null,
  groups: {},
})

/** The reward profile a `RunStarted` config names (its `rewards` section), or why it is unusable. */
export const rewardConfigOf = (config: unknown): { config: RewardConfig; error: string | null } => {
  if (
    typeof config !== "object" ||
    config === null ||
    Array.isArray(config) ||
    !Object.hasOwn(config, "rewards")
  )
    return { config: defaultRewardConfig, error: null }
  const decoded = decodeRewardConfig((config as Record<string, unknown>).rewards)
  return Result.isSuccess(decoded)
    ? { config: decoded.success, error: null }
    : { config: defaultRewardConfig, error: decoded.failure.reason }
}

/**
 * An RL run's group size from its config (`groupSize`), for a `RunStarted` that gives no `k`: the
 * RL config is what fixes n there. Null when absent or not a count.
 */
const groupSizeOf = (config: unknown): number | null => {
  if (typeof config !== "object" || config === null || Array.isArray(config)) return null
  const size = (config as Record<string, unknown>).groupSize
  return typeof size === "number" && Number.isSafeInteger(size) && size >= 1 ? size : null
}

/** A sample as the profiles take it, or undefined while its episode has not finished or been scored. */
const sampleOf = (facts: EpisodeFacts | undefined): GroupSample | undefined => {
  if (facts === undefined || facts.outcome === null || facts.verdict === null || facts.score === null)
    return undefined
  return {
    sampleId: facts.episodeId,
    outcome: facts.outcome,
    verdict: facts.verdict,
    score: facts.score,
    turns: Object.keys(facts.turns).map((turn) => ({ turn: Number(turn), flags: facts.turns[turn]!.flags })),
    tokens: Object.values(facts.turns).reduce((sum, turn) => sum + turn.tokens, 0),
  }
}

/** JSON's reading of a value: what a checkpoint restores, so a live and a restored state are equal. */
const asJson = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T

/** The group with its decision recomputed from the facts its samples have now. */
const decided = (state: RewardsState, run: RunRewards, group: RewardGroup): RewardGroup => {
  const blank = { ...group, decision: null, error: null }
  if (run.k === null || run.configError !== null) return blank
  const samples: GroupSample[] = []
  for (const episodeId of Object.values(group.samples)) {
    const sample = sampleOf(bucketGet(state.episodes, episodeId))
    if (sample !== undefined) samples.push(sample)
  }
  if (samples.length < run.k) return blank
  const decision = decideGroup(run.config, samples)
  return Result.isSuccess(decision)
    ? { ...blank, decision: asJson(decision.success) }
    : { ...blank, error: decision.failure.reason }
}

const setRun = (state: RewardsState, run: RunRewards): RewardsState => ({
  ...state,
  runs: { ...state.runs, [run.runId]: run },
})

/** Recomputes the group `key` of `runId` (after a fact of it changed). */
const refreshGroup = (state: RewardsState, runId: string, key: string): RewardsState => {
  const run = ownValue(state.runs, runId)
  const group = run === undefined ? undefined : bucketGet(run.groups, key)
  if (run === undefined || group === undefined) return state
  return setRun(state, { ...run, groups: bucketSet(run.groups, key, decided(state, run, group)) })
}

/** Recomputes every group of a run (its k or its profile changed). */
const refreshRun = (state: RewardsState, runId: string): RewardsState => {
  const run = ownValue(state.runs, runId)
  if (run === undefined) return state
  let groups = run.groups
  for (const group of bucketValues(run.groups))
    groups = bucketSet(groups, group.group, decided(state, run, group))
  return setRun(state, { ...run, groups })
}

/** Where an episode belongs: its run, its task, its group key (`group ?? taskId`), its index. */
interface Placement {
  readonly episodeId: string
  readonly runId: string
  readonly taskId: string
  readonly group?: string
  readonly sampleIndex: number
}

/** The key of the group an event places its episode in: its `group`, else (old logs) its task. */
export const groupKeyOf = (placement: { readonly taskId: string; readonly group?: string }): string =>
  placement.group ?? placement.taskId

/**
 * Records that `episodeId` is sample `sampleIndex` of group `group ?? taskId` in run `runId` (from
 * `EpisodeStarted` or `SampleScored`, whichever comes first), and the episode's place the other way.
 */
const placeEpisode = (state: RewardsState, placement: Placement): RewardsState => {
  const { episodeId, runId, taskId, sampleIndex } = placement
  const groupKey = groupKeyOf(placement)
  const facts = bucketGet(state.episodes, episodeId) ?? emptyEpisode(episodeId)
  const next: RewardsState =
    facts.runId === null
      ? {
          ...state,
          episodes: bucketSet(state.episodes, episodeId, {
            ...facts,
            runId,
            taskId,
            group: groupKey,
            sampleIndex,
          }),
        }
      : state
  const run = ownValue(next.runs, runId) ?? emptyRun(runId)
  const group = bucketGet(run.groups, groupKey) ?? {
    group: groupKey,
    taskId,
    samples: {},
    decision: null,
    error: null,
  }
  const key = String(sampleIndex)
  const holder = ownValue(group.samples, key)
  if (holder !== undefined && holder <= episodeId) return next
  const placed = { ...group, samples: { ...group.samples, [key]: episodeId } }
  return setRun(next, { ...run, groups: bucketSet(run.groups, groupKey, placed) })
}

/** Updates an episode's facts, then the group it belongs to (when known). */
const updateEpisode = (
  state: RewardsState,
  episodeId: string,
  update: (facts: EpisodeFacts) => EpisodeFacts,
): RewardsState => {
  const facts = update(bucketGet(state.episodes, episodeId) ?? emptyEpisode(episodeId))
  const next = { ...state, episodes: bucketSet(state.episodes, episodeId, facts) }
  return facts.runId === null || facts.group === null ? next : refreshGroup(next, facts.runId, facts.group)
}

const withTurn = (facts: EpisodeFacts, turn: number, change: (old: TurnFacts) => TurnFacts): EpisodeFacts => {
  const key = String(turn)
  return {
    ...facts,
    turns: { ...facts.turns, [key]: change(ownValue(facts.turns, key) ?? { flags: [], tokens: 0 }) },
  }
}

export const applyRewards = (state: RewardsState, { event }: Envelope): RewardsState => {
  switch (event.type) {
    case "RunStarted": {
      const run = ownValue(state.runs, event.runId) ?? emptyRun(event.runId)
      const { config, error } = rewardConfigOf(event.config)
      const started = {
        ...run,
        k: event.k ?? groupSizeOf(event.config),
        started: true,
        config,
        configError: error,
      }
      return refreshRun(setRun(state, started), event.runId)
    }
    case "EpisodeStarted": {
      if (event.runId === undefined) return state
      const placed = placeEpisode(state, { ...event, runId: event.runId })
      return refreshGroup(placed, event.runId, groupKeyOf(event))
    }
    case "ModelResponded": {
      const tokens = event.tokenIds?.length ?? event.usage.completionTokens
      return updateEpisode(state, event.episodeId, (facts) =>
        withTurn(facts, event.turn, (old) => ({ ...old, tokens })),
      )
    }
    case "TurnAssessed":
      return updateEpisode(state, event.episodeId, (facts) =>
        withTurn(facts, event.turn, (old) => ({ ...old, flags: mergeFlags(old.flags, event.flags) })),
      )
    case "EpisodeFinished":
      return updateEpisode(state, event.episodeId, (facts) => ({ ...facts, outcome: event.outcome }))
    case "SampleScored": {
      const placed = placeEpisode(state, event)
      return updateEpisode(placed, event.episodeId, (facts) => ({
        ...facts,
        verdict: event.verdict,
        score: event.score,
      }))
    }
    default:
      return state
  }
}

export const rewards: Projection<RewardsState> = {
  name: "rewards",
  types: [
    "RunStarted",
    "EpisodeStarted",
    "ModelResponded",
    "TurnAssessed",
    "EpisodeFinished",
    "SampleScored",
  ],
  // 2: groups are keyed by `group ?? taskId` and carry both (a v1 checkpoint is rebuilt).
  version: 2,
  initial: initialRewards,
  apply: applyRewards,
}
