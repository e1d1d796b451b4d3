/**
 * Reading the question: the kind of answer it wants (a year, a number, a place, a name), read from
 * its opening wh-phrase, and its words sorted by role — what is asked (`year`, `town`, a unit),
 * what the evidence must be about, the role words a two-hop question hangs on, and the names and
 * numbers it already gives (never the answer).
 */
import { isStopWord, stem, tokenize, UNITS } from "./words.ts"

export type AnswerKind = "year" | "number" | "place" | "name"

export interface QuestionAnalysis {
  readonly question: string
  readonly kind: AnswerKind
  /** Stems saying what kind of answer is wanted (`year`, `town`, a unit, the measure adjective). */
  readonly askTerms: ReadonlySet<string>
  /** Stems of the other content words: what the evidence must be about. */
  readonly coreTerms: ReadonlySet<string>
  /** Core stems the question writes in lower case: role words such as "architect" or "river". */
  readonly roleTerms: ReadonlySet<string>
  /** Stems of the question's capitalized words (its named entities), never an answer. */
  readonly entityTerms: ReadonlySet<string>
  /** The content words as written, in order, one per stem (the search query's material). */
  readonly words: ReadonlyArray<string>
  /** Units the question names ("in metres"), as written: the answer is measured in them. */
  readonly units: ReadonlyArray<string>
  /** Numbers the question itself gives ("in 2019"): never the answer. */
  readonly numbers: ReadonlySet<string>
}

const MEASURES = "long|tall|high|deep|far|wide|old|big|large|heavy|much|many"
const PLACE_NOUNS = "town|city|village|country|place|county|province|region|port|state|island|district"

/** The kind of answer a question wants, read from its opening wh-phrase. */
export const answerKindOf = (question: string): AnswerKind => {
  const q = question.trim().toLowerCase()
  if (/^(in |on |during )?(what|which) year\b/.test(q) || /^when\b/.test(q)) return "year"
  if (new RegExp(`^how (${MEASURES})\\b`).test(q)) return "number"
  if (
    /^(what|which) (is|was|are|were) the (\w+ )?(depth|length|height|population|area|number|width|distance|weight|age|size|elevation|count)\b/.test(
      q,
    )
  )
    return "number"
  if (/^where\b/.test(q) || new RegExp(`^(in|from|at|near) (which|what) (${PLACE_NOUNS})\\b`).test(q))
    return "place"
  return "name"
}

export const analyzeQuestion = (question: string): QuestionAnalysis => {
  const kind = answerKindOf(question)
  const lower = question.toLowerCase()
  const ask = new Set<string>(["name"])
  if (kind === "year") ask.add("year")
  const measure = new RegExp(`^how (${MEASURES})\\b`).exec(lower.trim())
  if (measure?.[1] !== undefined) ask.add(stem(measure[1]))
  const place = new RegExp(`\\b(which|what) (${PLACE_NOUNS})\\b`).exec(lower)
  if (kind === "place" && place?.[2] !== undefined) ask.add(stem(place[2]))
  const core = new Set<string>()
  const roles = new Set<string>()
  const entities = new Set<string>()
  const words: string[] = []
  const units: string[] = []
  const seen = new Set<string>()
  tokenize(question).forEach((token, index) => {
    if (isStopWord(token.text)) return
    // A capitalized first word is only the start of the sentence ("Which", "How").
    if (token.capitalized && index > 0) entities.add(token.stem)
    if (UNITS.has(token.stem)) ask.add(token.stem)
    if (UNITS.has(token.stem)) units.push(token.text)
    if (ask.has(token.stem) || seen.has(token.stem)) return
    seen.add(token.stem)
    core.add(token.stem)
    if (!token.capitalized && !/^\d/.test(token.text)) roles.add(token.stem)
    words.push(token.text)
  })
  const numbers = new Set(
    tokenize(question).flatMap((t) => (/^\d/.test(t.text) ? [t.text.replace(/,/g, "")] : [])),
  )
  return {
    question,
    kind,
    askTerms: ask,
    coreTerms: core,
    roleTerms: roles,
    entityTerms: entities,
    words,
    units,
    numbers,
  }
}

/** What evidence should mention: the question's core terms and the units it asks in. */
export const wantedTerms = (analysis: QuestionAnalysis): ReadonlySet<string> =>
  new Set([...analysis.coreTerms, ...[...analysis.askTerms].filter((t) => UNITS.has(t))])
