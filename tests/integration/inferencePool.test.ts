/**
 * The inference pool against real OpenAI-compatible HTTP servers on loopback: the scripted model
 * server (a test double for a GPU server), two or three of them, through the official openai
 * client. Load spreads by least in-flight, affinity sticks, caps hold (counted server-side), 429
 * and 500 are retried elsewhere, an endpoint stopped with calls in flight loses them to another
 * endpoint, is ejected and returns once restarted on its port (events on a real embedded log),
 * weight versions and token ids/log-probs are recorded, unknown models fail clearly, and no secret
 * reaches the log's bytes. Streaming groups give the same completion as plain ones and retry a stream
 * cut mid-way elsewhere; endpoints join and leave under load without a failed call; an idle endpoint
 * that dies is ejected by probes alone; 429s eject, are counted apart, and their retry-after holds
 * back both the backoff (through an injected sleep) and the return probe (through an injected
 * clock). Waits poll a condition against a deadline; every count is bounded; no duration is asserted.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Result } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { evolveAll, initialState, isPoolEvent, memberByUrl } from "../../src/actors/inference/decider.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import {
  type Completion,
  type CompletionDelta,
  type CompletionRequest,
  type InferencePool,
  ModelUnavailable,
  makeInferencePool,
  type PoolMembershipError,
} from "../../src/actors/inference/pool.ts"
import type { ChatMessage } from "../../src/events/chat.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { DomainEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  type ScriptedReply,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { manualClock } from "../../src/runtime/clock.ts"
import { acquire } from "../support/scoped.ts"

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  // Reverse order: pools (which flush events) before logs, gates before servers.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const start = async (options: ScriptedModelServerOptions): Promise<ScriptedModelServer> => {
  const server = await startScriptedModelServer(options)
  cleanups.push(() => server.stop())
  return server
}

/** A promise the test opens, so server-side calls stay in flight exactly as long as needed. */
const gate = () => {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  cleanups.push(() => open())
  return { opened, open }
}

/** A script that holds every call until `until` opens, counting concurrent calls server-side. */
const held = (until: Promise<void>) => {
  const counter = { active: 0, max: 0 }
  const script = async () => {
    counter.active++
    counter.max = Math.max(counter.max, counter.active)
    try {
      await until
      return { content: "ok" }
    } finally {
      counter.active--
    }
  }
  return { script, counter }
}

const pending = (server: ScriptedModelServer): number =>
  server.requests.filter((r) => r.path === "/v1/chat/completions" && r.status === undefined).length

const waitFor = async (what: string, condition: () => boolean | Promise<boolean>, ms = 15_000) => {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const tempLog = async (): Promise<{ log: EventLogShape; file: string }> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-pool-"))
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const { value, close } = await acquire(makeEmbeddedLog({ dataDir, namespace: "pooltest", fsync: "never" }))
  cleanups.push(close)
  return { log: value, file: path.join(dataDir, "log", "pooltest", "events.ndjson") }
}

const poolFor = async (
  models: Record<string, unknown>,
  options: { log?: EventLogShape; env?: Record<string, string> } = {},
): Promise<InferencePool> => {
  const config = Result.getOrThrow(modelsConfigFrom(models))
  const { value, close } = await acquire(makeInferencePool(config, options))
  cleanups.push(close)
  return value
}

const messages = (task: string): Array<ChatMessage> => [
  { role: "system", content: "You are a research agent." },
  { role: "user", content: `Your task is to answer the user's question: ${task}.` },
]

let requestCount = 0
const ask = (pool: InferencePool, extra: Partial<CompletionRequest> = {}): Promise<Completion> =>
  Effect.runPromise(
    pool.complete({ model: "agent", requestId: `r${requestCount++}`, messages: messages("q"), ...extra }),
  )
const askError = (pool: InferencePool, extra: Partial<CompletionRequest> = {}): Promise<ModelUnavailable> =>
  Effect.runPromise(
    Effect.flip(
      pool.complete({ model: "agent", requestId: `r${requestCount++}`, messages: messages("q"), ...extra }),
    ),
  )

const agent = (servers: ReadonlyArray<ScriptedModelServer>, tuning: Record<string, unknown> = {}) => ({
  agent: { endpoints: servers.map((s) => ({ url: s.url })), backoffMs: 5, maxBackoffMs: 20, ...tuning },
})

