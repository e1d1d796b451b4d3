/**
 * The `runs` projection: one summary per run (eval, RL or ad-hoc) from `RunStarted`, `RunFinished`,
 * `EpisodeStarted`, `EpisodeFinished` and `SampleScored`: its status, model, benchmark and k, how
 * many episodes started and finished (by outcome) and how many samples were scored (by verdict).
 * `EpisodeFinished` names only its episode, so the fold remembers which run each open episode
 * belongs to and forgets it when the episode finishes; the state stays as small as the concurrency.
 */
import type { Envelope, EpisodeOutcome, EventOf } from "../../events/schema.ts"
import { type Buckets, bucketGet, bucketSet } from "../buckets.ts"
import { ownValue, type Projection } from "../projection.ts"

export type RunStatus = "running" | "completed" | "failed" | "cancelled" | "unknown"
export type Verdict = EventOf<"SampleScored">["verdict"]

export interface RunSummary {
  readonly runId: string
  /** `unknown` until the run's `RunStarted` is seen (its episodes may be folded first under a filter). */
  readonly status: RunStatus
  readonly kind: EventOf<"RunStarted">["kind"] | null
  readonly model: string | null
  readonly benchmark: string | null
  readonly k: number | null
  readonly taskCount: number | null
  readonly startedAt: string | null
  readonly finishedAt: string | null
  readonly reason: string | null
  readonly episodes: {
    readonly started: number
    readonly finished: number
    readonly byOutcome: Readonly<Partial<Record<EpisodeOutcome, number>>>
  }
  readonly samples: {
    readonly scored: number
    readonly byVerdict: Readonly<Record<Verdict, number>>
    readonly scoreSum: number
  }
  /** Position of the last event that changed this run. */
  readonly lastPosition: number
}

export interface RunsState {
  readonly runs: Readonly<Record<string, RunSummary>>
  /** Episodes started in a run and not yet finished: episodeId → runId. */
  readonly openEpisodes: Buckets<string>
}

export const initialRuns: RunsState = { runs: {}, openEpisodes: {} }

const emptyRun = (runId: string, position: number): RunSummary => ({
  runId,
  status: "unknown",
  kind: null,
  model: null,
  benchmark: null,
  k: null,
  taskCount: null,
  startedAt: null,
  finishedAt: null,
  reason: null,
  episodes: { started: 0, finished: 0, byOutcome: {} },
  samples: { scored: 0, byVerdict: { correct: 0, incorrect: 0, judge_failed: 0 }, scoreSum: 0 },
  lastPosition: position,
})

const withRun = (
  state: RunsState,
  runId: string,
  position: number,
  change: (run: RunSummary) => RunSummary,
): RunsState["runs"] => ({
  ...state.runs,
  [runId]: { ...change(ownValue(state.runs, runId) ?? emptyRun(runId, position)), lastPosition: position },
})

const isTerminal = (status: RunStatus): boolean =>
  status === "completed" || status === "failed" || status === "cancelled"

const applyRuns = (state: RunsState, envelope: Envelope): RunsState => {
  const { event, position } = envelope
  switch (event.type) {
    case "RunStarted":
      return {
        ...state,
        runs: withRun(state, event.runId, position, (run) => ({
          ...run,
          // A late or repeated RunStarted refreshes the description but never reopens a finished run.
          status: isTerminal(run.status) ? run.status : "running",
          kind: event.kind,
          model: event.model,
          benchmark: event.benchmark ?? null,
          k: event.k ?? null,
          taskCount: event.taskCount ?? null,
          startedAt: run.startedAt ?? envelope.recordedAt,
        })),
      }
    case "RunFinished":
      return {
        ...state,
        runs: withRun(state, event.runId, position, (run) => ({
          ...run,
          status: event.status,
          reason: event.reason ?? null,
          finishedAt: envelope.recordedAt,
        })),
      }
    case "EpisodeStarted": {
      const runId = event.runId
      // Ad-hoc episodes belong to no run; a second start of an open episode is not a new episode.
      if (runId === undefined || bucketGet(state.openEpisodes, event.episodeId) !== undefined) return state
      return {
        runs: withRun(state, runId, position, (run) => ({
          ...run,
          episodes: { ...run.episodes, started: run.episodes.started + 1 },
        })),
        openEpisodes: bucketSet(state.openEpisodes, event.episodeId, runId),
      }
    }
    case "EpisodeFinished": {
      const runId = bucketGet(state.openEpisodes, event.episodeId)
      if (runId === undefined) return state
      return {
        runs: withRun(state, runId, position, (run) => ({
          ...run,
          episodes: {
            ...run.episodes,
            finished: run.episodes.finished + 1,
            byOutcome: {
              ...run.episodes.byOutcome,
              [event.outcome]: (run.episodes.byOutcome[event.outcome] ?? 0) + 1,
            },
          },
        })),
        openEpisodes: bucketSet(state.openEpisodes, event.episodeId, undefined),
      }
    }
    case "SampleScored":
      return {
        ...state,
        runs: withRun(state, event.runId, position, (run) => ({
          ...run,
          samples: {
            scored: run.samples.scored + 1,
            byVerdict: {
              ...run.samples.byVerdict,
              [event.verdict]: run.samples.byVerdict[event.verdict] + 1,
            },
            scoreSum: run.samples.scoreSum + event.score,
          },
        })),
      }
    default:
      return state
  }
}

export const runs: Projection<RunsState> = {
  name: "runs",
  types: ["RunStarted", "RunFinished", "EpisodeStarted", "EpisodeFinished", "SampleScored"],
  // 2: open episodes in hashed buckets.
  version: 2,
  initial: initialRuns,
  apply: applyRuns,
}
