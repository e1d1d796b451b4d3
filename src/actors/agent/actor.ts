/**
 * The `agent` actor: a `RunEpisode` command (entity = the episode id) runs or resumes that episode
 * through the episode shell, with the model and tool ports the worker was wired with. A redelivered
 * command simply resumes from the log; a finished episode returns at once. The command carries an
 * episode's start fields as the schema declares them once (`EpisodeStart`), less the episode id.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import { EpisodeStart } from "../../events/schema.ts"
import { InvalidCommand, type ProcessActor } from "../../runtime/actor.ts"
import type { StartEpisode } from "./decider.ts"
import { type EpisodePorts, runEpisode } from "./shell.ts"

export const RunEpisode = Schema.Struct({
  type: Schema.Literal("RunEpisode"),
  ...EpisodeStart.mapFields(Struct.omit(["episodeId"])).fields,
  // A command must name its model; the event keeps accepting whatever was ever recorded.
  model: Schema.NonEmptyString,
})
export type RunEpisode = typeof RunEpisode.Type

/** The `RunEpisode` payload that starts the episode `start` describes (its id is the command's entity). */
export const runEpisodePayload = ({
  kind: _kind,
  episodeId: _episodeId,
  ...payload
}: StartEpisode): Omit<RunEpisode, "type"> => payload

/** The start a command asks for: its fields, with the entity it was sent to as the episode id. */
export const startOf = (episodeId: string, { type: _type, ...fields }: RunEpisode): StartEpisode => ({
  kind: "start",
  ...fields,
  episodeId,
})

export const agentActor = (ports: EpisodePorts): ProcessActor<RunEpisode> => ({
  kind: "agent",
  commands: RunEpisode,
  run: (command, context) =>
    runEpisode(context.log, ports, context.entityId, startOf(context.entityId, command)).pipe(
      Effect.asVoid,
      // A broken or refused episode stream will not heal by retrying: dead-letter it with the reason.
      Effect.catchTag("EpisodeStuck", (e) => Effect.fail(new InvalidCommand(e.message))),
      Effect.catchTag("InvalidEvent", (e) => Effect.fail(new InvalidCommand(e.message))),
    ),
})
