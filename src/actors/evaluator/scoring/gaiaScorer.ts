/**
 * GAIA's exact-match scorer, following the rules of its official `question_scorer` with Python's
 * semantics (see `pythonFloat.ts`):
 *   - number mode when the ground truth parses as a float: `$`, `%` and `,` are removed from the
 *     answer, which is parsed as a float and compared for exact equality (NaN equals nothing);
 *   - list mode when the ground truth contains `,` or `;`: both are split on either separator,
 *     the lengths must match, and elements are compared in order (number mode for a numeric
 *     ground-truth element, otherwise whitespace removed and lower-cased, punctuation kept);
 *   - string mode otherwise: whitespace removed, lower-cased, ASCII punctuation removed, compared.
 * Two deliberate differences from the official code, both about answers it cannot read: a missing
 * answer is wrong (the official code compares the string "None"), and an answer that does not
 * parse as a number is wrong (the official code turns it into `inf`, so it would match a ground
 * truth of "inf").
 */
import { isPythonWhitespace, pythonFloat } from "./pythonFloat.ts"

export type GaiaMode = "number" | "list" | "string"

export interface GaiaScore {
  readonly correct: boolean
  readonly mode: GaiaMode
  /** Why a wrong answer is wrong, when that is more than "different". */
  readonly reason?: string
}

/** Python's `string.punctuation`: ASCII only. */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

/** `re.sub(r"\s", "", s).lower()`, then (optionally) `.translate(no punctuation)`. */
export const normalizeGaiaString = (text: string, removePunctuation: boolean): string => {
  let noSpace = ""
  for (const ch of text) if (!isPythonWhitespace(ch.codePointAt(0)!)) noSpace += ch
  const lower = noSpace.toLowerCase()
  if (!removePunctuation) return lower
  let out = ""
  for (const ch of lower) if (!PUNCTUATION.has(ch)) out += ch
  return out
}

/** The answer as a number after removing `$`, `%` and `,`, or undefined when it is not one. */
export const normalizeGaiaNumber = (answer: string): number | undefined =>
  pythonFloat(answer.replace(/[$%,]/g, ""))

const numbersEqual = (answer: string, truth: number): boolean => {
  const value = normalizeGaiaNumber(answer)
  return value !== undefined && value === truth
}

export const gaiaScore = (prediction: string | undefined, truth: string): GaiaScore => {
  const truthNumber = pythonFloat(truth)
  const mode: GaiaMode = truthNumber !== undefined ? "number" : /[,;]/.test(truth) ? "list" : "string"
  if (prediction === undefined) return { correct: false, mode, reason: "no answer" }
  switch (mode) {
    case "number": {
      if (normalizeGaiaNumber(prediction) === undefined)
        return { correct: false, mode, reason: "the answer is not a number" }
      return { correct: numbersEqual(prediction, truthNumber!), mode }
    }
    case "list": {
      const truthItems = truth.split(/[,;]/)
      const answerItems = prediction.split(/[,;]/)
      if (truthItems.length !== answerItems.length)
        return {
          correct: false,
          mode,
          reason: `the answer has ${answerItems.length} item(s), the ground truth ${truthItems.length}`,
        }
      const correct = truthItems.every((item, i) => {
        const answerItem = answerItems[i]!
        const itemNumber = pythonFloat(item)
        return itemNumber !== undefined
          ? numbersEqual(answerItem, itemNumber)
          : normalizeGaiaString(answerItem, false) === normalizeGaiaString(item, false)
      })
      return { correct, mode }
    }
    case "string":
      return { correct: normalizeGaiaString(prediction, true) === normalizeGaiaString(truth, true), mode }
  }
}