const poolEvents = async (log: EventLogShape, model = "agent"): Promise<Array<DomainEvent>> => {
  const { state, undecodable } = await Effect.runPromise(
    readEvents(log, { filter: entitySubject(log.namespace, "inference", model) }),
  )
  expect(undecodable).toEqual([])
  return state.map((envelope) => envelope.event)
}

describe("routing", () => {
  it("spreads concurrent calls evenly, then sends new calls away from the endpoint with most in flight", async () => {
    const g = gate()
    const servers = await Promise.all([0, 1, 2].map(() => start({ script: held(g.opened).script })))
    const pool = await poolFor(agent(servers))
    const calls = Array.from({ length: 9 }, () => ask(pool))
    await waitFor("9 calls in flight", () => servers.reduce((n, s) => n + pending(s), 0) === 9)
    expect(servers.map(pending)).toEqual([3, 3, 3])
    g.open()
    const done = await Promise.all(calls)
    expect(servers.map((s) => done.filter((c) => c.endpoint === s.url).length)).toEqual([3, 3, 3])

    // Now hold two calls on the first endpoint only: sequential calls must all go elsewhere.
    const hold = gate()
    servers[0]!.setScript(held(hold.opened).script)
    const slow = [ask(pool), ask(pool), ask(pool)]
    await waitFor("one call held on endpoint 0, the others answered", async () => {
      const { endpoints } = await Effect.runPromise(pool.stats)
      return endpoints.map((e) => e.inFlight).join() === "1,0,0"
    })
    const later: Array<Completion> = []
    for (let i = 0; i < 10; i++) later.push(await ask(pool))
    expect(later.every((c) => c.endpoint !== servers[0]!.url)).toBe(true)
    hold.open()
    await Promise.all(slow)
  })

  it("keeps an episode on its endpoint (affinity) while spreading episodes", async () => {
    const servers = await Promise.all(
      [0, 1, 2].map(() => start({ script: scripts.echoTool({ tool: "search", turns: 3 }) })),
    )
    const pool = await poolFor(agent(servers))
    const byEpisode = await Promise.all(
      Array.from({ length: 6 }, async (_, episode) => {
        const used: Array<string> = []
        for (let turn = 0; turn < 4; turn++)
          used.push(
            (await ask(pool, { affinityKey: `episode-${episode}`, messages: messages(`t${episode}`) }))
              .endpoint,
          )
        return used
      }),
    )
    for (const used of byEpisode) expect(new Set(used).size).toBe(1)
    expect(new Set(byEpisode.map((used) => used[0])).size).toBe(3)
  })

  it("never exceeds an endpoint's cap: later calls wait, and time out when the wait is too long", async () => {
    const g = gate()
    const { script, counter } = held(g.opened)
    const server = await start({ script })
    const pool = await poolFor({
      agent: { endpoints: [{ url: server.url, maxConcurrency: 2 }], queueTimeoutMs: 30_000 },
      impatient: { endpoints: [{ url: server.url, maxConcurrency: 2 }], queueTimeoutMs: 20 },
    })
    const calls = Array.from({ length: 6 }, () => ask(pool))
    await waitFor("2 in flight and 4 waiting", async () => {
      const stats = await Effect.runPromise(pool.stats)
      return pending(server) === 2 && stats.waiting.agent === 4
    })
    // The other model shares the server but has its own cap: fill it, then one more must time out.
    const impatient = [ask(pool, { model: "impatient" }), ask(pool, { model: "impatient" })]
    await waitFor("impatient calls in flight", () => pending(server) === 4)
    const refused = await askError(pool, { model: "impatient" })
    expect(refused).toMatchObject({ code: "no_capacity", attempts: 0, retryable: true })
    expect(refused.message).toContain(`${server.url} 2/2 in flight`)
    g.open()
    expect((await Promise.all([...calls, ...impatient])).length).toBe(8)
    expect(counter.max).toBe(4)
    const stats = await Effect.runPromise(pool.stats)
    expect(stats.endpoints.map((e) => [e.model, e.inFlight, e.calls])).toEqual([
      ["agent", 0, 6],
      ["impatient", 0, 2],
    ])
  })
})

