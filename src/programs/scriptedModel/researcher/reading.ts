/**
 * Reading: which search result to read next, and how a page is read — the names its sentences
 * mention (capitalized word runs), how close a span sits to a question word, the page's subject,
 * and each sentence with the question terms it covers and the names that chain it to sentences on
 * other pages. Answer picking and the follow-up search both read pages this way.
 */
import type { Step } from "./conversation.ts"
import { type Decision, quote } from "./decision.ts"
import { type QuestionAnalysis, wantedTerms } from "./question.ts"
import { pickWeighted } from "./samples.ts"
import type { Page, SearchHit } from "./toolResults.ts"
import { isStopWord, MONTHS_AND_DAYS, sentencesOf, stem, type Token, tokenize } from "./words.ts"

// ---------------------------------------------------------------------------------------------
// What to read

/** The top three results of the last search that were not read yet. */
export const unreadResults = (steps: ReadonlyArray<Step>): ReadonlyArray<SearchHit> => {
  const lastSearch = [...steps].reverse().find((s) => s.kind === "search")
  const fetched = new Set(steps.flatMap((s) => (s.kind === "read" ? [s.url] : [])))
  return lastSearch?.kind === "search"
    ? (lastSearch.hits ?? []).slice(0, 3).filter((h) => !fetched.has(h.url))
    : []
}

/** After a search: one of the unread top results (not empty), seeded by `u`, weighted to the top. */
export const readResult = (unread: ReadonlyArray<SearchHit>, u: number): Decision => {
  const weights = [0.6, 0.25, 0.15].slice(0, unread.length)
  const hit = pickWeighted(unread, weights, u) ?? unread[0]!
  return {
    kind: "read",
    url: hit.url,
    think: `Result ${hit.rank}, ${quote(hit.title)}, looks relevant: ${quote(hit.snippet, 120)}. I will read it.`,
  }
}

/** What reading on depends on: the results left and the reads allowed. */
export interface ReadingState {
  readonly unread: ReadonlyArray<SearchHit>
  readonly reads: number
  readonly maxReads: number
}

