/**
 * The gateway's MCP endpoint, on the SDK's streamable-HTTP transport. Stateful by default: an
 * initialize request opens a session (`mcp-session-id`), each with its own SDK `Server` and
 * transport, so many clients are served at once; a session with no request for a while (and none
 * in flight) is dropped, and past `maxSessions` new ones are refused (503). Stateless: every POST
 * gets a fresh server and transport, and there is no GET stream and no DELETE.
 */
import { randomUUID } from "node:crypto"
import type * as http from "node:http"
import type { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js"
import type { Clock } from "../../runtime/clock.ts"
import type { Dock } from "./dockTypes.ts"
import { readJsonBody, sendJsonRpcError } from "./gatewayHttp.ts"
import { dockMcpServer } from "./gatewayMcp.ts"

interface Session {
  readonly server: Server
  readonly transport: StreamableHTTPServerTransport
  lastSeen: number
  inFlight: number
}

/** The open sessions by id, with when each was last used (the clock's monotonic reading). */
export class SessionTable {
  private readonly sessions = new Map<string, Session>()

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.sessions.size
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id)
  }

  open(id: string, session: Session): void {
    this.sessions.set(id, session)
  }

  /** Forgets a session whose server closed (only if it is still the one under its id). */
  forget(id: string, session: Session): void {
    if (this.sessions.get(id) === session) this.sessions.delete(id)
  }

  async close(id: string): Promise<void> {
    const session = this.sessions.get(id)
    if (session === undefined) return
    this.sessions.delete(id)
    await session.server.close().catch(() => undefined)
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id)))
  }

  /** Counts a request of the session as in flight until its response closes. */
  track(session: Session, res: http.ServerResponse): void {
    session.inFlight += 1
    session.lastSeen = this.clock.monotonicMs()
    res.once("close", () => {
      session.inFlight -= 1
      session.lastSeen = this.clock.monotonicMs()
    })
  }

  /** Closes the sessions with nothing in flight and no request for `idleMs`. */
  sweep(idleMs: number): void {
    const now = this.clock.monotonicMs()
    for (const [id, session] of this.sessions)
      if (session.inFlight === 0 && now - session.lastSeen > idleMs) void this.close(id)
  }

  /** A session not yet under an id (the SDK names it once its initialize request is answered). */
  fresh(server: Server, transport: StreamableHTTPServerTransport): Session {
    return { server, transport, lastSeen: this.clock.monotonicMs(), inFlight: 0 }
  }
}

export interface StatefulEndpoint {
  readonly dock: Dock
  readonly sessions: SessionTable
  readonly maxSessions: number
  readonly maxBody: number
  /** Whether the gateway is closing (a session opened meanwhile is closed at once). */
  readonly closing: () => boolean
}

/** A request to a known session, answered on its transport. */
const serveSession = async (
  endpoint: StatefulEndpoint,
  session: Session,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> => {
  endpoint.sessions.track(session, res)
  if (req.method !== "POST") {
    await session.transport.handleRequest(req, res)
    return
  }
  const body = await readJsonBody(req, res, endpoint.maxBody, true)
  if (body !== undefined) await session.transport.handleRequest(req, res, body.value)
}

/** An initialize request opens a session; the SDK registers it once it has answered. */
const openSession = async (
  endpoint: StatefulEndpoint,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: unknown,
): Promise<void> => {
  const { sessions } = endpoint
  const server = dockMcpServer(endpoint.dock)
  let registered = false
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      registered = true
      sessions.open(id, session)
    },
  })
  const session = sessions.fresh(server, transport)
  server.onclose = () => {
    const id = transport.sessionId
    if (id !== undefined) sessions.forget(id, session)
  }
  sessions.track(session, res)
  await server.connect(transport)
  await transport.handleRequest(req, res, body)
  // The initialize request was refused (bad headers, bad version…): nothing to keep.
  if (!registered) await server.close().catch(() => undefined)
  else if (endpoint.closing()) await sessions.close(transport.sessionId ?? "")
}

/** `POST|GET|DELETE` on the MCP path, with sessions. */
export const serveStateful = async (
  endpoint: StatefulEndpoint,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> => {
  const header = req.headers["mcp-session-id"]
  const sessionId = Array.isArray(header) ? header[0] : header
  const method = req.method ?? ""
  if (method !== "POST" && method !== "GET" && method !== "DELETE") {
    sendJsonRpcError(res, 405, -32000, "Method not allowed", { allow: "GET, POST, DELETE" })
    return
  }
  if (sessionId !== undefined) {
    const session = endpoint.sessions.get(sessionId)
    if (session === undefined) sendJsonRpcError(res, 404, -32001, "Session not found")
    else await serveSession(endpoint, session, req, res)
    return
  }
  if (method !== "POST") {
    sendJsonRpcError(res, 400, -32000, "Bad Request: Mcp-Session-Id header is required")
    return
  }
  const body = await readJsonBody(req, res, endpoint.maxBody, true)
  if (body === undefined) return
  const messages = Array.isArray(body.value) ? body.value : [body.value]
  if (!messages.some((m) => isInitializeRequest(m))) {
    sendJsonRpcError(res, 400, -32000, "Bad Request: No valid session ID provided")
    return
  }
  if (endpoint.sessions.size >= endpoint.maxSessions) {
    sendJsonRpcError(res, 503, -32000, `Too many open sessions (${endpoint.maxSessions}); retry later`, {
      "retry-after": "5",
    })
    return
  }
  await openSession(endpoint, req, res, body.value)
}

/** `POST` on the MCP path, without sessions: a fresh server and transport for the request. */
export const serveStateless = async (
  dock: Dock,
  maxBody: number,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> => {
  if (req.method !== "POST") {
    sendJsonRpcError(res, 405, -32000, "Method not allowed: this gateway is stateless (POST only)", {
      allow: "POST",
    })
    return
  }
  const body = await readJsonBody(req, res, maxBody, true)
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