describe("retries and failover", () => {
  for (const status of [429, 500]) {
    it(`retries a ${status} on another endpoint`, async () => {
      const failing = await start({ script: () => ({ error: { status, message: `scripted ${status}` } }) })
      const healthy = await start({ script: scripts.echo() })
      const pool = await poolFor(agent([failing, healthy], { ejectAfterFailures: 100 }))
      const done: Array<Completion> = []
      for (let i = 0; i < 6; i++) done.push(await ask(pool))
      expect(done.every((c) => c.endpoint === healthy.url)).toBe(true)
      const refused = failing.requests.filter((r) => r.status === status).length
      expect(refused).toBeGreaterThanOrEqual(1)
      const stats = await Effect.runPromise(pool.stats)
      expect(stats.endpoints[0]).toMatchObject({ failures: refused, healthy: true })
    })
  }

  it("retries on the same endpoint when it is the only one, and gives up after `retries`", async () => {
    const server = await start({ script: scripts.failing({ every: 2, status: 503 }, scripts.echo()) })
    const pool = await poolFor(agent([server], { ejectAfterFailures: 100, retries: 2 }))
    for (let i = 0; i < 4; i++) expect((await ask(pool)).endpoint).toBe(server.url)
    server.setScript(() => ({ error: { status: 503, message: "down for maintenance" } }))
    const error = await askError(pool)
    expect(error).toBeInstanceOf(ModelUnavailable)
    expect(error).toMatchObject({ attempts: 3, code: "http_503", retryable: true, endpoint: server.url })
    server.setScript(() => ({ error: { status: 400, message: "prompt too long" } }))
    expect(await askError(pool)).toMatchObject({ attempts: 1, code: "http_400", retryable: false })
  })

  it("moves the in-flight calls of a crashed endpoint to another; ejects it and returns it on restart", async () => {
    const { log } = await tempLog()
    const crashing = await start({ script: () => ({ content: "late", hangMs: 60_000 }) })
    const healthy = await start({ script: scripts.echo() })
    const pool = await poolFor(agent([crashing, healthy], { probeIntervalMs: 25, ejectAfterFailures: 3 }), {
      log,
    })
    const calls = Array.from({ length: 8 }, () => ask(pool))
    // Least in-flight alternates the endpoints, so about half the calls hang on the crashing one.
    const answered = () => healthy.requests.filter((r) => r.status === 200).length
    await waitFor("calls hanging on the crashing endpoint, the rest answered", () => {
      const hanging = pending(crashing)
      return hanging >= 3 && hanging + answered() === 8
    })
    await crashing.stop()
    const done = await Promise.all(calls)
    expect(done.map((c) => c.endpoint)).toEqual(Array(8).fill(healthy.url))

    await waitFor("the ejection event", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointEjected"),
    )
    const ejected = (await poolEvents(log)).find((e) => e.type === "EndpointEjected")
    expect(ejected).toMatchObject({ model: "agent", endpoint: crashing.url, failures: 3 })
    expect((await Effect.runPromise(pool.stats)).endpoints[0]!.healthy).toBe(false)

    const restarted = await start({ script: scripts.echo(), port: crashing.port })
    await waitFor("the return event", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointReturned"),
    )
    const sequence = (await poolEvents(log)).map((e) => `${e.type} ${"endpoint" in e ? e.endpoint : ""}`)
    expect(sequence).toEqual([
      `EndpointJoined ${crashing.url}`,
      `EndpointJoined ${healthy.url}`,
      `EndpointEjected ${crashing.url}`,
      `EndpointReturned ${crashing.url}`,
    ])
    const after: Array<Completion> = []
    for (let i = 0; i < 4; i++) after.push(await ask(pool))
    expect(after.some((c) => c.endpoint === restarted.url)).toBe(true)
  })
})

/** A loopback proxy that stamps `x-policy-version` on every answer, as a trainer bridge would. */
const versionStamper = async (target: ScriptedModelServer) => {
  const state = { version: "step-1" }
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: "127.0.0.1", port: target.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, "x-policy-version": state.version })
        answer.pipe(res)
      },
    )
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  server.on("connection", (socket) => cleanups.push(() => void socket.destroy()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, state }
}

