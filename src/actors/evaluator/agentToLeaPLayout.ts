/**
 * AgentToLeaP's on-disk layout for one evaluation run, as AgentCPM-Explore's own report code reads
 * it (`gaia_report_generator.py`, `evaluate_and_report.py`): `<out>/<task folder>/traj_<i>/` with
 * `result.json` and `dialog.json`, `i` counting a task's exported samples from 0. Their readers take
 * the folder name as the task id and the answer from `result.json`'s `conversation_history` (the
 * last assistant message, then its last `<answer>…</answer>`), so both must be there as they expect;
 * our own fields (`sample`, `outcome`, `verdict`, …) sit beside theirs. Pure: events in, JSON out.
 */
import { createHash } from "node:crypto"
import type { Envelope, EpisodeOutcome, EventOf } from "../../events/schema.ts"
import type { RunBoard } from "../../projections/scoreboard/scoreboard.ts"
import type { BoardSample } from "../../projections/scoreboard/scoreboardMetrics.ts"
import type { ChatMessage } from "../agent/context.ts"
import { openAiMessage } from "../agent/replay.ts"

/** Characters a task id may hold to be its own folder name on any common file system. */
const SAFE_CHAR = /^[A-Za-z0-9._-]$/
/** The usual limit on one path component (ext4, APFS, NTFS), in bytes. */
export const MAX_FOLDER_BYTES = 255
/** How much of an over-long encoded id a folder keeps before `~` and the hash. */
const KEPT_PREFIX = 200

