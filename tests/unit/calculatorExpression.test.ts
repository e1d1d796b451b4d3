/**
 * The calculator's expression evaluator: worked examples, refusals naming the column, and
 * fast-check properties — random expression trees evaluate to the exact value a BigInt rational
 * reference computes, and arbitrary text never throws (a value or a CalcError).
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { evaluate } from "../../src/programs/toolServers/calculator/expression.ts"
import { calculatorResult } from "../../src/programs/toolServers/calculator/server.ts"

describe("calculator expressions", () => {
  it("evaluates integer arithmetic exactly", () => {
    expect(evaluate("123*45")).toEqual({ value: "5535" })
    expect(evaluate(" 2 + 3 × 4 − 6 ÷ 3 ")).toEqual({ value: "12" })
    expect(evaluate("(2+3)*4")).toEqual({ value: "20" })
    expect(evaluate("-(-7) - -2")).toEqual({ value: "9" })
    expect(evaluate("99999999999999999999 * 99999999999999999999")).toEqual({
      value: "9999999999999999999800000000000000000001",
    })
    expect(evaluate("7/2")).toEqual({ value: "3.5" })
    expect(evaluate("-1/3")).toEqual({ value: "-0.333333333333" })
    expect(evaluate("6/4*2")).toEqual({ value: "3" })
  })

  it("refuses what is not an integer expression, naming the column", () => {
    expect(evaluate("1/0")).toEqual({ error: { column: 2, reason: "division by zero" } })
    expect(evaluate("2 +")).toEqual({ error: { column: 4, reason: "expected a number, found the end" } })
    expect(evaluate("(1+2")).toEqual({ error: { column: 5, reason: "expected ')'" } })
    expect(evaluate("1.5*2")).toEqual({ error: { column: 2, reason: 'unexpected "."' } })
    expect(evaluate("process.exit()")).toEqual({
      error: { column: 1, reason: 'expected a number, found "p"' },
    })
    expect(evaluate("")).toEqual({ error: { column: 1, reason: "expected a number, found the end" } })
    expect(evaluate("(".repeat(100) + "1" + ")".repeat(100))).toMatchObject({
      error: { reason: "nested deeper than 64 levels" },
    })
    expect(evaluate("1+".repeat(600) + "1")).toMatchObject({
      error: { reason: "longer than 1000 characters" },
    })
  })

  it("answers the tool call with the value alone, or an error result", () => {
    expect(calculatorResult("12*34")).toEqual({ content: [{ type: "text", text: "408" }] })
    expect(calculatorResult("12*")).toMatchObject({
      isError: true,
      content: [
        { type: "text", text: "error at column 4 of the expression: expected a number, found the end" },
      ],
    })
  })
})

type Tree = { n: number } | { op: "+" | "-" | "*"; l: Tree; r: Tree }

const tree: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((rec) => ({
  t: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ n: fc.integer({ min: 0, max: 10_000 }) }),
    fc.record({ op: fc.constantFrom("+" as const, "-" as const, "*" as const), l: rec("t"), r: rec("t") }),
  ),
})).t

const text = (t: Tree): string => ("n" in t ? String(t.n) : `(${text(t.l)} ${t.op} ${text(t.r)})`)
const value = (t: Tree): bigint => {
  if ("n" in t) return BigInt(t.n)
  const l = value(t.l)
  const r = value(t.r)
  return t.op === "+" ? l + r : t.op === "-" ? l - r : l * r
}

describe("calculator properties", () => {
  test.prop([tree])("a random expression tree evaluates to its exact value", (t) => {
    const source = text(t)
    fc.pre(source.length <= 1000)
    expect(evaluate(source)).toEqual({ value: value(t).toString() })
  })

  test.prop([fc.string({ maxLength: 200 })])("arbitrary text gives a value or a located error", (s) => {
    const result = evaluate(s)
    if ("error" in result) {
      expect(result.error.column).toBeGreaterThanOrEqual(1)
      expect(result.error.column).toBeLessThanOrEqual(s.length + 1)
      expect(result.error.reason).not.toBe("")
    } else expect(result.value).toMatch(/^-?\d+(\.\d+)?$/)
  })
})
