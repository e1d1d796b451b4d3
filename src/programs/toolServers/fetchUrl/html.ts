/**
 * HTML → readable Markdown: the page is parsed with linkedom, links and images are made absolute
 * against the page URL, Readability extracts the main content (kept when it holds a fair share of
 * the page's text, else the whole body is used), and node-html-markdown writes Markdown. Total:
 * any string gives a result (a failing stage falls back to tag stripping), so arbitrary pages never
 * crash a fetch.
 */
import { Readability } from "@mozilla/readability"
import { parseHTML } from "linkedom"
import { NodeHtmlMarkdown } from "node-html-markdown"

export interface Readable {
  readonly title: string
  readonly markdown: string
}

const collapseSpace = (s: string): string => s.replace(/\s+/g, " ").trim()

const tidyMarkdown = (md: string): string =>
  md
    .replace(/\r\n?/g, "\n")
    .replace(/[ \t]+\n/g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()

const ENTITIES: Readonly<Record<string, string>> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
}

const decodeEntities = (s: string): string =>
  s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
    if (name.startsWith("#")) {
      const code =
        name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1))
      return Number.isInteger(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole
    }
    return ENTITIES[name.toLowerCase()] ?? whole
  })

/** The last-resort conversion: scripts and styles dropped, tags stripped, entities decoded. */
export const stripTags = (html: string): string =>
  tidyMarkdown(
    decodeEntities(
      html
        .replace(/<(script|style|noscript|template)\b[\s\S]*?<\/\1\s*>/gi, " ")
        .replace(/<!--[\s\S]*?-->/g, " ")
        .replace(/<(br|\/p|\/div|\/h[1-6]|\/li|\/tr)\b[^>]*>/gi, "\n")
        .replace(/<[^>]*>/g, " ")
        .replace(/[ \t\f\v]+/g, " "),
    ),
  )

const titleByRegex = (html: string): string => {
  const m = /<title[^>]*>([\s\S]*?)<\/title\s*>/i.exec(html)
  return m?.[1] === undefined ? "" : collapseSpace(decodeEntities(m[1].replace(/<[^>]*>/g, " ")))
}

/** A whole document for linkedom, which needs <html> and a <body> around fragment content. */
const asDocument = (html: string): string => {
  if (/<body[\s>]/i.test(html)) return /<html[\s>]/i.test(html) ? html : `<!DOCTYPE html><html>${html}</html>`
  const head = /<head[\s>][\s\S]*?<\/head\s*>/i.exec(html)?.[0] ?? ""
  const rest = head === "" ? html : html.replace(head, "")
  return `<!DOCTYPE html><html>${head === "" ? "<head></head>" : head}<body>${rest}</body></html>`
}

interface ElementLike {
  getAttribute(name: string): string | null
  setAttribute(name: string, value: string): void
  removeAttribute(name: string): void
  remove(): void
}

const absolutize = (document: { querySelectorAll(s: string): Iterable<ElementLike> }, baseUrl: string) => {
  for (const [selector, attr] of [
    ["a[href]", "href"],
    ["img[src]", "src"],
  ] as const) {
    for (const el of document.querySelectorAll(selector)) {
      const value = el.getAttribute(attr)
      if (value === null) continue
      if (/^\s*(javascript|vbscript):/i.test(value)) {
        el.removeAttribute(attr)
        continue
      }
      if (/^\s*data:/i.test(value)) {
        if (attr === "src") el.remove()
        continue
      }
      try {
        el.setAttribute(attr, new URL(value, baseUrl).href)
      } catch {
        // leave values that are not URLs as they are
      }
    }
  }
}

const toMarkdown = (html: string): string => {
  try {
    return tidyMarkdown(NodeHtmlMarkdown.translate(html))
  } catch {
    return stripTags(html)
  }
}

/** Readable Markdown and the title of an HTML page; `url` resolves relative links. Never throws. */
export const htmlToMarkdown = (html: string, url?: string): Readable => {
  const fallbackTitle = titleByRegex(html)
  try {
    const { document } = parseHTML(asDocument(html))
    const title = collapseSpace(String(document.title ?? "")) || fallbackTitle
    for (const el of document.querySelectorAll("script, style, noscript, template, iframe, svg")) el.remove()
    if (url !== undefined) absolutize(document, url)
    const body = document.body
    const bodyHtml: string = body === null || body === undefined ? "" : String(body.innerHTML)
    const bodyText = collapseSpace(String(body?.textContent ?? ""))
    let contentHtml = bodyHtml
    try {
      const article = new Readability(document, { charThreshold: 200 }).parse()
      const articleText = collapseSpace(article?.textContent ?? "")
      if (
        article?.content &&
        articleText.length > 0 &&
        (articleText.length >= 500 || articleText.length >= bodyText.length * 0.5)
      ) {
        contentHtml = article.content
      }
    } catch {
      // Readability failed on this page: use the whole body
    }
    return { title, markdown: toMarkdown(contentHtml) }
  } catch {
    return { title: fallbackTitle, markdown: stripTags(html) }
  }
}