describe("what a completion records", () => {
  it("token ids, log-probs, parsed tool calls, usage and the policy version", async () => {
    const server = await start({ script: scripts.echoTool({ tool: "search", turns: 1 }) })
    const pool = await poolFor(agent([server], { returnTokenIds: true, fingerprintAsPolicyVersion: true }))
    const completion = await ask(pool, { logprobs: true, maxTokens: 64, temperature: 1 })
    expect(completion).toMatchObject({
      endpoint: server.url,
      finishReason: "tool_calls",
      toolCalls: [{ tool: "search", arguments: { text: "turn 1" } }],
      policyVersion: "rollout-scripted-test-double",
    })
    expect(completion.tokenIds!.length).toBeGreaterThan(0)
    expect(completion.logprobs!.length).toBe(completion.tokenIds!.length)
    expect(completion.usage.completionTokens).toBe(completion.tokenIds!.length)
    expect(completion.latencyMs).toBeGreaterThanOrEqual(0)
    const body = server.requests.at(-1)!.body!
    expect(body).toMatchObject({ return_token_ids: true, logprobs: true, max_tokens: 64, temperature: 1 })
  })

  it("a weight-version change is an event, once per change", async () => {
    const { log } = await tempLog()
    const server = await start({ script: scripts.echo() })
    const stamper = await versionStamper(server)
    const pool = await poolFor({ agent: { endpoints: [{ url: stamper.url }] } }, { log })
    expect((await ask(pool)).policyVersion).toBe("step-1")
    await ask(pool)
    stamper.state.version = "step-2"
    expect((await ask(pool)).policyVersion).toBe("step-2")
    await ask(pool)
    const published = () =>
      poolEvents(log).then((events) => events.filter((e) => e.type === "WeightsPublished"))
    await waitFor("two version events", async () => (await published()).length === 2)
    expect(await published()).toEqual([
      { type: "WeightsPublished", model: "agent", version: "step-1", endpoint: stamper.url },
      { type: "WeightsPublished", model: "agent", version: "step-2", endpoint: stamper.url },
    ])
  })
})

describe("errors and secrets", () => {
  it("an unknown model or an unset key variable fails at once, saying what to do", async () => {
    const server = await start({ script: scripts.echo() })
    const pool = await poolFor({
      agent: { endpoints: [{ url: server.url }] },
      keyed: { endpoints: [{ url: server.url, apiKeyEnv: "ROLLOUT_TEST_UNSET_KEY" }] },
    })
    const unknown = await askError(pool, { model: "nope" })
    expect(unknown).toMatchObject({ code: "unknown_model", attempts: 0, retryable: false })
    expect(unknown.message).toContain('unknown model "nope"')
    expect(unknown.message).toContain("defines agent, keyed")
    expect(unknown.message).toContain("ROLLOUT_MODEL_NOPE_URL")
    const keyless = await askError(pool, { model: "keyed" })
    expect(keyless).toMatchObject({ code: "no_endpoint", retryable: false })
    expect(keyless.message).toContain("ROLLOUT_TEST_UNSET_KEY")
  })

  it("API keys reach the servers but never the log", async () => {
    const { log, file } = await tempLog()
    const secret = "sk-live-0123456789abcdef"
    const wrong = "sk-wrong-fedcba9876543210"
    const right = await start({ script: scripts.echo(), token: secret })
    const refusing = await start({ script: scripts.echo(), token: "another-token" })
    const pool = await poolFor(
      {
        agent: {
          endpoints: [
            { url: right.url, apiKeyEnv: "POOL_TEST_KEY" },
            { url: refusing.url, apiKeyEnv: "POOL_TEST_WRONG_KEY" },
          ],
          ejectAfterFailures: 1,
          probeIntervalMs: 60_000,
        },
      },
      { log, env: { POOL_TEST_KEY: secret, POOL_TEST_WRONG_KEY: wrong } },
    )
    for (let i = 0; i < 4; i++) expect((await ask(pool)).endpoint).toBe(right.url)
    await waitFor("the 401 ejection", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointEjected"),
    )
    expect((await poolEvents(log)).find((e) => e.type === "EndpointEjected")).toMatchObject({
      endpoint: refusing.url,
      reason: expect.stringContaining("http_401"),
    })
    const bytes = fs.readFileSync(file, "utf8")
    expect(bytes).toContain("EndpointJoined")
    expect(bytes).not.toContain(secret)
    expect(bytes).not.toContain(wrong)
    const stats = JSON.stringify(await Effect.runPromise(pool.stats))
    expect(stats).not.toContain(secret)
    expect(stats).not.toContain(wrong)
  })
})

const rich: ScriptedReply = {
  reasoning: "I should look this up twice.",
  content: "Searching now.",
  toolCalls: [
    { name: "search", arguments: { queries: ["capital of France", "Paris population"], top_k: 5 } },
    { name: "fetch_url", arguments: { urls: ["https://example.org/a"], purpose: "find the population" } },
  ],
}

