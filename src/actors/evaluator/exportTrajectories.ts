/**
 * Exports an evaluation run's trajectories, read from the log:
 *
 * - `sft`: one JSON line per finished sample in `<out>/sft.jsonl`:
 *   `{"messages": [...], "metadata": {run_id, task_id, sample, episode_id, outcome, verdict,
 *   correct, turns}}`, the messages as `rollout replay --format openai` prints them (system, user,
 *   assistant with `tool_calls`, `tool` with `tool_call_id`), every message the episode ever added.
 * - `agenttoleap`: AgentToLeaP's per-run folders, `<out>/<task>/<sample>/dialog.json` (the same
 *   messages, as a JSON array) and `result.json` (`{task_id, sample, run_id, episode_id, model,
 *   benchmark, outcome, final_answer, verdict, correct, score, turns, tool_calls, usage:
 *   {prompt_tokens, completion_tokens}}`); the task folder is the task id, percent-encoded.
 *
 * The ground truth is not in the log, so it is in neither format.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import type { Envelope } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { RunBoard, ScoreboardState } from "../../projections/scoreboard.ts"
import { type BoardSample, boardSamples } from "../../projections/scoreboardMetrics.ts"
import { openAiMessage, toChat } from "../agent/replay.ts"

export const EXPORT_FORMATS = ["sft", "agenttoleap"] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

export interface ExportOptions {
  /** Only samples the scorer found correct (rejection-sampled SFT data). */
  readonly correctOnly?: boolean
}

export interface ExportSummary {
  readonly format: ExportFormat
  readonly dir: string
  /** Trajectories written. */
  readonly episodes: number
  /** Finished samples left out (`correctOnly`) and samples with no finished episode. */
  readonly skipped: number
  readonly files: ReadonlyArray<string>
}

const readEpisode = (
  log: EventLogShape,
  episodeId: string,
): Effect.Effect<ReadonlyArray<Envelope>, LogUnavailable> =>
  Effect.map(
    Stream.runCollect(log.read({ filter: entitySubject(log.namespace, "episode", episodeId) })),
    (entries) => {
      const out: Envelope[] = []
      for (const entry of entries) {
        if (entry instanceof UndecodableEvent) continue
        const decoded = decodeEvent(entry)
        if (Result.isSuccess(decoded)) out.push(decoded.success)
      }
      return out
    },
  )

/** A task id as one safe folder name: percent-encoded, and never `.` or `..`. */
export const taskFolder = (taskId: string): string => {
  const encoded = encodeURIComponent(taskId).replaceAll("*", "%2A")
  return /^\.+$/.test(encoded) ? encoded.replaceAll(".", "%2E") : encoded
}

const writeJson = (file: string, value: unknown) =>
  fs
    .mkdir(path.dirname(file), { recursive: true })
    .then(() => fs.writeFile(file, `${JSON.stringify(value, null, 2)}\n`))

const fileError = (dir: string) => (error: unknown) =>
  new Error(`cannot write the export under ${dir}: ${error instanceof Error ? error.message : String(error)}`)

export const exportRun = (
  log: EventLogShape,
  state: ScoreboardState,
  run: RunBoard,
  format: ExportFormat,
  dir: string,
  options: ExportOptions = {},
): Effect.Effect<ExportSummary, LogUnavailable | Error> =>
  Effect.gen(function* () {
    const samples = boardSamples(state, run)
    const wanted = samples.filter(
      (s): s is BoardSample & { episodeId: string } =>
        s.episodeId !== null &&
        s.outcome !== null &&
        (options.correctOnly !== true || s.verdict === "correct"),
    )
    yield* Effect.tryPromise({ try: () => fs.mkdir(dir, { recursive: true }), catch: fileError(dir) })
    const files: string[] = []
    const sftFile = path.join(dir, "sft.jsonl")
    const lines: string[] = []
    for (const s of wanted) {
      const envelopes = yield* readEpisode(log, s.episodeId)
      const messages = toChat(envelopes).map(openAiMessage)
      const finished = envelopes.findLast((e) => e.event.type === "EpisodeFinished")?.event
      const answer = finished?.type === "EpisodeFinished" ? (finished.answer ?? null) : null
      const correct = s.verdict === null || s.verdict === "judge_failed" ? null : s.verdict === "correct"
      if (format === "sft") {
        lines.push(
          JSON.stringify({
            messages,
            metadata: {
              run_id: run.runId,
              task_id: s.taskId,
              sample: s.sample,
              episode_id: s.episodeId,
              outcome: s.outcome,
              verdict: s.verdict,
              correct,
              turns: s.turns ?? null,
            },
          }),
        )
        continue
      }
      const folder = path.join(dir, taskFolder(s.taskId), String(s.sample))
      const dialog = path.join(folder, "dialog.json")
      const result = path.join(folder, "result.json")
      yield* Effect.tryPromise({
        try: async () => {
          await writeJson(dialog, messages)
          await writeJson(result, {
            task_id: s.taskId,
            sample: s.sample,
            run_id: run.runId,
            episode_id: s.episodeId,
            model: run.model,
            benchmark: run.benchmark,
            outcome: s.outcome,
            final_answer: answer,
            verdict: s.verdict,
            correct,
            score: correct === true ? 1 : 0,
            turns: s.turns ?? null,
            tool_calls: s.toolCalls ?? null,
            usage: { prompt_tokens: s.promptTokens ?? null, completion_tokens: s.completionTokens ?? null },
          })
        },
        catch: fileError(dir),
      })
      files.push(dialog, result)
    }
    if (format === "sft") {
      yield* Effect.tryPromise({
        try: () => fs.writeFile(sftFile, lines.length === 0 ? "" : `${lines.join("\n")}\n`),
        catch: fileError(dir),
      })
      files.push(sftFile)
    }
    return { format, dir, episodes: wanted.length, skipped: samples.length - wanted.length, files }
  })
