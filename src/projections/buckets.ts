/**
 * An immutable record split into 16 buckets by a hash of its keys, for projection states that
 * track many short-lived entries (open episodes). An update copies one small bucket and the 16
 * bucket slots instead of every entry: copying a 64-entry record per event was the largest share
 * of a rebuild's fold. The value is plain JSON, so checkpoints store it as it is.
 */
import { ownValue } from "./projection.ts"

export type Buckets<V> = Readonly<Record<string, Readonly<Record<string, V>>>>

export const emptyBuckets: Buckets<never> = {}

const bucketOf = (key: string): string => {
  let h = 0
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0
  return String((h >>> 0) % 16)
}

/** `record` without `key` (a copy; `record` itself is never changed). */
export const withoutKey = <V>(record: Readonly<Record<string, V>>, key: string): Record<string, V> => {
  const out: Record<string, V> = {}
  for (const k of Object.keys(record)) {
    if (k === key) continue
    // An assignment to "__proto__" would set the prototype instead of copying the entry.
    if (k === "__proto__")
      Object.defineProperty(out, k, {
        value: record[k],
        enumerable: true,
        writable: true,
        configurable: true,
      })
    else out[k] = record[k]!
  }
  return out
}

/** The value under `key`, or undefined. */
export const bucketGet = <V>(buckets: Buckets<V>, key: string): V | undefined => {
  const bucket = ownValue(buckets, bucketOf(key))
  return bucket === undefined ? undefined : ownValue(bucket, key)
}

/** `buckets` with `key` set to `value`, or removed when `value` is undefined. */
export const bucketSet = <V>(buckets: Buckets<V>, key: string, value: V | undefined): Buckets<V> => {
  const slot = bucketOf(key)
  const bucket = ownValue(buckets, slot) ?? {}
  if (value === undefined && ownValue(bucket, key) === undefined) return buckets
  const next = value === undefined ? withoutKey(bucket, key) : { ...bucket, [key]: value }
  if (Object.keys(next).length === 0) return withoutKey(buckets, slot)
  return { ...buckets, [slot]: next }
}

/** Every value, bucket by bucket. */
export const bucketValues = <V>(buckets: Buckets<V>): ReadonlyArray<V> =>
  Object.values(buckets).flatMap((bucket) => Object.values(bucket))
