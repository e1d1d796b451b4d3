/**
 * Deciding the next step of the research from the conversation alone:
 *   1. no search yet → search (`firstSearch`);
 *   2. after a search → read one of the top results (`readResult`), or search again when there is
 *      nothing to read;
 *   3. after reading → answer when some sentence supports a candidate well; else read the next
 *      result when the page looked unrelated, or — for a two-hop question — search again for the
 *      bridge entity the page introduced; after a follow-up, read on until its pages say what it
 *      looked up;
 *   4. answer at once when the agent asks for it, or when reads and searches run out.
 * Pure: the same conversation, draw and options give the same decision.
 */
import { answerFrom, type Candidate, isConvincing, rankCandidates } from "./answers.ts"
import type { Conversation, Step } from "./conversation.ts"
import { type Decision, KIND_WORDS, quote } from "./decision.ts"
import { analyzeQuestion, type QuestionAnalysis } from "./question.ts"
import { readNext, readResult, termsOf, uncoveredWords, unreadResults } from "./reading.ts"
import type { Draw } from "./samples.ts"
import {
  emphasisOf,
  findBridge,
  firstSearch,
  followBridge,
  linksOf,
  type Phase,
  phasesOf,
  reformulate,
} from "./searching.ts"
import type { Page, SearchHit } from "./toolResults.ts"
import { stem } from "./words.ts"

/** The research so far, as every step of the decision reads it: computed once per turn. */
interface Research {
  readonly analysis: QuestionAnalysis
  readonly steps: ReadonlyArray<Step>
  /** How the question's answer kind is named (`KIND_WORDS`). */
  readonly kindWords: string
  readonly searches: number
  readonly reads: number
  readonly maxSearches: number
  /** Twice the searches allowed. */
  readonly maxReads: number
  readonly phases: ReadonlyArray<Phase>
  /** Every page read, in order. */
  readonly allPages: ReadonlyArray<Page>
  /** The phase of the last search. */
  readonly phase: Phase | undefined
  /** The last follow-up with pages read (see `emphasisOf`). */
  readonly hop: Phase | undefined
  readonly emphasis: ReadonlySet<string>
  readonly links: ReadonlyMap<string, string>
  /** The top results of the last search not read yet. */
  readonly unread: ReadonlyArray<SearchHit>
}

const researchOf = (conversation: Conversation, maxSearches: number): Research => {
  const analysis = analyzeQuestion(conversation.question)
  const { steps } = conversation
  const phases = phasesOf(analysis, steps)
  const hop = [...phases].reverse().find((p) => p.bridge.size > 0 && p.pages.length > 0)
  return {
    analysis,
    steps,
    kindWords: KIND_WORDS[analysis.kind],
    searches: steps.filter((s) => s.kind === "search").length,
    reads: steps.filter((s) => s.kind === "read").length,
    maxSearches,
    maxReads: 2 * maxSearches,
    phases,
    allPages: phases.flatMap((p) => p.pages),
    phase: phases[phases.length - 1],
    hop,
    emphasis: emphasisOf(analysis, hop),
    links: linksOf(phases),
    unread: unreadResults(steps),
  }
}

/** The candidates in every page read, best first. */
const rankingOf = (research: Research): ReadonlyArray<Candidate> =>
  rankCandidates(research.analysis, research.allPages, research.emphasis, research.links)

const answerNow = (
  research: Research,
  draw: Draw,
  why: string,
  ranked: ReadonlyArray<Candidate> = rankingOf(research),
): Decision => answerFrom(ranked, research.kindWords, draw, why)

/** The kind of answer without its article ("year" for "a year"). */
const kindNoun = (research: Research): string => research.kindWords.replace(/^an? /, "")

/**
 * The next step of the research, from the question, the steps so far and a seeded draw. Pure:
 * the same inputs give the same decision.
 */
