/**
 * Searching: the first query (the question's content words, or a seeded paraphrase), a search
 * again when a search failed or found nothing new, and the follow-up of a two-hop question — the
 * bridge entity a page introduces (a name next to a role word of the question, e.g. "the architect
 * Osric Penhallow") searched with the question words the pages did not cover. The research so far
 * is read as phases, one per search with the pages read after it, so a follow-up's pages and what
 * it looked up are known.
 */
import type { Step } from "./conversation.ts"
import { type Decision, KIND_WORDS, quote } from "./decision.ts"
import { type QuestionAnalysis, wantedTerms } from "./question.ts"
import { midCaps, nameSpans, proximity } from "./reading.ts"
import type { Draw } from "./samples.ts"
import type { Page } from "./toolResults.ts"
import { isStopWord, sentencesOf, tokenize } from "./words.ts"

// ---------------------------------------------------------------------------------------------
// The first search

export type QueryVariant = "full" | "subset" | "names"

/**
 * The first search query: the question's content words (`full`), or — a seeded paraphrase — some
 * of the lower-case words dropped (`subset`), or only the names and numbers with the first role
 * word (`names`).
 */
export const buildQuery = (
  analysis: QuestionAnalysis,
  draw: Draw,
): { readonly query: string; readonly variant: QueryVariant } => {
  const full = analysis.words.join(" ")
  const u = draw("query-variant")
  const variant: QueryVariant = u < 0.55 ? "full" : u < 0.85 ? "subset" : "names"
  const isName = (w: string) => /^[\p{Lu}\d]/u.test(w)
  let words: ReadonlyArray<string> = analysis.words
  if (variant === "subset") {
    words = analysis.words.filter((w, i) => isName(w) || draw(`query-keep-${i}`) >= 0.35)
  } else if (variant === "names") {
    const role = analysis.words.find((w) => !isName(w))
    words = analysis.words.filter((w) => isName(w) || w === role)
  }
  const query = words.join(" ")
  // A paraphrase that lost too much is no query: fall back to every content word.
  return words.length >= 2 && query !== full ? { query, variant } : { query: full, variant: "full" }
}

/** The first step: a search for the question's key words (see `buildQuery`). */
export const firstSearch = (analysis: QuestionAnalysis, draw: Draw): Decision => {
  const { query, variant } = buildQuery(analysis, draw)
  return {
    kind: "search",
    query,
    think:
      `The question asks for ${KIND_WORDS[analysis.kind]}. I will search for its key words` +
      (variant === "full" ? "" : variant === "subset" ? ", keeping the main ones" : ", mostly the names") +
      `: ${quote(query)}.`,
  }
}

/** What searching again depends on: the question, what was searched and the searches allowed. */
export interface SearchingState {
  readonly analysis: QuestionAnalysis
  readonly steps: ReadonlyArray<Step>
  readonly searches: number
  readonly maxSearches: number
}

/**
 * Searching again, saying `why`: for every content word, else only the names, whichever was not
 * tried yet; undefined when both were or no search is left.
 */
