/**
 * Answer picking: every span of the asked kind in the pages read (a year for "when / what year", a
 * number for "how many / how long / …", a name after a place preposition for "in which town", else
 * a capitalized name), scored by how much of the question its sentence covers — borrowing from a
 * sentence on another page that shares a name with it, the chain of a two-hop question — how close
 * it sits to a question word and whether it fits the asked unit; then the choice among them, with a
 * seeded chance of the runner-up when the two are close, and the answer's `<think>`.
 */
import { type Decision, quote } from "./decision.ts"
import { type AnswerKind, type QuestionAnalysis, wantedTerms } from "./question.ts"
import {
  midCaps,
  nameSpans,
  proximity,
  type ReadSentence,
  readSentences,
  type Span,
  subjectOf,
} from "./reading.ts"
import type { Draw } from "./samples.ts"
import type { Page } from "./toolResults.ts"
import { isStopWord, LOCATIVES, MONTHS_AND_DAYS, NUMBER_WORDS, type Token, UNITS } from "./words.ts"

export interface Candidate {
  /** The answer as it would be given (numbers as digits, without thousands separators). */
  readonly answer: string
  readonly score: number
  /** The share of the wanted terms its sentence (with its page's title) covers, 0..1. */
  readonly support: number
  /** The question terms its sentence covers (stems), its page's title included. */
  readonly covers: ReadonlyArray<string>
  /** How close it sits to a question word (0, 0.5, 1, 1.5 or 2). */
  readonly near: number
  /** A number followed by a unit the question does not ask for (see `unitMismatch`). */
  readonly mismatch: number
  readonly sentence: string
  readonly url: string
}

const isYear = (text: string): boolean => /^\d{4}$/.test(text) && Number(text) >= 1000 && Number(text) <= 2100

/** A token's number as digits (`"1,200"` → `1200`, `"twenty-one"` → `21`), if it is one. */
const numberValue = (token: Token): string | undefined => {
  if (/^\d/.test(token.text)) return token.text.replace(/,/g, "")
  const lower = token.text.toLowerCase()
  const direct = NUMBER_WORDS[lower]
  if (direct !== undefined) return String(direct)
  const [tens, ones] = lower.split("-")
  const t = NUMBER_WORDS[tens ?? ""]
  const o = NUMBER_WORDS[ones ?? ""]
  return t !== undefined && o !== undefined && t >= 20 && o < 10 ? String(t + o) : undefined
}

/**
 * The spans of a sentence that could answer a question of `kind`; `subject` (the page's) answers
 * "the town" on the page about a town.
 */
const candidateSpans = (
  kind: AnswerKind,
  tokens: ReadonlyArray<Token>,
  midSentenceCaps: ReadonlySet<string>,
  analysis: QuestionAnalysis,
  subject: string | undefined,
): Span[] => {
  switch (kind) {
    case "year":
      return tokens.flatMap((t, i) =>
        isYear(t.text) && !analysis.numbers.has(t.text) ? [{ answer: t.text, start: i, end: i + 1 }] : [],
      )
    case "number":
      return tokens.flatMap((t, i) => {
        const value = numberValue(t)
        if (value === undefined || isYear(t.text) || analysis.numbers.has(value)) return []
        const near = [tokens[i - 1], tokens[i + 1]]
        // A day of a date ("22 August") is no count.
        if (near.some((n) => n !== undefined && MONTHS_AND_DAYS.has(n.text.toLowerCase()))) return []
        return [{ answer: value, start: i, end: i + 1 }]
      })
    case "name":
      return nameSpans(tokens, midSentenceCaps).filter((span) => {
        // A name the question already uses is what it asks about, not the answer.
        if (tokens.slice(span.start, span.end).some((t) => t.capitalized && analysis.entityTerms.has(t.stem)))
          return false
        // A name used as a modifier ("the Skerrow light", "the Maun valley") names something else.
        const after = tokens[span.end]
        return !(after?.joined === true && !isStopWord(after.text) && /^\p{Ll}/u.test(after.text))
      })
    case "place": {
      const spans = candidateSpans("name", tokens, midSentenceCaps, analysis, subject).filter((span) => {
        const before = tokens[span.start - 1]?.text.toLowerCase()
        const before2 = tokens[span.start - 2]?.text.toLowerCase()
        return (
          (before !== undefined && LOCATIVES.has(before)) ||
          (before === "the" && before2 !== undefined && LOCATIVES.has(before2))
        )
      })
      // "born in the town" on the page about a town: the town is the page's subject.
      if (subject !== undefined)
        tokens.forEach((t, i) => {
          const next = tokens[i + 1]
          if (
            tokens[i - 1]?.text.toLowerCase() === "the" &&
            analysis.askTerms.has(t.stem) &&
            next?.text !== "of"
          )
            spans.push({ answer: subject, start: i, end: i + 1 })
        })
      return spans
    }
  }
}

/**
 * For a number: 2.5 when a unit follows it that the question does not ask for ("twenty kilometres"
 * for "how many arches"), 1.5 when the question names a unit and something else follows ("eleven
 * islands" for "how tall, in metres"); else 0.
 */
