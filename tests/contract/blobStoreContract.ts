/**
 * The one contract every `BlobStore` adapter passes (files and NATS Object Store): content in,
 * ref out, the same bytes back; storing the same content twice stores it once; a blob larger than
 * a NATS message; absence reported as `BlobMissing` and wrong bytes under a name as `BlobDamaged`,
 * each naming the hash; blobs survive a new store instance (and, on NATS, a server restart); and a
 * property test over generated content. An adapter test file calls `blobStoreContract` with a harness.
 */
import { createHash } from "node:crypto"
import { fc } from "@fast-check/vitest"
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import type { BlobStoreShape } from "../../src/events/log/blobStore.ts"

export interface BlobHarness {
  /** A store on the harness's storage; every call opens a new instance on the same storage. */
  readonly open: () => Promise<BlobStoreShape>
  /** Replaces the stored bytes of `sha256` with `bytes`, behind the store's back (damage). */
  readonly damage: (sha256: string, bytes: Uint8Array) => Promise<void>
  /** Removes the stored blob `sha256` behind the store's back. */
  readonly remove: (sha256: string) => Promise<void>
  /** Restarts the storage engine itself (NATS: the server process), keeping its data. */
  readonly restart?: () => Promise<void>
  readonly cleanup: () => Promise<void>
}

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => {
  const exit = await Effect.runPromise(Effect.exit(effect))
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const found = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (found?._tag !== "Fail") throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return found.error as E
}

const hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const text = (s: string) => new Uint8Array(Buffer.from(s, "utf8"))

export const blobStoreContract = (name: string, makeHarness: () => Promise<BlobHarness>): void => {
  describe(`BlobStore contract: ${name}`, () => {
    const withStore = async (body: (store: BlobStoreShape, h: BlobHarness) => Promise<void>) => {
      const harness = await makeHarness()
      try {
        await body(await harness.open(), harness)
      } finally {
        await harness.cleanup()
      }
    }

    it("stores content under its SHA-256 and gives the same bytes back", async () => {
      await withStore(async (store) => {
        const content = text("a long tool output … with ünïcödé")
        const ref = await run(store.put(content, "text/plain;charset=utf-8"))
        expect(ref).toEqual({
          sha256: hex(content),
          bytes: content.byteLength,
          mediaType: "text/plain;charset=utf-8",
        })
        expect(Buffer.from(await run(store.get(ref)))).toEqual(Buffer.from(content))
        expect(await run(store.has(ref))).toBe(true)
        // The media type is the caller's description; the bytes are found by hash and size alone.
        expect(await run(store.has({ sha256: ref.sha256, bytes: ref.bytes }))).toBe(true)
        expect(await run(store.has({ sha256: ref.sha256, bytes: ref.bytes + 1 }))).toBe(false)
      })
    })

    it("stores empty content", async () => {
      await withStore(async (store) => {
        const ref = await run(store.put(new Uint8Array(0)))
        expect(ref).toEqual({ sha256: hex(new Uint8Array(0)), bytes: 0 })
        expect((await run(store.get(ref))).byteLength).toBe(0)
      })
    })

    it("stores the same content once, whoever puts it", async () => {
      await withStore(async (store, harness) => {
        const content = text("x".repeat(10_000))
        const first = await run(store.put(content))
        const other = await harness.open()
        const second = await run(other.put(content))
        expect(second).toEqual(first)
        // Removing the one stored copy removes it for both: there was only one.
        await harness.remove(first.sha256)
        expect(await run(store.has(first))).toBe(false)
        expect(await run(other.has(first))).toBe(false)
      })
    })

    it("keeps a blob larger than a NATS message (3 MB) whole", async () => {
      await withStore(async (store) => {
        const content = new Uint8Array(3 * 1024 * 1024 + 17)
        for (let i = 0; i < content.length; i++) content[i] = (i * 7919) % 251
        const ref = await run(store.put(content))
        expect(ref.bytes).toBe(content.length)
        const back = await run(store.get(ref))
        expect(hex(back)).toBe(hex(content))
      })
    })

    it("reports a blob that is not there as missing, naming its hash", async () => {
      await withStore(async (store) => {
        const absent = { sha256: hex(text("never stored")), bytes: 12 }
        expect(await run(store.has(absent))).toBe(false)
        const error = await failureOf(store.get(absent))
        expect(error._tag).toBe("BlobMissing")
        expect(error.message).toContain(absent.sha256)
        expect(error.message).toContain(store.location)
      })
    })

    it("reports bytes that do not hash to their name as damage, not absence", async () => {
      await withStore(async (store, harness) => {
        const content = text("the original content of this blob")
        const ref = await run(store.put(content))
        // Same length, one byte changed: only the hash can tell.
        const changed = new Uint8Array(content)
        changed[3] = changed[3]! ^ 1
        await harness.damage(ref.sha256, changed)
        const error = await failureOf(store.get(ref))
        expect(error._tag).toBe("BlobDamaged")
        expect(error.message).toContain(ref.sha256)
        expect(error.message).toContain("damaged")
        // Another length: damage as well.
        await harness.damage(ref.sha256, text("short"))
        expect((await failureOf(store.get(ref)))._tag).toBe("BlobDamaged")
      })
    })

    it("keeps blobs for a new store instance and across a restart of the storage", async () => {
      await withStore(async (store, harness) => {
        const content = text("durable content")
        const ref = await run(store.put(content))
        await harness.restart?.()
        const reopened = await harness.open()
        expect(Buffer.from(await run(reopened.get(ref))).toString("utf8")).toBe("durable content")
      })
    })

    it("gives back what was put, for any content (property)", async () => {
      await withStore(async (store) => {
        await fc.assert(
          fc.asyncProperty(
            fc.oneof(
              fc.uint8Array({ maxLength: 4096 }),
              fc.string({ unit: "grapheme", maxLength: 2000 }).map(text),
            ),
            fc.option(fc.constantFrom("text/plain;charset=utf-8", "application/json"), { nil: undefined }),
            async (content, mediaType) => {
              const ref = await run(store.put(content, mediaType))
              expect(ref.sha256).toBe(hex(content))
              expect(ref.bytes).toBe(content.byteLength)
              expect(ref.mediaType).toBe(mediaType)
              expect(Buffer.from(await run(store.get(ref)))).toEqual(Buffer.from(content))
            },
          ),
          { numRuns: 60 },
        )
      })
    })
  })
}
