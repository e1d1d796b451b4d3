/**
 * The bundled demo corpus and questions, and the offline BM25 provider over them: the files are
 * well formed (31 documents of 100–400 words, stable URLs; 20 questions with short answers found in
 * the corpus), and for every demo question the key terms of each hop rank the document holding that
 * hop first. Also: corpus parsing errors name the line, ranking is deterministic, snippets show the
 * matching passage.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { loadCorpus, parseCorpus } from "../../../src/programs/toolServers/corpus/corpus.ts"
import {
  bestSnippet,
  createBm25Index,
  offlineProvider,
} from "../../../src/programs/toolServers/search/offline.ts"

const corpusPath = path.resolve("data/demo/corpus.jsonl")
const questionsPath = path.resolve("data/demo/questions.jsonl")

interface Question {
  readonly id: string
  readonly question: string
  readonly answer: string
  readonly level: number
}

const questions: ReadonlyArray<Question> = fs
  .readFileSync(questionsPath, "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l) as Question)

/** For each question, the search terms of each hop and the document(s) that answer that hop. */
const hops: Readonly<Record<string, ReadonlyArray<readonly [string, ReadonlyArray<string>]>>> = {
  q01: [["Skerrow Lighthouse first lit", ["skerrow-lighthouse"]]],
  q02: [["Harrowmere Observatory architect", ["harrowmere-observatory"]]],
  q03: [["Lake Orrin maximum depth", ["lake-orrin"]]],
  q04: [["Maun Viaduct arches", ["maun-viaduct"]]],
  q05: [["Cormorant wrecked passengers crew ashore", ["cormorant-wreck"]]],
  q06: [["Harrowmere Town Hall tower clock", ["harrowmere-town-hall"]]],
  q07: [["Cragmoor Dairy Cooperative founded", ["orrin-blue"]]],
  q08: [["Orrin Lake Navigation Company flagship", ["orrin-lake-ferry"]]],
  q09: [["Mira Solberg national chess championship", ["harrowmere-chess-club"]]],
  q10: [["mayor of Harrowmere elected 2019", ["ilse-brandvold"]]],
  q11: [["Harrowmere branch railway opened", ["harrowmere-branch-railway"]]],
  q12: [
    ["village eel fishery", ["fenwick"]],
    ["River Tessel length kilometres", ["river-tessel"]],
  ],
  q13: [
    ["Harrowmere Observatory architect", ["harrowmere-observatory"]],
    ["Osric Penhallow born", ["osric-penhallow"]],
  ],
  q14: [
    ["Skerrow Lighthouse engineer designed", ["skerrow-lighthouse"]],
    ["Matthias Corve born", ["matthias-corve"]],
  ],
  q15: [
    ["River Tessel rises", ["river-tessel"]],
    ["Grey Fells highest peak", ["grey-fells"]],
  ],
  q16: [
    ["Harrowmere Observatory founded by", ["harrowmere-observatory"]],
    ["comet Henrietta Vale discovered", ["comet-vale-kessing"]],
  ],
  q17: [
    ["Lakeshore Museum building", ["lakeshore-museum"]],
    ["Corn Exchange architect designed", ["osric-penhallow"]],
  ],
  q18: [
    ["largest island Lake Orrin", ["skerrow-island", "lake-orrin"]],
    ["Skerrow lighthouse tower tall metres", ["skerrow-lighthouse"]],
  ],
  q19: [
    ["Lantern Festival commemorates rescue", ["lantern-festival"]],
    ["Cormorant rescue lighthouse keeper", ["cormorant-wreck", "aldous-family"]],
  ],
  q20: [
    ["Harrowmere Town Hall tower clock", ["harrowmere-town-hall"]],
    ["Tobias Wren workshop Harrowmere", ["tobias-wren"]],
  ],
}

describe("the demo corpus and questions", () => {
  it("has ~30 well-formed documents of 100–400 words with stable, unique URLs", async () => {
    const corpus = await loadCorpus(corpusPath)
    expect(corpus.documents.length).toBeGreaterThanOrEqual(28)
    for (const doc of corpus.documents) {
      expect(doc.url).toBe(`https://demo.rollout.invalid/${doc.id}`)
      const words = doc.text.split(/\s+/).length
      expect(words, doc.id).toBeGreaterThanOrEqual(100)
      expect(words, doc.id).toBeLessThanOrEqual(400)
      expect(corpus.byUrl(doc.url)).toBe(doc)
    }
  })

  it("has 20 questions with short answers that appear in the corpus, and a hop plan for each", async () => {
    const corpus = await loadCorpus(corpusPath)
    const text = corpus.documents.map((d) => d.text.replace(/(\d),(\d)/g, "$1$2")).join("\n")
    expect(questions).toHaveLength(20)
    expect(new Set(questions.map((q) => q.id)).size).toBe(20)
    for (const q of questions) {
      expect(q.answer.split(/\s+/).length, q.id).toBeLessThanOrEqual(3)
      expect([1, 2, 3]).toContain(q.level)
      const answer = q.answer === "3" ? "three times" : q.answer
      expect(text, q.id).toContain(answer)
      expect(hops[q.id]?.length, q.id).toBeGreaterThanOrEqual(q.level >= 2 ? 2 : 1)
    }
    expect(questions.filter((q) => q.level >= 2).length).toBeGreaterThanOrEqual(5)
  })
})

