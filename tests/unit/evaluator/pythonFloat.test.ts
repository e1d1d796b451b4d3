/**
 * `pythonFloat` follows CPython's `float(str)`: a table of cases (each checked against CPython
 * 3.11 when written), and fast-check properties against a reference grammar written down here
 * independently of the implementation:
 *
 *   input    = { ws } [sign] (number | special) { ws }
 *   ws       = " " | "\t" | "\n" | "\v" | "\f" | "\r" | a code point ≥ U+0080 with str.isspace()
 *              (U+001C..U+001F are isspace() but are NOT stripped by float())
 *   number   = (digits ["." [digits]] | "." digits) [("e" | "E") [sign] digits]
 *   digits   = digit { ["_"] digit }          (an underscore only between two digits)
 *   digit    = any code point of Unicode category Nd, worth its place in its run of ten
 *   special  = "inf" | "infinity" | "nan"      (any letter case)
 *   sign     = "+" | "-"
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  decimalDigitValue,
  isPythonWhitespace,
  pythonFloat,
} from "../../../src/actors/evaluator/scoring/pythonFloat.ts"

const ASCII_SPACES = [" ", "\t", "\n", "\v", "\f", "\r"]
/** Every code point ≥ U+0080 for which Python's str.isspace() is true. */
const UNICODE_SPACES = [
  0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]
/** Code points of the digit zero of some Nd runs (ASCII, Arabic-Indic, Devanagari, Thai, fullwidth, …). */
const DIGIT_ZEROS = [0x30, 0x660, 0x6f0, 0x966, 0x9e6, 0xe50, 0xff10, 0x1d7ce, 0x1d7d8, 0x104a0, 0x1e950]

describe("pythonFloat: cases checked against CPython", () => {
  const cases: ReadonlyArray<readonly [string, number | undefined]> = [
    ["1", 1],
    ["  -2.5  ", -2.5],
    ["1_000", 1000],
    ["1_000.000_1", 1000.0001],
    ["1e1_0", 1e10],
    ["1__0", undefined],
    ["_1", undefined],
    ["1_", undefined],
    ["1_e5", undefined],
    ["1e_5", undefined],
    ["1._5", undefined],
    ["1e3", 1000],
    ["1E+3", 1000],
    ["5.", 5],
    [".5", 0.5],
    ["+.5e-1", 0.05],
    [".", undefined],
    ["e5", undefined],
    ["1e", undefined],
    ["1e+", undefined],
    ["", undefined],
    [" ", undefined],
    ["\t\n", undefined],
    ["0x64", undefined],
    ["0b1", undefined],
    ["1 000", undefined],
    ["١٢٣", 123],
    ["١_٢", 12],
    ["１２.５", 12.5],
    ["𝟙𝟘", 10],
    ["\u00a01\u3000", 1],
    ["1\u0085", 1],
    ["\u20001", 1],
    ["\x1c1", undefined],
    ["1\x1f", undefined],
    ["\ufeff1", undefined],
    ["²", undefined],
    ["Ⅷ", undefined],
    ["inf", Number.POSITIVE_INFINITY],
    ["-iNfInItY", Number.NEGATIVE_INFINITY],
    ["+Infinity", Number.POSITIVE_INFINITY],
    ["infinit", undefined],
    ["in_f", undefined],
    ["infinity ", Number.POSITIVE_INFINITY],
    ["1e999", Number.POSITIVE_INFINITY],
    ["-1e999", Number.NEGATIVE_INFINITY],
    ["1e-999", 0],
    ["0.1", 0.1],
    ["00012", 12],
    ["+-1", undefined],
    ["1\x00", undefined],
    ["1,000", undefined],
    ["$5", undefined],
  ]
  it.each(cases)("float(%j) → %s", (text, expected) => {
    expect(pythonFloat(text)).toBe(expected)
  })

  it("reads NaN in any case and with a sign, and keeps the sign of zero", () => {
    expect(pythonFloat("nan")).toBeNaN()
    expect(pythonFloat("-NaN")).toBeNaN()
    expect(pythonFloat(" +nAn ")).toBeNaN()
    expect(Object.is(pythonFloat("-0"), -0)).toBe(true)
    expect(Object.is(pythonFloat("-0.0e5"), -0)).toBe(true)
  })

  it("disagrees with JavaScript's Number exactly where Python does", () => {
    expect(Number("")).toBe(0)
    expect(pythonFloat("")).toBeUndefined()
    expect(Number("0x64")).toBe(100)
    expect(pythonFloat("0x64")).toBeUndefined()
    expect(Number("1_000")).toBeNaN()
    expect(pythonFloat("1_000")).toBe(1000)
    expect(Number("Infinity")).toBe(Number.POSITIVE_INFINITY)
    expect(Number("inf")).toBeNaN()
    expect(pythonFloat("inf")).toBe(Number.POSITIVE_INFINITY)
  })

  it("knows Python's whitespace and the value of decimal digits in other scripts", () => {
    for (const cp of [0x09, 0x1c, 0x1f, 0x20, 0x85, 0xa0, 0x2028, 0x3000])
      expect(isPythonWhitespace(cp)).toBe(true)
    for (const cp of [0x08, 0x7f, 0x200b, 0xfeff, 0x41]) expect(isPythonWhitespace(cp)).toBe(false)
    for (const zero of DIGIT_ZEROS) for (let d = 0; d < 10; d++) expect(decimalDigitValue(zero + d)).toBe(d)
    expect(decimalDigitValue(0xb2)).toBeUndefined() // superscript two is No, not Nd
  })
})

