/**
 * The AgentDock MCP gateway against the official MCP SDK client over real loopback HTTP, with an
 * in-memory fake dock (a test double): tools/list (OpenAI-valid names, the naming in `_meta`) and
 * tools/call, tool errors and unservable calls as `isError` results, idempotency keys from
 * `_meta`, bearer auth (401) and no OAuth (404 on `/.well-known/…`), DNS-rebinding protection
 * (403), sessions (DELETE, unknown ids), the admin surface, stateless mode, 50 concurrent calls
 * from 5 clients, and a close() that frees the listener even with clients connected.
 */
import * as http from "node:http"
import {
  discoverOAuthProtectedResourceMetadata,
  discoverOAuthServerInfo,
} from "@modelcontextprotocol/sdk/client/auth.js"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { afterEach, describe, expect, it } from "vitest"
import { type Gateway, type GatewayOptions, startGateway } from "../../src/actors/tools/gateway.ts"
import { OPENAI_TOOL_NAME } from "../../src/actors/tools/toolNames.ts"
import { type FakeDock, fakeDock } from "../support/fakeDock.ts"

const TOKEN = "test-token-0123456789"

const gateways: Array<Gateway> = []
const clients: Array<Client> = []

const start = async (
  options: Partial<GatewayOptions> = {},
): Promise<{ gateway: Gateway; dock: FakeDock; lines: Array<string> }> => {
  const dock = fakeDock()
  const lines: Array<string> = []
  const gateway = await startGateway(dock, { token: TOKEN, log: (line) => lines.push(line), ...options })
  gateways.push(gateway)
  return { gateway, dock, lines }
}

const connect = async (url: string, token: string | null = TOKEN): Promise<Client> => {
  const client = new Client({ name: "gateway-test", version: "0.0.0" })
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token === null ? {} : { headers: { authorization: `Bearer ${token}` } },
  })
  clients.push(client)
  await client.connect(transport)
  return client
}

const textOf = (result: CallToolResult): string =>
  result.content.map((c) => (c.type === "text" ? c.text : `[${c.type}]`)).join("\n")

const call = async (
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> => (await client.callTool({ name, arguments: args })) as CallToolResult

/** A raw request with full control of the headers (fetch refuses to set Host). */
const rawRequest = (
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? "GET", headers: init.headers ?? {} }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      )
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end(init.body)
  })

const initializeBody = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
})
const mcpHeaders = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
}
const adminUrl = (gateway: Gateway, route: string): string => new URL(route, gateway.url).toString()
const auth = { authorization: `Bearer ${TOKEN}` }

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)))
  await Promise.all(gateways.splice(0).map((g) => g.close()))
})

