/**
 * The offline search provider: BM25 ranking (MiniSearch's BM25+) over a local corpus, for
 * reproducible runs and tests. Terms are lower-cased, stripped of accents, stop words dropped and a
 * plural "s" removed, identically at index and query time; no fuzzy or prefix matching, and ties
 * break by document id, so a query always ranks the same way. The snippet shows the sentences that
 * cover the query terms best (see `bestSnippet`).
 */
import MiniSearch from "minisearch"
import type { Corpus, CorpusDocument } from "../corpus/corpus.ts"
import type { SearchHit, SearchProvider } from "./provider.ts"

const STOP_WORDS = new Set(
  (
    "a an and are as at be been but by did do does for from had has have he her his how i if in into is it " +
    "its of on or she that the their them then there these they this those to was were what when where " +
    "which who whom whose why will with would you your than also after before about"
  ).split(" "),
)

/** One index/query term: lower-case, no diacritics, no stop word, no plural "s" (kept ≥ 3 letters). */
export const processTerm = (term: string): string | null => {
  const t = term
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/['’]s$/, "")
  if (t === "" || STOP_WORDS.has(t)) return null
  if (t.length > 4 && t.endsWith("s") && !t.endsWith("ss") && !t.endsWith("us")) return t.slice(0, -1)
  return t
}

const tokenize = (text: string): string[] => text.split(/[^\p{L}\p{N}'’]+/u).filter((t) => t !== "")

const terms = (text: string): Set<string> => {
  const out = new Set<string>()
  for (const token of tokenize(text)) {
    const t = processTerm(token)
    if (t !== null) out.add(t)
  }
  return out
}

/**
 * The passages of a document that cover the query best, as a search engine shows them: sentences
 * are picked greedily by the weight of the query terms they add (a term found in few sentences of
 * the document weighs more than one found in most, like its title words), at most three, shown in
 * document order and joined by "...", within `maxChars`.
 */
export const bestSnippet = (text: string, query: string, maxChars = 300): string => {
  const wanted = terms(query)
  const sentences = text
    .replace(/\s+/g, " ")
    .trim()
    .split(/(?<=[.!?])\s+/)
  const sentenceTerms = sentences.map(terms)
  const weight = (t: string): number =>
    Math.log(1 + sentences.length / Math.max(1, sentenceTerms.filter((s) => s.has(t)).length))
  const covered = new Set<string>()
  const chosen: number[] = []
  let length = 0
  while (chosen.length < 3) {
    let best = -1
    let bestGain = 0
    for (const [i, ts] of sentenceTerms.entries()) {
      if (chosen.includes(i)) continue
      let gain = 0
      for (const t of ts) if (wanted.has(t) && !covered.has(t)) gain += weight(t)
      if (gain > bestGain) {
        best = i
        bestGain = gain
      }
    }
    const sentence = sentences[best]
    if (sentence === undefined || (chosen.length > 0 && length + sentence.length > maxChars)) break
    chosen.push(best)
    length += sentence.length + 4
    for (const t of sentenceTerms[best] ?? []) covered.add(t)
  }
  if (chosen.length === 0) chosen.push(0)
  chosen.sort((a, b) => a - b)
  let snippet = chosen.map((i) => sentences[i] ?? "").join(" ... ")
  const last = chosen[chosen.length - 1] ?? 0
  for (let j = last + 1; j < sentences.length && snippet.length < maxChars * 0.6; j++) {
    snippet += ` ${sentences[j]}`
  }
  return snippet.length > maxChars ? `${snippet.slice(0, maxChars - 3).trimEnd()}...` : snippet
}

export interface RankedDocument {
  readonly document: CorpusDocument
  readonly score: number
}

/** A BM25 index over a corpus: `rank` returns documents best first (ties by id). */
export const createBm25Index = (
  corpus: Corpus,
): { readonly rank: (query: string, limit: number) => ReadonlyArray<RankedDocument> } => {
  const index = new MiniSearch<CorpusDocument>({
    fields: ["title", "text"],
    idField: "id",
    tokenize,
    processTerm,
    searchOptions: { boost: { title: 2 }, prefix: false, fuzzy: false, combineWith: "OR" },
  })
  index.addAll(corpus.documents)
  const byId = new Map(corpus.documents.map((d) => [d.id, d]))
  return {
    rank: (query, limit) =>
      index
        .search(query)
        .map((r) => ({ document: byId.get(String(r.id)), score: r.score }))
        .filter((r): r is RankedDocument => r.document !== undefined)
        .sort((a, b) => b.score - a.score || (a.document.id < b.document.id ? -1 : 1))
        .slice(0, limit),
  }
}

/** The offline provider over a corpus (named "offline"). */
export const offlineProvider = (corpus: Corpus): SearchProvider => {
  const index = createBm25Index(corpus)
  return {
    name: "offline",
    search: async (query, n): Promise<ReadonlyArray<SearchHit>> =>
      index.rank(query, n).map(({ document }) => ({
        title: document.title,
        url: document.url,
        snippet: bestSnippet(document.text, query),
      })),
  }
}