/** A character as `%XX` per UTF-8 byte, as URLs encode it. */
const percentEncoded = (ch: string): string =>
  Array.from(Buffer.from(ch, "utf8"), (b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("")

/**
 * A task id as its folder: the id itself when it is a safe file name (only `A-Z a-z 0-9 . _ -`,
 * not `.` or `..`, at most 255 bytes); otherwise every other character as `%XX` per UTF-8 byte (so
 * `decodeURIComponent` gives the id back; `.`/`..` become `%2E`s), and when that is over 255
 * bytes, or the id is not well-formed UTF-16, its first 200 characters, `~` and 16 hex digits of a
 * SHA-256 of the id; the empty id is `~empty`. A safe id never holds `%` or `~`, so a mapped folder
 * is never another id's.
 */
export const taskFolder = (taskId: string): string => {
  if (taskId === "") return "~empty"
  let encoded = ""
  for (const ch of taskId) encoded += SAFE_CHAR.test(ch) ? ch : percentEncoded(ch)
  if (encoded === "." || encoded === "..") encoded = encoded.replaceAll(".", "%2E")
  // Lone surrogates do not survive UTF-8 (they become U+FFFD), so such ids take the hashed form.
  const wellFormed = Buffer.from(taskId, "utf8").toString("utf8") === taskId
  if (encoded.length <= MAX_FOLDER_BYTES && wellFormed) return encoded
  // Cut outside a `%XX` triple so the kept part still decodes.
  let cut = Math.min(KEPT_PREFIX, encoded.length)
  const lastPercent = encoded.lastIndexOf("%", cut - 1)
  if (lastPercent !== -1 && lastPercent > cut - 3) cut = lastPercent
  // Hashed as UTF-16 code units, so ids that differ only in lone surrogates hash apart.
  const digest = createHash("sha256").update(Buffer.from(taskId, "utf16le")).digest("hex").slice(0, 16)
  return `${encoded.slice(0, cut)}~${digest}`
}

/** Outcomes where the episode ran to its own end; the others are AgentToLeaP's `success: false` (an exception there). */
const ENDED_NORMALLY: ReadonlySet<EpisodeOutcome> = new Set([
  "answered",
  "turns_limit",
  "context_limit",
  "repetition",
])

/** One tool call as AgentToLeaP records it: the OpenAI call, plus the response or the error. */
export interface AgentToLeaPToolCall {
  readonly id: string
  readonly type: "function"
  readonly function: { readonly name: string; readonly arguments: string }
  readonly response?: {
    readonly status_code: number
    readonly detail: string
    readonly content?: unknown
    readonly error?: string
  }
  readonly error?: string
  /** Ours: `format`, `tool`, `infrastructure` or `timeout` when the call failed. */
  readonly error_kind?: string
  readonly latency_ms?: number
  readonly truncated?: boolean
}

/**
 * The trajectory as AgentToLeaP's messages: OpenAI chat messages, tool messages with the tool's
 * `name`, assistant messages with the model's separate reasoning as `thought` when it sent one.
 * Every assistant message comes from one `ModelResponded`, in order, so the n-th carries the n-th
 * response's reasoning.
 */
const agentToLeaPMessages = (
  messages: ReadonlyArray<ChatMessage>,
  envelopes: ReadonlyArray<Envelope>,
): ReadonlyArray<Record<string, unknown>> => {
  const names = new Map<string, string>()
  for (const m of messages) for (const c of m.toolCalls ?? []) names.set(c.callId, c.tool)
  const reasoning: Array<string | undefined> = []
  for (const { event } of envelopes) if (event.type === "ModelResponded") reasoning.push(event.reasoning)
  let responses = 0
  return messages.map((m) => {
    const message = openAiMessage(m)
    if (m.role === "assistant") {
      const thought = reasoning[responses++]
      return thought === undefined || thought === "" ? message : { ...message, thought }
    }
    const name = m.role === "tool" && m.toolCallId !== undefined ? names.get(m.toolCallId) : undefined
    return name === undefined ? message : { ...message, name }
  })
}

const toolCallRecords = (envelopes: ReadonlyArray<Envelope>): ReadonlyArray<AgentToLeaPToolCall> => {
  const ended = new Map<string, EventOf<"ToolCallCompleted"> | EventOf<"ToolCallFailed">>()
  for (const { event } of envelopes)
    if (event.type === "ToolCallCompleted" || event.type === "ToolCallFailed") ended.set(event.callId, event)
  const out: AgentToLeaPToolCall[] = []
  for (const { event } of envelopes) {
    if (event.type !== "ToolCallRequested") continue
    const call = {
      id: event.callId,
      type: "function" as const,
      function: { name: event.tool, arguments: JSON.stringify(event.arguments) },
    }
    const end = ended.get(event.callId)
    if (end?.type === "ToolCallCompleted")
      out.push({
        ...call,
        response: { status_code: 200, detail: "", content: end.content },
        latency_ms: end.latencyMs,
        truncated: end.truncated,
      })
    else if (end?.type === "ToolCallFailed")
      out.push({
        ...call,
        // AgentToLeaP marks a failed call's response 500 whatever the cause; the kind says which.
        response: { status_code: 500, detail: end.message, error: end.message },
        error: end.message,
        error_kind: end.kind,
      })
    else out.push(call)
  }
  return out
}

/** Why an episode that did not end on its own stopped, as AgentToLeaP's `error` string. */
const failureOf = (envelopes: ReadonlyArray<Envelope>, outcome: EpisodeOutcome): string => {
  if (outcome === "model_error") {
    const failed = envelopes.findLast((e) => e.event.type === "ModelCallFailed")?.event
    if (failed?.type === "ModelCallFailed") return `model call failed [${failed.code}]: ${failed.message}`
  }
  if (outcome === "tool_infrastructure_error") {
    const failed = envelopes.findLast(
      (e) => e.event.type === "ToolCallFailed" && e.event.kind === "infrastructure",
    )?.event
    if (failed?.type === "ToolCallFailed") return `tool ${failed.tool} unavailable: ${failed.message}`
  }
  return `episode ended: ${outcome}`
}

export interface AgentToLeaPFiles {
  readonly result: Record<string, unknown>
  readonly dialog: ReadonlyArray<Record<string, unknown>>
}

/**
 * `result.json` and `dialog.json` of one finished sample. `messages` is the whole trajectory
 * (`toChat` of `envelopes`, the episode's events), which is AgentToLeaP's `conversation_history`;
 * `dialog` keeps its user, assistant and tool messages (no system prompt), as their dialog files do.
 */
export const agentToLeaPFiles = (
  run: Pick<RunBoard, "runId" | "model" | "benchmark">,
  sample: Pick<
    BoardSample,
    "taskId" | "sample" | "outcome" | "verdict" | "turns" | "toolCalls" | "promptTokens" | "completionTokens"
  > & { readonly episodeId: string },
  traj: number,
  envelopes: ReadonlyArray<Envelope>,
  messages: ReadonlyArray<ChatMessage>,
): AgentToLeaPFiles => {
  const history = agentToLeaPMessages(messages, envelopes)
  const started = envelopes.find((e) => e.event.type === "EpisodeStarted")
  const finished = envelopes.findLast((e) => e.event.type === "EpisodeFinished")
  const startedEvent = started?.event.type === "EpisodeStarted" ? started.event : undefined
  const finishedEvent = finished?.event.type === "EpisodeFinished" ? finished.event : undefined
  const outcome = finishedEvent?.outcome ?? sample.outcome
  const turns = finishedEvent?.turns ?? sample.turns ?? 0
  const seconds =
    started === undefined || finished === undefined
      ? null
      : (Date.parse(finished.recordedAt) - Date.parse(started.recordedAt)) / 1000
  const success = outcome !== null && ENDED_NORMALLY.has(outcome)
  const correct =
    sample.verdict === null || sample.verdict === "judge_failed" ? null : sample.verdict === "correct"
  const toolCalls = toolCallRecords(envelopes)
  return {
    result: {
      // AgentToLeaP's fields.
      task_id: sample.taskId,
      query: startedEvent?.question ?? "",
      success,
      ...(success ? {} : { error: failureOf(envelopes, outcome ?? "cancelled") }),
      conversation_history: history,
      tool_calls: toolCalls,
      execution_time: seconds === null || Number.isNaN(seconds) ? null : seconds,
      interactions: turns,
      max_interactions_reached:
        outcome === "turns_limit" || (startedEvent !== undefined && turns >= startedEvent.maxTurns),
      // Ours.
      sample: sample.sample,
      traj,
      run_id: run.runId,
      episode_id: sample.episodeId,
      model: run.model,
      benchmark: run.benchmark,
      outcome,
      final_answer: finishedEvent?.answer ?? null,
      verdict: sample.verdict,
      correct,
      score: correct === true ? 1 : 0,
      turns,
      tool_call_count: sample.toolCalls ?? toolCalls.length,
      usage: {
        prompt_tokens: sample.promptTokens ?? null,
        completion_tokens: sample.completionTokens ?? null,
      },
    },
    dialog: history.filter((m) => m.role === "user" || m.role === "assistant" || m.role === "tool"),
  }
}
