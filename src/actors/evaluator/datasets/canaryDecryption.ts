/**
 * The benchmarks' canary encryption, undone in memory (plaintext is never written anywhere): a
 * field is base64 text; its bytes XOR a key repeated to their length give UTF-8 text. BrowseComp
 * and BrowseComp-ZH use SHA-256 of the canary string as the key; xbench-DeepSearch uses the raw
 * UTF-8 bytes of the canary.
 */
import { createHash } from "node:crypto"
import * as Result from "effect/Result"

/** `sha256`: key = SHA-256(canary); `raw`: key = the canary's UTF-8 bytes. */
export type CanaryKeyScheme = "sha256" | "raw"

export const canaryKey = (canary: string, scheme: CanaryKeyScheme): Uint8Array =>
  scheme === "sha256"
    ? new Uint8Array(createHash("sha256").update(canary, "utf8").digest())
    : new Uint8Array(Buffer.from(canary, "utf8"))

/** Each byte XOR the key byte at the same position, the key repeated as often as needed. */
export const xorWithKey = (data: Uint8Array, key: Uint8Array): Uint8Array => {
  if (key.length === 0) throw new RangeError("xorWithKey: the key is empty")
  const out = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ key[i % key.length]!
  return out
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Strict base64 (line breaks and spaces allowed): the bytes, or why the text is not base64. */
export const decodeBase64 = (text: string): Result.Result<Uint8Array, string> => {
  const compact = text.replace(/[ \t\r\n]/g, "")
  if (!BASE64.test(compact)) return Result.fail("not base64 (unexpected character)")
  const padded = compact.endsWith("=")
  if (padded ? compact.length % 4 !== 0 : compact.length % 4 === 1)
    return Result.fail("not base64 (bad length or padding)")
  return Result.succeed(new Uint8Array(Buffer.from(compact, "base64")))
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Decrypts one field to text; fails with the reason when it is not base64 or not valid UTF-8. */
export const decryptField = (ciphertext: string, key: Uint8Array): Result.Result<string, string> => {
  if (key.length === 0) return Result.fail("the canary is empty, so there is no key")
  const bytes = decodeBase64(ciphertext)
  if (Result.isFailure(bytes)) return Result.fail(bytes.failure)
  try {
    return Result.succeed(utf8.decode(xorWithKey(bytes.success, key)))
  } catch {
    return Result.fail("decrypts to bytes that are not valid UTF-8 (wrong canary or not encrypted)")
  }
}