const chatRequests = (server: ScriptedModelServer) =>
  server.requests.filter((r) => r.path === "/v1/chat/completions")
const probes = (server: ScriptedModelServer) => server.requests.filter((r) => r.path === "/v1/models")
const answered = (server: ScriptedModelServer) => chatRequests(server).filter((r) => r.status === 200).length
const statsOf = async (pool: InferencePool, url: string) =>
  (await Effect.runPromise(pool.stats)).endpoints.find((e) => e.endpoint === url)
const describeEvent = (e: DomainEvent) =>
  `${e.type} ${"endpoint" in e ? e.endpoint : ""}${e.type === "EndpointEjected" ? ` ${e.reason.split(":")[0]}` : ""}`

describe("streaming", () => {
  it("a streamed completion equals the non-streamed one for the same script; onDelta shows its pieces", async () => {
    const server = await start({ script: () => rich })
    const group = { endpoints: [{ url: server.url }], returnTokenIds: true, fingerprintAsPolicyVersion: true }
    const pool = await poolFor({ plain: group, streamed: { ...group, stream: true } })
    const deltas: Array<CompletionDelta> = []
    const plain = await ask(pool, { model: "plain", logprobs: true, onDelta: (d) => deltas.push(d) })
    expect(deltas).toEqual([]) // a non-streaming group reports no progress
    const streamed = await ask(pool, { model: "streamed", logprobs: true, onDelta: (d) => deltas.push(d) })
    expect({ ...streamed, latencyMs: 0 }).toEqual({ ...plain, latencyMs: 0 })
    expect(streamed).toMatchObject({
      content: "Searching now.",
      reasoning: "I should look this up twice.",
      finishReason: "tool_calls",
      toolCalls: [
        { tool: "search", arguments: { queries: ["capital of France", "Paris population"], top_k: 5 } },
        { tool: "fetch_url", arguments: { urls: ["https://example.org/a"], purpose: "find the population" } },
      ],
      policyVersion: "rollout-scripted-test-double",
    })
    expect(streamed.usage.completionTokens).toBe(streamed.tokenIds!.length)
    expect(streamed.logprobs!.length).toBe(streamed.tokenIds!.length)
    const [plainBody, streamedBody] = chatRequests(server).map((r) => r.body!)
    expect(plainBody!.stream).toBeUndefined()
    expect(streamedBody).toMatchObject({ stream: true, stream_options: { include_usage: true } })

    expect(deltas.every((d) => d.attempt === 1 && d.endpoint === server.url)).toBe(true)
    expect(deltas.map((d) => d.content ?? "").join("")).toBe(streamed.content)
    expect(deltas.map((d) => d.reasoning ?? "").join("")).toBe(streamed.reasoning)
    const calls = [0, 1].map((index) => deltas.filter((d) => d.toolCall?.index === index))
    expect(calls.map((pieces) => pieces[0]?.toolCall?.name)).toEqual(["search", "fetch_url"])
    expect(
      calls.map((pieces) => JSON.parse(pieces.map((d) => d.toolCall?.arguments ?? "").join(""))),
    ).toEqual(streamed.toolCalls!.map((call) => call.arguments))
  })

  const expectedError = { reset: /^stream_broken/, end: /^stream_incomplete/, stall: /^timeout: .*silent/ }
  for (const how of ["reset", "end", "stall"] as const) {
    it(`a stream cut mid-way (${how}) is retried on another endpoint`, async () => {
      const cutting = await start({ script: () => ({ ...rich, cutStream: { afterEvents: 6, how } }) })
      const healthy = await start({ script: () => rich })
      // A stalled stream ends after timeoutMs of silence: the only wait here (no timing asserted).
      const tuning = { stream: true, ejectAfterFailures: 100, ...(how === "stall" ? { timeoutMs: 300 } : {}) }
      const pool = await poolFor(agent([cutting, healthy], tuning))
      const deltas: Array<CompletionDelta> = []
      // A fresh pool sends its first call to the first endpoint.
      const completion = await ask(pool, { onDelta: (d) => deltas.push(d) })
      expect(completion).toMatchObject({
        endpoint: healthy.url,
        content: rich.content,
        reasoning: rich.reasoning,
      })
      expect(completion.toolCalls?.map((call) => call.tool)).toEqual(["search", "fetch_url"])
      expect(chatRequests(cutting).length).toBe(1)
      // The caller saw the broken attempt's first pieces, then the whole answer of the retry.
      const first = deltas.filter((d) => d.attempt === 1)
      const second = deltas.filter((d) => d.attempt === 2)
      expect(first.length).toBeGreaterThan(0)
      expect(first.every((d) => d.endpoint === cutting.url)).toBe(true)
      expect(second.every((d) => d.endpoint === healthy.url)).toBe(true)
      expect(deltas.indexOf(second[0]!)).toBe(first.length)
      expect(second.map((d) => d.content ?? "").join("")).toBe(rich.content)
      expect(await statsOf(pool, cutting.url)).toMatchObject({
        failures: 1,
        healthy: true,
        lastError: expect.stringMatching(expectedError[how]),
      })
    })
  }
})

