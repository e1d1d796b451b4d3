/**
 * Forking an episode at a turn: a new episode that replays the recorded model responses and tool
 * results of the turns before `turn` (no model or tool is called for them) and goes live from
 * `turn` on. The new episode gets its own, self-consistent history, so it verifies like any other.
 */
import * as Effect from "effect/Effect"
import type { Completion } from "../../events/chat.ts"
import type { Envelope } from "../../events/schema.ts"
import { recordedInput, type StartEpisode } from "./decider.ts"
import type { EpisodePorts, ToolOutcome } from "./ports.ts"

export interface Fork {
  readonly start: StartEpisode
  readonly ports: EpisodePorts
}

/** Builds the new episode's start and ports from the recorded one; fails when `turn` is out of range. */
export const forkEpisode = (
  recorded: ReadonlyArray<Envelope>,
  newEpisodeId: string,
  turn: number,
  live: EpisodePorts,
): Fork | { readonly error: string } => {
  const first = recorded[0]?.event
  const started = first === undefined ? undefined : recordedInput(first)
  if (started?.kind !== "start") return { error: "the recorded episode does not begin with EpisodeStarted" }
  const oldId = started.episodeId
  const responses = new Map<number, Completion>()
  const results = new Map<string, ToolOutcome>()
  const callTurn = new Map<string, number>()
  for (const { event: e } of recorded) {
    if (e.type === "ToolCallRequested") callTurn.set(e.callId, e.turn)
    if (e.type === "ModelResponded") {
      const input = recordedInput(e)
      if (input?.kind === "model_responded") responses.set(e.turn, input.response)
    } else if (e.type === "ToolCallCompleted") {
      results.set(e.callId, { ok: true, content: e.content, truncated: e.truncated })
    } else if (e.type === "ToolCallFailed") {
      results.set(e.callId, { ok: false, kind: e.kind, message: e.message })
    }
  }
  const turns = responses.size
  if (!Number.isInteger(turn) || turn < 1 || turn > turns + 1) {
    return {
      error: `--fork-at must be a turn from 1 to ${turns + 1} (the episode has ${turns} recorded turns)`,
    }
  }
  // Ids derived from the episode id (text-format call ids, request ids) map back by prefix.
  const oldKey = (id: string) =>
    id.startsWith(`${newEpisodeId}/`) ? `${oldId}/${id.slice(newEpisodeId.length + 1)}` : id
  const turnOf = (requestId: string) => Number(requestId.slice(requestId.lastIndexOf("/") + 1))
  return {
    start: { ...started, episodeId: newEpisodeId },
    ports: {
      ...live,
      model: {
        complete: (request) => {
          const at = request.requestId.startsWith(`${newEpisodeId}/model/`)
            ? turnOf(request.requestId)
            : Number.NaN
          const replayed = at < turn ? responses.get(at) : undefined
          return replayed === undefined ? live.model.complete(request) : Effect.succeed(replayed)
        },
      },
      tools: {
        call: (call) => {
          const key = oldKey(call.callId)
          // Only calls of replayed turns are answered from the record; later turns run for real.
          const replayed = (callTurn.get(key) ?? turn) < turn ? results.get(key) : undefined
          return replayed === undefined ? live.tools.call(call) : Effect.succeed(replayed)
        },
      },
    },
  }
}
