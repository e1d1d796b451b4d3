/**
 * The `researcher` script of the scripted model server (a TEST DOUBLE for a GPU server): a small,
 * explainable deep-research "model" that knows nothing but the conversation. It must find answers
 * through the agent's tools, like a real agent, so an evaluation on it is honest — its accuracy
 * comes from its search, reading and extraction heuristics, never from the answer key.
 *
 * Each turn it reads the whole conversation (the task, its own earlier tool calls and their
 * results) and decides one step:
 *   1. no search yet → `search` with the question's content words (stop words dropped; sometimes
 *      a seeded subset or only the names — a paraphrase);
 *   2. after a search → `fetch_url` on one of the top 3 results (seeded, weighted to the top, so a
 *      sample sometimes reads the wrong page);
 *   3. after reading → answer when some sentence supports a candidate well; else read the next
 *      result when the page looked unrelated, or — for a two-hop question — search again for the
 *      bridge entity the page introduced (a name next to a role word of the question, e.g. "the
 *      architect Osric Penhallow") with the question words the pages did not cover;
 *   4. the answer is `<answer>…</answer>`: the candidate span of the expected kind (a year for
 *      "when / what year", a number for "how many / how long / …", a name after a place
 *      preposition for "in which town", else a capitalized name) whose sentence covers the
 *      question best — read with its page's title, borrowing half the question words of a sentence
 *      on another page that shares a name with it (the chain of a two-hop question), what a
 *      follow-up looked up counting double — sits closest to a question word and fits the asked
 *      unit; with a seeded chance of taking the runner-up instead when the two are close.
 * Every reply starts with `<think>…</think>` saying what it does and why. Tool results are read
 * from the conversation only (the text, or the structured content AgentDock appends as JSON).
 *
 * Determinism: every choice is a hash of (seed, episode key, sample tag, what is chosen), and every
 * later turn is a pure function of the request. The k samples of one task send byte-identical first
 * request bodies (the sample index is not in the conversation), so the first turn — and only it —
 * tells them apart the way sampling would, by the first of:
 *   - a request body `seed` (OpenAI's field): tag `s<seed>`;
 *   - the episode the request names in its `x-rollout-episode` header (the inference pool sends
 *     it): an evaluator's episode id `<run>/<task>/<sample>` gives tag `n<sample>`, so sample k of
 *     a task takes the same trajectory in every run, and any other id gives a tag hashed from it;
 *   - without either, the fallback: the arrival order of first requests per episode key in this
 *     script instance (the 1st gets n0, the 2nd n1, …). A first turn asked again (a retry after a
 *     crash) then counts as a new sample, and two server instances hand the tags out in their own
 *     orders: only the header makes a retried turn and a run split across servers repeatable.
 * Sample k gets n<k> by its episode id where arrival order gave n<k> to the k-th arrival, so an
 * evaluation's set of k trajectories per task (and its Avg@k) is the same either way. The tag is
 * written into the tool call ids (`call_<tag>_t<turn>`), which the conversation carries back, so the
 * rest of the episode follows from the request alone.
 */
import { createHash } from "node:crypto"
import {
  type ChatMessage,
  type ChatRequest,
  episodeKeyOf,
  messageText,
  type Script,
  type ScriptedReply,
} from "./script.ts"

export interface ResearcherOptions {
  /** Mixed into every seeded choice (default 0): another seed, other trajectories. */
  readonly seed?: number
  /** Searches per episode, follow-ups included (default 3). Reads are capped at twice this. */
  readonly maxSearches?: number
}

// ---------------------------------------------------------------------------------------------
// Words

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

const MONTHS_AND_DAYS = new Set(
  (
    "january february march april may june july august september october november december " +
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays thursdays " +
    "fridays saturdays sundays"
  ).split(" "),
)

const UNITS = new Set(
  (
    "metre meter kilometre kilometer centimetre millimetre mile feet foot inch yard tonne ton kilogram " +
    "gram pound litre liter hectare acre percent degree minute hour second day week month"
  ).split(" "),
)

