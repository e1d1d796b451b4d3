/**
 * The `CheckpointStore` port: where a projection runner keeps "state S after position P" so it can
 * resume instead of refolding the log. Two adapters pass one contract suite: `fileCheckpointStore`
 * (one JSON file per projection beside the embedded log, replaced atomically) and
 * `kvCheckpointStore` (a NATS KV bucket with file storage). A checkpoint is only ever a cache of
 * the log: one that cannot be read is reported with its location and rebuilt, never fatal.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { JetStreamClient } from "@nats-io/jetstream"
import { StorageType } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import { type ObjectStore, Objm } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { projectionNamePattern, streamsFor } from "../events/subjects.ts"

/** One projection's saved fold. `state` is JSON (see `encodeState`). */
export interface Checkpoint {
  readonly projection: string
  readonly version: number
  /** The last position folded into `state`; the runner resumes at `position + 1`. */
  readonly position: number
  readonly state: unknown
  /** Undecodable entries skipped up to `position`. */
  readonly undecodable: number
  readonly savedAt?: string
}

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const CheckpointSchema = Schema.Struct({
  projection: Schema.String,
  version: Count,
  position: Count,
  state: Schema.Unknown,
  undecodable: Count,
  savedAt: Schema.optionalKey(Schema.String),
})
const decodeCheckpoint = Schema.decodeUnknownResult(CheckpointSchema)

/** A stored checkpoint that is corrupt or not a checkpoint; the runner rebuilds the projection. */
export class CheckpointUnreadable extends Schema.TaggedError<CheckpointUnreadable>()("CheckpointUnreadable", {
  projection: Schema.String,
  location: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `checkpoint of projection ${this.projection} at ${this.location} is unreadable: ${this.reason}`
  }
}

/** The store itself failed (disk, permissions, NATS); retrying later may help. */
export class CheckpointStoreUnavailable extends Schema.TaggedError<CheckpointStoreUnavailable>()(
  "CheckpointStoreUnavailable",
  {
    backend: Schema.Literals(["file", "nats"]),
    operation: Schema.String,
    location: Schema.String,
    code: Schema.optionalKey(Schema.String),
    reason: Schema.String,
  },
) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `checkpoint store (${this.backend}) ${this.operation} at ${this.location} failed${code}: ${this.reason}`
  }
}

export interface CheckpointStoreShape {
  readonly backend: "file" | "nats"
  /** Where checkpoints live (a directory or `kv://BUCKET`), for messages. */
  readonly location: string
  /** The saved checkpoint, or undefined when there is none. */
  readonly load: (
    name: string,
  ) => Effect.Effect<Checkpoint | undefined, CheckpointUnreadable | CheckpointStoreUnavailable>
  /** Replaces the checkpoint atomically: a reader sees the old one or the new one, never a mix. */
  readonly save: (name: string, checkpoint: Checkpoint) => Effect.Effect<void, CheckpointStoreUnavailable>
  readonly remove: (name: string) => Effect.Effect<void, CheckpointStoreUnavailable>
}

export class CheckpointStore extends Context.Service<CheckpointStore, CheckpointStoreShape>()(
  "rollout/CheckpointStore",
) {}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" || typeof code === "number" ? String(code) : undefined
}

/** Parses stored text into a checkpoint of `name`, or says why it is not one. */
const parseCheckpoint = (text: string, name: string): Result.Result<Checkpoint, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return Result.fail(`invalid JSON: ${messageOf(error)}`)
  }
  const decoded = decodeCheckpoint(parsed)
  if (Result.isFailure(decoded)) return Result.fail(`not a checkpoint: ${decoded.failure.message}`)
  if (decoded.success.projection !== name) {
    return Result.fail(`holds projection "${decoded.success.projection}", expected "${name}"`)
  }
  return Result.succeed(decoded.success)
}

const checkName = (name: string, location: string, operation: string) =>
  projectionNamePattern.test(name)
    ? Effect.void
    : Effect.die(
        new Error(
          `${operation} at ${location}: projection name "${name}" must match ${projectionNamePattern}`,
        ),
      )

/** Where the file store of a namespace lives: beside the embedded log (`<dataDir>/log/<ns>`). */
export const fileCheckpointDir = (dataDir: string, namespace: string): string =>
  path.join(dataDir, "projections", streamsFor(namespace).namespace)

