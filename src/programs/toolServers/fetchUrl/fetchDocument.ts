/**
 * One HTTP(S) fetch as fetch_url needs it: redirects followed by hand (each hop checked against the
 * block list, at most `maxRedirects`), one timeout over the whole exchange including the body, a
 * size cap enforced while streaming (and up front from Content-Length), the charset honoured, and
 * the body turned into readable text — HTML to Markdown, plain text and JSON as they are; other
 * types (PDF, images, archives) are refused by name. Failures are `FetchError`s naming the reason.
 */
import type { BlockList } from "../blockList/blockList.ts"
import { htmlToMarkdown } from "./html.ts"

export interface FetchedDocument {
  /** The URL that was asked for. */
  readonly url: string
  /** The URL after redirects. */
  readonly finalUrl: string
  readonly contentType: string
  readonly title: string
  /** Markdown (from HTML) or the text as served. */
  readonly text: string
  readonly source: "network" | "corpus"
}

export class FetchError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`${url}: ${reason}`)
    this.name = "FetchError"
  }
}

export interface FetchDocumentOptions {
  readonly timeoutMs: number
  readonly maxBytes: number
  readonly maxRedirects: number
  readonly userAgent: string
  readonly blockList: BlockList
  readonly fetch?: typeof fetch
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

type Kind = "html" | "text" | "unsupported" | "sniff"

const kindOf = (mediaType: string): Kind => {
  if (mediaType === "") return "sniff"
  if (mediaType === "text/html" || mediaType === "application/xhtml+xml") return "html"
  if (mediaType.startsWith("text/")) return "text"
  if (
    mediaType === "application/json" ||
    mediaType.endsWith("+json") ||
    mediaType === "application/xml" ||
    mediaType.endsWith("+xml") ||
    mediaType === "application/javascript" ||
    mediaType === "application/x-ndjson"
  ) {
    return "text"
  }
  if (mediaType === "application/octet-stream" || mediaType === "binary/octet-stream") return "sniff"
  return "unsupported"
}

const charsetOf = (contentType: string, head: Uint8Array, html: boolean): string => {
  const fromHeader = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType)?.[1]
  if (fromHeader !== undefined) return fromHeader
  if (!html) return "utf-8"
  const ascii = new TextDecoder("latin1").decode(head.subarray(0, 2048))
  return /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(ascii)?.[1] ?? "utf-8"
}

const decodeText = (bytes: Uint8Array, charset: string): string => {
  try {
    return new TextDecoder(charset).decode(bytes)
  } catch {
    return new TextDecoder("utf-8").decode(bytes)
  }
}

const looksLikeHtml = (text: string): boolean =>
  /^\s*(<!doctype html|<html[\s>]|<head[\s>]|<body[\s>])/i.test(text.slice(0, 1024).replace(/^\uFEFF/, "")) ||
  /<(html|body)[\s>]/i.test(text.slice(0, 4096))

const readCapped = async (response: Response, url: string, maxBytes: number): Promise<Uint8Array> => {
  const declared = Number(response.headers.get("content-length") ?? "")
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined)
    throw new FetchError(url, `the response (${declared} bytes) exceeds the size cap of ${maxBytes} bytes`)
  }
  const body = response.body
  if (body === null) return new Uint8Array()
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined)
      throw new FetchError(url, `the response exceeds the size cap of ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  const out = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

const networkReason = (error: unknown): string => {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  const detail =
    cause && typeof cause.code === "string"
      ? cause.code
      : cause && typeof cause.message === "string"
        ? cause.message
        : error instanceof Error
          ? error.message
          : String(error)
  return `the request failed (${detail})`
}

/** Fetches and converts one http(s) URL; rejects with a FetchError. */
export const fetchDocument = async (url: string, options: FetchDocumentOptions): Promise<FetchedDocument> => {
  const fetchFn = options.fetch ?? fetch
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), options.timeoutMs)
  const timedOut = () => new FetchError(url, `timed out after ${options.timeoutMs} ms`)
  try {
    let current = new URL(url)
    let response: Response | undefined
    for (let hop = 0; ; hop++) {
      try {
        response = await fetchFn(current.href, {
          redirect: "manual",
          signal: controller.signal,
          headers: {
            "User-Agent": options.userAgent,
            Accept: "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
          },
        })
      } catch (error) {
        if (controller.signal.aborted) throw timedOut()
        throw new FetchError(url, networkReason(error))
      }
      const location = response.headers.get("location")
      if (!REDIRECTS.has(response.status) || location === null) break
      await response.body?.cancel().catch(() => undefined)
      if (hop >= options.maxRedirects)
        throw new FetchError(url, `more than ${options.maxRedirects} redirects`)
      let next: URL
      try {
        next = new URL(location, current)
      } catch {
        throw new FetchError(url, `redirected to an invalid URL`)
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new FetchError(url, `redirected to a ${next.protocol} URL, which is not fetched`)
      }
      const rule = options.blockList.match(next)
      if (rule !== undefined) {
        throw new FetchError(
          url,
          `redirected to ${next.href}, which the answer-leak block list refuses (rule ${rule})`,
        )
      }
      current = next
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined)
      throw new FetchError(
        url,
        `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`,
      )
    }
    const contentType = response.headers.get("content-type") ?? ""
    const mediaType = (contentType.split(";")[0] ?? "").trim().toLowerCase()
    const kind = kindOf(mediaType)
    if (kind === "unsupported") {
      await response.body?.cancel().catch(() => undefined)
      throw new FetchError(url, `unsupported content type ${mediaType} (HTML, text and JSON are read)`)
    }
    let bytes: Uint8Array
    try {
      bytes = await readCapped(response, url, options.maxBytes)
    } catch (error) {
      if (error instanceof FetchError) throw error
      if (controller.signal.aborted) throw timedOut()
      throw new FetchError(url, networkReason(error))
    }
    const head = bytes.subarray(0, 4096)
    if (kind === "sniff" && head.includes(0)) {
      throw new FetchError(url, `binary content${mediaType === "" ? "" : ` (${mediaType})`} is not read`)
    }
    const text = decodeText(bytes, charsetOf(contentType, head, kind !== "text"))
    const html = kind === "html" || (kind === "sniff" && looksLikeHtml(text))
    const finalUrl = current.href
    if (html) {
      const readable = htmlToMarkdown(text, finalUrl)
      return {
        url,
        finalUrl,
        contentType: mediaType === "" ? "text/html" : mediaType,
        title: readable.title,
        text: readable.markdown,
        source: "network",
      }
    }
    return {
      url,
      finalUrl,
      contentType: mediaType === "" ? "text/plain" : mediaType,
      title: "",
      text: text.replace(/^\uFEFF/, ""),
      source: "network",
    }
  } finally {
    clearTimeout(timer)
  }
}