describe("BM25 over the demo corpus", () => {
  it("ranks the right document first for the key terms of every hop of every demo question", async () => {
    const corpus = await loadCorpus(corpusPath)
    const index = createBm25Index(corpus)
    for (const q of questions) {
      for (const [terms, expected] of hops[q.id] ?? []) {
        const top = index.rank(terms, 3)[0]?.document.id
        expect(expected, `${q.id}: "${terms}" ranked ${top} first`).toContain(top)
      }
    }
  })

  it("finds the first hop's document within the top 3 for the full text of every single-hop question", async () => {
    const corpus = await loadCorpus(corpusPath)
    const index = createBm25Index(corpus)
    for (const q of questions.filter((x) => x.level === 1)) {
      const top3 = index.rank(q.question, 3).map((r) => r.document.id)
      const first = hops[q.id]?.[0]?.[1] ?? []
      expect(
        top3.some((id) => first.includes(id)),
        `${q.id}: ${top3.join(", ")}`,
      ).toBe(true)
    }
  })

  it("is deterministic, ignores case, accents and plurals, and returns nothing for unknown words", async () => {
    const corpus = await loadCorpus(corpusPath)
    const index = createBm25Index(corpus)
    const a = index.rank("lighthouse keepers", 10).map((r) => r.document.id)
    expect(index.rank("LIGHTHOUSE KEEPER", 10).map((r) => r.document.id)).toEqual(a)
    expect(index.rank("lïghthouse keepers", 10).map((r) => r.document.id)).toEqual(a)
    expect(index.rank("zyzzyva quux", 5)).toEqual([])
    expect(index.rank("", 5)).toEqual([])
  })

  it("the provider returns title, url and the passage with the query terms as snippet", async () => {
    const corpus = await loadCorpus(corpusPath)
    const hits = await offlineProvider(corpus).search("Maun Viaduct arches", 2, new AbortController().signal)
    expect(hits).toHaveLength(2)
    expect(hits[0]).toMatchObject({ title: "Maun Viaduct", url: "https://demo.rollout.invalid/maun-viaduct" })
    expect(hits[0]?.snippet).toContain("19 arches")
    expect(hits[0]?.snippet.length).toBeLessThanOrEqual(300)
  })

  it("bestSnippet picks the sentence sharing most terms and caps the length", () => {
    const text = "Alpha beta. The gamma delta is here. Epsilon."
    expect(bestSnippet(text, "gamma delta")).toMatch(/^The gamma delta is here\./)
    expect(bestSnippet("word ".repeat(500), "word", 50).length).toBeLessThanOrEqual(50)
  })
})

describe("corpus parsing", () => {
  it("names the line and field of a bad document, and rejects duplicate ids and URLs", () => {
    const good = JSON.stringify({ id: "a", url: "https://x.invalid/a", title: "A", text: "t" })
    expect(parseCorpus(`${good}\n{not json`, "c.jsonl")).toEqual({
      ok: false,
      error: "c.jsonl line 2: not valid JSON",
    })
    const noUrl = JSON.stringify({ id: "b", url: "ftp://x/b", title: "B", text: "t" })
    const r = parseCorpus(`${good}\n\n${noUrl}`, "c.jsonl")
    expect(r.ok ? "" : r.error).toMatch(/^c\.jsonl line 3: field "url"/)
    const dupId = JSON.stringify({ id: "a", url: "https://x.invalid/other", title: "A", text: "t" })
    expect(parseCorpus(`${good}\n${dupId}`).ok).toBe(false)
    const dupUrl = JSON.stringify({ id: "c", url: "https://X.invalid/a/#frag", title: "A", text: "t" })
    expect(parseCorpus(`${good}\n${dupUrl}`).ok).toBe(false)
    expect(parseCorpus("\n\n").ok).toBe(false)
  })

  it("looks URLs up ignoring fragment, trailing slash and host case", () => {
    const r = parseCorpus(JSON.stringify({ id: "a", url: "https://x.invalid/a", title: "A", text: "t" }))
    if (!r.ok) throw new Error(r.error)
    expect(r.value.byUrl("https://X.INVALID/a/#top")?.id).toBe("a")
    expect(r.value.byUrl("https://x.invalid/b")).toBeUndefined()
  })

  it("loadCorpus rejects naming the path", async () => {
    await expect(loadCorpus("no/such/corpus.jsonl")).rejects.toThrow(/no\/such\/corpus\.jsonl: no such file/)
  })
})
