/**
 * The calculator's arithmetic: integer expressions with `+ - * /` (also `× ÷ −`), parentheses and
 * unary minus, parsed by recursive descent and evaluated exactly (BigInt: no floating point, no
 * `eval`). Division that does not come out even answers a decimal of at most 12 places, rounded
 * toward zero. Input is bounded (length, nesting), and every refusal is a CalcError naming the
 * column and what was expected, never a throw.
 */

/** Longest expression accepted: bounds the digits of every intermediate result. */
export const MAX_EXPRESSION_LENGTH = 1000
const MAX_DEPTH = 64
const DECIMAL_PLACES = 12

/** A refused expression: the 1-based column and what was wrong there. */
export interface CalcError {
  readonly column: number
  readonly reason: string
}

/** An exact rational value while evaluating; the result is shown as an integer or a decimal. */
interface Rational {
  readonly n: bigint
  readonly d: bigint
}

const gcd = (a: bigint, b: bigint): bigint => {
  let x = a < 0n ? -a : a
  let y = b < 0n ? -b : b
  while (y !== 0n) [x, y] = [y, x % y]
  return x
}

const make = (n: bigint, d: bigint): Rational => {
  const sign = d < 0n ? -1n : 1n
  const g = gcd(n, d) || 1n
  return { n: (sign * n) / g, d: (sign * d) / g }
}

const OPERATORS: Readonly<Record<string, "+" | "-" | "*" | "/">> = {
  "+": "+",
  "-": "-",
  "−": "-",
  "*": "*",
  "×": "*",
  x: "*",
  "/": "/",
  "÷": "/",
}

class Parser {
  private at = 0
  constructor(private readonly text: string) {}

  fail(reason: string, at = this.at): never {
    throw { column: at + 1, reason } satisfies CalcError
  }

  private skip(): void {
    while (this.at < this.text.length && /\s/.test(this.text[this.at]!)) this.at++
  }

  private peek(): string | undefined {
    this.skip()
    return this.text[this.at]
  }

  parse(): Rational {
    const value = this.sum(0)
    if (this.peek() !== undefined) this.fail(`unexpected ${JSON.stringify(this.text[this.at])}`)
    return value
  }

  private sum(depth: number): Rational {
    let left = this.product(depth)
    for (;;) {
      const op = OPERATORS[this.peek() ?? ""]
      if (op !== "+" && op !== "-") return left
      this.at++
      const right = this.product(depth)
      left =
        op === "+"
          ? make(left.n * right.d + right.n * left.d, left.d * right.d)
          : make(left.n * right.d - right.n * left.d, left.d * right.d)
    }
  }

  private product(depth: number): Rational {
    let left = this.unary(depth)
    for (;;) {
      const op = OPERATORS[this.peek() ?? ""]
      if (op !== "*" && op !== "/") return left
      const column = this.at
      this.at++
      const right = this.unary(depth)
      if (op === "*") left = make(left.n * right.n, left.d * right.d)
      else {
        if (right.n === 0n) this.fail("division by zero", column)
        left = make(left.n * right.d, left.d * right.n)
      }
    }
  }

  private unary(depth: number): Rational {
    const c = this.peek()
    if (c !== undefined && OPERATORS[c] === "-") {
      this.at++
      const value = this.unary(depth + 1)
      return { n: -value.n, d: value.d }
    }
    if (c === "+") {
      this.at++
      return this.unary(depth + 1)
    }
    return this.atom(depth)
  }

  private atom(depth: number): Rational {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`)
    const c = this.peek()
    if (c === "(") {
      this.at++
      const value = this.sum(depth + 1)
      if (this.peek() !== ")") this.fail("expected ')'")
      this.at++
      return value
    }
    const start = this.at
    while (this.at < this.text.length && /[0-9]/.test(this.text[this.at]!)) this.at++
    if (this.at === start)
      this.fail(
        c === undefined
          ? "expected a number, found the end"
          : `expected a number, found ${JSON.stringify(c)}`,
      )
    // Digit group separators are not read: "1,000" is refused at the comma rather than guessed.
    return { n: BigInt(this.text.slice(start, this.at)), d: 1n }
  }
}

/** The value as text: an integer, else a decimal truncated to 12 places (trailing zeros dropped). */
export const formatValue = (value: Rational): string => {
  if (value.d === 1n) return value.n.toString()
  const negative = value.n < 0n
  const n = negative ? -value.n : value.n
  const whole = n / value.d
  const scaled = ((n % value.d) * 10n ** BigInt(DECIMAL_PLACES)) / value.d
  const fraction = scaled.toString().padStart(DECIMAL_PLACES, "0").replace(/0+$/, "")
  const text = fraction === "" ? whole.toString() : `${whole}.${fraction}`
  return negative && text !== "0" ? `-${text}` : text
}

/** Evaluates `expression`: its value as text, or where and why it was refused. */
export const evaluate = (expression: string): { readonly value: string } | { readonly error: CalcError } => {
  if (expression.length > MAX_EXPRESSION_LENGTH)
    return {
      error: { column: MAX_EXPRESSION_LENGTH + 1, reason: `longer than ${MAX_EXPRESSION_LENGTH} characters` },
    }
  try {
    return { value: formatValue(new Parser(expression).parse()) }
  } catch (error) {
    if (typeof error === "object" && error !== null && "column" in error) return { error: error as CalcError }
    throw error
  }
}