describe("membership at run time", () => {
  it("endpoints join and leave while 50 calls run: no call fails, the removed one takes no new call", async () => {
    const { log } = await tempLog()
    const gateA = gate()
    const gateB = gate()
    const a = await start({ script: held(gateA.opened).script })
    const b = await start({ script: held(gateB.opened).script })
    const c = await start({ script: scripts.echo() })
    const pool = await poolFor(
      {
        agent: {
          endpoints: [
            { url: a.url, maxConcurrency: 4 },
            { url: b.url, maxConcurrency: 4 },
          ],
          queueTimeoutMs: 60_000,
        },
      },
      { log },
    )
    const calls = Array.from({ length: 50 }, (_, i) => ask(pool, { affinityKey: `episode-${i % 10}` }))
    await waitFor("both endpoints full, 42 calls waiting", async () => {
      const { waiting } = await Effect.runPromise(pool.stats)
      return pending(a) === 4 && pending(b) === 4 && waiting.agent === 42
    })

    let drained = false
    const removal = Effect.runPromise(pool.removeEndpoint("agent", b.url)).then(() => {
      drained = true
    })
    await Effect.runPromise(pool.addEndpoint("agent", { url: c.url, maxConcurrency: 4 }))
    // The waiting calls go to the new endpoint (a and b are still busy) ...
    await waitFor("the waiting calls answered by the new endpoint", () => answered(c) === 42)
    // ... while the removed one still finishes its own.
    expect(drained).toBe(false)
    expect(await statsOf(pool, b.url)).toMatchObject({ removed: true, inFlight: 4 })
    gateB.open()
    await removal
    expect(await statsOf(pool, b.url)).toBeUndefined()
    gateA.open()
    const done = await Promise.all(calls)
    expect(done.length).toBe(50)
    // More calls after the removal, episodes once pinned to b included: none reaches it.
    for (let i = 0; i < 10; i++) await ask(pool, { affinityKey: `episode-${i}` })
    expect(chatRequests(b).length).toBe(4)
    expect(chatRequests(b).every((r) => r.status === 200)).toBe(true)
    expect(chatRequests(a).length + answered(c)).toBe(56)
    expect(done.filter((d) => d.endpoint === b.url).length).toBe(4)

    await waitFor("four membership events", async () => (await poolEvents(log)).length === 4)
    expect((await poolEvents(log)).map(describeEvent)).toEqual([
      `EndpointJoined ${a.url}`,
      `EndpointJoined ${b.url}`,
      `EndpointLeft ${b.url}`,
      `EndpointJoined ${c.url}`,
    ])
    expect((await poolEvents(log))[2]).toMatchObject({ reason: "operator request (drain)" })
  })

  it("a removal without drain moves the endpoint's in-flight calls to the others, as no failure", async () => {
    const g = gate()
    const hanging = await start({ script: held(g.opened).script })
    const healthy = await start({ script: scripts.echo() })
    const pool = await poolFor(agent([hanging, healthy], { retries: 0 }))
    const calls = Array.from({ length: 6 }, () => ask(pool))
    await waitFor("calls held on the first endpoint, the rest answered", () => {
      const held = pending(hanging)
      return held >= 1 && held + answered(healthy) === 6
    })
    const moved = pending(hanging)
    await Effect.runPromise(pool.removeEndpoint("agent", hanging.url, { drain: false, reason: "scale down" }))
    const done = await Promise.all(calls)
    expect(done.map((d) => d.endpoint)).toEqual(Array(6).fill(healthy.url))
    expect(answered(healthy)).toBe(6)
    expect(moved).toBeGreaterThanOrEqual(1)
    const stats = await Effect.runPromise(pool.stats)
    expect(stats.endpoints.map((e) => [e.endpoint, e.failures])).toEqual([[healthy.url, 0]])
  })

  it("refuses an unknown model, a bad URL, an unset key, a second copy, and a stranger", async () => {
    const server = await start({ script: scripts.echo() })
    const pool = await poolFor(agent([server]))
    const refusal = (effect: Effect.Effect<void, PoolMembershipError>) =>
      Effect.runPromise(Effect.flip(effect))
    expect(await refusal(pool.addEndpoint("nope", { url: server.url }))).toMatchObject({
      code: "unknown_model",
    })
    const bad = await refusal(pool.addEndpoint("agent", { url: "http://user:hunter2@h/v1" }))
    expect(bad).toMatchObject({ code: "invalid_endpoint" })
    expect(bad.message).not.toContain("hunter2")
    expect(
      await refusal(pool.addEndpoint("agent", { url: "http://127.0.0.1:9/v1", apiKeyEnv: "POOL_UNSET_KEY" })),
    ).toMatchObject({ code: "missing_key", reason: expect.stringContaining("POOL_UNSET_KEY") })
    expect(await refusal(pool.addEndpoint("agent", { url: `${server.url}/` }))).toMatchObject({
      code: "already_member",
    })
    expect(await refusal(pool.removeEndpoint("agent", "http://127.0.0.1:9/v1"))).toMatchObject({
      code: "not_member",
    })
    // Removing the last endpoint leaves calls waiting (bounded) for a new one, not failing at once.
    await Effect.runPromise(pool.removeEndpoint("agent", server.url))
    const waiting = ask(pool)
    await waitFor("the call waiting for an endpoint", async () => {
      return (await Effect.runPromise(pool.stats)).waiting.agent === 1
    })
    await Effect.runPromise(pool.addEndpoint("agent", { url: server.url }))
    expect((await waiting).endpoint).toBe(server.url)
  })
})

