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
 * Built on `node:http` and the SDK's `StreamableHTTPServerTransport`; the MCP endpoint is in
 * gatewaySessions.ts, the admin routes in gatewayAdmin.ts, the HTTP guards in gatewayHttp.ts.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import type { Dock } from "./dockTypes.ts"
import { serveAdmin } from "./gatewayAdmin.ts"
import {
  bearerMatches,
  type HostPolicy,
  hostPolicy,
  rebindingViolation,
  sendJson,
  sendJsonRpcError,
  tokenDigest,
} from "./gatewayHttp.ts"
import { SessionTable, type StatefulEndpoint, serveStateful, serveStateless } from "./gatewaySessions.ts"

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
  /** Measures how long sessions sit idle (default: the system clock). */
  readonly clock?: Clock
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

const DEFAULT_MAX_BODY = 4 * 1024 * 1024

const urlHost = (host: string): string => {
  if (host === "0.0.0.0" || host === "" || host === "::") return "127.0.0.1"
  return host.includes(":") ? `[${host}]` : host
}

/** What every request is checked against and served with. */
interface Routes {
  readonly dock: Dock
  readonly mcpPath: string
  readonly stateless: boolean
  readonly policy: HostPolicy
  readonly expectedToken: Buffer
  readonly maxBody: number
  readonly endpoint: StatefulEndpoint
}

const internalError = (
  log: (line: string) => void,
  res: http.ServerResponse,
  where: string,
  error: unknown,
): void => {
  log(`rollout gateway: ${where}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  if (!res.headersSent) sendJsonRpcError(res, 500, -32603, "Internal server error")
  else res.end()
}

/** 401 with the challenge MCP clients expect (naming a bad token as such). */
const unauthorized = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const challenge =
    req.headers.authorization === undefined
      ? 'Bearer realm="rollout-agentdock"'
      : 'Bearer realm="rollout-agentdock", error="invalid_token"'
  sendJsonRpcError(res, 401, -32001, "Unauthorized: a valid bearer token is required", {
    "www-authenticate": challenge,
  })
}

/** One request: the rebinding check, the open routes, the token, then the MCP path or the admin routes. */
const route = async (routes: Routes, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
  const path = (req.url ?? "/").split("?")[0] ?? "/"
  const violation = rebindingViolation(routes.policy, req)
  if (violation !== undefined) {
    sendJsonRpcError(res, 403, -32000, `Forbidden: ${violation}`)
    return
  }
  if (path === "/healthz") {
    if (req.method === "GET" || req.method === "HEAD") sendJson(res, 200, { ok: true })
    else sendJson(res, 405, { error: "/healthz takes GET" }, { allow: "GET" })
    return
  }
  if (path.startsWith("/.well-known/")) {
    sendJson(res, 404, {
      error: `no ${path}: this gateway has no OAuth; it takes a bearer token (Authorization: Bearer <token>)`,
    })
    return
  }
  if (!bearerMatches(req.headers.authorization, routes.expectedToken)) {
    unauthorized(req, res)
    return
  }
  if (routes.endpoint.closing()) {
    sendJsonRpcError(res, 503, -32000, "The gateway is closing", { connection: "close" })
    return
  }
  if (path === routes.mcpPath) {
    if (routes.stateless) await serveStateless(routes.dock, routes.maxBody, req, res)
    else await serveStateful(routes.endpoint, req, res)
    return
  }
  if (path.startsWith("/admin/")) {
    await serveAdmin(routes.dock, routes.maxBody, path, req, res)
    return
  }
  sendJson(res, 404, { error: `no route ${path}` })
}

const listen = (server: http.Server, port: number, host: string): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () => {
      server.off("error", reject)
      resolve()
    })
  })

export const startGateway = async (dock: Dock, options: GatewayOptions): Promise<Gateway> => {
  if (options.token === "") throw new Error("startGateway: the token must not be empty")
  const host = options.host ?? "127.0.0.1"
  const mcpPath = options.path ?? "/mcp"
  if (!mcpPath.startsWith("/")) throw new Error(`startGateway: path must start with "/": ${mcpPath}`)
  const idleMs = options.sessionIdleMs ?? 15 * 60_000
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const sessions = new SessionTable(options.clock ?? systemClock)
  let closing = false
  const routes: Routes = {
    dock,
    mcpPath,
    stateless: options.sessions === "stateless",
    policy: hostPolicy(options.allowedHosts ?? [], host),
    expectedToken: tokenDigest(options.token),
    maxBody,
    endpoint: { dock, sessions, maxSessions: options.maxSessions ?? 1024, maxBody, closing: () => closing },
  }

  const httpServer = http.createServer((req, res) => {
    route(routes, req, res).catch((error: unknown) =>
      internalError(log, res, `${req.method} ${req.url}`, error),
    )
  })
  // Slow-loris guard on headers; long SSE answers are unaffected (these bound receiving the request only).
  httpServer.headersTimeout = 30_000
  await listen(httpServer, options.port ?? 0, host)
  httpServer.on("error", (error) => log(`rollout gateway: server error: ${error.message}`))
  const port = (httpServer.address() as AddressInfo).port

  const sweeper = setInterval(() => sessions.sweep(idleMs), Math.max(1000, Math.min(idleMs, 60_000)))
  sweeper.unref()

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      clearInterval(sweeper)
      const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()))
      await sessions.closeAll()
      httpServer.closeAllConnections()
      await stopped
    })()
    return closed
  }

  return { url: `http://${urlHost(host)}:${port}${mcpPath}`, port, sessionCount: () => sessions.size, close }
}
