/**
 * DARE's randomness, seeded and reproducible anywhere: a counter-based generator, so element i of a
 * tensor gets the same number whatever order tensors are merged in and however the checkpoint is
 * sharded, and the torch reference (trainer/rollout_trainer/merge_reference.py) can draw the very
 * same numbers with plain integer arithmetic. Each (seed, model, tensor name) gets its own stream
 * key; element i's number is a 32-bit integer mixing of key + i·φ (a Weyl sequence through the
 * 32-bit finalizer of MurmurHash3). Pure: no Math.random, no clock.
 */

const golden = 0x9e3779b9

/** MurmurHash3's 32-bit finalizer: every input bit moves about half the output bits. */
export const mix32 = (x: number): number => {
  let h = x >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const utf8 = new TextEncoder()

/** FNV-1a over a name's UTF-8 bytes. */
export const nameHash = (name: string): number => {
  let h = 0x811c9dc5
  for (const byte of utf8.encode(name)) {
    h ^= byte
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The stream key of one model's delta of one tensor under a seed (a 32-bit unsigned integer). */
export const streamKey = (seed: number, model: number, tensorName: string): number =>
  mix32(nameHash(tensorName) ^ mix32((seed ^ Math.imul(model + 1, golden)) >>> 0))

/** Element i's 32-bit number in a stream. */
export const streamBits = (key: number, i: number): number => mix32((key + Math.imul(i >>> 0, golden)) >>> 0)

/** Element i's number as a uniform draw in [0, 1). */
export const streamUniform = (key: number, i: number): number => streamBits(key, i) / 4294967296