export const decide = (
  conversation: Conversation,
  draw: Draw,
  options: { readonly maxSearches: number },
): Decision => {
  const research = researchOf(conversation, options.maxSearches)
  if (conversation.mustAnswer) return answerNow(research, draw, "I was asked to answer now.")
  const last = research.steps[research.steps.length - 1]
  if (last === undefined) return firstSearch(research.analysis, draw)
  if (last.kind === "search") return afterSearch(research, last, draw)
  return afterRead(research, last.page, draw)
}

/** After a search: read one of its top results, or search again, or answer. */
const afterSearch = (research: Research, last: Extract<Step, { kind: "search" }>, draw: Draw): Decision => {
  if (research.reads >= research.maxReads)
    return answerNow(research, draw, "I have read as much as I should.")
  if (research.unread.length === 0)
    return (
      reformulate(
        research,
        last.hits === undefined ? "The search failed." : "The search found nothing new to read.",
      ) ?? answerNow(research, draw, "I have nothing more to read.")
    )
  return readResult(research.unread, draw(`read-${research.searches}-${research.reads}`))
}

/** After reading a page (undefined when it could not be read). */
const afterRead = (research: Research, page: Page | undefined, draw: Draw): Decision => {
  const { analysis, phase } = research
  const ranked = rankingOf(research)
  const best = ranked[0]
  if (phase !== undefined && phase === research.hop)
    return afterFollowUpRead(research, phase, page, ranked, draw)
  const missing = uncoveredWords(analysis, research.allPages)
  const missingRoles = missing.filter((w) => analysis.roleTerms.has(stem(w)))
  const used = new Set(research.phases.flatMap((p) => [...p.bridge]))
  const bridge =
    research.searches < research.maxSearches ? findBridge(analysis, research.allPages, used) : undefined
  // The page names the entity the question describes and lacks what is asked about it: follow it.
  if (bridge?.direct === true && missingRoles.length > 0) return followBridge(bridge, missing)
  if (isConvincing(best)) return answerNow(research, draw, "I have read enough.", ranked)

  const pageTerms = page === undefined ? new Set<string>() : termsOf(page)
  const coverage =
    [...analysis.coreTerms].filter((t) => pageTerms.has(t)).length / Math.max(1, analysis.coreTerms.size)
  if (coverage < 0.5) {
    const next = readNext(
      research,
      page === undefined
        ? "That page could not be read."
        : `${quote(page.title)} covers little of the question.`,
    )
    if (next !== undefined) return next
  }
  if (bridge !== undefined && missing.length > 0) return followBridge(bridge, missing)
  const next = readNext(
    research,
    best === undefined
      ? `No ${kindNoun(research)} there.`
      : `The best candidate so far, ${best.answer}, is weakly supported.`,
  )
  if (next !== undefined) return next
  if (best === undefined) {
    const again = reformulate(research, `I found no ${kindNoun(research)} yet.`)
    if (again !== undefined) return again
  }
  return answerNow(research, draw, "I will answer with what I have.", ranked)
}

/**
 * After reading a page of a follow-up search: read on until a candidate on its pages sits in a
 * sentence about what it looked up, then answer.
 */
const afterFollowUpRead = (
  research: Research,
  phase: Phase,
  page: Page | undefined,
  ranked: ReadonlyArray<Candidate>,
  draw: Draw,
): Decision => {
  const urls = new Set(phase.pages.map((p) => p.url))
  const found =
    research.emphasis.size === 0 ||
    ranked.some((c) => urls.has(c.url) && c.mismatch === 0 && c.covers.some((t) => research.emphasis.has(t)))
  if (!found) {
    const next = readNext(
      research,
      page === undefined
        ? "That page could not be read."
        : `${quote(page.title)} does not say it with ${kindNoun(research)}.`,
    )
    if (next !== undefined) return next
  }
  return answerNow(
    research,
    draw,
    found ? "The follow-up found it." : "The follow-up did not settle it.",
    ranked,
  )
}
