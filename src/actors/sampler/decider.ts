/**
 * The sampler's pure core: which GRPO group comes next (a seeded shuffle of the task set per epoch,
 * so a resumed run draws the same order), what the run's own stream says has happened (groups
 * started, samples scored, batches published and acknowledged, the run's end), and whether one more
 * group may start now. Three brakes decide it: the episodes in flight (`concurrency`), the trainer's
 * back-pressure (no more than `maxUnconsumedBatches` published batches waiting), and staleness:
 * with batches of B groups, groups that can still enter a step are bounded by (v + η + 1)·B, v the
 * weight version the endpoints serve or, when older, the version the oldest group in flight started
 * under — so a group is never placed past the step its first tokens may train at, however long its
 * episodes run. η = 0 makes training synchronous: one step's groups, then the update.
 */
import type { Envelope } from "../../events/schema.ts"
import type { StartedGroup } from "../../projections/batches/batchPlan.ts"

/** The group id of the `index`-th group a run starts (0-based); sorts in start order. */
export const groupIdOf = (index: number): string => `g${String(index).padStart(6, "0")}`

/** The episode of sample `sample` of group `group` in run `runId`. */
export const rlEpisodeId = (runId: string, group: string, sample: number): string =>
  `${runId}/${group}/${sample}`

/**
 * A 32-bit seeded generator (mulberry32): small, fast and the same on every platform, which is all
 * a recorded shuffle needs.
 */
