/**
 * The HTTP guards of the AgentDock gateway: bearer-token auth (constant-time), DNS-rebinding
 * protection (Host and Origin must name a loopback or an allowed host), bounded body reading (raw
 * and JSON) and small JSON answers. Plain `node:http`, no framework.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import type * as http from "node:http"

const LOOPBACK_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"])

/** `localhost`, `127.0.0.1` (any 127/8) or `[::1]`. */
export const isLoopbackHostname = (hostname: string): boolean => {
  const h = hostname.toLowerCase()
  return LOOPBACK_HOSTNAMES.has(h) || /^127(\.\d{1,3}){3}$/.test(h)
}

/** The hostname of a Host header value (`name`, `name:port`, `[v6]:port`), lower-cased; undefined if unparsable. */
export const hostnameOfHostHeader = (host: string): string | undefined => {
  try {
    const url = new URL(`http://${host}`)
    // A Host header carries no path, user info or query; anything else is a forged value.
    if (url.username !== "" || url.password !== "" || url.pathname !== "/" || url.search !== "")
      return undefined
    return url.hostname.toLowerCase()
  } catch {
    return undefined
  }
}

export interface HostPolicy {
  /** Lower-cased hostnames (no port) or `host:port` values that are accepted besides loopback. */
  readonly allowed: ReadonlySet<string>
}

export const hostPolicy = (allowedHosts: ReadonlyArray<string>, boundHost: string): HostPolicy => {
  const allowed = new Set<string>()
  for (const entry of allowedHosts) {
    const trimmed = entry.trim().toLowerCase()
    if (trimmed !== "") allowed.add(trimmed)
  }
  // A gateway bound to a specific non-wildcard address is reached under that address.
  const bound = boundHost.toLowerCase()
  if (bound !== "0.0.0.0" && bound !== "::" && bound !== "")
    allowed.add(bound.includes(":") ? `[${bound}]` : bound)
  return { allowed }
}

const hostAllowed = (policy: HostPolicy, hostHeader: string): boolean => {
  const hostname = hostnameOfHostHeader(hostHeader)
  if (hostname === undefined) return false
  return (
    isLoopbackHostname(hostname) ||
    policy.allowed.has(hostname) ||
    policy.allowed.has(hostHeader.toLowerCase())
  )
}

/**
 * Why a request fails the DNS-rebinding check, or undefined when it passes: the Host header must name a
 * loopback address or an allowed host; an Origin header, when present, likewise (`null` is refused).
 */
export const rebindingViolation = (policy: HostPolicy, req: http.IncomingMessage): string | undefined => {
  const host = req.headers.host
  if (host === undefined || host === "") return "missing Host header"
  if (!hostAllowed(policy, host)) return `Host ${JSON.stringify(host)} is not allowed`
  const origin = req.headers.origin
  if (origin !== undefined) {
    let originHost: string | undefined
    try {
      const url = new URL(origin)
      originHost = url.protocol === "http:" || url.protocol === "https:" ? url.host : undefined
    } catch {
      originHost = undefined
    }
    if (originHost === undefined || !hostAllowed(policy, originHost))
      return `Origin ${JSON.stringify(origin)} is not allowed`
  }
  return undefined
}

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest()

/**
 * Checks `Authorization: Bearer <token>`. Both sides are hashed first so the comparison is
 * constant-time and leaks not even the token's length.
 */
export const bearerMatches = (header: string | undefined, expectedDigest: Buffer): boolean => {
  if (header === undefined) return false
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header)
  const given = match?.[1]
  if (given === undefined) return false
  return timingSafeEqual(digest(given), expectedDigest)
}

export const tokenDigest = digest

export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge"
}

/** Reads a request body up to `limit` bytes; rejects with BodyTooLarge past it. */
export const readBody = (req: http.IncomingMessage, limit: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"])
    if (Number.isFinite(declared) && declared > limit) {
      req.resume()
      reject(new BodyTooLarge(`body of ${declared} bytes exceeds ${limit}`))
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    let over = false
    req.on("data", (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > limit) {
        over = true
        reject(new BodyTooLarge(`body exceeds ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    })
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks))
    })
    req.on("error", (error) => {
      if (!over) reject(error)
    })
  })

export const sendJson = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void => {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  })
  res.end(text)
}

/** A JSON-RPC error answer with no id, as the MCP transport itself writes them. */
export const sendJsonRpcError = (
  res: http.ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void => sendJson(res, status, { jsonrpc: "2.0", error: { code, message }, id: null }, headers)

/**
 * Reads and parses a JSON body of at most `maxBody` bytes, answering 413 or 400 itself (as a
 * JSON-RPC error on the MCP endpoint, as `{error}` on the admin routes); undefined when it did.
 */
export const readJsonBody = async (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  maxBody: number,
  jsonRpc: boolean,
): Promise<{ readonly value: unknown } | undefined> => {
  let raw: Buffer
  try {
    raw = await readBody(req, maxBody)
  } catch (error) {
    if (!(error instanceof BodyTooLarge)) throw error
    if (jsonRpc)
      sendJsonRpcError(res, 413, -32600, `Request body too large (limit ${maxBody} bytes)`, {
        connection: "close",
      })
    else
      sendJson(
        res,
        413,
        { error: `request body too large (limit ${maxBody} bytes)` },
        { connection: "close" },
      )
    return undefined
  }
  try {
    return { value: JSON.parse(raw.toString("utf8")) as unknown }
  } catch {
    if (jsonRpc) sendJsonRpcError(res, 400, -32700, "Parse error: the body is not JSON")
    else sendJson(res, 400, { error: "the body is not JSON" })
    return undefined
  }
}
