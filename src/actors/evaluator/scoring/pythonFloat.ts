/**
 * Python's `float(str)` and `str.isspace()` in TypeScript, because GAIA's official scorer decides
 * with them and JavaScript's `Number` disagrees on the edges (`Number("")` is 0, `Number("0x64")`
 * is 100, `Number("1_000")` is NaN; Python says error, error, 1000.0).
 *
 * What CPython does with a `str`, step by step, and what this module does the same way:
 *   1. Each character at or above U+007F becomes ASCII: whitespace (`str.isspace`) → " ", a decimal
 *      digit (Unicode general category Nd) → "0".."9"; any other one makes the string invalid.
 *      Characters below U+007F stay as they are (so U+001C..U+001F are *not* stripped below).
 *   2. Leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r) is stripped; nothing left
 *      is an error.
 *   3. Underscores are allowed only between two digits ("1_000", "1e1_0"); they are then removed.
 *   4. The rest must match, in full:
 *        number   = [sign] (digits ["." [digits]] | "." digits) [exponent]
 *        exponent = ("e" | "E") [sign] digits
 *        special  = [sign] ("inf" | "infinity" | "nan")      (case-insensitive)
 *      and is rounded to the nearest double (both CPython and V8 round correctly).
 * The set of Nd characters is the one of the JavaScript engine's Unicode version, which may be
 * newer than a given Python's (a digit added in a later Unicode version is accepted here).
 */

/** Code points for which Python's `str.isspace()` is true (also what `\s` matches in `re`). */
const PYTHON_WHITESPACE: ReadonlySet<number> = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
])

/** Python's `str.isspace()` for one code point. */
export const isPythonWhitespace = (codePoint: number): boolean => PYTHON_WHITESPACE.has(codePoint)

const ASCII_WHITESPACE = " \t\n\v\f\r"
const DECIMAL_DIGIT = /^\p{Nd}$/u

const isDecimalDigit = (codePoint: number): boolean => DECIMAL_DIGIT.test(String.fromCodePoint(codePoint))

/**
 * The value 0..9 of a Unicode decimal digit, or undefined. Unicode places decimal digits in runs of
 * ten consecutive code points from 0 to 9, so the value is the distance from the start of the
 * contiguous Nd block, modulo 10 (blocks such as the mathematical digits hold several runs).
 */
export const decimalDigitValue = (codePoint: number): number | undefined => {
  if (!isDecimalDigit(codePoint)) return undefined
  let start = codePoint
  while (start > 0 && isDecimalDigit(start - 1)) start--
  return (codePoint - start) % 10
}

const NUMBER = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i

const isAsciiDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9"

/** Step 1: the ASCII form of the string, or undefined when a character cannot be converted. */
const toAscii = (text: string): string | undefined => {
  let out = ""
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    if (cp < 0x7f) out += ch
    else if (isPythonWhitespace(cp)) out += " "
    else {
      const digit = decimalDigitValue(cp)
      if (digit === undefined) return undefined
      out += String(digit)
    }
  }
  return out
}

/** Step 3: the string without its underscores, or undefined when one is not between two digits. */
const withoutUnderscores = (text: string): string | undefined => {
  if (!text.includes("_")) return text
  for (let i = 0; i < text.length; i++)
    if (text[i] === "_" && !(isAsciiDigit(text[i - 1]) && isAsciiDigit(text[i + 1]))) return undefined
  return text.replaceAll("_", "")
}

/** Python's `float(text)`: the number, or undefined where Python raises `ValueError`. */
export const pythonFloat = (text: string): number | undefined => {
  const ascii = toAscii(text)
  if (ascii === undefined) return undefined
  let start = 0
  let end = ascii.length
  while (start < end && ASCII_WHITESPACE.includes(ascii[start]!)) start++
  while (end > start && ASCII_WHITESPACE.includes(ascii[end - 1]!)) end--
  if (start === end) return undefined
  const plain = withoutUnderscores(ascii.slice(start, end))
  if (plain === undefined) return undefined
  const special = SPECIAL.exec(plain)
  if (special !== null) {
    if (special[2]!.toLowerCase() === "nan") return Number.NaN
    return special[1] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
  }
  // The grammar is a subset of what `Number` reads, and both round to the nearest double.
  return NUMBER.test(plain) ? Number(plain) : undefined
}