describe("the MCP endpoint", () => {
  it("lists every pooled tool as server__tool with its schema and description, and says how names are made", async () => {
    const { gateway } = await start()
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/)
    const client = await connect(gateway.url)
    const listed = await client.listTools()
    const { tools } = listed
    expect(tools.map((t) => t.name)).toEqual([
      "fake__echo",
      "fake__toolError",
      "fake__throws",
      "fake__unavailable",
      "fake__slow",
    ])
    for (const t of tools) expect(t.name).toMatch(OPENAI_TOOL_NAME)
    expect(listed._meta?.["rollout/dock"]).toMatchObject({
      naming: {
        separator: "__",
        form: "<server>__<tool>",
        accepted: ["<server>__<tool>", "<server>.<tool>"],
      },
    })
    expect(tools[0]?._meta?.["rollout/dock"]).toEqual({ server: "fake", tool: "echo" })
    expect(client.getInstructions()).toContain("<server>__<tool>")
    const echo = tools.find((t) => t.name === "fake__echo")
    expect(echo?.description).toBe("Echoes its text argument (test double).")
    expect(echo?.inputSchema).toEqual({
      type: "object",
      properties: { text: { type: "string" } },
      additionalProperties: false,
    })
    // A tool without a description gets a stand-in naming the tool and its server.
    expect(tools.find((t) => t.name === "fake__slow")?.description).toBe("slow (from the fake server)")
    expect(client.getServerCapabilities()?.tools).toBeDefined()
  })

  it("forwards a call to the dock and answers its MCP content", async () => {
    const { gateway, dock } = await start()
    const client = await connect(gateway.url)
    const result = await call(client, "fake__echo", { text: "hello dock" })
    expect(result.isError).toBe(false)
    expect(result.content).toEqual([{ type: "text", text: "hello dock" }])
    expect(result._meta?.["rollout/dock"]).toMatchObject({
      outcome: "ok",
      replica: "fake-0",
      replayed: false,
    })
    expect(dock.calls).toEqual([{ name: "fake__echo", args: { text: "hello dock" }, options: {} }])
  })

  it("passes an idempotency key from the request's _meta to the dock", async () => {
    const { gateway, dock } = await start()
    const client = await connect(gateway.url)
    const first = (await client.callTool({
      name: "fake__echo",
      arguments: { text: "once" },
      _meta: { idempotencyKey: "key-1" },
    })) as CallToolResult
    const second = (await client.callTool({
      name: "fake__echo",
      arguments: { text: "twice" },
      _meta: { idempotencyKey: "key-1" },
    })) as CallToolResult
    expect(dock.calls.map((c) => c.options)).toEqual([
      { idempotencyKey: "key-1" },
      { idempotencyKey: "key-1" },
    ])
    expect(textOf(first)).toBe("once")
    expect(textOf(second)).toBe("once")
    expect(second._meta?.["rollout/dock"]).toMatchObject({ replayed: true })
  })

  it("answers a tool-level error, a DockError and a thrown error as isError results naming the tool", async () => {
    const { gateway } = await start()
    const client = await connect(gateway.url)

    const toolError = await call(client, "fake__toolError")
    expect(toolError.isError).toBe(true)
    expect(textOf(toolError)).toBe("the fake tool said no")

    const unknown = await call(client, "nowhere.nothing", { a: 1 })
    expect(unknown.isError).toBe(true)
    expect(textOf(unknown)).toContain("nowhere.nothing")
    expect(textOf(unknown)).toContain("unknown_tool")

    const unavailable = await call(client, "fake__unavailable")
    expect(unavailable.isError).toBe(true)
    expect(textOf(unavailable)).toMatch(/fake__unavailable.*unavailable.*every replica is down/)

    const thrown = await call(client, "fake__throws")
    expect(thrown.isError).toBe(true)
    expect(textOf(thrown)).toBe("tool fake__throws failed: the fake dock broke")

    // The session survives all of it.
    expect(textOf(await call(client, "fake__echo", { text: "still here" }))).toBe("still here")
  })

  it("serves 50 concurrent calls from 5 clients, each answered with its own result", async () => {
    const { gateway, dock } = await start()
    const five = await Promise.all(Array.from({ length: 5 }, () => connect(gateway.url)))
    expect(gateway.sessionCount()).toBe(5)
    const results = await Promise.all(
      five.flatMap((client, c) =>
        Array.from({ length: 10 }, async (_, i) => {
          const text = `client ${c} call ${i}`
          const result = await call(client, "fake__slow", { ms: 5 + ((c * 10 + i) % 7) * 3, text })
          return { expected: text, got: textOf(result), isError: result.isError }
        }),
      ),
    )
    expect(results).toHaveLength(50)
    for (const r of results) expect(r).toEqual({ expected: r.expected, got: r.expected, isError: false })
    expect(dock.calls).toHaveLength(50)
    expect(dock.inFlight()).toBe(0)
  })

  it("ends a session on DELETE and answers 404 to its id afterwards", async () => {
    const { gateway } = await start()
    const client = new Client({ name: "gateway-test", version: "0.0.0" })
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url), {
      requestInit: { headers: auth },
    })
    clients.push(client)
    await client.connect(transport)
    const sessionId = transport.sessionId
    expect(sessionId).toBeTypeOf("string")
    expect(gateway.sessionCount()).toBe(1)
    await transport.terminateSession()
    expect(gateway.sessionCount()).toBe(0)
    const after = await rawRequest(gateway.url, {
      method: "POST",
      headers: {
        ...mcpHeaders,
        ...auth,
        "mcp-session-id": sessionId ?? "",
        "mcp-protocol-version": "2025-06-18",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }),
    })
    expect(after.status).toBe(404)
  })

  it("refuses a non-initialize request without a session id (400) and an unknown method (405)", async () => {
    const { gateway } = await start()
    const noSession = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
    })
    expect(noSession.status).toBe(400)
    const notJson = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth },
      body: "{not json",
    })
    expect(notJson.status).toBe(400)
    expect(JSON.parse(notJson.body)).toMatchObject({ error: { code: -32700 } })
    const put = await rawRequest(gateway.url, { method: "PUT", headers: auth })
    expect(put.status).toBe(405)
  })

  it("refuses a session past maxSessions (503) and drops idle sessions", async () => {
    const { gateway } = await start({ maxSessions: 1, sessionIdleMs: 1 })
    const raw = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth },
      body: initializeBody,
    })
    expect(raw.status).toBe(200)
    expect(gateway.sessionCount()).toBe(1)
    const refused = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth },
      body: initializeBody,
    })
    expect(refused.status).toBe(503)
    // Nothing holds the raw session open: the sweeper closes it once idle.
    while (gateway.sessionCount() > 0) await new Promise((resolve) => setTimeout(resolve, 50))
    const client = await connect(gateway.url)
    expect((await client.listTools()).tools).toHaveLength(5)
  })

  it("refuses a body over the limit with 413", async () => {
    const { gateway } = await start({ maxBodyBytes: 1024 })
    const big = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { pad: "x".repeat(4096) },
      }),
    })
    expect(big.status).toBe(413)
  })
})

