/**
 * AgentDock against real third-party MCP servers from npm (server-everything, server-filesystem,
 * server-memory) over stdio, on the embedded log: tools and calls, lenient and checked arguments,
 * replicas killed with SIGKILL under load (no failed idempotent call, the replica restarted),
 * hot-swap under load (no failed call), the filesystem server's root enforced, idempotency keys
 * answered from the log across a restart, and the lifecycle in the log.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { startDock } from "../../src/actors/tools/dock.ts"
import type { Dock } from "../../src/actors/tools/dockTypes.ts"
import { toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"
import { decodeEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import type { DomainEvent } from "../../src/events/schema.ts"

/** OpenAI's rule for function names, as its function-calling documentation states it. */
const OPENAI_FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

const tempDir = (prefix: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  cleanup.push(async () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

const openLog = async (dir = tempDir("rollout-dock-")): Promise<EventLogShape> => {
  const scope = Effect.runSync(Scope.make())
  const log = await Effect.runPromise(
    Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: "dock", fsync: "never" })),
  )
  cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return log
}

const dockOf = async (log: EventLogShape, servers: Record<string, unknown>): Promise<Dock> => {
  const config = toolsConfigFrom({ servers })
  if (Result.isFailure(config)) throw new Error(config.failure.message)
  const dock = await startDock({ log, config: config.success, sampleEveryMs: 0 })
  cleanup.push(() => dock.close())
  return dock
}

const everything = (extra: Record<string, unknown> = {}) => ({
  command: "mcp-server-everything",
  args: ["stdio"],
  idempotent: ["echo", "get-sum"],
  restartBackoffMs: 50,
  ...extra,
})

const events = async (log: EventLogShape): Promise<DomainEvent[]> => {
  const entries = await Effect.runPromise(Stream.runCollect(log.read()))
  return [...entries].map((e) => Result.getOrThrow(decodeEvent(e as never)).event)
}

const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Calls echo from `workers` loops until `stop()`; returns every outcome. */
const load = (dock: Dock, workers: number, stop: () => boolean) =>
  Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const outcomes: string[] = []
      for (let i = 0; !stop() || i < 5; i++) {
        const r = await dock.call("everything.echo", { message: `w${w}-${i}` })
        outcomes.push(r.outcome === "ok" && r.content[0]?.type === "text" ? "ok" : `${r.outcome}: ${r.error}`)
      }
      return outcomes
    }),
  ).then((all) => all.flat())