/** Reading the best unread result, saying `why`; undefined when none is left or reading is done. */
export const readNext = (state: ReadingState, why: string): Decision | undefined => {
  const hit = state.unread[0]
  if (hit === undefined || state.reads >= state.maxReads) return undefined
  return {
    kind: "read",
    url: hit.url,
    think: `${why} I will read result ${hit.rank}, ${quote(hit.title)}.`,
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a page

/** A candidate stretch of a sentence's tokens, as the answer it would give. */
export interface Span {
  readonly answer: string
  readonly start: number
  /** Exclusive. */
  readonly end: number
}

/** A word that can be part of a name: capitalized, and not a function word, month or day. */
const isCap = (t: Token | undefined): boolean =>
  t?.capitalized === true && !isStopWord(t.text) && !MONTHS_AND_DAYS.has(t.text.toLowerCase())

/** Capitalized word runs ("Osric Penhallow", "University of Harrowmere"), leading function words dropped. */
export const nameSpans = (tokens: ReadonlyArray<Token>, midSentenceCaps: ReadonlySet<string>): Span[] => {
  const spans: Span[] = []
  let i = 0
  while (i < tokens.length) {
    if (!isCap(tokens[i])) {
      i++
      continue
    }
    let end = i + 1
    while (end < tokens.length && tokens[end]!.joined) {
      if (isCap(tokens[end])) end++
      else if (tokens[end]?.text === "of" && tokens[end + 1]?.joined === true && isCap(tokens[end + 1]))
        end += 2
      else break
    }
    const single = end - i === 1
    // A lone capitalized word opening the sentence may be an ordinary word: keep it only when the
    // page also writes it capitalized mid-sentence.
    if (!(single && i === 0 && !midSentenceCaps.has(tokens[i]!.text))) {
      spans.push({
        answer: tokens
          .slice(i, end)
          .map((t) => t.text.replace(/['’]s$/, ""))
          .join(" "),
        start: i,
        end,
      })
    }
    i = end
  }
  return spans
}

/** Closeness to a wanted word: within 1 token 2, 3 → 1.5, 5 → 1, 8 → 0.5. */
export const proximity = (tokens: ReadonlyArray<Token>, span: Span, wanted: ReadonlySet<string>): number => {
  let best = 0
  tokens.forEach((t, j) => {
    if (!wanted.has(t.stem) || isStopWord(t.text)) return
    const distance = j < span.start ? span.start - j : j >= span.end ? j - span.end + 1 : 0
    const bonus = distance <= 1 ? 2 : distance <= 3 ? 1.5 : distance <= 5 ? 1 : distance <= 8 ? 0.5 : 0
    if (bonus > best) best = bonus
  })
  return best
}

/** The words the pages write capitalized mid-sentence: names, where a sentence-opening capital may not be. */
export const midCaps = (pages: ReadonlyArray<Page>): Set<string> => {
  const caps = new Set<string>()
  for (const page of pages)
    for (const sentence of sentencesOf(page.text))
      tokenize(sentence).forEach((t, i) => {
        if (i > 0 && t.capitalized) caps.add(t.text)
      })
  return caps
}

/** A sentence of a page, read against the question. */
export interface ReadSentence {
  readonly page: Page
  readonly text: string
  readonly tokens: ReadonlyArray<Token>
  /** The question's core terms (and asked units) it covers, its page's title included. */
  readonly covers: ReadonlySet<string>
  /** The names it mentions that the question does not (lower case), its page's subject included. */
  readonly names: ReadonlySet<string>
}

/** A page's subject: its title, when that is a name the question does not use. */
export const subjectOf = (analysis: QuestionAnalysis, page: Page): string | undefined => {
  const words = tokenize(page.title)
  return words.length > 0 &&
    words.every((t) => t.capitalized || t.text === "of") &&
    !words.some((t) => analysis.entityTerms.has(t.stem))
    ? page.title
    : undefined
}

/** Every sentence of the pages (each page once), read against the question; `links` maps a URL to the bridge it was reached by. */
export const readSentences = (
  analysis: QuestionAnalysis,
  pages: ReadonlyArray<Page>,
  links: ReadonlyMap<string, string>,
): ReadonlyArray<ReadSentence> => {
  const caps = midCaps(pages)
  const wanted = wantedTerms(analysis)
  const seen = new Set<string>()
  const out: ReadSentence[] = []
  for (const page of pages) {
    if (seen.has(page.url)) continue
    seen.add(page.url)
    const title = tokenize(page.title).filter((t) => !isStopWord(t.text))
    const subject = subjectOf(analysis, page)
    for (const text of sentencesOf(page.text)) {
      const tokens = tokenize(text)
      const covers = new Set([...tokens, ...title].map((t) => t.stem).filter((t) => wanted.has(t)))
      const names = new Set(
        nameSpans(tokens, caps)
          .filter((span) =>
            tokens
              .slice(span.start, span.end)
              .some((t) => t.text !== "of" && !analysis.entityTerms.has(t.stem)),
          )
          .map((span) => span.answer.toLowerCase()),
      )
      if (subject !== undefined) names.add(subject.toLowerCase())
      const link = links.get(page.url)
      if (link !== undefined) names.add(link.toLowerCase())
      out.push({ page, text, tokens, covers, names })
    }
  }
  return out
}

/** The stems a page mentions, its title included. */
export const termsOf = (page: Page): Set<string> =>
  new Set(tokenize(`${page.title} ${page.text}`).map((t) => t.stem))

/** The question's words (and units) that no page mentions: what a follow-up search still needs. */
export const uncoveredWords = (
  analysis: QuestionAnalysis,
  pages: ReadonlyArray<Page>,
): ReadonlyArray<string> => {
  const covered = new Set(pages.flatMap((p) => [...termsOf(p)]))
  return [...new Set([...analysis.words, ...analysis.units])].filter((w) => !covered.has(stem(w)))
}