describe("health probes", () => {
  it("an idle endpoint that dies is ejected by its probes before any call reaches it", async () => {
    const { log } = await tempLog()
    const dying = await start({ script: scripts.echo() })
    const other = await start({ script: scripts.echo() })
    const pool = await poolFor(agent([dying, other], { healthProbeIntervalMs: 10, ejectAfterFailures: 2 }), {
      log,
    })
    await waitFor("both endpoints probed", () => probes(dying).length > 0 && probes(other).length > 0)
    await dying.stop()
    await waitFor("the ejection by probes", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointEjected"),
    )
    expect((await poolEvents(log)).find((e) => e.type === "EndpointEjected")).toMatchObject({
      endpoint: dying.url,
      reason: expect.stringMatching(/^probe: /),
      failures: 2,
    })
    expect(chatRequests(dying)).toEqual([])
    expect(await statsOf(pool, dying.url)).toMatchObject({ healthy: false, calls: 0, failures: 0 })
    expect((await statsOf(pool, dying.url))!.probeFailures).toBeGreaterThanOrEqual(2)
    // Traffic goes to the live endpoint only; the dead one returns once it answers again.
    for (let i = 0; i < 4; i++) expect((await ask(pool)).endpoint).toBe(other.url)
    await start({ script: scripts.echo(), port: dying.port })
    await waitFor("the return event", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointReturned"),
    )
    expect((await statsOf(pool, dying.url))!.healthy).toBe(true)
  })

  it("probes stop when the pool closes: no probe timer is left", async () => {
    const server = await start({ script: scripts.echo() })
    let timers = 0
    let rounds = 0
    const sleep = (ms: number, purpose: "backoff" | "probe") =>
      Effect.suspend(() => {
        if (purpose === "probe") rounds++
        timers++
        return Effect.sleep(ms).pipe(Effect.ensuring(Effect.sync(() => timers--)))
      })
    const config = Result.getOrThrow(
      modelsConfigFrom({
        agent: { endpoints: [{ url: server.url }], healthProbeIntervalMs: 5, probeIntervalMs: 5 },
        summarizer: { endpoints: [{ url: server.url }], healthProbeIntervalMs: 5 },
      }),
    )
    const { close } = await acquire(makeInferencePool(config, { sleep }))
    await waitFor("a few probe rounds", () => probes(server).length >= 6)
    expect(timers).toBeGreaterThan(0)
    await close()
    expect(timers).toBe(0)
    const after = rounds
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(rounds).toBe(after)
  })
})