describe("AgentDock with server-everything", () => {
  it("lists tools as server__tool, calls them, parses lenient arguments and explains bad ones", async () => {
    const log = await openLog()
    const dock = await dockOf(log, { everything: everything({ replicas: 2 }) })
    const names = dock.tools().map((t) => t.name)
    expect(names).toContain("everything__echo")
    expect(names).toContain("everything__get-sum")
    for (const name of names) expect(name).toMatch(OPENAI_FUNCTION_NAME)
    const echo = await dock.call("everything__echo", { message: "hello" })
    expect(echo).toMatchObject({
      outcome: "ok",
      isError: false,
      content: [{ type: "text", text: "Echo: hello" }],
    })
    const json5 = await dock.call("everything.echo", "{message: 'single quotes',}")
    expect(json5.content).toEqual([{ type: "text", text: "Echo: single quotes" }])
    const sum = await dock.call("everything.get-sum", '{"a": 2, "b": 40}')
    expect(JSON.stringify(sum.content)).toContain("42")
    const bad = await dock.call("everything.get-sum", { a: "two" })
    expect(bad.outcome).toBe("invalid_arguments")
    expect(bad.error).toMatch(
      /invalid arguments for everything\.get-sum: arguments.*(required|must be number)/,
    )
    await expect(dock.call("everything.nope", {})).rejects.toThrow(/unknown tool "everything.nope"/)
    await expect(dock.call("everything__nope", {})).rejects.toThrow(
      /unknown tool "everything__nope": everything offers .*everything__echo/,
    )
    await expect(dock.call("nowhere.echo", {})).rejects.toThrow(/servers: everything/)
    await expect(dock.call("nowhere__echo", {})).rejects.toThrow(/named <server>__<tool>/)
  })

  it('coerces {"a": "2"} by the tool\'s schema, says so in the result and the log, and refuses "2x"', async () => {
    const log = await openLog()
    const dock = await dockOf(log, { everything: everything() })
    const sum = await dock.call("everything__get-sum", { a: "2", b: 40 })
    expect(sum.outcome).toBe("ok")
    expect(JSON.stringify(sum.content)).toContain("42")
    expect(sum.coerced).toEqual([{ path: "/a", from: "2", to: 2 }])
    const plain = await dock.call("everything__get-sum", { a: 2, b: 40 })
    expect(plain.coerced).toBeUndefined()
    const bad = await dock.call("everything__get-sum", { a: "2x", b: 40 })
    expect(bad).toMatchObject({ outcome: "invalid_arguments" })
    expect(bad.error).toMatch(/arguments\.a must be number/)
    await dock.close()
    const served = (await events(log)).filter((e) => e.type === "ToolCallServed")
    expect(served.map((e) => [e.outcome, e.coerced])).toEqual([
      ["ok", [{ path: "/a", from: "2", to: 2 }]],
      ["ok", undefined],
      ["invalid_arguments", undefined],
    ])
  })

  it("survives SIGKILL of replicas under load: no failed idempotent call, each replica restarted", async () => {
    const log = await openLog()
    const dock = await dockOf(log, { everything: everything({ replicas: 2, concurrency: 8 }) })
    let stop = false
    const running = load(dock, 12, () => stop)
    const backIn: number[] = []
    for (const index of [0, 1, 0]) {
      await new Promise((r) => setTimeout(r, 150))
      const before = dock.status()[0]!.replicas[index]!
      expect(before.state).toBe("up")
      const killedAt = Date.now()
      process.kill(before.pid!, "SIGKILL")
      await until("the killed replica to come back", () => {
        const now = dock.status()[0]!.replicas[index]!
        return now.state === "up" && now.pid !== before.pid
      })
      backIn.push(Date.now() - killedAt)
    }
    stop = true
    const outcomes = await running
    expect(outcomes.filter((o) => o !== "ok")).toEqual([])
    expect(outcomes.length).toBeGreaterThan(100)
    // How fast it comes back is measured by `npm run bench -- tools` (target ≤ 2 s), not asserted here.
    expect(backIn).toHaveLength(3)
    const status = dock.status()[0]!
    expect(status.restarts).toBe(3)
    await dock.close()
    const lifecycle = (await events(log)).filter((e) => e.type === "ToolReplicaExited")
    expect(lifecycle.filter((e) => e.type === "ToolReplicaExited" && e.reason === "crashed")).toHaveLength(3)
  })

  it("hot-swaps under load with no failed call: traffic shifts to the new version, the old one drains", async () => {
    const log = await openLog()
    const dock = await dockOf(log, {
      everything: everything({ replicas: 2, version: "v1", versions: { v2: { replicas: 3 } } }),
    })
    let stop = false
    const running = load(dock, 10, () => stop)
    await new Promise((r) => setTimeout(r, 200))
    const report = await dock.swap("everything", "v2")
    await new Promise((r) => setTimeout(r, 200))
    stop = true
    const outcomes = await running
    expect(outcomes.filter((o) => o !== "ok")).toEqual([])
    expect(report).toMatchObject({ server: "everything", from: "v1", to: "v2" })
    const status = dock.status()[0]!
    expect(status.version).toBe("v2")
    expect(status.replicas.map((r) => r.version)).toEqual(["v2", "v2", "v2"])
    expect(status.swaps).toBe(1)
    const after = await dock.call("everything.echo", { message: "after" })
    expect(after.version).toBe("v2")
    await dock.close()
    const all = await events(log)
    expect(
      all.filter((e) => e.type === "ToolTrafficShifted").map((e) => (e as { weight: number }).weight),
    ).toEqual([0.25, 0.5, 0.75, 1])
    expect(all.filter((e) => e.type === "ToolReplicaExited" && e.reason === "drained")).toHaveLength(2)
    await expect(dock.swap("everything", "v9")).rejects.toThrow()
  })

  it("answers a repeated idempotency key from the log, even from a new dock process", async () => {
    const dir = tempDir("rollout-dock-idem-")
    const log = await openLog(dir)
    const first = await dockOf(log, { everything: everything() })
    const a = await first.call("everything.echo", { message: "once" }, { idempotencyKey: "ep-1/t3/call_0" })
    expect(a.replayed).toBe(false)
    await first.close()
    const second = await dockOf(log, { everything: everything() })
    const b = await second.call(
      "everything.echo",
      { message: "twice?" },
      { idempotencyKey: "ep-1/t3/call_0" },
    )
    expect(b.replayed).toBe(true)
    expect(b.content).toEqual([{ type: "text", text: "Echo: once" }])
    const served = (await events(log)).filter((e) => e.type === "ToolCallServed")
    expect(served).toHaveLength(1)
  })
})