/** A string of the grammar, with the plain ASCII number it denotes (no underscores, ASCII digits). */
const grammarString = (() => {
  const digit = fc.record({ zero: fc.constantFrom(...DIGIT_ZEROS), value: fc.integer({ min: 0, max: 9 }) })
  const digits = fc
    .array(fc.record({ d: digit, underscore: fc.boolean() }), { minLength: 1, maxLength: 6 })
    .map((ds) => ({
      text: ds
        .map(
          ({ d, underscore }, i) => (i > 0 && underscore ? "_" : "") + String.fromCodePoint(d.zero + d.value),
        )
        .join(""),
      ascii: ds.map(({ d }) => String(d.value)).join(""),
    }))
  const sign = fc.constantFrom("", "+", "-")
  const ws = fc
    .array(
      fc.oneof(
        fc.constantFrom(...ASCII_SPACES),
        fc.constantFrom(...UNICODE_SPACES.map((c) => String.fromCodePoint(c))),
      ),
      {
        maxLength: 3,
      },
    )
    .map((xs) => xs.join(""))
  const mantissa = fc.oneof(
    fc
      .record({ int: digits, dot: fc.boolean(), frac: fc.option(digits, { nil: undefined }) })
      .map(({ int, dot, frac }) =>
        dot || frac !== undefined
          ? { text: `${int.text}.${frac?.text ?? ""}`, ascii: `${int.ascii}.${frac?.ascii ?? ""}` }
          : int,
      ),
    digits.map((frac) => ({ text: `.${frac.text}`, ascii: `.${frac.ascii}` })),
  )
  const exponent = fc.option(
    fc.record({ e: fc.constantFrom("e", "E"), sign, digits }).map(({ e, sign, digits }) => ({
      text: `${e}${sign}${digits.text}`,
      ascii: `e${sign}${digits.ascii}`,
    })),
    { nil: undefined },
  )
  const number = fc.record({ mantissa, exponent }).map(({ mantissa, exponent }) => ({
    text: mantissa.text + (exponent?.text ?? ""),
    ascii: mantissa.ascii + (exponent?.ascii ?? ""),
  }))
  const special = fc
    .record({
      word: fc.constantFrom("inf", "infinity", "nan"),
      upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    })
    .map(({ word, upper }) => {
      const text = [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join("")
      return { text, ascii: word }
    })
  return fc
    .record({ lead: ws, sign, body: fc.oneof(number, special), trail: ws })
    .map(({ lead, sign, body, trail }) => ({
      text: lead + sign + body.text + trail,
      ascii: sign + body.ascii,
    }))
})()

const numberOf = (ascii: string): number => {
  const special = /^([+-]?)(inf|infinity|nan)$/.exec(ascii)
  if (special === null) return Number.parseFloat(ascii)
  if (special[2] === "nan") return Number.NaN
  return special[1] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
}

/** The reference recognizer: the grammar above as a hand-written state machine. */
const referenceAccepts = (text: string): boolean => {
  let s = ""
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    if (cp < 0x7f) s += ch
    else if (UNICODE_SPACES.includes(cp)) s += " "
    else if (/^\p{Nd}$/u.test(ch)) s += "7"
    else return false
  }
  let start = 0
  let end = s.length
  while (start < end && ASCII_SPACES.includes(s[start]!)) start++
  while (end > start && ASCII_SPACES.includes(s[end - 1]!)) end--
  s = s.slice(start, end)
  let i = 0
  if (s[i] === "+" || s[i] === "-") i++
  if (["inf", "infinity", "nan"].includes(s.slice(i).toLowerCase())) return true
  const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9"
  /** Reads digits with single underscores between them; the number of digits read. */
  const digitRun = (): number => {
    let n = 0
    while (i < s.length) {
      if (isDigit(s[i])) {
        n++
        i++
      } else if (s[i] === "_" && n > 0 && isDigit(s[i + 1])) i++
      else break
    }
    return n
  }
  const intDigits = digitRun()
  let fracDigits = 0
  if (s[i] === ".") {
    i++
    fracDigits = digitRun()
  }
  if (intDigits + fracDigits === 0) return false
  if (s[i] === "e" || s[i] === "E") {
    i++
    if (s[i] === "+" || s[i] === "-") i++
    if (digitRun() === 0) return false
  }
  return i === s.length
}

