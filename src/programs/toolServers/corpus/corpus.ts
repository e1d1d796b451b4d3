/**
 * A local document corpus (JSONL, one `{id, url, title, text}` a line) for reproducible runs: the
 * offline search provider ranks it, and fetch_url serves its documents by URL without network.
 * Parsing is total (errors name the line); URLs are looked up by a normalized key (scheme and host
 * lower-cased, fragment and trailing slash dropped).
 */
import * as fs from "node:fs/promises"
import { type Decoded, describe, fail, isRecord, ok } from "../decoding/decode.ts"

export interface CorpusDocument {
  readonly id: string
  readonly url: string
  readonly title: string
  readonly text: string
}

export interface Corpus {
  readonly documents: ReadonlyArray<CorpusDocument>
  /** Looks a document up by URL (normalized: see `corpusUrlKey`). */
  readonly byUrl: (url: string) => CorpusDocument | undefined
}

/** The lookup key of a URL: no fragment, lower-case scheme and host, no trailing slash. */
export const corpusUrlKey = (url: string): string => {
  try {
    const u = new URL(url.trim())
    u.hash = ""
    const s = u.href
    return s.endsWith("/") ? s.slice(0, -1) : s
  } catch {
    return url.trim()
  }
}

export const makeCorpus = (documents: ReadonlyArray<CorpusDocument>): Decoded<Corpus> => {
  const ids = new Set<string>()
  const urls = new Map<string, CorpusDocument>()
  for (const doc of documents) {
    if (ids.has(doc.id)) return fail(`duplicate document id "${doc.id}"`)
    ids.add(doc.id)
    const key = corpusUrlKey(doc.url)
    if (urls.has(key)) return fail(`duplicate document url "${doc.url}" (document "${doc.id}")`)
    urls.set(key, doc)
  }
  return ok({ documents, byUrl: (url) => urls.get(corpusUrlKey(url)) })
}

const decodeDocument = (u: unknown): Decoded<CorpusDocument> => {
  if (!isRecord(u)) return fail(`expected an object {id, url, title, text}, got ${describe(u)}`)
  for (const field of ["id", "url", "title", "text"] as const) {
    const v = u[field]
    if (typeof v !== "string" || v.trim() === "") {
      return fail(`field "${field}" must be a non-empty string, got ${describe(v)}`)
    }
  }
  const url = String(u.url)
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error()
  } catch {
    return fail(`field "url" must be an http(s) URL, got ${describe(url)}`)
  }
  return ok({ id: String(u.id), url, title: String(u.title), text: String(u.text) })
}

/** Parses JSONL text; blank lines are skipped; an error names the source and the line. */
export const parseCorpus = (jsonl: string, source = "corpus"): Decoded<Corpus> => {
  const documents: CorpusDocument[] = []
  const lines = jsonl.split(/\r?\n/)
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      return fail(`${source} line ${i + 1}: not valid JSON`)
    }
    const doc = decodeDocument(value)
    if (!doc.ok) return fail(`${source} line ${i + 1}: ${doc.error}`)
    documents.push(doc.value)
  }
  if (documents.length === 0) return fail(`${source}: no documents`)
  const corpus = makeCorpus(documents)
  return corpus.ok ? corpus : fail(`${source}: ${corpus.error}`)
}

/** Reads and parses a corpus file; rejects with an Error naming the path and the problem. */
export const loadCorpus = async (path: string): Promise<Corpus> => {
  let text: string
  try {
    text = await fs.readFile(path, "utf8")
  } catch (error) {
    const code = (error as { code?: string }).code
    throw new Error(`cannot read corpus ${path}: ${code === "ENOENT" ? "no such file" : String(error)}`)
  }
  const corpus = parseCorpus(text, path)
  if (!corpus.ok) throw new Error(`invalid corpus ${corpus.error}`)
  return corpus.value
}
