/**
 * Commands: what actors are asked to do. A command names its actor kind and entity, carries a
 * stable `commandId` (the source of its events' ids, so a redelivered command cannot write twice)
 * and a JSON payload that the actor decodes with its own schema. Time comes in the command
 * (`issuedAt`), so deciders stay pure. On a bus with a message limit (JetStream) a command too
 * large to travel inline keeps its largest fields in the blob store: on the wire they are blob
 * markers, listed in `blobs`, and the bus reads them back before a worker sees the command.
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

export const Command = Schema.Struct({
  commandId: Schema.NonEmptyString,
  actorKind: Schema.NonEmptyString,
  entityId: Schema.NonEmptyString,
  type: Schema.NonEmptyString,
  payload: Schema.Json,
  issuedAt: Schema.String,
  correlationId: Schema.String,
  causationId: Schema.optionalKey(Schema.String),
})
export type Command = typeof Command.Type

/** Where in a command (or a dead letter) a field lives: keys and array indexes, outermost first. */
const FieldPath = Schema.NonEmptyArray(
  Schema.Union([Schema.String, Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))]),
)
const decodeFieldPaths = Schema.decodeUnknownResult(Schema.Array(FieldPath))

/** A command whose bytes could not be decoded: it goes straight to the dead-letter stream. */
export class MalformedCommand extends Schema.TaggedError<MalformedCommand>()("MalformedCommand", {
  where: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `malformed command at ${this.where}: ${this.reason}`
  }
}

export const encodeCommand = (command: Command): string => JSON.stringify(command)

/** A command (or dead letter) some of whose fields hold blob markers (see `largeFields`), listed in `blobs`. */
export const encodeWithBlobs = (
  withMarkers: unknown,
  blobs: ReadonlyArray<ReadonlyArray<string | number>>,
): string => JSON.stringify({ ...(withMarkers as object), blobs })

/** A command's bytes as parsed JSON, with the fields the blob store still holds. */
export interface CommandJson {
  /** The command's own fields (`blobs` taken out), parsed for this delivery alone. */
  readonly value: Record<string, unknown>
  /** Fields of `value` that hold blob markers, to be read back before `commandOf`. */
  readonly blobs: ReadonlyArray<ReadonlyArray<string | number>> | undefined
}

/** A command's bytes parsed, before its schema is checked (its large fields may still be blobs). */
export const parseCommand = (
  bytes: Uint8Array | string,
  where: string,
): Result.Result<CommandJson, MalformedCommand> => {
  let value: unknown
  try {
    value = JSON.parse(
      typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    )
  } catch (error) {
    return Result.fail(new MalformedCommand({ where, reason: `not JSON: ${(error as Error).message}` }))
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return Result.fail(new MalformedCommand({ where, reason: "not a JSON object" }))
  const { blobs, ...fields } = value as Record<string, unknown>
  if (blobs === undefined) return Result.succeed({ value: fields, blobs: undefined })
  const paths = decodeFieldPaths(blobs)
  return Result.isFailure(paths)
    ? Result.fail(new MalformedCommand({ where, reason: `blobs: ${paths.failure.message}` }))
    : Result.succeed({ value: fields, blobs: paths.success })
}

const decodeCommandValue = Schema.decodeUnknownResult(Command)

/** The command a parsed (and whole) JSON value is. */
export const commandOf = (value: unknown, where: string): Result.Result<Command, MalformedCommand> => {
  const decoded = decodeCommandValue(value)
  return Result.isFailure(decoded)
    ? Result.fail(new MalformedCommand({ where, reason: decoded.failure.message }))
    : Result.succeed(decoded.success)
}

/** The id of the i-th event a command produces: deterministic, so a redelivery dedupes. */
export const eventIdFor = (commandId: string, index: number): string => `${commandId}/${index}`

/** A command that could not be handled: kept with its last error on the dead-letter stream. */
export const DeadLetter = Schema.Struct({
  actorKind: Schema.String,
  commandId: Schema.String,
  command: Schema.optionalKey(Command),
  raw: Schema.optionalKey(Schema.String),
  reason: Schema.String,
  kind: Schema.Literals(["malformed", "rejected", "failed"]),
  attempts: Schema.Number,
  worker: Schema.String,
  at: Schema.String,
  /**
   * Fields of this letter kept in the blob store, which hold blob markers (naming each blob by its
   * hash): a letter too large for its bus keeps its command's large fields there.
   */
  blobs: Schema.optionalKey(Schema.Array(FieldPath)),
})
export type DeadLetter = typeof DeadLetter.Type
