/**
 * Exports an evaluation run's trajectories, read from the log:
 *
 * - `sft`: one JSON line per finished sample in `<out>/sft.jsonl`:
 *   `{"messages": [...], "metadata": {run_id, task_id, sample, episode_id, outcome, verdict,
 *   correct, turns}}`, the messages as `rollout replay --format openai` prints them (system, user,
 *   assistant with `tool_calls`, `tool` with `tool_call_id`), every message the episode ever added.
 * - `agenttoleap`: the layout AgentCPM-Explore's AgentToLeaP report code reads,
 *   `<out>/<task folder>/traj_<i>/result.json` and `dialog.json` (`agentToLeaPLayout.ts` has the
 *   fields); `i` counts a task's exported samples from 0 in sample order, and the folder is the task
 *   id unless that is not a safe file name (the summary lists those ids and their folders).
 *
 * The ground truth is not in the log, so it is in neither format. An entry of an exported episode
 * that does not decode is left out of its trajectory and named in the summary (`undecodable`).
 */
import type { Dirent } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { readEvents } from "../../events/log/readEvents.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { RunBoard, ScoreboardState } from "../../projections/scoreboard/scoreboard.ts"
import { type BoardSample, boardSamples } from "../../projections/scoreboard/scoreboardMetrics.ts"
import { openAiMessage, toChat } from "../agent/replay.ts"
import { agentToLeaPFiles, taskFolder } from "./agentToLeaPLayout.ts"

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
  /** `agenttoleap`: the task ids whose folder is not the id itself (not safe file names). */
  readonly mappedTaskIds: ReadonlyArray<{ readonly taskId: string; readonly folder: string }>
  /** `agenttoleap`: tasks whose exported samples are not 0, 1, …, so `traj_<i>` is not the sample number. */
  readonly renumberedTasks: ReadonlyArray<string>
  /**
   * Entries of the exported episodes that did not decode, in log order with their positions: each
   * is missing from its trajectory (a turn, a tool result), which is written without it.
   */
  readonly undecodable: ReadonlyArray<UndecodableEvent>
}

const writeJson = (file: string, value: unknown) =>
  fs
    .mkdir(path.dirname(file), { recursive: true })
    .then(() => fs.writeFile(file, `${JSON.stringify(value, null, 2)}\n`))

const fileError = (dir: string) => (error: unknown) =>
  new Error(`cannot write the export under ${dir}: ${error instanceof Error ? error.message : String(error)}`)

/** What an `agenttoleap` export wrote, at its root (AgentToLeaP's readers look at folders only). */
export const MANIFEST = "rollout-export.json"

/** The output folder holds trajectories that are not this export's: AgentToLeaP would count them. */
export class ExportFolderInUse extends Error {}

const isTrajFolder = (entry: Dirent): boolean => entry.isDirectory() && entry.name.startsWith("traj_")

/**
 * Makes `dir` ready for an `agenttoleap` export. AgentToLeaP's readers take every folder in it that
 * holds a `traj_*` folder as a task and each such `traj_*` as one of its runs, so what an earlier
 * export wrote (the folders its manifest names) is removed first; other folders that AgentToLeaP
 * would read are refused, never deleted. Anything else (their reports' `success/`, `fail/`) stays.
 */