describe("rate limits", () => {
  it("429s eject an endpoint, are counted apart, and its return waits for the retry-after", async () => {
    const { log } = await tempLog()
    const clock = manualClock(Date.parse("2026-01-01T00:00:00Z"))
    const limited = await start({
      script: () => ({ error: { status: 429, message: "slow down", retryAfterSeconds: 3600 } }),
    })
    const healthy = await start({ script: scripts.echo() })
    const config = Result.getOrThrow(
      modelsConfigFrom(
        agent([limited, healthy], {
          ejectAfterFailures: 2,
          healthProbeIntervalMs: 0,
          probeIntervalMs: 3_600_000,
        }),
      ),
    )
    const { value: pool, close } = await acquire(makeInferencePool(config, { log, clock }))
    cleanups.push(close)
    for (let i = 0; i < 6; i++) expect((await ask(pool)).endpoint).toBe(healthy.url)
    expect(chatRequests(limited).map((r) => r.status)).toEqual([429, 429])
    expect(await statsOf(pool, limited.url)).toMatchObject({ healthy: false, rateLimited: 2, failures: 2 })
    expect(await statsOf(pool, healthy.url)).toMatchObject({ rateLimited: 0, failures: 0 })
    expect((await Effect.runPromise(pool.stats)).rateLimited).toEqual({ agent: 2 })
    await waitFor("the ejection event", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointEjected"),
    )
    expect((await poolEvents(log)).find((e) => e.type === "EndpointEjected")).toMatchObject({
      endpoint: limited.url,
      reason: expect.stringMatching(/^http_429: /),
      failures: 2,
    })
    // The recorded events, folded by the decider, say what the pool says.
    const fromLog = async () =>
      evolveAll(initialState("agent", { ejectAfterFailures: 2 }), (await poolEvents(log)).filter(isPoolEvent))
    expect(memberByUrl(await fromLog(), limited.url)).toMatchObject({
      membership: "joined",
      health: "ejected",
    })
    expect(memberByUrl(await fromLog(), healthy.url)).toMatchObject({ health: "healthy" })

    // Within its retry-after the endpoint is not even probed; after it, a probe returns it.
    limited.setScript(scripts.echo())
    await Effect.runPromise(pool.probeNow("agent"))
    expect(probes(limited)).toEqual([])
    expect((await statsOf(pool, limited.url))!.healthy).toBe(false)
    clock.advance(3_600_001)
    await Effect.runPromise(pool.probeNow("agent"))
    expect(probes(limited).length).toBe(1)
    expect((await statsOf(pool, limited.url))!.healthy).toBe(true)
    await waitFor("the return event", async () =>
      (await poolEvents(log)).some((e) => e.type === "EndpointReturned"),
    )
    expect(memberByUrl(await fromLog(), limited.url)).toMatchObject({ health: "healthy" })
    const after: Array<Completion> = []
    for (let i = 0; i < 4; i++) after.push(await ask(pool))
    expect(after.some((c) => c.endpoint === limited.url)).toBe(true)
  })

  it("a retry-after raises the backoff before the same endpoint is tried again", async () => {
    const answers: Array<ScriptedReply> = [
      { error: { status: 429, message: "slow down", retryAfterSeconds: 7 } },
      { error: { status: 429, message: "slow down", retryAfterSeconds: 7 } },
      { content: "ok" },
      { error: { status: 503, message: "busy" } },
      { content: "ok" },
    ]
    const server = await start({ script: () => answers.shift() ?? { content: "ok" } })
    const backoffs: Array<number> = []
    const config = Result.getOrThrow(
      modelsConfigFrom(
        agent([server], { ejectAfterFailures: 100, backoffMs: 1, maxBackoffMs: 60_000, retries: 4 }),
      ),
    )
    const { value: pool, close } = await acquire(
      makeInferencePool(config, {
        sleep: (ms, purpose) =>
          purpose === "backoff" ? Effect.sync(() => void backoffs.push(ms)) : Effect.sleep(ms),
      }),
    )
    cleanups.push(close)
    expect((await ask(pool)).content).toBe("ok")
    expect(backoffs).toEqual([7000, 7000])
    // Without the header, the configured backoff (at most 1 ms for the first retry) applies.
    expect((await ask(pool)).content).toBe("ok")
    expect(backoffs.length).toBe(3)
    expect(backoffs[2]).toBeLessThanOrEqual(1)
    expect(await statsOf(pool, server.url)).toMatchObject({ rateLimited: 2, failures: 3, healthy: true })
  })
})