const generator = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The task order of one epoch: a Fisher–Yates shuffle seeded by the run's seed and the epoch. */
export const epochOrder = (taskIds: ReadonlyArray<string>, seed: number, epoch: number): string[] => {
  const order = [...taskIds]
  const next = generator((Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const held = order[i]!
    order[i] = order[j]!
    order[j] = held
  }
  return order
}

/** The task and epoch of the `index`-th group. */
export const groupAt = (
  taskIds: ReadonlyArray<string>,
  seed: number,
  index: number,
): { readonly taskId: string; readonly epoch: number } => {
  const epoch = Math.floor(index / taskIds.length)
  return { taskId: epochOrder(taskIds, seed, epoch)[index % taskIds.length]!, epoch }
}

/** A group as `GroupStarted` records it: the batch plan's shape, shared. */
export type { StartedGroup } from "../../projections/batches/batchPlan.ts"

/** What the run's own stream (and its model's weight events) say, folded. */
export interface SamplerState {
  readonly runId: string
  readonly model: string | null
  readonly started: boolean
  readonly finished: boolean
  /** In start order (group ids sort that way). */
  readonly groups: Readonly<Record<string, StartedGroup>>
  /** group → sample indexes scored. */
  readonly scored: Readonly<Record<string, ReadonlyArray<number>>>
  readonly published: ReadonlyArray<number>
  readonly consumed: ReadonlyArray<number>
  /**
   * endpoint → the last version it took (ok updates only, since the run started), while it takes
   * calls (an ejected or removed endpoint is left out); empty until the first update.
   */
  readonly endpointVersions: Readonly<Record<string, string>>
  /**
   * Groups this invocation gave up on: a sample's episode could not be run to an end (twice). Not
   * from the log: a resumed run tries them again. They hold no brake and keep no run from ending.
   */
  readonly abandoned: ReadonlyArray<string>
}

export const initialSampler = (runId: string): SamplerState => ({
  runId,
  model: null,
  started: false,
  finished: false,
  groups: {},
  scored: {},
  published: [],
  consumed: [],
  endpointVersions: {},
  abandoned: [],
})

/** Gives up on `group` for this invocation (see `SamplerState.abandoned`). */
export const abandonGroup = (state: SamplerState, group: string): SamplerState =>
  state.abandoned.includes(group) ? state : { ...state, abandoned: [...state.abandoned, group] }

const withNumber = (list: ReadonlyArray<number>, value: number): ReadonlyArray<number> =>
  list.includes(value) ? list : [...list, value].sort((a, b) => a - b)

/** Folds one event; events of other runs and models change nothing, a redelivered one neither. */
export const evolveSampler = (state: SamplerState, { event }: Envelope): SamplerState => {
  switch (event.type) {
    case "RunStarted":
      return event.runId === state.runId ? { ...state, started: true, model: event.model } : state
    case "RunFinished":
      return event.runId === state.runId ? { ...state, finished: true } : state
    case "GroupStarted":
      if (event.runId !== state.runId || Object.hasOwn(state.groups, event.group)) return state
      return {
        ...state,
        groups: {
          ...state.groups,
          [event.group]: {
            group: event.group,
            taskId: event.taskId,
            epoch: event.epoch,
            samples: event.samples,
            version: event.version,
          },
        },
      }
    case "SampleScored": {
      if (event.runId !== state.runId || event.group === undefined) return state
      const before = Object.hasOwn(state.scored, event.group) ? state.scored[event.group]! : []
      return { ...state, scored: { ...state.scored, [event.group]: withNumber(before, event.sampleIndex) } }
    }
    case "BatchPublished":
      return event.runId === state.runId
        ? { ...state, published: withNumber(state.published, event.step) }
        : state
    case "BatchConsumed":
      return event.runId === state.runId
        ? { ...state, consumed: withNumber(state.consumed, event.step) }
        : state
    case "EndpointWeightsUpdated":
      if (state.model === null || event.model !== state.model || !event.ok) return state
      return { ...state, endpointVersions: { ...state.endpointVersions, [event.endpoint]: event.version } }
    case "EndpointEjected":
    case "EndpointLeft": {
      // An endpoint that takes no calls samples no tokens: its old version holds nothing back
      // (it counts again from its next successful update).
      if (state.model === null || event.model !== state.model) return state
      if (!Object.hasOwn(state.endpointVersions, event.endpoint)) return state
      const { [event.endpoint]: _gone, ...rest } = state.endpointVersions
      return { ...state, endpointVersions: rest }
    }
    default:
      return state
  }
}

/** Groups started whose samples are not all scored yet (and not given up on), in start order. */
export const openGroups = (state: SamplerState): ReadonlyArray<StartedGroup> =>
  Object.values(state.groups)
    .filter(
      (group) =>
        (Object.hasOwn(state.scored, group.group) ? state.scored[group.group]!.length : 0) < group.samples &&
        !state.abandoned.includes(group.group),
    )
    .sort((a, b) => (a.group < b.group ? -1 : 1))

/** The samples of `group` not yet scored. */
export const unscoredSamples = (state: SamplerState, group: StartedGroup): ReadonlyArray<number> => {
  const done = Object.hasOwn(state.scored, group.group) ? state.scored[group.group]! : []
  return Array.from({ length: group.samples }, (_, i) => i).filter((i) => !done.includes(i))
}

const integerVersion = /^(0|[1-9][0-9]*)$/

/**
 * The weight version the RL model serves, as the staleness brake counts it: the lowest version any
 * updated endpoint took last (a lagging endpoint samples old tokens), 0 before any update. A label
 * that is not an integer counts as 0 (the batches' gate refuses such tokens with its own error).
 */
export const liveVersion = (state: SamplerState): number => {
  const versions = Object.values(state.endpointVersions).map((v) => (integerVersion.test(v) ? Number(v) : 0))
  return versions.length === 0 ? 0 : Math.min(...versions)
}

export interface SamplerLimits {
  readonly groupSize: number
  /** Episodes in flight at most. */
  readonly concurrency: number
  /** Groups per step (`batch: {groups}`), or undefined for a token budget. */
  readonly batchGroups: number | undefined
  /** η. */
  readonly maxLag: number
  readonly maxUnconsumedBatches: number
  /** Groups the task set gives (tasks × epochs). */
  readonly totalGroups: number
  /** Stop once this many training steps are planned (optional). */
  readonly steps: number | undefined
}

/** What the batch plan knows that the run's stream does not: groups already in a step, and steps closed. */
export interface PlanView {
  /** Groups placed into a step with at least one kept sample (closed steps and the open one). */
  readonly groupsInSteps: number
  readonly stepsClosed: number
}

export type StartVerdict =
  | { readonly start: true }
  | {
      readonly start: false
      /** Why not: the brake that holds, or `done` when no group is left to start. */
      readonly why: "done" | "concurrency" | "back_pressure" | "staleness"
    }

/** The brake that holds a group back (`done`: none is left to start). */
export type Brake = Extract<StartVerdict, { readonly start: false }>["why"]

/** Whether one more group may start now. */
export const mayStartGroup = (state: SamplerState, limits: SamplerLimits, plan: PlanView): StartVerdict => {
  const started = Object.keys(state.groups).length
  const inFlight = openGroups(state).length
  if (state.finished || started >= limits.totalGroups) return { start: false, why: "done" }
  if (limits.steps !== undefined) {
    if (plan.stepsClosed >= limits.steps) return { start: false, why: "done" }
    if (
      limits.batchGroups !== undefined &&
      plan.groupsInSteps + inFlight >= limits.steps * limits.batchGroups
    )
      return { start: false, why: "done" }
  }
  if ((inFlight + 1) * limits.groupSize > Math.max(limits.concurrency, limits.groupSize))
    return { start: false, why: "concurrency" }
  const unconsumed = state.published.filter((step) => !state.consumed.includes(step)).length
  if (unconsumed >= limits.maxUnconsumedBatches) return { start: false, why: "back_pressure" }
  if (limits.batchGroups !== undefined) {
    // The oldest group in flight sets the bound when it is older than the live version: even if it
    // completes last, after every group started since, it lands at a step it can still train at.
    const oldest = openGroups(state).reduce(
      (low, group) => Math.min(low, integerVersion.test(group.version) ? Number(group.version) : 0),
      Number.POSITIVE_INFINITY,
    )
    const bound = (Math.min(liveVersion(state), oldest) + limits.maxLag + 1) * limits.batchGroups
    if (plan.groupsInSteps + inFlight + 1 > bound) return { start: false, why: "staleness" }
  }
  return { start: true }
}

/** Whether the run has nothing left to do: no group to start and none in flight. */
export const samplingDone = (state: SamplerState, limits: SamplerLimits, plan: PlanView): boolean =>
  openGroups(state).length === 0 &&
  (Object.keys(state.groups).length >= limits.totalGroups ||
    (limits.steps !== undefined &&
      (plan.stepsClosed >= limits.steps ||
        (limits.batchGroups !== undefined && plan.groupsInSteps >= limits.steps * limits.batchGroups))))
