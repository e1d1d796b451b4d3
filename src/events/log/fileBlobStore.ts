/**
 * The file adapter of the `BlobStore` port, for the embedded log: one file per blob, named by its
 * SHA-256 under a two-character fan-out directory (`<dir>/ab/ab12…`), kept in the log's own
 * directory so copying a log copies its blobs. A blob is written to a temporary file, flushed to
 * disk and renamed into place, so a crash never leaves a partial blob under its name; the event
 * that names it is appended only after that.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { BlobRef } from "../schema.ts"
import {
  type BlobDamaged,
  BlobMissing,
  type BlobStoreShape,
  BlobStoreUnavailable,
  blobRefOf,
  checkedName,
  damageIn,
} from "./blobStore.ts"

/** Where the embedded log of `namespace` under `dataDir` keeps its blobs. */
export const fileBlobDir = (dataDir: string, namespace: string): string =>
  path.join(dataDir, "log", namespace, "blobs")

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

export const fileBlobStore = (dir: string): BlobStoreShape => {
  const unavailable = (operation: string) => (error: unknown) => {
    const code = codeOf(error)
    return new BlobStoreUnavailable({
      backend: "file",
      operation,
      location: dir,
      reason: error instanceof Error ? error.message : String(error),
      ...(code === undefined ? {} : { code }),
    })
  }
  const fileOf = (name: string) => path.join(dir, name.slice(0, 2), name)

  /** The stored size of a blob, or undefined when there is no file under its name. */
  const sizeOf = async (name: string): Promise<number | undefined> => {
    try {
      return (await fs.stat(fileOf(name))).size
    } catch (error) {
      if (codeOf(error) === "ENOENT") return undefined
      throw error
    }
  }

  const put = (content: Uint8Array, mediaType?: string) =>
    Effect.tryPromise({
      try: async (): Promise<BlobRef> => {
        const ref = blobRefOf(content, mediaType)
        const file = fileOf(ref.sha256)
        // Content-addressed: a file of the right size under this name is this content (a damaged
        // one is reported on read, with its hash).
        if ((await sizeOf(ref.sha256)) === ref.bytes) return ref
        await fs.mkdir(path.dirname(file), { recursive: true })
        const temp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`
        try {
          const handle = await fs.open(temp, "w")
          try {
            await handle.writeFile(content)
            await handle.sync()
          } finally {
            await handle.close()
          }
          await fs.rename(temp, file)
        } catch (error) {
          await fs.rm(temp, { force: true })
          throw error
        }
        return ref
      },
      catch: unavailable("put"),
    })

  const get = (ref: BlobRef) =>
    Effect.tryPromise({
      try: async () => {
        const file = fileOf(checkedName(ref))
        try {
          return await fs.readFile(file)
        } catch (error) {
          if (codeOf(error) === "ENOENT") return undefined
          throw error
        }
      },
      catch: unavailable("get"),
    }).pipe(
      Effect.flatMap((content): Effect.Effect<Uint8Array, BlobMissing | BlobDamaged> => {
        if (content === undefined)
          return Effect.fail(new BlobMissing({ sha256: ref.sha256, bytes: ref.bytes, location: dir }))
        const damage = damageIn(ref, content, fileOf(ref.sha256))
        return damage === undefined ? Effect.succeed(content) : Effect.fail(damage)
      }),
    )

  const has = (ref: BlobRef) =>
    Effect.tryPromise({
      try: async () => (await sizeOf(checkedName(ref))) === ref.bytes,
      catch: unavailable("has"),
    })

  return { backend: "file", location: dir, put, get, has }
}