const clearAgentToLeaPDir = async (dir: string): Promise<void> => {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as Dirent[]
    throw error
  })
  if (entries.length === 0) return
  const manifestFile = path.join(dir, MANIFEST)
  let folders: ReadonlyArray<unknown> = []
  try {
    const manifest = JSON.parse(await fs.readFile(manifestFile, "utf8")) as {
      format?: unknown
      tasks?: unknown
    }
    if (manifest.format === "agenttoleap" && Array.isArray(manifest.tasks))
      folders = manifest.tasks.map((t: { folder?: unknown } | null) => t?.folder)
  } catch {
    // No manifest, or not one of ours: nothing here is known to be an earlier export.
  }
  const ours = new Set(
    folders.filter(
      (f): f is string =>
        typeof f === "string" && f !== "." && f !== ".." && f !== "" && path.basename(f) === f,
    ),
  )
  const foreign: string[] = []
  for (const entry of entries) {
    if (!entry.isDirectory() || ours.has(entry.name)) continue
    const inside = await fs.readdir(path.join(dir, entry.name), { withFileTypes: true })
    if (inside.some(isTrajFolder)) foreign.push(entry.name)
  }
  if (foreign.length > 0)
    throw new ExportFolderInUse(
      `${dir} already holds trajectories that are not an earlier rollout export of this kind ` +
        `(${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""}), which AgentToLeaP would ` +
        "read as tasks too: choose another --out, or empty it",
    )
  for (const folder of ours) await fs.rm(path.join(dir, folder), { recursive: true, force: true })
  await fs.rm(manifestFile, { force: true })
}

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
    if (format === "agenttoleap")
      yield* Effect.tryPromise({
        try: () => clearAgentToLeaPDir(dir),
        catch: (error) => (error instanceof ExportFolderInUse ? error : fileError(dir)(error)),
      })
    yield* Effect.tryPromise({ try: () => fs.mkdir(dir, { recursive: true }), catch: fileError(dir) })
    const files: string[] = []
    const sftFile = path.join(dir, "sft.jsonl")
    const lines: string[] = []
    const mappedTaskIds: Array<{ taskId: string; folder: string }> = []
    const renumberedTasks: string[] = []
    // Per task: its folder and the sample behind each traj number written so far.
    const written = new Map<string, { folder: string; samples: number[] }>()
    const undecodable: UndecodableEvent[] = []
    for (const s of wanted) {
      const episode = yield* readEvents(log, {
        filter: entitySubject(log.namespace, "episode", s.episodeId),
      })
      undecodable.push(...episode.undecodable)
      const envelopes = episode.state
      const chat = toChat(envelopes)
      if (format === "sft") {
        const correct = s.verdict === null || s.verdict === "judge_failed" ? null : s.verdict === "correct"
        lines.push(
          JSON.stringify({
            messages: chat.map(openAiMessage),
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
      let task = written.get(s.taskId)
      if (task === undefined) {
        task = { folder: taskFolder(s.taskId), samples: [] }
        written.set(s.taskId, task)
        if (task.folder !== s.taskId) mappedTaskIds.push({ taskId: s.taskId, folder: task.folder })
      }
      // AgentToLeaP's readers number a task's runs 0, 1, … without gaps; `sample` keeps ours.
      const traj = task.samples.push(s.sample) - 1
      if (traj !== s.sample && !renumberedTasks.includes(s.taskId)) renumberedTasks.push(s.taskId)
      const { result, dialog } = agentToLeaPFiles(run, s, traj, envelopes, chat)
      const folder = path.join(dir, task.folder, `traj_${traj}`)
      const dialogFile = path.join(folder, "dialog.json")
      const resultFile = path.join(folder, "result.json")
      yield* Effect.tryPromise({
        try: async () => {
          await writeJson(dialogFile, dialog)
          await writeJson(resultFile, result)
        },
        catch: fileError(dir),
      })
      files.push(dialogFile, resultFile)
    }
    if (format === "sft") {
      yield* Effect.tryPromise({
        try: () => fs.writeFile(sftFile, lines.length === 0 ? "" : `${lines.join("\n")}\n`),
        catch: fileError(dir),
      })
      files.push(sftFile)
    } else {
      const manifest = path.join(dir, MANIFEST)
      yield* Effect.tryPromise({
        try: () =>
          writeJson(manifest, {
            format,
            run_id: run.runId,
            layout: "<folder>/traj_<i>/result.json and dialog.json",
            tasks: Array.from(written, ([taskId, t]) => ({
              task_id: taskId,
              folder: t.folder,
              samples: t.samples,
            })),
            mapped: mappedTaskIds.map((m) => ({ task_id: m.taskId, folder: m.folder })),
          }),
        catch: fileError(dir),
      })
      files.push(manifest)
    }
    return {
      format,
      dir,
      episodes: wanted.length,
      skipped: samples.length - wanted.length,
      files,
      mappedTaskIds,
      renumberedTasks,
      undecodable,
    }
  })
