/**
 * Reading what the tools gave back, from the conversation only: a `search` result's hits and a
 * `fetch_url` result's page, each from the structured content AgentDock appends as one line of JSON
 * when there is one, else from the servers' text formats.
 */

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
