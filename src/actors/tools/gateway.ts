/**
 * The AgentDock gateway: ONE streamable-HTTP MCP endpoint (default `/mcp`) that serves every pooled
 * tool under the dock's names (`server__tool`, valid OpenAI function names; the old `server.tool`
 * is still accepted in a call), plus a token-protected admin surface for the CLI on the same server.
 *
 * - Every request except `GET /healthz` and `/.well-known/…` needs `Authorization: Bearer <token>`
 *   (constant-time check; 401 with `WWW-Authenticate: Bearer` otherwise).
 * - `/.well-known/…` (OAuth metadata discovery) answers 404 without a token: there is no OAuth
 *   here, and a 401 there makes MCP clients such as the Inspector start an OAuth flow instead of
 *   reporting a bad token.
 * - DNS-rebinding protection on every request: the Host header must name a loopback address or an
 *   allowed host, and so must the Origin header when present (403 otherwise). Bound to 127.0.0.1 by
 *   default.
 * - Stateful sessions by default (`mcp-session-id`, one SDK `Server` + transport per session, many
 *   concurrent clients; idle sessions are dropped); `sessions: "stateless"` serves every POST with a
 *   fresh server and transport and offers no GET stream or DELETE.
 *
 * Routes: `POST|GET|DELETE <path>` (MCP), `GET /healthz` (open), `GET /admin/status`,
 * `GET /admin/recording` (lifecycle events waiting for the log),
 * `POST /admin/swap` `{server, version}`, `POST /admin/call` `{name, args, idempotencyKey?, timeoutMs?}`.
 * Built on `node:http` and the SDK's `StreamableHTTPServerTransport`.
 */
import { randomUUID } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js"
import { type Dock, type DockCallOptions, DockError } from "./dockTypes.ts"
import {
  BodyTooLarge,
  bearerMatches,
  hostPolicy,
  readBody,
  rebindingViolation,
  sendJson,
  sendJsonRpcError,
  tokenDigest,
} from "./gatewayHttp.ts"
import { dockMcpServer } from "./gatewayMcp.ts"

export interface GatewayOptions {
  /** Default 127.0.0.1. Binding elsewhere still needs the names clients use in `allowedHosts`. */
  readonly host?: string
  /** Default 0: a free port picked by the OS. */
  readonly port?: number
  /** The bearer token every request but `/healthz` must carry. Must not be empty. */
  readonly token: string
  /** Hostnames (or `host:port`) accepted in Host/Origin headers besides loopback. */
  readonly allowedHosts?: ReadonlyArray<string>
  /** The MCP endpoint's path; default `/mcp`. */
  readonly path?: string
  /** Default "stateful" (session ids). "stateless": no sessions, no GET stream, no DELETE. */
  readonly sessions?: "stateful" | "stateless"
  /** Stateful mode: more open sessions than this refuses new ones (503). Default 1024. */
  readonly maxSessions?: number
  /** Stateful mode: a session with no request for this long (and none in flight) is closed. Default 15 min. */
  readonly sessionIdleMs?: number
  /** Largest request body accepted (413 past it). Default 4 MiB. */
  readonly maxBodyBytes?: number
  /** Receives one line per unexpected internal error; default: stderr. */
  readonly log?: (line: string) => void
}

export interface Gateway {
  /** The MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`. */
  readonly url: string
  readonly port: number
  /** Open MCP sessions (stateful mode). */
  readonly sessionCount: () => number
  /** Closes every session and connection and the listener; idempotent. Leaves the dock open. */
  readonly close: () => Promise<void>
}

