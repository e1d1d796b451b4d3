/**
 * Output standardization: MCP content of any kind (text, structured JSON, images, audio, embedded
 * resources, resource links) becomes the normalized `ToolContent` the log and the agent see, with
 * one size cap over all text and an explicit truncation marker. Binary data never enters the log:
 * images and blobs are recorded by hash and size. Pure.
 */
import { createHash } from "node:crypto"
import type { ToolContent } from "./dockTypes.ts"

export interface Normalized {
  readonly content: ReadonlyArray<ToolContent>
  /** What the caller gets back over MCP: the same, capped, with binary data kept. */
  readonly mcpContent: ReadonlyArray<Record<string, unknown>>
  readonly truncated: boolean
  readonly isError: boolean
}

export const truncationMarker = (shown: number, total: number): string =>
  `\n[output truncated by rollout: ${shown} of ${total} characters shown]`

const base64Bytes = (data: string): number =>
  Math.floor((data.length * 3) / 4) - (data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0)
const sha256 = (data: string): string => createHash("sha256").update(data).digest("hex")

/** Normalizes a `tools/call` result (anything: a server may send garbage) under a text budget. */
export const normalizeToolResult = (result: unknown, maxChars: number): Normalized => {
  const r = (typeof result === "object" && result !== null ? result : {}) as Record<string, unknown>
  const raw = Array.isArray(r.content) ? (r.content as unknown[]) : []
  const content: ToolContent[] = []
  const mcp: Record<string, unknown>[] = []
  let budget = maxChars
  let truncated = false
  const text = (t: string) => {
    if (t.length <= budget) {
      budget -= t.length
      content.push({ type: "text", text: t })
      mcp.push({ type: "text", text: t })
      return
    }
    truncated = true
    const shown = t.slice(0, Math.max(0, budget))
    budget = 0
    const marked = `${shown}${truncationMarker(shown.length, t.length)}`
    content.push({ type: "text", text: marked })
    mcp.push({ type: "text", text: marked })
  }
  for (const item of raw) {
    const c = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>
    switch (c.type) {
      case "text":
        text(typeof c.text === "string" ? c.text : String(c.text ?? ""))
        break
      case "image":
      case "audio": {
        const data = typeof c.data === "string" ? c.data : ""
        const mimeType = typeof c.mimeType === "string" ? c.mimeType : "application/octet-stream"
        content.push({ type: "image", mimeType, bytes: base64Bytes(data), sha256: sha256(data) })
        mcp.push({ type: c.type, data, mimeType })
        break
      }
      case "resource": {
        const res = (typeof c.resource === "object" && c.resource !== null ? c.resource : {}) as Record<
          string,
          unknown
        >
        const uri = typeof res.uri === "string" ? res.uri : ""
        const mimeType = typeof res.mimeType === "string" ? res.mimeType : undefined
        if (typeof res.text === "string") {
          const before = content.length
          text(res.text)
          const added = content.splice(before)[0] as { text: string } | undefined
          mcp.splice(before)
          const entry = {
            type: "resource" as const,
            uri,
            ...(mimeType === undefined ? {} : { mimeType }),
            text: added?.text ?? "",
          }
          content.push(entry)
          mcp.push({
            type: "resource",
            resource: { uri, ...(mimeType === undefined ? {} : { mimeType }), text: entry.text },
          })
        } else {
          const blob = typeof res.blob === "string" ? res.blob : ""
          content.push({
            type: "image",
            mimeType: mimeType ?? "application/octet-stream",
            bytes: base64Bytes(blob),
            sha256: sha256(blob),
          })
          mcp.push({
            type: "resource",
            resource: { uri, ...(mimeType === undefined ? {} : { mimeType }), blob },
          })
        }
        break
      }
      case "resource_link": {
        const uri = typeof c.uri === "string" ? c.uri : ""
        const mimeType = typeof c.mimeType === "string" ? c.mimeType : undefined
        content.push({ type: "resource", uri, ...(mimeType === undefined ? {} : { mimeType }) })
        mcp.push({ ...c })
        break
      }
      default:
        text(`[unsupported content type ${JSON.stringify(c.type ?? null)}]`)
    }
  }
  if (
    r.structuredContent !== undefined &&
    typeof r.structuredContent === "object" &&
    r.structuredContent !== null
  ) {
    const json = JSON.stringify(r.structuredContent)
    if (json.length <= budget) {
      content.push({ type: "json", value: r.structuredContent as never })
      budget -= json.length
    } else truncated = true
  }
  return { content, mcpContent: mcp, truncated, isError: r.isError === true }
}

/**
 * The normalized content as one string, for the agent's context. Structured JSON is shown only when
 * the result has no text: servers send it beside a text rendering of the same data.
 */
export const contentText = (content: ReadonlyArray<ToolContent>): string => {
  const hasText = content.some((c) => c.type === "text" || (c.type === "resource" && c.text !== undefined))
  return content
    .filter((c) => !(hasText && c.type === "json"))
    .map((c) => {
      switch (c.type) {
        case "text":
          return c.text
        case "json":
          return JSON.stringify(c.value)
        case "image":
          return `[${c.mimeType}, ${c.bytes} bytes, sha256 ${c.sha256.slice(0, 12)}]`
        default:
          return c.text === undefined ? `[resource ${c.uri}]` : c.text
      }
    })
    .join("\n")
}