describe("AgentDock: backpressure, health checks and remote servers", () => {
  it("refuses calls beyond the bounded queue instead of piling them up", async () => {
    const log = await openLog()
    const dock = await dockOf(log, { everything: everything({ concurrency: 1, queueLimit: 2 }) })
    const slow = () => dock.call("everything.trigger-long-running-operation", { duration: 0.5, steps: 1 })
    const settled = await Promise.allSettled([slow(), slow(), slow(), slow(), slow()])
    const refused = settled.filter((r) => r.status === "rejected")
    // One runs, two wait in the queue, the rest are refused at once with a reason.
    expect(settled.filter((r) => r.status === "fulfilled")).toHaveLength(3)
    expect(refused).toHaveLength(2)
    for (const r of refused)
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/queued \(queueLimit\)/)
  })

  it("opens a replica's circuit after repeated failures and closes it after a success", async () => {
    const log = await openLog()
    const dock = await dockOf(log, {
      everything: everything({ timeoutMs: 150, breakerFailures: 2, breakerResetMs: 300 }),
    })
    for (let i = 0; i < 2; i++) {
      const r = await dock.call("everything.trigger-long-running-operation", { duration: 2, steps: 1 })
      expect(r.outcome).toBe("timeout")
    }
    expect(dock.status()[0]!.replicas[0]!.circuit).toBe("open")
    // Half-open after the reset time: the next call waits for it, succeeds and closes the circuit.
    const after = await dock.call("everything.echo", { message: "half-open" }, { timeoutMs: 10_000 })
    expect(after.outcome).toBe("ok")
    await dock.close()
    const changes = (await events(log)).flatMap((e) => (e.type === "ToolCircuitChanged" ? [e.state] : []))
    expect(changes).toEqual(["open", "closed"])
  })

  it("restarts a replica that stops answering pings (SIGSTOP), and calls go on", async () => {
    const log = await openLog()
    const dock = await dockOf(log, { everything: everything({ replicas: 2, healthIntervalMs: 200 }) })
    const frozen = dock.status()[0]!.replicas[0]!
    process.kill(frozen.pid!, "SIGSTOP")
    cleanup.push(() => {
      try {
        process.kill(frozen.pid!, "SIGKILL")
      } catch {
        // already gone
      }
    })
    await until("the frozen replica to be replaced", () => {
      const now = dock.status()[0]!.replicas[0]!
      return now.state === "up" && now.pid !== frozen.pid
    })
    const after = await dock.call("everything.echo", { message: "still here" })
    expect(after.outcome).toBe("ok")
    await dock.close()
    const exits = (await events(log)).filter((e) => e.type === "ToolReplicaExited")
    expect(exits.some((e) => e.type === "ToolReplicaExited" && e.reason === "unhealthy")).toBe(true)
  })

  it("pools a remote streamable-HTTP server (another dock's gateway) with a token from the environment", async () => {
    const { startGateway } = await import("../../src/actors/tools/gateway.ts")
    const upstream = await dockOf(await openLog(), { everything: everything() })
    const gateway = await startGateway(upstream, { token: "remote-token-123", port: 0 })
    cleanup.push(() => gateway.close())
    process.env.ROLLOUT_TEST_REMOTE_TOKEN = "remote-token-123"
    cleanup.push(() => {
      delete process.env.ROLLOUT_TEST_REMOTE_TOKEN
    })
    const log = await openLog()
    const dock = await dockOf(log, {
      remote: {
        transport: "http",
        url: gateway.url,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
        headers: { Authorization: "Bearer ${ROLLOUT_TEST_REMOTE_TOKEN}" },
        replicas: 2,
        idempotent: true,
      },
    })
    expect(dock.tools().map((t) => t.name)).toContain("remote__everything__echo")
    const r = await dock.call("remote__everything__echo", { message: "over http" })
    expect(r).toMatchObject({ outcome: "ok", content: [{ type: "text", text: "Echo: over http" }] })
    // The old form names the remote tool by its own name.
    const old = await dock.call("remote.everything__echo", { message: "old form" })
    expect(old).toMatchObject({ outcome: "ok", content: [{ type: "text", text: "Echo: old form" }] })
    // The secret stays in the environment: nothing in the log carries it.
    const raw = JSON.stringify(await events(log))
    expect(raw).not.toContain("remote-token-123")
  })
})