describe("bearer auth", () => {
  it("answers 401 with WWW-Authenticate: Bearer without a token or with a wrong one", async () => {
    const { gateway } = await start()
    const none = await rawRequest(gateway.url, { method: "POST", headers: mcpHeaders, body: initializeBody })
    expect(none.status).toBe(401)
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer\b/)

    const wrong = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: "Bearer not-the-token" },
      body: initializeBody,
    })
    expect(wrong.status).toBe(401)
    expect(wrong.headers["www-authenticate"]).toMatch(/^Bearer\b.*invalid_token/)

    const prefix = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      body: initializeBody,
    })
    expect(prefix.status).toBe(401)
    const basic = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, authorization: `Basic ${TOKEN}` },
      body: initializeBody,
    })
    expect(basic.status).toBe(401)

    for (const route of ["/admin/status"]) {
      const admin = await rawRequest(adminUrl(gateway, route))
      expect(admin.status).toBe(401)
    }
  })

  it("makes the SDK client's connect fail without a token and with a wrong one", async () => {
    const { gateway, dock } = await start()
    await expect(connect(gateway.url, null)).rejects.toThrow()
    await expect(connect(gateway.url, "wrong-token")).rejects.toThrow()
    expect(gateway.sessionCount()).toBe(0)
    expect(dock.calls).toHaveLength(0)
  })

  it("accepts the scheme name in any case", async () => {
    const { gateway } = await start()
    const ok = await rawRequest(adminUrl(gateway, "/admin/status"), {
      headers: { authorization: `bearer ${TOKEN}` },
    })
    expect(ok.status).toBe(200)
  })

  it("answers OAuth metadata discovery with 404 (no OAuth here), so the SDK's discovery reports none", async () => {
    const { gateway, dock } = await start()
    for (const route of [
      "/.well-known/oauth-protected-resource",
      "/.well-known/oauth-protected-resource/mcp",
      "/.well-known/oauth-authorization-server",
      "/.well-known/openid-configuration",
    ]) {
      const r = await rawRequest(adminUrl(gateway, route))
      expect(r.status, route).toBe(404)
      expect(r.headers["www-authenticate"]).toBeUndefined()
      expect(JSON.parse(r.body).error).toMatch(/no OAuth.*bearer token/)
    }
    // The MCP client SDK's own discovery, as OAuth-capable clients (the Inspector) run it on a 401.
    await expect(discoverOAuthProtectedResourceMetadata(gateway.url)).rejects.toThrow(
      /does not implement OAuth 2.0 Protected Resource Metadata/,
    )
    const info = await discoverOAuthServerInfo(gateway.url)
    expect(info.resourceMetadata).toBeUndefined()
    expect(info.authorizationServerMetadata).toBeUndefined()
    // The MCP endpoint itself still wants the token.
    const none = await rawRequest(gateway.url, { method: "POST", headers: mcpHeaders, body: initializeBody })
    expect(none.status).toBe(401)
    expect(dock.calls).toHaveLength(0)
  })

  it("leaves /healthz open", async () => {
    const { gateway } = await start()
    const health = await rawRequest(adminUrl(gateway, "/healthz"))
    expect(health.status).toBe(200)
    expect(JSON.parse(health.body)).toEqual({ ok: true })
  })

  it("refuses an empty token at start", async () => {
    await expect(startGateway(fakeDock(), { token: "" })).rejects.toThrow(/token/)
  })
})