export const reformulate = (state: SearchingState, why: string): Decision | undefined => {
  if (state.searches >= state.maxSearches) return undefined
  const tried = new Set(state.steps.flatMap((s) => (s.kind === "search" ? [s.query] : [])))
  const names = state.analysis.words.filter((w) => /^\p{Lu}/u.test(w)).join(" ")
  for (const query of [state.analysis.words.join(" "), names]) {
    if (query.trim() !== "" && !tried.has(query))
      return { kind: "search", query, think: `${why} I will search again for ${quote(query)}.` }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// The follow-up of a two-hop question

export interface Bridge {
  readonly name: string
  readonly sentence: string
  /**
   * The page names it as the very thing a role word of the question describes: the role word
   * right before it ("the engineer Matthias Corve") or inside it ("River Tessel" for "the river").
   */
  readonly direct: boolean
}

/**
 * The entity a page introduces for a second hop: a name not in the question, not the page's own
 * subject and not searched for already (`used`: stems), written near a role word of the question —
 * best directly after it, as in "designed by the engineer Matthias Corve" for "the engineer who
 * designed …". Undefined when there is none.
 */
export const findBridge = (
  analysis: QuestionAnalysis,
  pages: ReadonlyArray<Page>,
  used: ReadonlySet<string> = new Set(),
): Bridge | undefined => {
  const caps = midCaps(pages)
  let best: (Bridge & { readonly score: number }) | undefined
  for (const page of pages) {
    const titleStems = new Set(tokenize(page.title).map((t) => t.stem))
    for (const sentence of sentencesOf(page.text)) {
      const tokens = tokenize(sentence)
      const present = new Set([...tokens.map((t) => t.stem), ...titleStems])
      let overlap = 0
      for (const t of analysis.coreTerms) if (present.has(t)) overlap++
      for (const span of nameSpans(tokens, caps)) {
        const words = tokens.slice(span.start, span.end).filter((t) => t.text !== "of")
        const fresh = words.filter(
          (t) => !analysis.coreTerms.has(t.stem) && !analysis.entityTerms.has(t.stem),
        )
        if (fresh.every((t) => used.has(t.stem))) continue
        if (words.every((t) => titleStems.has(t.stem))) continue
        const near = proximity(tokens, span, analysis.roleTerms)
        if (near === 0) continue
        const before = tokens[span.start - 1]
        const direct =
          (before !== undefined && analysis.roleTerms.has(before.stem)) ||
          words.some((t) => analysis.roleTerms.has(t.stem))
        const score = 2 * near + 0.5 * overlap + (direct ? 3 : 0)
        if (best === undefined || score > best.score) best = { name: span.answer, sentence, direct, score }
      }
    }
  }
  return best === undefined ? undefined : { name: best.name, sentence: best.sentence, direct: best.direct }
}

/** The follow-up search: the bridge with the question words the pages did not cover (`missing`). */
export const followBridge = (bridge: Bridge, missing: ReadonlyArray<string>): Decision => ({
  kind: "search",
  query: `${bridge.name} ${missing.join(" ")}`,
  think:
    `The page points to ${bridge.name} (${quote(bridge.sentence)}) but says nothing about ` +
    `${missing.join(", ")}. I will look that up.`,
})

// ---------------------------------------------------------------------------------------------
// The research as phases

export interface Phase {
  /** The search that opened the phase and the pages read after it, before the next search. */
  readonly query: string
  readonly pages: ReadonlyArray<Page>
  /** The stems of the query's words that are not in the question: a follow-up's bridge. */
  readonly bridge: ReadonlySet<string>
  /** A follow-up's bridge as written: the query's words up to its last bridge word. */
  readonly bridgeName: string | undefined
}

/** The steps so far as phases, one per search. */
export const phasesOf = (analysis: QuestionAnalysis, steps: ReadonlyArray<Step>): Phase[] => {
  const phases: Array<Phase & { pages: Page[] }> = []
  const questionStems = new Set([...analysis.coreTerms, ...analysis.askTerms, ...analysis.entityTerms])
  for (const step of steps) {
    if (step.kind === "search") {
      const words = tokenize(step.query)
      const bridge = new Set(words.map((t) => t.stem).filter((s) => !questionStems.has(s) && !isStopWord(s)))
      let last = -1
      words.forEach((t, i) => {
        if (bridge.has(t.stem)) last = i
      })
      const bridgeName =
        last === -1
          ? undefined
          : words
              .slice(0, last + 1)
              .map((t) => t.text)
              .join(" ")
      phases.push({ query: step.query, pages: [], bridge, bridgeName })
    } else {
      const phase = phases[phases.length - 1]
      if (step.page !== undefined) phase?.pages.push(step.page)
    }
  }
  return phases
}

/**
 * After a follow-up search (`hop`: the last phase with a bridge and pages read), what it looked up
 * — its words other than the bridge — counts double: the answer is in a sentence about that.
 */
export const emphasisOf = (analysis: QuestionAnalysis, hop: Phase | undefined): ReadonlySet<string> => {
  const wanted = wantedTerms(analysis)
  return new Set(
    hop === undefined
      ? []
      : tokenize(hop.query)
          .map((t) => t.stem)
          .filter((t) => !hop.bridge.has(t) && wanted.has(t)),
  )
}

/**
 * A page reached by following a bridge is about it: its sentences link to where the bridge was
 * found. URL → the bridge's name, the first phase that read the page winning.
 */
export const linksOf = (phases: ReadonlyArray<Phase>): ReadonlyMap<string, string> => {
  const links = new Map<string, string>()
  for (const p of phases)
    if (p.bridgeName !== undefined)
      for (const page of p.pages) if (!links.has(page.url)) links.set(page.url, p.bridgeName)
  return links
}