/** A stdio MCP server of this test, on the SDK: tools named by its arguments, echoing name and arguments. */
const namedToolsServer = (): string => {
  const file = path.join(tempDir("rollout-dock-named-"), "named-tools-server.mjs")
  fs.writeFileSync(
    file,
    `import { pathToFileURL } from "node:url"
const [sdk, ...names] = process.argv.slice(2)
const load = (m) => import(pathToFileURL(sdk + m).href)
const { Server } = await load("/server/index.js")
const { StdioServerTransport } = await load("/server/stdio.js")
const { ListToolsRequestSchema, CallToolRequestSchema } = await load("/types.js")
const server = new Server({ name: "named-tools", version: "0" }, { capabilities: { tools: {} } })
server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: names.map((name) => ({ name, inputSchema: { type: "object", properties: { n: { type: "integer" } } } })),
}))
server.setRequestHandler(CallToolRequestSchema, (r) => ({
  content: [{ type: "text", text: r.params.name + " " + JSON.stringify(r.params.arguments) }],
}))
await server.connect(new StdioServerTransport())
`,
  )
  return file
}
const SDK_DIR = path.resolve("node_modules/@modelcontextprotocol/sdk/dist/esm")

describe("AgentDock names and coerced arguments, over the gateway and with a server of our own", () => {
  it("serves OpenAI-valid names to the MCP SDK client, says how they are made, and reports coercions", async () => {
    const { startGateway } = await import("../../src/actors/tools/gateway.ts")
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js")
    const { StreamableHTTPClientTransport } = await import(
      "@modelcontextprotocol/sdk/client/streamableHttp.js"
    )
    const dock = await dockOf(await openLog(), { everything: everything() })
    const gateway = await startGateway(dock, { token: "names-token-123", port: 0 })
    cleanup.push(() => gateway.close())
    const client = new Client({ name: "dock-names-test", version: "0" })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(gateway.url), {
        requestInit: { headers: { authorization: "Bearer names-token-123" } },
      }),
    )
    cleanup.push(() => client.close())
    const listed = await client.listTools()
    expect(listed.tools.length).toBeGreaterThan(5)
    for (const t of listed.tools) {
      expect(t.name).toMatch(OPENAI_FUNCTION_NAME)
      expect(t.name.startsWith("everything__")).toBe(true)
    }
    expect(listed._meta?.["rollout/dock"]).toMatchObject({ naming: { separator: "__" } })
    const sum = (await client.callTool({ name: "everything__get-sum", arguments: { a: "2", b: "40" } })) as {
      content: Array<{ type: string; text?: string }>
      _meta?: Record<string, { coerced?: unknown }>
    }
    expect(sum.content[0]?.text).toContain("42")
    expect(sum._meta?.["rollout/dock"]?.coerced).toEqual([
      { path: "/a", from: "2", to: 2 },
      { path: "/b", from: "40", to: 40 },
    ])
    // The old form is still accepted in a call.
    const old = (await client.callTool({ name: "everything.echo", arguments: { message: "old" } })) as {
      content: Array<{ text?: string }>
    }
    expect(old.content[0]?.text).toBe("Echo: old")
  })

  it("passes coerced values to the tool, and refuses two tools under one name at start and on a swap", async () => {
    const script = namedToolsServer()
    const log = await openLog()
    await expect(
      dockOf(log, { clash: { command: process.execPath, args: [script, SDK_DIR, "get.item", "get_item"] } }),
    ).rejects.toThrow(/tools clash\.get\.item and clash\.get_item would both be named "clash__get_item"/)

    const dock = await dockOf(log, {
      named: {
        command: process.execPath,
        args: [script, SDK_DIR, "look.up"],
        versions: { v2: { args: [script, SDK_DIR, "look.up", "look_up"] } },
      },
    })
    expect(dock.tools().map((t) => t.name)).toEqual(["named__look_up"])
    const r = await dock.call("named__look_up", { n: "2" })
    // The tool saw a number, and by its own name.
    expect(r.content).toEqual([{ type: "text", text: 'look.up {"n":2}' }])
    expect(r.coerced).toEqual([{ path: "/n", from: "2", to: 2 }])
    await expect(dock.swap("named", "v2")).rejects.toThrow(
      /swap to v2 refused: tools named\.look\.up and named\.look_up would both be named "named__look_up"/,
    )
    // v1 still serves, and the refused version's replica was stopped and recorded so.
    expect(dock.status()[0]).toMatchObject({ version: "v1", swaps: 0 })
    expect((await dock.call("named.look.up", { n: 3 })).content).toEqual([
      { type: "text", text: 'look.up {"n":3}' },
    ])
    await dock.close()
    const stopped = (await events(log)).filter(
      (e) => e.type === "ToolReplicaExited" && e.reason === "stopped",
    )
    expect(stopped).toEqual([expect.objectContaining({ server: "named", version: "v2" })])
  })
})