describe("DNS-rebinding protection", () => {
  it("answers 403 to a foreign Host header, even with the right token", async () => {
    const { gateway } = await start()
    const evil = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth, host: "evil.example.com" },
      body: initializeBody,
    })
    expect(evil.status).toBe(403)
    const evilWithPort = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth, host: `evil.example.com:${gateway.port}` },
      body: initializeBody,
    })
    expect(evilWithPort.status).toBe(403)
    const health = await rawRequest(adminUrl(gateway, "/healthz"), { headers: { host: "evil.example.com" } })
    expect(health.status).toBe(403)
  })

  it("answers 403 to a foreign Origin and accepts a loopback one", async () => {
    const { gateway } = await start()
    const evil = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth, origin: "http://evil.example.com" },
      body: initializeBody,
    })
    expect(evil.status).toBe(403)
    const nullOrigin = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth, origin: "null" },
      body: initializeBody,
    })
    expect(nullOrigin.status).toBe(403)
    const local = await rawRequest(gateway.url, {
      method: "POST",
      headers: {
        ...mcpHeaders,
        ...auth,
        host: `localhost:${gateway.port}`,
        origin: `http://localhost:${gateway.port}`,
      },
      body: initializeBody,
    })
    expect(local.status).toBe(200)
  })

  it("accepts a host named in allowedHosts", async () => {
    const { gateway } = await start({ allowedHosts: ["dock.internal"] })
    const allowed = await rawRequest(gateway.url, {
      method: "POST",
      headers: {
        ...mcpHeaders,
        ...auth,
        host: `dock.internal:${gateway.port}`,
        origin: "https://dock.internal",
      },
      body: initializeBody,
    })
    expect(allowed.status).toBe(200)
    const other = await rawRequest(gateway.url, {
      method: "POST",
      headers: { ...mcpHeaders, ...auth, host: "dock.internal.evil.example.com" },
      body: initializeBody,
    })
    expect(other.status).toBe(403)
  })
})

