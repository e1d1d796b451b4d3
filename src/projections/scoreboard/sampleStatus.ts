/**
 * The one notion of how a sample of an evaluation run stands, and of a failed one: `sampleStatus`
 * reads a sample's facts (how its episode ended, its verdict, whether it is still running) and
 * `isFailedSample` says which statuses count as wrong without the agent's answer being judged
 * wrong. The scoreboard's rows, the report, the leaderboard and the eval driver's live progress
 * all decide through these two, so a progress line cannot count a failure the report does not.
 * Pure; here, below the evaluator, because the scoreboard may not import actors.
 */
import type { EpisodeOutcome } from "../../events/schema.ts"
import type { SampleStatus } from "./metrics.ts"
import type { RunBoardStatus, SampleRow } from "./scoreboard.ts"

/** Endings that say nothing about the agent's answer: the sample counts as wrong and is listed. */
export const crashedOutcomes: ReadonlySet<EpisodeOutcome> = new Set([
  "model_error",
  "tool_infrastructure_error",
  "cancelled",
])

/**
 * The status of one sample: `missing` (never started, still running, or finished but not scored
 * yet), `crashed` (an infrastructure ending, or started and left unfinished by a run that has
 * ended), `timeout`, `judge_failed`, or `scored`. Only the row's `outcome` and `verdict` matter.
 */
export const sampleStatus = (
  row: Pick<SampleRow, "outcome" | "verdict"> | null,
  running: boolean,
  runStatus: RunBoardStatus,
): SampleStatus => {
  if (row?.outcome == null) {
    if (row?.verdict != null) return row.verdict === "judge_failed" ? "judge_failed" : "scored"
    return running && runStatus !== "running" ? "crashed" : "missing"
  }
  if (row.outcome === "timeout") return "timeout"
  if (crashedOutcomes.has(row.outcome)) return "crashed"
  if (row.verdict === null) return "missing"
  return row.verdict === "judge_failed" ? "judge_failed" : "scored"
}

/**
 * A failed sample: done, and wrong without a verdict on its answer — it crashed (the model server
 * or the tools ended it, it was cancelled, or it never ran to an end), timed out, or its judge
 * gave no usable verdict. `missing` is not done yet; `scored` has its verdict.
 */
export const isFailedSample = (status: SampleStatus): boolean =>
  status === "crashed" || status === "timeout" || status === "judge_failed"