const unitMismatch = (analysis: QuestionAnalysis, tokens: ReadonlyArray<Token>, span: Span): number => {
  if (analysis.kind !== "number") return 0
  let next = tokens[span.end]
  if (next !== undefined && /^(square|cubic)$/i.test(next.text)) next = tokens[span.end + 1]
  const unit = next?.stem.replace(/-.*$/, "")
  if (unit !== undefined && UNITS.has(unit) && !analysis.askTerms.has(unit)) return 2.5
  if (analysis.units.length > 0 && (unit === undefined || !analysis.askTerms.has(unit))) return 1.5
  return 0
}

/**
 * Every candidate of the question's kind in the pages, best first (equal answers merged). A
 * candidate's score is how much of the question its sentence covers — in full for its own words
 * and its page's title, half for the words of a sentence on another page that shares a name with
 * it (the chain of a two-hop question: "designed by the engineer Matthias Corve" on one page, "he
 * was born in Dunlow" on Matthias Corve's) — plus its closeness to a question word, minus a unit
 * that does not fit.
 */
export const rankCandidates = (
  analysis: QuestionAnalysis,
  pages: ReadonlyArray<Page>,
  emphasis: ReadonlySet<string> = new Set(),
  links: ReadonlyMap<string, string> = new Map(),
): ReadonlyArray<Candidate> => {
  const caps = midCaps(pages)
  const sentences = readSentences(analysis, pages, links)
  const byName = new Map<string, ReadSentence[]>()
  for (const s of sentences) for (const name of s.names) byName.set(name, [...(byName.get(name) ?? []), s])
  const near = new Set([...analysis.coreTerms, ...analysis.askTerms])
  const possible = Math.max(1, wantedTerms(analysis).size)
  const byAnswer = new Map<string, Candidate & { mentions: number }>()
  for (const sentence of sentences) {
    let borrowed = 0
    for (const name of sentence.names)
      for (const other of byName.get(name) ?? []) {
        if (other.page.url === sentence.page.url) continue
        const extra = [...other.covers].filter((t) => !sentence.covers.has(t)).length
        if (extra > borrowed) borrowed = extra
      }
    let stressed = 0
    for (const t of emphasis) if (sentence.covers.has(t)) stressed++
    const overlap = sentence.covers.size + 0.5 * borrowed + stressed
    const subject = subjectOf(analysis, sentence.page)
    for (const span of candidateSpans(analysis.kind, sentence.tokens, caps, analysis, subject)) {
      const closeness = proximity(sentence.tokens, span, near)
      const mismatch = unitMismatch(analysis, sentence.tokens, span)
      const score = overlap + closeness - mismatch
      const key = span.answer.toLowerCase()
      const seen = byAnswer.get(key)
      if (seen === undefined || score > seen.score) {
        byAnswer.set(key, {
          answer: span.answer,
          score,
          support: Math.min(1, overlap / possible),
          covers: [...sentence.covers],
          near: closeness,
          mismatch,
          sentence: sentence.text,
          url: sentence.page.url,
          mentions: (seen?.mentions ?? 0) + 1,
        })
      } else seen.mentions++
    }
  }
  return [...byAnswer.values()]
    .map(({ mentions, ...c }) => ({ ...c, score: c.score + 0.25 * Math.min(mentions - 1, 2) }))
    .sort((a, b) => b.score - a.score || a.answer.localeCompare(b.answer))
}

/** A candidate worth stopping for: its sentence covers most of the question and it sits by a question word. */
export const isConvincing = (c: Candidate | undefined): boolean =>
  c !== undefined && c.support >= 0.6 && c.near >= 1 && c.mismatch === 0

/** Chooses among candidates: the best, or with a seeded chance growing with its closeness, the runner-up. */
const choose = (
  ranked: ReadonlyArray<Candidate>,
  draw: Draw,
): { readonly chosen: Candidate | undefined; readonly slipped: boolean } => {
  const [best, second] = ranked
  if (best === undefined) return { chosen: undefined, slipped: false }
  if (second === undefined || best.score <= 0) return { chosen: best, slipped: false }
  const closeness = Math.max(0, Math.min(1, second.score / best.score))
  const slip = 0.3 * closeness ** 2
  return draw("pick") < slip ? { chosen: second, slipped: true } : { chosen: best, slipped: false }
}

const describeCandidates = (ranked: ReadonlyArray<Candidate>): string =>
  ranked
    .slice(0, 3)
    .map((c) => `${c.answer} (${c.score.toFixed(1)})`)
    .join(", ")

/**
 * The answer: the chosen candidate (see `choose`) with the evidence for it, or `unknown` when the
 * pages hold nothing of the asked kind. `kindWords` names that kind (`KIND_WORDS`); `why` opens the
 * `<think>`.
 */
export const answerFrom = (
  ranked: ReadonlyArray<Candidate>,
  kindWords: string,
  draw: Draw,
  why: string,
): Decision => {
  const { chosen, slipped } = choose(ranked, draw)
  if (chosen === undefined) {
    return {
      kind: "answer",
      answer: "unknown",
      think: `${why} I found no ${kindWords.replace(/^an? /, "")} in what I read, so I cannot answer reliably.`,
    }
  }
  return {
    kind: "answer",
    answer: chosen.answer,
    think:
      `${why} The question asks for ${kindWords}. Candidates by evidence: ${describeCandidates(ranked)}. ` +
      (slipped
        ? `${chosen.answer}, from ${quote(chosen.sentence)}, also fits; I go with it.`
        : `The best supported is ${chosen.answer}, from ${quote(chosen.sentence)} (${chosen.url}).`),
  }
}