describe("the admin surface", () => {
  it("answers the dock's status", async () => {
    const { gateway } = await start()
    const res = await fetch(adminUrl(gateway, "/admin/status"), { headers: auth })
    expect(res.status).toBe(200)
    const status = (await res.json()) as Array<{ server: string; version: string }>
    expect(status).toHaveLength(1)
    expect(status[0]).toMatchObject({ server: "fake", version: "v1" })
  })

  it("swaps a server's version", async () => {
    const { gateway, dock } = await start()
    const res = await fetch(adminUrl(gateway, "/admin/swap"), {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ server: "fake", version: "v2" }),
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ server: "fake", from: "v1", to: "v2", drainedCalls: 0, ms: 0 })
    expect(dock.swaps).toEqual([{ server: "fake", version: "v2" }])

    const unknown = await fetch(adminUrl(gateway, "/admin/swap"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ server: "nope", version: "v2" }),
    })
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toMatchObject({ kind: "unknown_tool" })

    const bad = await fetch(adminUrl(gateway, "/admin/swap"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ server: "fake" }),
    })
    expect(bad.status).toBe(400)
    const wrongMethod = await fetch(adminUrl(gateway, "/admin/swap"), { headers: auth })
    expect(wrongMethod.status).toBe(405)
  })

  it("calls a tool and answers the dock's result", async () => {
    const { gateway, dock } = await start()
    const res = await fetch(adminUrl(gateway, "/admin/call"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "fake__echo", args: { text: "from the CLI" }, idempotencyKey: "cli-1" }),
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({
      outcome: "ok",
      isError: false,
      mcpContent: [{ type: "text", text: "from the CLI" }],
      replayed: false,
    })
    expect(dock.calls.at(-1)).toEqual({
      name: "fake__echo",
      args: { text: "from the CLI" },
      options: { idempotencyKey: "cli-1" },
    })

    const unavailable = await fetch(adminUrl(gateway, "/admin/call"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "fake__unavailable" }),
    })
    expect(unavailable.status).toBe(503)
    expect(await unavailable.json()).toMatchObject({ kind: "unavailable" })

    const thrown = await fetch(adminUrl(gateway, "/admin/call"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name: "fake__throws" }),
    })
    expect(thrown.status).toBe(500)
    expect(await thrown.json()).toEqual({ error: "the fake dock broke" })

    const notJson = await fetch(adminUrl(gateway, "/admin/call"), {
      method: "POST",
      headers: auth,
      body: "[",
    })
    expect(notJson.status).toBe(400)
    const noName = await fetch(adminUrl(gateway, "/admin/call"), {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ args: {} }),
    })
    expect(noName.status).toBe(400)
    const unknownRoute = await fetch(adminUrl(gateway, "/admin/nothing"), { headers: auth })
    expect(unknownRoute.status).toBe(404)
  })
})

describe("stateless mode", () => {
  it("serves list and call without a session id and offers no GET stream", async () => {
    const { gateway } = await start({ sessions: "stateless" })
    const client = new Client({ name: "gateway-test", version: "0.0.0" })
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url), {
      requestInit: { headers: auth },
    })
    clients.push(client)
    await client.connect(transport)
    expect(transport.sessionId).toBeUndefined()
    expect((await client.listTools()).tools).toHaveLength(5)
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call(client, "fake__slow", { ms: 5, text: `stateless ${i}` })),
    )
    expect(results.map(textOf)).toEqual(Array.from({ length: 10 }, (_, i) => `stateless ${i}`))
    expect(gateway.sessionCount()).toBe(0)
    const get = await rawRequest(gateway.url, { headers: { ...auth, accept: "text/event-stream" } })
    expect(get.status).toBe(405)
  })
})

describe("close()", () => {
  const tcpServers = (): number =>
    process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length

  it("closes sessions and the listener even with clients connected, and is idempotent", async () => {
    const before = tcpServers()
    const { gateway, dock } = await start()
    expect(tcpServers()).toBe(before + 1)
    const a = await connect(gateway.url)
    const b = await connect(gateway.url)
    await call(a, "fake__echo", { text: "a" })
    await call(b, "fake__echo", { text: "b" })
    expect(gateway.sessionCount()).toBe(2)

    await gateway.close()
    await gateway.close()
    expect(gateway.sessionCount()).toBe(0)
    expect(tcpServers()).toBe(before)
    await expect(fetch(adminUrl(gateway, "/healthz"))).rejects.toThrow()
    // The dock belongs to the caller: the gateway leaves it open.
    expect(dock.closed()).toBe(false)
  })

  it("closes with a call in flight, whose late answer goes nowhere without an error", async () => {
    const { gateway, dock, lines } = await start()
    const client = await connect(gateway.url)
    const pending = call(client, "fake__slow", { ms: 200, text: "late" })
    while (dock.inFlight() === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await gateway.close()
    // The client's stream is gone; closing the client ends its pending request.
    await client.close()
    await expect(pending).rejects.toThrow()
    while (dock.inFlight() > 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(lines).toEqual([])
  })
})
