/**
 * The researcher's words: tokens with their matching stems, sentences, and the small word lists
 * every heuristic leans on (stop words, months and days, units, place prepositions, number words).
 * Language only — nothing here knows the question, a page or a decision.
 */

const STOP_WORDS = new Set(
  (
    "a about above after again against all also am an and any are as at be because been before being " +
    "below between both but by can could did do does doing down during each few for from further had has " +
    "have having he her here hers herself him himself his how i if in into is it its itself just me more " +
    "most my myself no nor not now of off on once only or other our ours out over own same she should so " +
    "some such than that the their theirs them themselves then there these they this those through to too " +
    "under until up very was we were what when where which while who whom whose why will with would you " +
    "your yours one's his her its known called"
  ).split(" "),
)

export const MONTHS_AND_DAYS = new Set(
  (
    "january february march april may june july august september october november december " +
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays thursdays " +
    "fridays saturdays sundays"
  ).split(" "),
)

export const UNITS = new Set(
  (
    "metre meter kilometre kilometer centimetre millimetre mile feet foot inch yard tonne ton kilogram " +
    "gram pound litre liter hectare acre percent degree minute hour second day week month"
  ).split(" "),
)

export const LOCATIVES = new Set(["in", "at", "from", "near", "of", "to", "on", "into", "outside", "beside"])

export const NUMBER_WORDS: Readonly<Record<string, number>> = {
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  thirteen: 13,
  fourteen: 14,
  fifteen: 15,
  sixteen: 16,
  seventeen: 17,
  eighteen: 18,
  nineteen: 19,
  twenty: 20,
  thirty: 30,
  forty: 40,
  fifty: 50,
  sixty: 60,
  seventy: 70,
  eighty: 80,
  ninety: 90,
  hundred: 100,
  twice: 2,
}

/**
 * A word's matching key: lower case, no accents or possessive, and a light suffix strip (plural
 * `s`/`ies`, past `ed`, `ing`), so "designed"/"design" and "metres"/"metre" meet.
 */
export const stem = (word: string): string => {
  let w = word
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/['’]s?$/, "")
  if (w.length > 4 && w.endsWith("ies")) w = `${w.slice(0, -3)}y`
  else if (w.length > 3 && w.endsWith("s") && !/(ss|us|is)$/.test(w)) w = w.slice(0, -1)
  if (w.length > 5 && w.endsWith("ed")) w = w.slice(0, -2)
  else if (w.length > 6 && w.endsWith("ing")) w = w.slice(0, -3)
  return w
}

export const isStopWord = (word: string): boolean => STOP_WORDS.has(word.toLowerCase())

export interface Token {
  readonly text: string
  readonly stem: string
  readonly capitalized: boolean
  /** Only spaces separate it from the token before (no comma, bracket, …). */
  readonly joined: boolean
}

const TOKEN = /\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\p{L}[\p{L}\p{M}'’]*(?:[-–]\p{L}[\p{L}\p{M}'’]*)*/gu

export const tokenize = (text: string): ReadonlyArray<Token> => {
  const tokens: Token[] = []
  let end = 0
  for (const m of text.matchAll(TOKEN)) {
    const at = m.index ?? 0
    tokens.push({
      text: m[0],
      stem: stem(m[0]),
      capitalized: /^\p{Lu}/u.test(m[0]),
      joined: tokens.length > 0 && /^\s*$/.test(text.slice(end, at)),
    })
    end = at + m[0].length
  }
  return tokens
}

/** A text's sentences (a `;` ends one too: it usually starts another statement). */
export const sentencesOf = (text: string): ReadonlyArray<string> =>
  text
    .replace(/\s+/g, " ")
    .trim()
    .split(/(?<=[.!?;])\s+(?=[\p{Lu}\d"“‘(])/u)
    .filter((s) => s.length > 0)
