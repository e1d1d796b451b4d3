/**
 * The `BlobStore` port: content-addressed storage for values too large to travel inside an event
 * (a 50 MB dataset question, a long tool output). A blob is named by the SHA-256 of its bytes, so
 * storing the same content twice stores it once, and every read is checked against the name: a
 * blob whose bytes do not hash to its name is damage, reported as such. Two adapters pass one
 * contract suite: `fileBlobStore` (files beside the embedded log) and `objectBlobStore` (a NATS
 * Object Store bucket beside the JetStream log).
 */
import { createHash } from "node:crypto"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { BlobRef } from "../schema.ts"

/** A blob the event names is not in the store. */
export class BlobMissing extends Schema.TaggedError<BlobMissing>()("BlobMissing", {
  sha256: Schema.String,
  bytes: Schema.Number,
  location: Schema.String,
}) {
  override get message(): string {
    return `blob sha256 ${this.sha256} (${this.bytes} bytes) is missing from ${this.location}`
  }
}

/** A stored blob whose bytes are not what its name says: damage, not absence. */
export class BlobDamaged extends Schema.TaggedError<BlobDamaged>()("BlobDamaged", {
  sha256: Schema.String,
  location: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `blob sha256 ${this.sha256} in ${this.location} is damaged: ${this.reason}`
  }
}

/** The store itself failed (disk, permissions, NATS); retrying later may help. */
export class BlobStoreUnavailable extends Schema.TaggedError<BlobStoreUnavailable>()("BlobStoreUnavailable", {
  backend: Schema.Literals(["file", "nats"]),
  operation: Schema.String,
  location: Schema.String,
  code: Schema.optionalKey(Schema.String),
  reason: Schema.String,
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `blob store ${this.location}: ${this.operation} failed${code}: ${this.reason}`
  }
}

export interface BlobStoreShape {
  readonly backend: "file" | "nats"
  /** Where blobs live (a directory or `obj://BUCKET`), for messages. */
  readonly location: string
  /** Stores `content` under its hash (nothing is written when that hash is already stored). */
  readonly put: (content: Uint8Array, mediaType?: string) => Effect.Effect<BlobRef, BlobStoreUnavailable>
  /** The bytes of a stored blob, checked against the ref's hash and size. */
  readonly get: (ref: BlobRef) => Effect.Effect<Uint8Array, BlobMissing | BlobDamaged | BlobStoreUnavailable>
  /** Whether a blob of this hash and size is stored (its bytes are not read). */
  readonly has: (ref: BlobRef) => Effect.Effect<boolean, BlobStoreUnavailable>
}

export const sha256Hex = (content: Uint8Array): string => createHash("sha256").update(content).digest("hex")

/** The ref naming `content`. */
export const blobRefOf = (content: Uint8Array, mediaType?: string): BlobRef =>
  mediaType === undefined
    ? { sha256: sha256Hex(content), bytes: content.byteLength }
    : { sha256: sha256Hex(content), bytes: content.byteLength, mediaType }

const hexName = /^[0-9a-f]{64}$/

/** A ref's hash as a safe object or file name; anything else is refused before it reaches a path. */
export const checkedName = (ref: BlobRef): string => {
  if (!hexName.test(ref.sha256)) throw new Error(`"${ref.sha256}" is not a SHA-256 in lower-case hex`)
  return ref.sha256
}

/** Damage found in bytes read for `ref`, or undefined when they are the blob's. */
export const damageIn = (ref: BlobRef, content: Uint8Array, location: string): BlobDamaged | undefined => {
  if (content.byteLength !== ref.bytes) {
    return new BlobDamaged({
      sha256: ref.sha256,
      location,
      reason: `${content.byteLength} bytes stored, ${ref.bytes} expected`,
    })
  }
  const actual = sha256Hex(content)
  return actual === ref.sha256
    ? undefined
    : new BlobDamaged({ sha256: ref.sha256, location, reason: `the stored bytes hash to ${actual}` })
}
