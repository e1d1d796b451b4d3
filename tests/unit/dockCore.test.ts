/**
 * AgentDock's pure parts: output standardization (every MCP content kind, the size cap and its
 * marker, no binary data in what is logged), lenient argument parsing checked against a schema,
 * the tools.yaml decoder's errors, `${VAR}` resolution, and the toolHealth projection. The parsers
 * never throw, whatever they are given.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { parseToolArguments } from "../../src/actors/tools/toolArguments.ts"
import { contentText, normalizeToolResult, truncationMarker } from "../../src/actors/tools/toolOutput.ts"
import { isIdempotent, resolveEnv, toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"
import type { DomainEvent, Envelope } from "../../src/events/schema.ts"
import { foldAll } from "../../src/projections/projection.ts"
import { toolHealth, toolHealthStatus } from "../../src/projections/toolHealth/toolHealth.ts"

describe("tool output", () => {
  it("normalizes every content kind and keeps binary data out of the logged content", () => {
    const png = Buffer.from("not really a png").toString("base64")
    const n = normalizeToolResult(
      {
        content: [
          { type: "text", text: "hello" },
          { type: "image", data: png, mimeType: "image/png" },
          { type: "resource", resource: { uri: "file:///a.txt", mimeType: "text/plain", text: "file body" } },
          { type: "resource", resource: { uri: "file:///b.bin", blob: png } },
          { type: "resource_link", uri: "https://example.invalid/x", name: "x" },
          { type: "hologram" },
        ],
        structuredContent: { answer: 42 },
      },
      10_000,
    )
    expect(n.truncated).toBe(false)
    expect(n.isError).toBe(false)
    expect(n.content).toEqual([
      { type: "text", text: "hello" },
      { type: "image", mimeType: "image/png", bytes: 16, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      { type: "resource", uri: "file:///a.txt", mimeType: "text/plain", text: "file body" },
      { type: "image", mimeType: "application/octet-stream", bytes: 16, sha256: expect.any(String) },
      { type: "resource", uri: "https://example.invalid/x" },
      { type: "text", text: '[unsupported content type "hologram"]' },
      { type: "json", value: { answer: 42 } },
    ])
    expect(JSON.stringify(n.content)).not.toContain(png)
    expect(JSON.stringify(n.mcpContent)).toContain(png)
    expect(contentText(n.content)).toContain("file body")
  })

  it("cuts text over the cap with an explicit marker, across items", () => {
    const n = normalizeToolResult(
      {
        content: [
          { type: "text", text: "a".repeat(60) },
          { type: "text", text: "b".repeat(60) },
        ],
        isError: true,
      },
      100,
    )
    expect(n.truncated).toBe(true)
    expect(n.isError).toBe(true)
    expect(n.content[0]).toEqual({ type: "text", text: "a".repeat(60) })
    expect(n.content[1]).toEqual({ type: "text", text: `${"b".repeat(40)}${truncationMarker(40, 60)}` })
  })

  test.prop([fc.anything(), fc.integer({ min: 0, max: 500 })])(
    "never throws on any result",
    (result, cap) => {
      const n = normalizeToolResult(result, cap)
      expect(Array.isArray(n.content)).toBe(true)
    },
  )
})

describe("tool arguments", () => {
  const schema = {
    type: "object",
    properties: { query: { type: "string" }, limit: { type: "integer", minimum: 1 } },
    required: ["query"],
    additionalProperties: false,
  }

  it("takes objects, JSON and JSON5, and checks them against the input schema", () => {
    expect(parseToolArguments("s.search", { query: "a" }, schema)).toEqual({
      ok: true,
      value: { query: "a" },
    })
    expect(parseToolArguments("s.search", '{"query": "b", "limit": 2}', schema)).toEqual({
      ok: true,
      value: { query: "b", limit: 2 },
    })
    expect(parseToolArguments("s.search", "{query: 'c', limit: 3,}", schema)).toEqual({
      ok: true,
      value: { query: "c", limit: 3 },
    })
    expect(parseToolArguments("s.search", "", undefined)).toEqual({ ok: true, value: {} })
  })

  it("explains what is wrong, naming the tool and the place", () => {
    const missing = parseToolArguments("s.search", {}, schema)
    expect(missing).toEqual({ ok: false, message: expect.stringContaining("invalid arguments for s.search") })
    expect(JSON.stringify(missing)).toContain("query")
    const typed = parseToolArguments("s.search", { query: "a", limit: 0 }, schema)
    expect(JSON.stringify(typed)).toContain("arguments.limit")
    const extra = parseToolArguments("s.search", { query: "a", nope: 1 }, schema)
    expect(JSON.stringify(extra)).toContain("nope")
    expect(parseToolArguments("s.search", "{not json", schema)).toEqual({
      ok: false,
      message: expect.stringContaining("not valid JSON or JSON5"),
    })
    expect(parseToolArguments("s.search", "[1]", schema)).toEqual({
      ok: false,
      message: expect.stringContaining("must be a JSON object, got an array"),
    })
  })

  test.prop([fc.oneof(fc.string(), fc.json(), fc.anything())])("never throws", (raw) => {
    const r = parseToolArguments("s.t", raw, schema)
    expect(typeof r.ok).toBe("boolean")
  })
})

describe("tools.yaml", () => {
  it("fills defaults, applies version overrides and knows idempotent tools", () => {
    const config = toolsConfigFrom({
      servers: {
        everything: {
          command: "mcp-server-everything",
          args: ["stdio"],
          idempotent: ["echo"],
          versions: { v2: { replicas: 3 } },
        },
      },
    })
    if (Result.isFailure(config)) throw new Error(config.failure.message)
    const entry = config.success.servers.everything!
    expect(entry.current).toMatchObject({
      name: "everything",
      version: "v1",
      transport: "stdio",
      replicas: 1,
      concurrency: 16,
    })
    expect(entry.versions.v2).toMatchObject({ version: "v2", replicas: 3, args: ["stdio"] })
    expect(isIdempotent(entry.current, "echo")).toBe(true)
    expect(isIdempotent(entry.current, "get-sum")).toBe(false)
    expect(config.success.gateway).toMatchObject({ host: "127.0.0.1", tokenEnv: "ROLLOUT_DOCK_TOKEN" })
  })

  it("names the place of each mistake", () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ servers: { a: {} } }, /servers\.a: transport stdio needs command/],
      [{ servers: { a: { transport: "docker", command: "x" } } }, /servers\.a: transport docker needs image/],
      [
        { servers: { a: { transport: "http", url: "http://u:p@h/mcp" } } },
        /credentials must not be in the url/,
      ],
      [{ servers: { a: { command: "x", replicaz: 2 } } }, /replicaz/],
      [{ servers: { "a.b": { command: "x" } } }, /servers\["a\.b"\]/],
      [
        { servers: { a: { command: "x", versions: { v2: { transport: "docker" } } } } },
        /servers\.a\.versions\.v2/,
      ],
    ]
    for (const [data, pattern] of cases) {
      const r = toolsConfigFrom(data, "tools.yaml")
      expect(Result.isFailure(r)).toBe(true)
      if (Result.isFailure(r)) expect(r.failure.message).toMatch(pattern)
    }
  })

  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
  it("resolves ${VAR} references and names a missing variable, never a value", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
    expect(resolveEnv({ KEY: "Bearer ${TOKEN}" }, { TOKEN: "s3cret" }, "servers.a.env")).toEqual(
      Result.succeed({ KEY: "Bearer s3cret" }),
    )
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
    const missing = resolveEnv({ KEY: "${NOPE}" }, {}, "servers.a.env")
    expect(missing).toEqual(
      Result.fail("servers.a.env.KEY needs the environment variable NOPE, which is not set"),
    )
  })
})

describe("toolHealth projection", () => {
  let position = 0
  const env = (event: DomainEvent, recordedAt = "2026-01-01T00:00:00.000Z"): Envelope => ({
    eventId: `e${++position}`,
    recordedAt,
    correlationId: "dock",
    causationId: "dock",
    actor: "dock",
    position,
    subject: "dock.ev.tool.s",
    schemaVersion: 1,
    event,
  })
  const served = (latencyMs: number, outcome: "ok" | "timeout", at: string) =>
    env(
      {
        type: "ToolCallServed",
        server: "s",
        tool: "echo",
        idempotencyKey: `k${position}`,
        version: "v1",
        replica: "s@v1#0",
        attempts: 1,
        latencyMs,
        outcome,
        content: [],
        truncated: false,
      },
      at,
    )

  it("folds calls, restarts and swaps into the status dock status shows", () => {
    const state = foldAll(toolHealth, [
      env({ type: "ToolVersionRegistered", server: "s", version: "v1", transport: "stdio", replicas: 1 }),
      env({
        type: "ToolReplicaStarted",
        server: "s",
        version: "v1",
        replica: "s@v1#0",
        restarts: 0,
        startMs: 150,
      }),
      ...Array.from({ length: 98 }, (_, i) =>
        served(2, "ok", `2026-01-01T00:00:${String(i % 10).padStart(2, "0")}.000Z`),
      ),
      served(400, "ok", "2026-01-01T00:00:10.000Z"),
      served(30_000, "timeout", "2026-01-01T00:00:10.000Z"),
      env({
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: "s@v1#0",
        reason: "crashed",
        detail: "killed",
      }),
      env({
        type: "ToolReplicaStarted",
        server: "s",
        version: "v1",
        replica: "s@v1#0",
        restarts: 1,
        startMs: 120,
      }),
      env({ type: "ToolVersionRegistered", server: "s", version: "v2", transport: "stdio", replicas: 1 }),
      env({
        type: "ToolReplicaStarted",
        server: "s",
        version: "v2",
        replica: "s@v2#0",
        restarts: 0,
        startMs: 130,
      }),
      env({ type: "ToolTrafficShifted", server: "s", from: "v1", to: "v2", weight: 0.5 }),
      env({ type: "ToolTrafficShifted", server: "s", from: "v1", to: "v2", weight: 1 }),
      env({
        type: "ToolReplicaExited",
        server: "s",
        version: "v1",
        replica: "s@v1#0",
        reason: "drained",
        detail: "swap",
      }),
    ])
    const [s] = toolHealthStatus(state)
    expect(s).toMatchObject({ server: "s", version: "v2", calls: 100, failed: 1, restarts: 1, swaps: 1 })
    expect(s!.replicas.map((r) => [r.replica, r.state])).toEqual([["s@v2#0", "up"]])
    expect(s!.p50Ms).toBeGreaterThanOrEqual(2)
    expect(s!.p50Ms).toBeLessThan(3)
    expect(s!.p99Ms).toBeGreaterThanOrEqual(400)
    expect(s!.callsPerSecond).toBeCloseTo(10, 0)
  })
})
