/**
 * The NATS adapter of the `BlobStore` port, for the JetStream log: a JetStream Object Store bucket
 * (`<NS>_BLOBS`, file storage) holding one object per blob, named by its SHA-256. The Object Store
 * splits a blob into chunks under the server's message limit, so a 50 MB value is stored where a
 * 50 MB event would be refused. The bucket is created on first use, by whichever process needs it.
 */
import { type JetStreamClient, StorageType } from "@nats-io/jetstream"
import { type ObjectInfo, type ObjectStore, Objm } from "@nats-io/obj"
import * as Effect from "effect/Effect"
import type { BlobRef } from "../schema.ts"
import { streamsFor } from "../subjects.ts"
import {
  BlobDamaged,
  BlobMissing,
  type BlobStoreShape,
  BlobStoreUnavailable,
  blobRefOf,
  checkedName,
  damageIn,
} from "./blobStore.ts"

/** The Object Store bucket of a namespace's blobs: `<NS>_BLOBS`, beside `<NS>_EVENTS`. */
export const blobBucketFor = (namespace: string): string =>
  `${streamsFor(namespace).namespace.toUpperCase().replaceAll("-", "_")}_BLOBS`

export interface ObjectBlobStoreOptions {
  readonly bucket: string
  /** Replicas of the bucket's stream (production runs R3); default 1. */
  readonly replicas?: number
}

/** The Object Store's own digest of an object (`SHA-256=` and padded base64url) as lower-case hex. */
const digestHex = (info: ObjectInfo): string | undefined => {
  const prefix = "SHA-256="
  if (!info.digest.startsWith(prefix)) return undefined
  return Buffer.from(info.digest.slice(prefix.length).replace(/=+$/, ""), "base64url").toString("hex")
}

/** The client's own integrity check failed while reading an object: its chunks are damaged. */
const isClientDamageReport = (error: unknown): boolean =>
  error instanceof Error &&
  /digests do not match|unknown digest type|unable to parse digest/.test(error.message)

export const objectBlobStore = (
  access: JetStreamClient | { readonly js: JetStreamClient },
  options: ObjectBlobStoreOptions,
): BlobStoreShape => {
  const location = `obj://${options.bucket}`
  const client = "js" in access ? access.js : access
  const unavailable = (operation: string) => (error: unknown) =>
    new BlobStoreUnavailable({
      backend: "nats",
      operation,
      location,
      reason: error instanceof Error ? error.message : String(error),
    })
  let bucket: Promise<ObjectStore> | undefined
  const store = (): Promise<ObjectStore> => {
    bucket ??= new Objm(client)
      .create(options.bucket, {
        storage: StorageType.File,
        replicas: options.replicas ?? 1,
        description: "rollout event fields too large to travel inside an event",
      })
      .catch((error: unknown) => {
        // Not cached: the next call tries again (the server may be back).
        bucket = undefined
        throw error
      })
    return bucket
  }

  /** Whether the stored object under the ref's name is this blob, by the Object Store's metadata. */
  const holds = (info: ObjectInfo | null, ref: BlobRef): boolean =>
    info !== null && !info.deleted && info.size === ref.bytes && digestHex(info) === ref.sha256

  const put = (content: Uint8Array, mediaType?: string) =>
    Effect.tryPromise({
      try: async (): Promise<BlobRef> => {
        const ref = blobRefOf(content, mediaType)
        const objects = await store()
        if (holds(await objects.info(ref.sha256), ref)) return ref
        await objects.putBlob({ name: ref.sha256 }, content)
        return ref
      },
      catch: unavailable("put"),
    })

  const get = (ref: BlobRef) =>
    Effect.tryPromise({
      try: async () => {
        const objects = await store()
        try {
          return await objects.getBlob(checkedName(ref))
        } catch (error) {
          if (isClientDamageReport(error)) return { damaged: (error as Error).message.split("\n")[0]! }
          throw error
        }
      },
      catch: unavailable("get"),
    }).pipe(
      Effect.flatMap((content): Effect.Effect<Uint8Array, BlobMissing | BlobDamaged> => {
        if (content === null)
          return Effect.fail(new BlobMissing({ sha256: ref.sha256, bytes: ref.bytes, location }))
        if ("damaged" in content)
          return Effect.fail(new BlobDamaged({ sha256: ref.sha256, location, reason: content.damaged }))
        const damage = damageIn(ref, content, `${location}/${ref.sha256}`)
        return damage === undefined ? Effect.succeed(content) : Effect.fail(damage)
      }),
    )

  const has = (ref: BlobRef) =>
    Effect.tryPromise({
      try: async () => holds(await (await store()).info(checkedName(ref)), ref),
      catch: unavailable("has"),
    })

  return { backend: "nats", location, put, get, has }
}