interface Session {
  readonly server: Server
  readonly transport: StreamableHTTPServerTransport
  lastSeen: number
  inFlight: number
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024

const urlHost = (host: string): string => {
  if (host === "0.0.0.0" || host === "" || host === "::") return "127.0.0.1"
  return host.includes(":") ? `[${host}]` : host
}

const dockErrorStatus = (error: DockError): number => {
  switch (error.kind) {
    case "unknown_tool":
      return 404
    case "queue_full":
      return 429
    case "unavailable":
    case "closed":
      return 503
    case "refused":
      return 409
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export const startGateway = async (dock: Dock, options: GatewayOptions): Promise<Gateway> => {
  if (options.token === "") throw new Error("startGateway: the token must not be empty")
  const host = options.host ?? "127.0.0.1"
  const mcpPath = options.path ?? "/mcp"
  if (!mcpPath.startsWith("/")) throw new Error(`startGateway: path must start with "/": ${mcpPath}`)
  const stateless = options.sessions === "stateless"
  const maxSessions = options.maxSessions ?? 1024
  const idleMs = options.sessionIdleMs ?? 15 * 60_000
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const expectedToken = tokenDigest(options.token)
  const policy = hostPolicy(options.allowedHosts ?? [], host)
  const sessions = new Map<string, Session>()
  let closing = false

  const internalError = (res: http.ServerResponse, where: string, error: unknown): void => {
    log(
      `rollout gateway: ${where}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    )
    if (!res.headersSent) sendJsonRpcError(res, 500, -32603, "Internal server error")
    else res.end()
  }

  /** Reads and parses a JSON body, answering 413/400 itself; undefined when it did. */
  const jsonBody = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    jsonRpc: boolean,
  ): Promise<{ value: unknown } | undefined> => {
    let raw: Buffer
    try {
      raw = await readBody(req, maxBody)
    } catch (error) {
      if (error instanceof BodyTooLarge) {
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
      throw error
    }
    try {
      return { value: JSON.parse(raw.toString("utf8")) as unknown }
    } catch {
      if (jsonRpc) sendJsonRpcError(res, 400, -32700, "Parse error: the body is not JSON")
      else sendJson(res, 400, { error: "the body is not JSON" })
      return undefined
    }
  }

  const closeSession = async (id: string): Promise<void> => {
    const session = sessions.get(id)
    if (session === undefined) return
    sessions.delete(id)
    await session.server.close().catch(() => undefined)
  }

  const track = (session: Session, res: http.ServerResponse): void => {
    session.inFlight += 1
    session.lastSeen = Date.now()
    res.once("close", () => {
      session.inFlight -= 1
      session.lastSeen = Date.now()
    })
  }

  const handleStateful = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const header = req.headers["mcp-session-id"]
    const sessionId = Array.isArray(header) ? header[0] : header
    const method = req.method ?? ""
    if (method !== "POST" && method !== "GET" && method !== "DELETE") {
      sendJsonRpcError(res, 405, -32000, "Method not allowed", { allow: "GET, POST, DELETE" })
      return
    }
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId)
      if (session === undefined) {
        sendJsonRpcError(res, 404, -32001, "Session not found")
        return
      }
      track(session, res)
      if (method === "POST") {
        const body = await jsonBody(req, res, true)
        if (body === undefined) return
        await session.transport.handleRequest(req, res, body.value)
      } else {
        await session.transport.handleRequest(req, res)
      }
      return
    }
    if (method !== "POST") {
      sendJsonRpcError(res, 400, -32000, "Bad Request: Mcp-Session-Id header is required")
      return
    }
    const body = await jsonBody(req, res, true)
    if (body === undefined) return
    const messages = Array.isArray(body.value) ? body.value : [body.value]
    if (!messages.some((m) => isInitializeRequest(m))) {
      sendJsonRpcError(res, 400, -32000, "Bad Request: No valid session ID provided")
      return
    }
    if (sessions.size >= maxSessions) {
      sendJsonRpcError(res, 503, -32000, `Too many open sessions (${maxSessions}); retry later`, {
        "retry-after": "5",
      })
      return
    }
    const server = dockMcpServer(dock)
    let registered = false
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        registered = true
        sessions.set(id, session)
      },
    })
    const session: Session = { server, transport, lastSeen: Date.now(), inFlight: 0 }
    server.onclose = () => {
      const id = transport.sessionId
      if (id !== undefined && sessions.get(id) === session) sessions.delete(id)
    }
    track(session, res)
    await server.connect(transport)
    await transport.handleRequest(req, res, body.value)
    // The initialize request was refused (bad headers, bad version…): nothing to keep.
    if (!registered) await server.close().catch(() => undefined)
    else if (closing) await closeSession(transport.sessionId ?? "")
  }

  const handleStateless = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (req.method !== "POST") {
      sendJsonRpcError(res, 405, -32000, "Method not allowed: this gateway is stateless (POST only)", {
        allow: "POST",
      })
      return
    }
    const body = await jsonBody(req, res, true)
    if (body === undefined) return
    const server = dockMcpServer(dock)
    // No sessionIdGenerator: the SDK transport runs stateless (no session id, no session checks).
    const transport = new StreamableHTTPServerTransport({})
    res.once("close", () => {
      void server.close().catch(() => undefined)
    })
    await server.connect(transport)
    await transport.handleRequest(req, res, body.value)
  }

  const handleAdmin = async (
    route: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    const method = req.method ?? ""
    const only = (allowed: string): boolean => {
      if (method === allowed) return true
      sendJson(res, 405, { error: `${route} takes ${allowed}` }, { allow: allowed })
      return false
    }
    const failed = (error: unknown): void => {
      if (error instanceof DockError)
        sendJson(res, dockErrorStatus(error), { error: error.message, kind: error.kind })
      else sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) })
    }
    switch (route) {
      case "/admin/status": {
        if (!only("GET")) return
        try {
          sendJson(res, 200, dock.status())
        } catch (error) {
          failed(error)
        }
        return
      }
      case "/admin/recording": {
        if (!only("GET")) return
        sendJson(res, 200, dock.recording?.() ?? null)
        return
      }
      case "/admin/swap": {
        if (!only("POST")) return
        const body = await jsonBody(req, res, false)
        if (body === undefined) return
        const { value } = body
        if (
          !isRecord(value) ||
          typeof value.server !== "string" ||
          value.server === "" ||
          typeof value.version !== "string" ||
          value.version === ""
        ) {
          sendJson(res, 400, { error: 'expected {"server": string, "version": string}' })
          return
        }
        try {
          sendJson(res, 200, await dock.swap(value.server, value.version))
        } catch (error) {
          failed(error)
        }
        return
      }
      case "/admin/call": {
        if (!only("POST")) return
        const body = await jsonBody(req, res, false)
        if (body === undefined) return
        const { value } = body
        if (
          !isRecord(value) ||
          typeof value.name !== "string" ||
          value.name === "" ||
          (value.idempotencyKey !== undefined && typeof value.idempotencyKey !== "string") ||
          (value.timeoutMs !== undefined &&
            (typeof value.timeoutMs !== "number" ||
              !Number.isFinite(value.timeoutMs) ||
              value.timeoutMs <= 0))
        ) {
          sendJson(res, 400, {
            error:
              'expected {"name": string, "args"?: object, "idempotencyKey"?: string, "timeoutMs"?: number}',
          })
          return
        }
        const callOptions: DockCallOptions = {
          ...(typeof value.idempotencyKey === "string" ? { idempotencyKey: value.idempotencyKey } : {}),
          ...(typeof value.timeoutMs === "number" ? { timeoutMs: value.timeoutMs } : {}),
        }
        try {
          sendJson(res, 200, await dock.call(value.name, value.args ?? {}, callOptions))
        } catch (error) {
          failed(error)
        }
        return
      }
      default:
        sendJson(res, 404, { error: `no route ${route}` })
    }
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const route = (req.url ?? "/").split("?")[0] ?? "/"
    const violation = rebindingViolation(policy, req)
    if (violation !== undefined) {
      sendJsonRpcError(res, 403, -32000, `Forbidden: ${violation}`)
      return
    }
    if (route === "/healthz") {
      if (req.method === "GET" || req.method === "HEAD") sendJson(res, 200, { ok: true })
      else sendJson(res, 405, { error: "/healthz takes GET" }, { allow: "GET" })
      return
    }
    if (route.startsWith("/.well-known/")) {
      sendJson(res, 404, {
        error: `no ${route}: this gateway has no OAuth; it takes a bearer token (Authorization: Bearer <token>)`,
      })
      return
    }
    if (!bearerMatches(req.headers.authorization, expectedToken)) {
      const challenge =
        req.headers.authorization === undefined
          ? 'Bearer realm="rollout-agentdock"'
          : 'Bearer realm="rollout-agentdock", error="invalid_token"'
      sendJsonRpcError(res, 401, -32001, "Unauthorized: a valid bearer token is required", {
        "www-authenticate": challenge,
      })
      return
    }
    if (closing) {
      sendJsonRpcError(res, 503, -32000, "The gateway is closing", { connection: "close" })
      return
    }
    if (route === mcpPath) {
      if (stateless) await handleStateless(req, res)
      else await handleStateful(req, res)
      return
    }
    if (route.startsWith("/admin/")) {
      await handleAdmin(route, req, res)
      return
    }
    sendJson(res, 404, { error: `no route ${route}` })
  }

  const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => internalError(res, `${req.method} ${req.url}`, error))
  })
  // Slow-loris guard on headers; long SSE answers are unaffected (these bound receiving the request only).
  httpServer.headersTimeout = 30_000

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject)
    httpServer.listen(options.port ?? 0, host, () => {
      httpServer.off("error", reject)
      resolve()
    })
  })
  httpServer.on("error", (error) => log(`rollout gateway: server error: ${error.message}`))
  const port = (httpServer.address() as AddressInfo).port

  const sweeper = setInterval(
    () => {
      const now = Date.now()
      for (const [id, session] of sessions)
        if (session.inFlight === 0 && now - session.lastSeen > idleMs) void closeSession(id)
    },
    Math.max(1000, Math.min(idleMs, 60_000)),
  )
  sweeper.unref()

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      clearInterval(sweeper)
      const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()))
      await Promise.all([...sessions.keys()].map((id) => closeSession(id)))
      httpServer.closeAllConnections()
      await stopped
    })()
    return closed
  }

  return { url: `http://${urlHost(host)}:${port}${mcpPath}`, port, sessionCount: () => sessions.size, close }
}