const LOCATIVES = new Set(["in", "at", "from", "near", "of", "to", "on", "into", "outside", "beside"])

const NUMBER_WORDS: Readonly<Record<string, number>> = {
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

const isStopWord = (word: string): boolean => STOP_WORDS.has(word.toLowerCase())

interface Token {
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

// ---------------------------------------------------------------------------------------------
// The question

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

// ---------------------------------------------------------------------------------------------
// Seeded choices

/** A number in [0, 1) from the parts: the script's only source of variety. */
export const seededUnit = (...parts: ReadonlyArray<string | number>): number =>
  Number.parseInt(createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 12), 16) / 2 ** 48

const pickWeighted = <A>(
  items: ReadonlyArray<A>,
  weights: ReadonlyArray<number>,
  u: number,
): A | undefined => {
  const total = items.reduce((sum, _, i) => sum + (weights[i] ?? 0), 0)
  let at = u * total
  for (const [i, item] of items.entries()) {
    at -= weights[i] ?? 0
    if (at < 0) return item
  }
  return items[items.length - 1]
}

export type QueryVariant = "full" | "subset" | "names"

/**
 * The first search query: the question's content words (`full`), or — a seeded paraphrase — some
 * of the lower-case words dropped (`subset`), or only the names and numbers with the first role
 * word (`names`).
 */
export const buildQuery = (
  analysis: QuestionAnalysis,
  draw: (label: string) => number,
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

// ---------------------------------------------------------------------------------------------
// Tool results

export interface SearchHit {
  readonly rank: number
  readonly title: string
  readonly url: string
  readonly snippet: string
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * A tool result's text and, when there is one, the structured content appended after it as one
 * line of JSON (AgentDock gives the agent both).
 */
export const splitStructured = (text: string): { readonly text: string; readonly structured: unknown } => {
  for (let at = text.lastIndexOf("\n{"); at !== -1; at = text.lastIndexOf("\n{", at - 1)) {
    try {
      return { text: text.slice(0, at), structured: JSON.parse(text.slice(at + 1)) as unknown }
    } catch {
      // Not the structured content: a brace inside the text.
    }
  }
  return { text, structured: undefined }
}

/**
 * The hits of a `search` result: from its structured content (`searches[].results[]`) when
 * present, else from its text (`N. Title`, then `URL: …`, then the snippet).
 */
export const parseSearchResults = (result: string): ReadonlyArray<SearchHit> => {
  const { text, structured } = splitStructured(result)
  if (isRecord(structured) && Array.isArray(structured.searches)) {
    const hits: SearchHit[] = []
    for (const search of structured.searches as ReadonlyArray<unknown>)
      if (isRecord(search) && Array.isArray(search.results))
        for (const hit of search.results as ReadonlyArray<unknown>)
          if (isRecord(hit) && typeof hit.url === "string" && !hits.some((h) => h.url === hit.url))
            hits.push({
              rank: hits.length + 1,
              title: typeof hit.title === "string" ? hit.title : hit.url,
              url: hit.url,
              snippet: typeof hit.snippet === "string" ? hit.snippet : "",
            })
    return hits
  }
  const hits: Array<{ rank: number; title: string; url: string; snippet: string }> = []
  let current: (typeof hits)[number] | undefined
  for (const line of text.split("\n")) {
    const head = /^\s*(\d+)\.\s+(.*\S)\s*$/.exec(line)
    if (head !== null) {
      current = { rank: Number(head[1]), title: head[2] ?? "", url: "", snippet: "" }
      hits.push(current)
      continue
    }
    if (current === undefined) continue
    const url = /^\s*URL:\s*(\S+)/.exec(line)
    if (url !== null && current.url === "") current.url = url[1] ?? ""
    else if (line.trim() !== "" && !line.startsWith("#") && !line.startsWith("("))
      current.snippet = `${current.snippet} ${line.trim()}`.trim()
  }
  return hits.filter((h) => h.url !== "")
}

export interface Page {
  readonly url: string
  readonly title: string
  readonly text: string
}

/**
 * A `fetch_url` result: its structured content (`title`, `content`) when present, else its
 * `URL:`/`Title:` header and the text after the first blank line.
 */
export const parsePage = (result: string, requestedUrl = ""): Page => {
  const { text, structured } = splitStructured(result)
  if (isRecord(structured) && typeof structured.content === "string") {
    const url = typeof structured.finalUrl === "string" ? structured.finalUrl : requestedUrl
    const title = typeof structured.title === "string" ? structured.title : ""
    return { url, title, text: structured.content }
  }
  const blank = text.indexOf("\n\n")
  const header = blank === -1 ? "" : text.slice(0, blank)
  if (!/^URL:/m.test(header)) return { url: requestedUrl, title: "", text: text.trim() }
  const url = /^URL:\s*(\S+)/m.exec(header)?.[1] ?? requestedUrl
  const title = /^Title:\s*(.*\S)/m.exec(header)?.[1] ?? ""
  const body = text
    .slice(blank + 2)
    .split("\n")
    .filter((line) => !/^\[(This was page|output truncated)/.test(line.trim()))
    .join("\n")
    .trim()
  return { url, title, text: body }
}

// ---------------------------------------------------------------------------------------------
// Candidates

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

interface Span {
  readonly answer: string
  readonly start: number
  /** Exclusive. */
  readonly end: number
}

const isYear = (text: string): boolean => /^\d{4}$/.test(text) && Number(text) >= 1000 && Number(text) <= 2100

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

/** A word that can be part of a name: capitalized, and not a function word, month or day. */
const isCap = (t: Token | undefined): boolean =>
  t?.capitalized === true && !isStopWord(t.text) && !MONTHS_AND_DAYS.has(t.text.toLowerCase())

/** Capitalized word runs ("Osric Penhallow", "University of Harrowmere"), leading function words dropped. */
const nameSpans = (tokens: ReadonlyArray<Token>, midSentenceCaps: ReadonlySet<string>): Span[] => {
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

/** Closeness to a wanted word: within 1 token 2, 3 → 1.5, 5 → 1, 8 → 0.5. */
const proximity = (tokens: ReadonlyArray<Token>, span: Span, wanted: ReadonlySet<string>): number => {
  let best = 0
  tokens.forEach((t, j) => {
    if (!wanted.has(t.stem) || isStopWord(t.text)) return
    const distance = j < span.start ? span.start - j : j >= span.end ? j - span.end + 1 : 0
    const bonus = distance <= 1 ? 2 : distance <= 3 ? 1.5 : distance <= 5 ? 1 : distance <= 8 ? 0.5 : 0
    if (bonus > best) best = bonus
  })
  return best
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

const midCaps = (pages: ReadonlyArray<Page>): Set<string> => {
  const caps = new Set<string>()
  for (const page of pages)
    for (const sentence of sentencesOf(page.text))
      tokenize(sentence).forEach((t, i) => {
        if (i > 0 && t.capitalized) caps.add(t.text)
      })
  return caps
}

/** What evidence should mention: the question's core terms and the units it asks in. */
const wantedTerms = (analysis: QuestionAnalysis): ReadonlySet<string> =>
  new Set([...analysis.coreTerms, ...[...analysis.askTerms].filter((t) => UNITS.has(t))])

interface ReadSentence {
  readonly page: Page
  readonly text: string
  readonly tokens: ReadonlyArray<Token>
  /** The question's core terms (and asked units) it covers, its page's title included. */
  readonly covers: ReadonlySet<string>
  /** The names it mentions that the question does not (lower case), its page's subject included. */
  readonly names: ReadonlySet<string>
}

/** A page's subject: its title, when that is a name the question does not use. */
const subjectOf = (analysis: QuestionAnalysis, page: Page): string | undefined => {
  const words = tokenize(page.title)
  return words.length > 0 &&
    words.every((t) => t.capitalized || t.text === "of") &&
    !words.some((t) => analysis.entityTerms.has(t.stem))
    ? page.title
    : undefined
}

const readSentences = (
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

// ---------------------------------------------------------------------------------------------
// The conversation

export type Step =
  | {
      readonly kind: "search"
      readonly query: string
      /** Undefined while unanswered or when the call failed. */
      readonly hits: ReadonlyArray<SearchHit> | undefined
    }
  | { readonly kind: "read"; readonly url: string; readonly page: Page | undefined }

export interface Conversation {
  readonly question: string
  readonly steps: ReadonlyArray<Step>
  /** The sample tag written in this script's first tool call id, if any. */
  readonly sampleTag: string | undefined
  /** How many assistant turns there were. */
  readonly turns: number
  /** The last message is the agent's nudge to answer now. */
  readonly mustAnswer: boolean
}

const TASK_PREFIX = /^[\s\S]*?\banswer the user's question:\s*/i

/** The question of a task message (`taskPrompt`'s wrapping removed). */
export const questionOf = (taskText: string): string => {
  const q = taskText.replace(TASK_PREFIX, "").trim()
  return q.replace(/([?!])\s*\.$/, "$1")
}

const argsOf = (raw: string | undefined): Record<string, unknown> => {
  if (raw === undefined) return {}
  try {
    const parsed: unknown = JSON.parse(raw)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {}
  } catch {
    return {}
  }
}

const isToolError = (text: string): boolean => /^Error \(\w+\) calling /.test(text)

/** What the model did so far and what came back, read off the request alone. */
export const readConversation = (request: ChatRequest): Conversation => {
  const messages = request.messages
  const first = messages.findIndex((m) => m.role === "user")
  const question = first === -1 ? "" : questionOf(messageText(messages[first]!))
  const steps: Array<Step> = []
  const slot = new Map<string, number>()
  let sampleTag: string | undefined
  let turns = 0
  for (const message of messages.slice(first + 1)) {
    if (message.role === "assistant") {
      turns++
      for (const call of message.tool_calls ?? []) {
        const id = call.id ?? ""
        sampleTag ??= /^call_([A-Za-z0-9]+)_t\d+/.exec(id)?.[1]
        const args = argsOf(call.function?.arguments)
        if (typeof args.query === "string" || Array.isArray(args.query)) {
          const query = Array.isArray(args.query) ? args.query.join(" ") : (args.query as string)
          slot.set(id, steps.length)
          steps.push({ kind: "search", query, hits: undefined })
        } else if (typeof args.url === "string") {
          slot.set(id, steps.length)
          steps.push({ kind: "read", url: args.url, page: undefined })
        }
      }
    } else if (message.role === "tool") {
      const at = slot.get(message.tool_call_id ?? "")
      const step = at === undefined ? undefined : steps[at]
      if (step === undefined || at === undefined) continue
      const text = messageText(message)
      if (isToolError(text)) continue
      steps[at] =
        step.kind === "search"
          ? { ...step, hits: parseSearchResults(text) }
          : { ...step, page: parsePage(text, step.url) }
    }
  }
  const last = messages[messages.length - 1]
  const mustAnswer =
    last !== undefined &&
    last.role === "user" &&
    messages.indexOf(last) > first &&
    /<answer>/.test(messageText(last))
  return { question, steps, sampleTag, turns, mustAnswer }
}

// ---------------------------------------------------------------------------------------------
// Deciding

export type Decision =
  | { readonly kind: "search"; readonly query: string; readonly think: string }
  | { readonly kind: "read"; readonly url: string; readonly think: string }
  | { readonly kind: "answer"; readonly answer: string; readonly think: string }

const quote = (text: string, max = 160): string =>
  `"${text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text}"`

const KIND_WORDS: Readonly<Record<AnswerKind, string>> = {
  year: "a year",
  number: "a number",
  place: "a place name",
  name: "a name",
}

interface Phase {
  /** The search that opened the phase and the pages read after it, before the next search. */
  readonly query: string
  readonly pages: ReadonlyArray<Page>
  /** The stems of the query's words that are not in the question: a follow-up's bridge. */
  readonly bridge: ReadonlySet<string>
  /** A follow-up's bridge as written: the query's words up to its last bridge word. */
  readonly bridgeName: string | undefined
}

const phasesOf = (analysis: QuestionAnalysis, steps: ReadonlyArray<Step>): Phase[] => {
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

const termsOf = (page: Page): Set<string> =>
  new Set(tokenize(`${page.title} ${page.text}`).map((t) => t.stem))

/** A candidate worth stopping for: its sentence covers most of the question and it sits by a question word. */
const isConvincing = (c: Candidate | undefined): boolean =>
  c !== undefined && c.support >= 0.6 && c.near >= 1 && c.mismatch === 0

/** Chooses among candidates: the best, or with a seeded chance growing with its closeness, the runner-up. */
const choose = (
  ranked: ReadonlyArray<Candidate>,
  draw: (label: string) => number,
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
 * The next step of the research, from the question, the steps so far and a seeded draw. Pure:
 * the same inputs give the same decision.
 */
export const decide = (
  conversation: Conversation,
  draw: (label: string) => number,
  options: { readonly maxSearches: number },
): Decision => {
  const analysis = analyzeQuestion(conversation.question)
  const { steps } = conversation
  const kindWords = KIND_WORDS[analysis.kind]
  const searches = steps.filter((s) => s.kind === "search").length
  const reads = steps.filter((s) => s.kind === "read").length
  const maxReads = 2 * options.maxSearches
  const phases = phasesOf(analysis, steps)
  const allPages = phases.flatMap((p) => p.pages)
  const phase = phases[phases.length - 1]
  const hop = [...phases].reverse().find((p) => p.bridge.size > 0 && p.pages.length > 0)

  // After a follow-up search, what it looked up (its words other than the bridge) counts double:
  // the answer is in a sentence about that.
  const wanted = wantedTerms(analysis)
  const emphasis = new Set(
    hop === undefined
      ? []
      : tokenize(hop.query)
          .map((t) => t.stem)
          .filter((t) => !hop.bridge.has(t) && wanted.has(t)),
  )
  // A page reached by following a bridge is about it: its sentences link to where the bridge was found.
  const links = new Map<string, string>()
  for (const p of phases)
    if (p.bridgeName !== undefined)
      for (const page of p.pages) if (!links.has(page.url)) links.set(page.url, p.bridgeName)
  const ranking = (): ReadonlyArray<Candidate> => rankCandidates(analysis, allPages, emphasis, links)

  const answer = (why: string, ranked: ReadonlyArray<Candidate> = ranking()): Decision => {
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

  if (conversation.mustAnswer) return answer("I was asked to answer now.")

  const last = steps[steps.length - 1]
  if (last === undefined) {
    const { query, variant } = buildQuery(analysis, draw)
    return {
      kind: "search",
      query,
      think:
        `The question asks for ${kindWords}. I will search for its key words` +
        (variant === "full" ? "" : variant === "subset" ? ", keeping the main ones" : ", mostly the names") +
        `: ${quote(query)}.`,
    }
  }

  const lastSearch = [...steps].reverse().find((s) => s.kind === "search")
  const fetched = new Set(steps.flatMap((s) => (s.kind === "read" ? [s.url] : [])))
  const unread =
    lastSearch?.kind === "search"
      ? (lastSearch.hits ?? []).slice(0, 3).filter((h) => !fetched.has(h.url))
      : []
  const readNext = (why: string): Decision | undefined => {
    const hit = unread[0]
    if (hit === undefined || reads >= maxReads) return undefined
    return {
      kind: "read",
      url: hit.url,
      think: `${why} I will read result ${hit.rank}, ${quote(hit.title)}.`,
    }
  }
  const reformulate = (why: string): Decision | undefined => {
    if (searches >= options.maxSearches) return undefined
    const tried = new Set(steps.flatMap((s) => (s.kind === "search" ? [s.query] : [])))
    const names = analysis.words.filter((w) => /^\p{Lu}/u.test(w)).join(" ")
    for (const query of [analysis.words.join(" "), names]) {
      if (query.trim() !== "" && !tried.has(query))
        return { kind: "search", query, think: `${why} I will search again for ${quote(query)}.` }
    }
    return undefined
  }

  if (last.kind === "search") {
    if (reads >= maxReads) return answer("I have read as much as I should.")
    if (unread.length === 0)
      return (
        reformulate(
          last.hits === undefined ? "The search failed." : "The search found nothing new to read.",
        ) ?? answer("I have nothing more to read.")
      )
    const weights = [0.6, 0.25, 0.15].slice(0, unread.length)
    const hit = pickWeighted(unread, weights, draw(`read-${searches}-${reads}`)) ?? unread[0]!
    return {
      kind: "read",
      url: hit.url,
      think: `Result ${hit.rank}, ${quote(hit.title)}, looks relevant: ${quote(hit.snippet, 120)}. I will read it.`,
    }
  }

  // After reading a page.
  const page = last.page
  const ranked = ranking()
  const best = ranked[0]
  if (phase !== undefined && phase === hop) {
    // A follow-up: read on until a candidate on its pages sits in a sentence about what it looked up.
    const urls = new Set(phase.pages.map((p) => p.url))
    const found =
      emphasis.size === 0 ||
      ranked.some((c) => urls.has(c.url) && c.mismatch === 0 && c.covers.some((t) => emphasis.has(t)))
    if (!found) {
      const next = readNext(
        page === undefined
          ? "That page could not be read."
          : `${quote(page.title)} does not say it with ${kindWords.replace(/^an? /, "")}.`,
      )
      if (next !== undefined) return next
    }
    return answer(found ? "The follow-up found it." : "The follow-up did not settle it.")
  }
  const covered = new Set(allPages.flatMap((p) => [...termsOf(p)]))
  const missing = [...new Set([...analysis.words, ...analysis.units])].filter((w) => !covered.has(stem(w)))
  const missingRoles = missing.filter((w) => analysis.roleTerms.has(stem(w)))
  const used = new Set(phases.flatMap((p) => [...p.bridge]))
  const bridge = searches < options.maxSearches ? findBridge(analysis, allPages, used) : undefined
  const follow = (b: Bridge): Decision => ({
    kind: "search",
    query: `${b.name} ${missing.join(" ")}`,
    think:
      `The page points to ${b.name} (${quote(b.sentence)}) but says nothing about ` +
      `${missing.join(", ")}. I will look that up.`,
  })
  // The page names the entity the question describes and lacks what is asked about it: follow it.
  if (bridge?.direct === true && missingRoles.length > 0) return follow(bridge)
  if (isConvincing(best)) return answer("I have read enough.")

  const pageTerms = page === undefined ? new Set<string>() : termsOf(page)
  const coverage =
    [...analysis.coreTerms].filter((t) => pageTerms.has(t)).length / Math.max(1, analysis.coreTerms.size)
  if (coverage < 0.5) {
    const next = readNext(
      page === undefined
        ? "That page could not be read."
        : `${quote(page.title)} covers little of the question.`,
    )
    if (next !== undefined) return next
  }
  if (bridge !== undefined && missing.length > 0) return follow(bridge)
  const next = readNext(
    best === undefined
      ? `No ${kindWords.replace(/^an? /, "")} there.`
      : `The best candidate so far, ${best.answer}, is weakly supported.`,
  )
  if (next !== undefined) return next
  if (best === undefined) {
    const again = reformulate(`I found no ${kindWords.replace(/^an? /, "")} yet.`)
    if (again !== undefined) return again
  }
  return answer("I will answer with what I have.", ranked)
}

// ---------------------------------------------------------------------------------------------
// The script

const toolNames = (request: ChatRequest): ReadonlyArray<string> =>
  (request.tools ?? []).flatMap((tool) => {
    const t = tool as { name?: unknown; function?: { name?: unknown } }
    const name = t.function?.name ?? t.name
    return typeof name === "string" ? [name] : []
  })

const toolNamed = (names: ReadonlyArray<string>, wanted: string): string | undefined =>
  names.find((n) => n === wanted) ?? names.find((n) => n.endsWith(`__${wanted}`))

const isSummarizerCall = (request: ChatRequest): boolean => {
  const system = request.messages.find((m: ChatMessage) => m.role === "system")
  return (
    (request.tools === undefined || request.tools.length === 0) &&
    system !== undefined &&
    /\b(summari[sz]e|extract what)\b/i.test(messageText(system))
  )
}

/** Text quoted from pages cannot open or close a tag of the reply. */
const plain = (text: string): string => text.replace(/</g, "‹").replace(/>/g, "›")

/** Sample tags given by arrival order are remembered for this many episode keys (oldest forgotten). */
const MAX_TRACKED_EPISODES = 100_000

/**
 * The sample tag of an episode id: `n<k>` for the evaluator's `<run>/<task>/<k>` (the sample index,
 * independent of the run, so runs repeat), else `e` and a hash of the whole id (a fork, a
 * hand-named episode). Letters and digits only: the tag must survive inside a tool call id.
 */
export const sampleTagOfEpisode = (episodeId: string): string => {
  const sample = /\/(\d{1,15})$/.exec(episodeId)?.[1]
  if (sample !== undefined) return `n${Number(sample)}`
  return `e${createHash("sha256").update(episodeId).digest("hex").slice(0, 16)}`
}

/** The `researcher` script: see the module comment. */
export const researcherScript = (options: ResearcherOptions = {}): Script => {
  const seed = options.seed ?? 0
  const maxSearches = options.maxSearches ?? 3
  if (!Number.isInteger(maxSearches) || maxSearches < 1)
    throw new RangeError(`maxSearches must be an integer >= 1, got ${maxSearches}`)
  const arrivals = new Map<string, number>()
  /**
   * The sample of a first turn: the body's `seed` when given, else the episode the request names,
   * else the arrival order of first requests of this episode key. A later turn without one of this
   * script's call ids (another model began the conversation) gets its episode's tag or a fixed one,
   * so it stays a function of the request.
   */
  const sampleTagOf = (
    request: ChatRequest,
    key: string,
    turns: number,
    episodeId: string | undefined,
  ): string => {
    const requested = request.seed
    if (typeof requested === "number" && Number.isFinite(requested))
      return `s${Math.abs(Math.trunc(requested)).toString(36)}`
    if (episodeId !== undefined) return sampleTagOfEpisode(episodeId)
    if (turns > 0) return "x"
    const n = arrivals.get(key) ?? 0
    arrivals.delete(key)
    arrivals.set(key, n + 1)
    if (arrivals.size > MAX_TRACKED_EPISODES) arrivals.delete(arrivals.keys().next().value!)
    return `n${n}`
  }

  return (request, context): ScriptedReply => {
    // An auxiliary call (context summary, page refinement): answer it extractively.
    if (isSummarizerCall(request)) {
      const input = [...request.messages].reverse().find((m) => m.role === "user")
      return { content: `## Evidence\n${(input === undefined ? "" : messageText(input)).slice(0, 8000)}` }
    }
    const conversation = readConversation(request)
    const names = toolNames(request)
    const search = toolNamed(names, "search")
    const fetchUrl = toolNamed(names, "fetch_url")
    if (search === undefined || fetchUrl === undefined || conversation.question === "") {
      return {
        content:
          "<think>I need a question and the search and fetch_url tools to research it, and I do not have " +
          "them.</think>\n<answer>unknown</answer>",
      }
    }
    const key = context.episodeKey ?? episodeKeyOf(request) ?? ""
    const tag = conversation.sampleTag ?? sampleTagOf(request, key, conversation.turns, context.episodeId)
    const draw = (label: string) => seededUnit(seed, key, tag, label)
    const turn = conversation.turns + 1
    const decision = decide(conversation, draw, { maxSearches })
    const think = `<think>${plain(decision.think)}</think>`
    const id = `call_${tag}_t${turn}`
    switch (decision.kind) {
      case "search":
        return { content: think, toolCalls: [{ id, name: search, arguments: { query: decision.query } }] }
      case "read":
        return {
          content: think,
          toolCalls: [
            {
              id,
              name: fetchUrl,
              arguments: { url: decision.url, purpose: `To answer: ${conversation.question}` },
            },
          ],
        }
      case "answer":
        return { content: `${think}\n<answer>${plain(decision.answer)}</answer>` }
    }
  }
}
