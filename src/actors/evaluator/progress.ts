/**
 * How the samples of an evaluation count while it runs (`rollout eval`'s progress line): done,
 * correct, failed and, of the failed, those the model server or the tools caused. Whether a sample
 * failed is the scoreboard's own notion (`sampleStatus`, `isFailedSample`), so the progress line
 * cannot count a failure that the report and `rollout scores` do not. Pure.
 */
import type { EpisodeOutcome, EventOf } from "../../events/schema.ts"
import { isFailedSample, sampleStatus } from "../../projections/scoreboard/sampleStatus.ts"
import { infrastructureEndings } from "../../projections/scoreboard/scoreboard.ts"

export interface SampleCounts {
  /** Samples scored (judge failures included) or given up on. */
  readonly done: number
  readonly correct: number
  /**
   * Samples that count as wrong without a verdict so far: crashed, timed out, judge failed. A sample
   * the runner could not run counts as the scoreboard will count it: crashed when its episode
   * started and was left unfinished.
   */
  readonly failures: number
  /** Of `failures`, those the model server or the tools caused, or the runner could not run. */
  readonly infrastructure: number
}

export const noSamples: SampleCounts = { done: 0, correct: 0, failures: 0, infrastructure: 0 }

/** What the counts need of a sample that is done: the facts the scoreboard will read in the log. */
export type DoneSample =
  /** Scored; `outcome` is how its episode ended (null when the log does not say). */
  | {
      readonly kind: "scored"
      readonly verdict: EventOf<"SampleScored">["verdict"]
      readonly outcome: EpisodeOutcome | null
    }
  /**
   * The episode runner could not run it to an end, so the run ends `failed` with it unscored:
   * how its episode ended, if it did, and whether it started and is left unfinished (`open`).
   */
  | { readonly kind: "gave_up"; readonly outcome: EpisodeOutcome | null; readonly open: boolean }

export const countSample = (counts: SampleCounts, sample: DoneSample): SampleCounts => {
  // The status the scoreboard gives the sample; a given-up one once its run has ended failed.
  const status =
    sample.kind === "scored"
      ? sampleStatus({ outcome: sample.outcome, verdict: sample.verdict }, false, "running")
      : sampleStatus({ outcome: sample.outcome, verdict: null }, sample.open, "failed")
  const failed = isFailedSample(status)
  const infrastructure =
    failed &&
    (sample.kind === "gave_up" || (sample.outcome !== null && infrastructureEndings.has(sample.outcome)))
  return {
    done: counts.done + 1,
    correct: counts.correct + (sample.kind === "scored" && sample.verdict === "correct" ? 1 : 0),
    failures: counts.failures + (failed ? 1 : 0),
    infrastructure: counts.infrastructure + (infrastructure ? 1 : 0),
  }
}
