/**
 * The `agent` actor: a `RunEpisode` command (entity = the episode id) runs or resumes that episode
 * through the episode shell, with the model and tool ports the worker was wired with. A redelivered
 * command simply resumes from the log; a finished episode returns at once.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { EpisodePolicy } from "../../events/schema.ts"
import { InvalidCommand, type ProcessActor } from "../../runtime/actor.ts"
import type { StartEpisode } from "./decider.ts"
import { type EpisodePorts, runEpisode } from "./shell.ts"

export const RunEpisode = Schema.Struct({
  type: Schema.Literal("RunEpisode"),
  taskId: Schema.String,
  sampleIndex: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  question: Schema.String,
  model: Schema.NonEmptyString,
  runId: Schema.optionalKey(Schema.NonEmptyString),
  systemPrompt: Schema.optionalKey(Schema.String),
  policy: Schema.optionalKey(EpisodePolicy),
})
export type RunEpisode = typeof RunEpisode.Type

/** The `RunEpisode` payload that starts the episode `start` describes (its id is the command's entity). */
export const runEpisodePayload = (start: StartEpisode): Omit<RunEpisode, "type"> => ({
  taskId: start.taskId,
  sampleIndex: start.sampleIndex,
  question: start.question,
  model: start.model,
  ...(start.runId === undefined ? {} : { runId: start.runId }),
  ...(start.systemPrompt === undefined ? {} : { systemPrompt: start.systemPrompt }),
  ...(start.policy === undefined ? {} : { policy: start.policy }),
})

export const agentActor = (ports: EpisodePorts): ProcessActor<RunEpisode> => ({
  kind: "agent",
  commands: RunEpisode,
  run: (command, context) =>
    runEpisode(context.log, ports, context.entityId, {
      kind: "start",
      episodeId: context.entityId,
      taskId: command.taskId,
      sampleIndex: command.sampleIndex,
      question: command.question,
      model: command.model,
      ...(command.runId === undefined ? {} : { runId: command.runId }),
      ...(command.systemPrompt === undefined ? {} : { systemPrompt: command.systemPrompt }),
      ...(command.policy === undefined ? {} : { policy: command.policy }),
    }).pipe(
      Effect.asVoid,
      // A broken or refused episode stream will not heal by retrying: dead-letter it with the reason.
      Effect.catchTag("EpisodeStuck", (e) => Effect.fail(new InvalidCommand(e.message))),
      Effect.catchTag("InvalidEvent", (e) => Effect.fail(new InvalidCommand(e.message))),
    ),
})