/**
 * One `<name>.json` per projection in `dir`, written to a temporary file, fsynced and renamed over
 * the old one, so a crash leaves the old checkpoint or the new one and never a torn file.
 */
export const fileCheckpointStore = (dir: string): CheckpointStoreShape => {
  const fileOf = (name: string) => path.join(dir, `${name}.json`)
  const unavailable = (operation: string, location: string) => (error: unknown) => {
    const code = codeOf(error)
    return new CheckpointStoreUnavailable({
      backend: "file",
      operation,
      location,
      reason: messageOf(error),
      ...(code === undefined ? {} : { code }),
    })
  }

  const load = (name: string) =>
    Effect.andThen(checkName(name, dir, "load"), () => {
      const file = fileOf(name)
      return Effect.tryPromise({
        try: async () => {
          try {
            return await fs.readFile(file, "utf8")
          } catch (error) {
            if (codeOf(error) === "ENOENT") return undefined
            throw error
          }
        },
        catch: unavailable("load", file),
      }).pipe(
        Effect.flatMap((text) => {
          if (text === undefined) return Effect.succeed(undefined)
          const parsed = parseCheckpoint(text, name)
          return Result.isSuccess(parsed)
            ? Effect.succeed(parsed.success)
            : Effect.fail(
                new CheckpointUnreadable({ projection: name, location: file, reason: parsed.failure }),
              )
        }),
      )
    })

  const save = (name: string, checkpoint: Checkpoint) =>
    Effect.andThen(checkName(name, dir, "save"), () => {
      const file = fileOf(name)
      return Effect.tryPromise({
        try: async () => {
          const text = JSON.stringify(checkpoint)
          await fs.mkdir(dir, { recursive: true })
          const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`
          try {
            const handle = await fs.open(temp, "w")
            try {
              await handle.writeFile(text, "utf8")
              await handle.sync()
            } finally {
              await handle.close()
            }
            await fs.rename(temp, file)
          } catch (error) {
            await fs.rm(temp, { force: true })
            throw error
          }
          // The rename is durable only once the directory entry is on disk.
          const dirHandle = await fs.open(dir, "r")
          try {
            await dirHandle.sync()
          } finally {
            await dirHandle.close()
          }
        },
        catch: unavailable("save", file),
      })
    })

  const remove = (name: string) =>
    Effect.andThen(checkName(name, dir, "remove"), () => {
      const file = fileOf(name)
      return Effect.tryPromise({
        try: () => fs.rm(file, { force: true }),
        catch: unavailable("remove", file),
      })
    })

  return { backend: "file", location: dir, load, save, remove }
}

/** The KV bucket of a namespace's checkpoints: `<NS>_CHECKPOINTS`, beside `<NS>_EVENTS`. */
export const checkpointBucketFor = (namespace: string): string =>
  `${streamsFor(namespace).namespace.toUpperCase().replaceAll("-", "_")}_CHECKPOINTS`

export interface KvCheckpointStoreOptions {
  readonly bucket: string
  /** Replicas of the bucket's stream (production runs R3); default 1. */
  readonly replicas?: number
}

/** Anything that reaches JetStream: a connection, a JetStream client, or a handle holding one. */
export type JetStreamAccess = NatsConnection | JetStreamClient | { readonly js: JetStreamClient }

/** Checkpoints above this size go to the Object Store (a KV value must fit one message, 1 MB). */
const KV_VALUE_LIMIT = 256 * 1024

/**
 * Checkpoints as values of a NATS KV bucket (file storage, one revision kept per key), created on
 * first use. A checkpoint too large for one message (a scoreboard of thousands of tasks) is kept in
 * an Object Store bucket `<bucket>_LARGE` (created when first needed, chunked by the server's
 * protocol), and the KV value points at it.
 */
export const kvCheckpointStore = (
  access: JetStreamAccess,
  options: KvCheckpointStoreOptions,
): Effect.Effect<CheckpointStoreShape, CheckpointStoreUnavailable> => {
  const location = `kv://${options.bucket}`
  const unavailable =
    (operation: string, detail = "") =>
    (error: unknown) => {
      const code = codeOf(error)
      return new CheckpointStoreUnavailable({
        backend: "nats",
        operation,
        location,
        reason: messageOf(error) + detail,
        ...(code === undefined ? {} : { code }),
      })
    }
  const client = "js" in access ? access.js : access
  return Effect.tryPromise({
    try: () =>
      new Kvm(client).create(options.bucket, {
        storage: StorageType.File,
        history: 1,
        replicas: options.replicas ?? 1,
        description: "rollout projection checkpoints",
      }),
    catch: unavailable("open bucket"),
  }).pipe(
    Effect.map((kv: KV): CheckpointStoreShape => {
      let large: Promise<ObjectStore> | undefined
      const largeStore = () => {
        large ??= new Objm(client).create(`${options.bucket}_LARGE`, {
          storage: StorageType.File,
          replicas: options.replicas ?? 1,
          description: "rollout projection checkpoints too large for one KV value",
        })
        return large
      }
      /** The checkpoint's text: the KV value, or the object it points at. */
      const textOf = async (name: string, value: string): Promise<string | undefined> => {
        if (!value.startsWith('{"largeCheckpoint":')) return value
        const pointer = JSON.parse(value) as { largeCheckpoint: string }
        const blob = await (await largeStore()).getBlob(pointer.largeCheckpoint)
        if (blob === null)
          throw new Error(`the large checkpoint ${pointer.largeCheckpoint} of ${name} is missing`)
        return new TextDecoder("utf-8", { fatal: true }).decode(blob)
      }
      const load = (name: string) =>
        Effect.andThen(checkName(name, location, "load"), () =>
          Effect.tryPromise({ try: () => kv.get(name), catch: unavailable("load") }).pipe(
            Effect.flatMap((entry) => {
              if (entry === null || entry.operation !== "PUT") return Effect.succeed(undefined)
              let value: string
              try {
                value = entry.string()
              } catch (error) {
                return Effect.fail(
                  new CheckpointUnreadable({
                    projection: name,
                    location: `${location}/${name}`,
                    reason: `not UTF-8: ${messageOf(error)}`,
                  }),
                )
              }
              return Effect.tryPromise({
                try: () => textOf(name, value),
                catch: (error) =>
                  new CheckpointUnreadable({
                    projection: name,
                    location: `${location}/${name}`,
                    reason: messageOf(error),
                  }),
              }).pipe(
                Effect.flatMap((text) => {
                  if (text === undefined) return Effect.succeed(undefined)
                  const parsed = parseCheckpoint(text, name)
                  return Result.isSuccess(parsed)
                    ? Effect.succeed(parsed.success)
                    : Effect.fail(
                        new CheckpointUnreadable({
                          projection: name,
                          location: `${location}/${name}`,
                          reason: parsed.failure,
                        }),
                      )
                }),
              )
            }),
          ),
        )
      const save = (name: string, checkpoint: Checkpoint) =>
        Effect.andThen(checkName(name, location, "save"), () => {
          const text = JSON.stringify(checkpoint)
          const bytes = Buffer.byteLength(text)
          return Effect.tryPromise({
            try: async () => {
              if (bytes <= KV_VALUE_LIMIT) {
                await kv.put(name, text)
                return
              }
              // The object first, then the pointer: a crash in between leaves the old checkpoint valid.
              const object = `${name}-${checkpoint.position}`
              const store = await largeStore()
              await store.putBlob({ name: object }, new TextEncoder().encode(text))
              const previous = await kv.get(name)
              await kv.put(name, JSON.stringify({ largeCheckpoint: object, bytes }))
              const old = previous?.operation === "PUT" ? previous.string() : ""
              if (old.startsWith('{"largeCheckpoint":')) {
                const stale = (JSON.parse(old) as { largeCheckpoint: string }).largeCheckpoint
                if (stale !== object) await store.delete(stale).catch(() => undefined)
              }
            },
            catch: unavailable("save", ` (checkpoint of ${name} is ${bytes} bytes)`),
          }).pipe(Effect.asVoid)
        })
      const remove = (name: string) =>
        Effect.andThen(checkName(name, location, "remove"), () =>
          Effect.tryPromise({
            try: async () => {
              const entry = await kv.get(name)
              const value = entry?.operation === "PUT" ? entry.string() : ""
              await kv.purge(name)
              if (value.startsWith('{"largeCheckpoint":')) {
                const object = (JSON.parse(value) as { largeCheckpoint: string }).largeCheckpoint
                await (await largeStore()).delete(object).catch(() => undefined)
              }
            },
            catch: unavailable("remove"),
          }),
        )
      return { backend: "nats", location, load, save, remove }
    }),
  )
}
