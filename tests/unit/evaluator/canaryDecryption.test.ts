/**
 * Canary decryption: the two key schemes, strict base64, UTF-8 checked, and a round trip against
 * an encryption written here independently (Buffer XOR, no code shared with the module).
 */
import { createHash } from "node:crypto"
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import {
  canaryKey,
  decodeBase64,
  decryptField,
} from "../../../src/actors/evaluator/datasets/canaryDecryption.ts"

/** The benchmarks' encryption: UTF-8 bytes XOR the key (repeated), base64. */
const encrypt = (plaintext: string, key: Buffer): string => {
  const data = Buffer.from(plaintext, "utf8")
  const out = Buffer.alloc(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ key[i % key.length]!
  return out.toString("base64")
}
const sha256Key = (canary: string) => createHash("sha256").update(canary).digest()
const rawKey = (canary: string) => Buffer.from(canary, "utf8")

describe("canary decryption", () => {
  it("derives BrowseComp keys by SHA-256 and xbench keys as raw bytes", () => {
    expect(Buffer.from(canaryKey("BrowseComp-ZH", "sha256")).equals(sha256Key("BrowseComp-ZH"))).toBe(true)
    expect(canaryKey("BrowseComp-ZH", "sha256")).toHaveLength(32)
    expect(Buffer.from(canaryKey("xbench:é", "raw")).equals(rawKey("xbench:é"))).toBe(true)
  })

  it("decrypts both schemes, with keys shorter and longer than the data", () => {
    const text = "在某个知名的葡萄酒产区中……距离此地区20-40公里？"
    expect(decryptField(encrypt(text, sha256Key("c")), canaryKey("c", "sha256"))).toEqual(
      Result.succeed(text),
    )
    const longCanary = "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID x"
    expect(decryptField(encrypt("1轮", rawKey(longCanary)), canaryKey(longCanary, "raw"))).toEqual(
      Result.succeed("1轮"),
    )
    expect(decryptField("", canaryKey("c", "raw"))).toEqual(Result.succeed(""))
  })

  it("names what is wrong: not base64, not UTF-8, no key", () => {
    expect(decryptField("体育", canaryKey("c", "raw"))).toEqual(
      Result.fail("not base64 (unexpected character)"),
    )
    expect(decryptField("abcde", canaryKey("c", "raw"))).toEqual(
      Result.fail("not base64 (bad length or padding)"),
    )
    expect(decryptField("ab=", canaryKey("c", "raw"))).toEqual(
      Result.fail("not base64 (bad length or padding)"),
    )
    const wrong = decryptField(
      encrypt("中文文本，足够长以至于错误密钥必然产生无效的字节序列。", sha256Key("right")),
      canaryKey("wrong", "sha256"),
    )
    expect(Result.isFailure(wrong) && wrong.failure).toMatch(/not valid UTF-8/)
    expect(decryptField("AAAA", new Uint8Array())).toEqual(
      Result.fail("the canary is empty, so there is no key"),
    )
  })

  it("accepts base64 broken over lines and without padding", () => {
    const cipher = encrypt("hello world", rawKey("k"))
    const wrapped = `${cipher.slice(0, 4)}\n${cipher.slice(4)}`
    expect(decryptField(wrapped, canaryKey("k", "raw"))).toEqual(Result.succeed("hello world"))
    expect(decryptField(cipher.replace(/=+$/, ""), canaryKey("k", "raw"))).toEqual(
      Result.succeed("hello world"),
    )
  })

  test.prop([
    fc.string({ unit: "grapheme", maxLength: 200 }),
    fc.string({ minLength: 1, maxLength: 80 }),
    fc.boolean(),
  ])("round-trips any text under any canary and scheme", (text, canary, hashed) => {
    const key = hashed ? sha256Key(canary) : rawKey(canary)
    expect(decryptField(encrypt(text, key), canaryKey(canary, hashed ? "sha256" : "raw"))).toEqual(
      Result.succeed(text),
    )
  })

  test.prop([fc.string({ maxLength: 100 })])("never throws on arbitrary ciphertext", (text) => {
    expect(() => decryptField(text, canaryKey("c", "sha256"))).not.toThrow()
    expect(() => decodeBase64(text)).not.toThrow()
  })
})