describe("AgentDock with server-filesystem and server-memory", () => {
  it("keeps filesystem calls inside the allowed root", async () => {
    const root = tempDir("rollout-dock-fs-")
    fs.writeFileSync(path.join(root, "note.txt"), "inside the root")
    const outside = tempDir("rollout-dock-outside-")
    fs.writeFileSync(path.join(outside, "secret.txt"), "must not be read")
    const log = await openLog()
    const dock = await dockOf(log, {
      files: { command: "mcp-server-filesystem", args: [root], idempotent: true },
    })
    const inside = await dock.call("files.read_text_file", { path: path.join(root, "note.txt") })
    expect(inside.outcome).toBe("ok")
    expect(JSON.stringify(inside.content)).toContain("inside the root")
    for (const attempt of [
      path.join(root, "..", path.basename(outside), "secret.txt"),
      path.join(outside, "secret.txt"),
      `${root}/../../../../etc/passwd`,
    ]) {
      const refused = await dock.call("files.read_text_file", { path: attempt })
      expect(refused.outcome).toBe("tool_error")
      expect(JSON.stringify(refused.content)).not.toContain("must not be read")
      expect(JSON.stringify(refused.content)).toMatch(/denied|outside|not allowed/i)
    }
  })

  it("stores and reads a knowledge graph with server-memory", async () => {
    const dir = tempDir("rollout-dock-memory-")
    const log = await openLog()
    const dock = await dockOf(log, {
      memory: { command: "mcp-server-memory", env: { MEMORY_FILE_PATH: path.join(dir, "memory.jsonl") } },
    })
    const created = await dock.call("memory.create_entities", {
      entities: [{ name: "Harrowmere", entityType: "town", observations: ["on Lake Orrin"] }],
    })
    expect(created.outcome).toBe("ok")
    const graph = await dock.call("memory.read_graph", {})
    expect(JSON.stringify(graph.content)).toContain("Lake Orrin")
  })

  it("refuses a server whose environment references an unset variable, naming it", async () => {
    const log = await openLog()
    await expect(
      dockOf(log, {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
        memory: { command: "mcp-server-memory", env: { TOKEN: "${ROLLOUT_TEST_UNSET_SECRET}" } },
      }),
    ).rejects.toThrow(/servers\.memory\.env\.TOKEN needs the environment variable ROLLOUT_TEST_UNSET_SECRET/)
  })
})