/** Strings from pieces that make near-misses likely. */
const nearMiss = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        "0",
        "1",
        "7",
        "_",
        "__",
        ".",
        "e",
        "E",
        "+",
        "-",
        " ",
        "\t",
        "\x1c",
        "\u00a0",
        "\u3000",
        "\ufeff",
      ),
      fc.constantFrom(
        "inf",
        "infinity",
        "nan",
        "InF",
        "x",
        "0x",
        "٣",
        "１",
        "𝟙",
        "²",
        "Ⅷ",
        "$",
        ",",
        "%",
        "\x00",
      ),
      fc.string({ maxLength: 2 }),
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(""))

describe("pythonFloat against the reference grammar", () => {
  test.prop([grammarString], { numRuns: 2000 })(
    "accepts every string of the grammar, with its value",
    ({ text, ascii }) => {
      const value = pythonFloat(text)
      const expected = numberOf(ascii)
      if (Number.isNaN(expected)) expect(value).toBeNaN()
      else expect(value).toBe(expected)
    },
  )

  test.prop([nearMiss], { numRuns: 5000 })(
    "accepts exactly what the reference recognizer accepts",
    (text) => {
      expect(pythonFloat(text) !== undefined).toBe(referenceAccepts(text))
    },
  )

  test.prop([fc.string({ unit: "grapheme-ascii", maxLength: 20 })], { numRuns: 2000 })(
    "agrees with the recognizer on arbitrary ASCII",
    (text) => {
      expect(pythonFloat(text) !== undefined).toBe(referenceAccepts(text))
    },
  )

  test.prop([fc.string({ unit: "binary", maxLength: 12 })], { numRuns: 2000 })("never throws", (text) => {
    expect(() => pythonFloat(text)).not.toThrow()
  })
})
