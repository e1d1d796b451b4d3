/**
 * The inference pool's pure parts: `models.yaml` decoding (defaults, file:line errors, env
 * overrides, the shipped file, the streaming and health-probe keys), the routing rules as
 * properties (never an unhealthy, disabled, removed or full endpoint; least in-flight; affinity;
 * untried endpoints first), backoff bounds, latency percentiles, the translation of answers and
 * client errors (`retry-after` in its three forms), the assembly of a stream into exactly the
 * non-streamed completion (a property over scripted replies), an endpoint group as the shell of
 * its decider (drain, eviction, stable ids, refusals, disabled endpoints, ejection and return, a
 * weight update's pause, idle wait and end, what it records; a property: an ejected endpoint is
 * never routed to until returned), and the
 * `EndpointLeft` event's shape. No network here.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test as propTest } from "@fast-check/vitest"
import { Effect, Result } from "effect"
import { APIConnectionError, APIConnectionTimeoutError, APIError } from "openai"
import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions"
import { afterEach, describe, expect, test } from "vitest"
import type { PoolEvent } from "../../src/actors/inference/decider.ts"
import {
  ConfigError,
  endpointConfigFrom,
  loadModelsConfig,
  type ModelConfig,
  modelsConfigFrom,
  modelUrlVariable,
  unknownModelMessage,
} from "../../src/actors/inference/modelsConfig.ts"
import { EndpointGroup, type Ticket } from "../../src/actors/inference/pool/endpointGroup.ts"
import {
  classify,
  readCompletion,
  requestBody,
  retryAfterOf,
} from "../../src/actors/inference/pool/openAiCall.ts"
import {
  backoffDelay,
  canTake,
  LatencyWindow,
  pickEndpoint,
  type RoutingView,
} from "../../src/actors/inference/pool/routing.ts"
import {
  classifyStreamError,
  type DeltaPiece,
  StreamAssembly,
} from "../../src/actors/inference/pool/streamingCall.ts"
import { encodeBodyJson } from "../../src/events/codec.ts"
import {
  completionBody,
  completionStreamEvents,
  planGeneration,
} from "../../src/programs/scriptedModel/completion.ts"
import type { ChatRequest, ScriptedReply } from "../../src/programs/scriptedModel/script.ts"

const tempDirs: Array<string> = []
const tempDir = (files: Record<string, string> = {}): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-models-"))
  tempDirs.push(dir)
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}
afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

type Env = Record<string, string | undefined>
const load = (dir: string, env: Env = {}) => Effect.runSync(loadModelsConfig({ dir, env }))
const loadError = (dir: string, env: Env = {}): ConfigError => {
  const result = Effect.runSync(Effect.result(loadModelsConfig({ dir, env })))
  if (Result.isSuccess(result))
    throw new Error(`expected a ConfigError, got ${JSON.stringify(result.success)}`)
  expect(result.failure).toBeInstanceOf(ConfigError)
  return result.failure
}

const minimal = "models:\n  agent:\n    endpoints:\n      - url: http://127.0.0.1:8000/v1/\n"

describe("models.yaml", () => {
  test("a missing file means no models, and asking for one says how to add it", () => {
    const config = load(tempDir())
    expect(config.models).toEqual({})
    expect(unknownModelMessage(config, "agent")).toMatch(
      /unknown model "agent": no models are configured .*models\.yaml.*ROLLOUT_MODEL_AGENT_URL/,
    )
  })

  test("defaults fill every tuning key; served defaults to the name; trailing slashes go", () => {
    const agent = load(tempDir({ "models.yaml": minimal })).models.agent!
    expect(agent).toEqual({
      name: "agent",
      served: "agent",
      endpoints: [{ url: "http://127.0.0.1:8000/v1", maxConcurrency: 64 }],
      timeoutMs: 180_000,
      retries: 4,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      queueTimeoutMs: 60_000,
      probeIntervalMs: 5_000,
      healthProbeIntervalMs: 10_000,
      ejectAfterFailures: 3,
      policyVersionHeader: "x-policy-version",
      fingerprintAsPolicyVersion: false,
      returnTokenIds: false,
      tokens: "text",
      stream: false,
      weightUpdates: "none",
    } satisfies ModelConfig)
  })

  test("the shipped config/models.yaml decodes", () => {
    const config = load(path.resolve("config"))
    expect(Object.keys(config.models)).toEqual(["agent", "policy", "summarizer", "judge"])
    expect(config.models.agent!.served).toBe("Qwen3-4B")
    // The RL group config/rl.yaml trains: token-exact, loaded through vLLM's update routes.
    expect(config.models.policy).toMatchObject({ tokens: "exact", weightUpdates: "vllm" })
    // The README's `--judge-model judge` examples run against the agent's local server.
    expect(config.models.judge!.endpoints.map((e) => e.url)).toEqual(
      config.models.agent!.endpoints.map((e) => e.url),
    )
    // The shipped file names no key variable, so it works against servers started without one.
    expect(config.models.agent!.endpoints[0]!.apiKeyEnv).toBeUndefined()
  })

  test("errors name file, path, line and column", () => {
    const dir = tempDir({ "models.yaml": `${minimal}    retries: many\n` })
    expect(loadError(dir)).toMatchObject({
      source: path.join(dir, "models.yaml"),
      path: "models.agent.retries",
      line: 5,
      column: 14,
    })
    const typo = loadError(tempDir({ "models.yaml": `${minimal}    timeoutMS: 5\n` }))
    expect(typo).toMatchObject({ path: "models.agent.timeoutMS", line: 5 })
    expect(typo.reason).toContain('did you mean "timeoutMs"')
    const empty = loadError(tempDir({ "models.yaml": "models:\n  agent:\n    endpoints: []\n" }))
    expect(empty).toMatchObject({ path: "models.agent.endpoints", line: 3 })
  })

  test("credentials in a URL are refused without echoing them", () => {
    const error = loadError(
      tempDir({ "models.yaml": "models:\n  a:\n    endpoints:\n      - url: http://user:hunter2@h/v1\n" }),
    )
    expect(error).toMatchObject({ path: "models.a.endpoints[0].url", line: 4 })
    expect(error.message).not.toContain("hunter2")
  })

  test("ROLLOUT_MODEL_<NAME>_URL replaces one model's endpoints and keeps key variable and cap", () => {
    const dir = tempDir({
      "models.yaml":
        "models:\n  my-agent:\n    endpoints:\n      - url: http://a/v1\n        apiKeyEnv: K\n        maxConcurrency: 7\n    retries: 1\n",
    })
    expect(modelUrlVariable("my-agent")).toBe("ROLLOUT_MODEL_MY_AGENT_URL")
    const model = load(dir, { ROLLOUT_MODEL_MY_AGENT_URL: "http://b/v1, http://c/v1" }).models["my-agent"]!
    expect(model.endpoints).toEqual([
      { url: "http://b/v1", apiKeyEnv: "K", maxConcurrency: 7 },
      { url: "http://c/v1", apiKeyEnv: "K", maxConcurrency: 7 },
    ])
    expect(model.retries).toBe(1)
  })

  test("a variable for an unconfigured model defines it; a bad one names the variable", () => {
    const config = load(tempDir(), { ROLLOUT_MODEL_JUDGE_URL: "http://j/v1", ROLLOUT_MODEL_X_URL: "" })
    expect(Object.keys(config.models)).toEqual(["judge"])
    expect(config.models.judge!.endpoints).toEqual([{ url: "http://j/v1", maxConcurrency: 64 }])
    const error = loadError(tempDir(), { ROLLOUT_MODEL_JUDGE_URL: "ftp://j" })
    expect(error).toMatchObject({ source: "env ROLLOUT_MODEL_JUDGE_URL" })
  })

  test("stream and healthProbeIntervalMs are optional keys (old files decode); bad values are errors", () => {
    const dir = tempDir({ "models.yaml": `${minimal}    stream: true\n    healthProbeIntervalMs: 0\n` })
    expect(load(dir).models.agent).toMatchObject({ stream: true, healthProbeIntervalMs: 0 })
    expect(loadError(tempDir({ "models.yaml": `${minimal}    stream: sometimes\n` }))).toMatchObject({
      path: "models.agent.stream",
      line: 5,
    })
    expect(loadError(tempDir({ "models.yaml": `${minimal}    healthProbeIntervalMs: -1\n` }))).toMatchObject({
      path: "models.agent.healthProbeIntervalMs",
    })
  })

  test("weightUpdates names the server API a group's weights are loaded through; another value is an error", () => {
    for (const api of ["vllm", "sglang", "none"] as const)
      expect(
        load(tempDir({ "models.yaml": `${minimal}    weightUpdates: ${api}\n` })).models.agent,
      ).toMatchObject({
        weightUpdates: api,
      })
    const error = loadError(tempDir({ "models.yaml": `${minimal}    weightUpdates: trtllm\n` }))
    expect(error).toMatchObject({ path: "models.agent.weightUpdates", line: 5, column: 20 })
    expect(error.reason).toContain('"vllm"')
  })

  test("an endpoint added at run time gets the file's checks and defaults", () => {
    expect(Result.getOrThrow(endpointConfigFrom({ url: "http://h:1/v1/" }))).toEqual({
      url: "http://h:1/v1",
      maxConcurrency: 64,
    })
    const bad = endpointConfigFrom({ url: "http://user:hunter2@h/v1" })
    expect(Result.isFailure(bad)).toBe(true)
    if (Result.isFailure(bad)) expect(bad.failure.message).not.toContain("hunter2")
    expect(Result.isFailure(endpointConfigFrom({ url: "http://h/v1", maxConcurrency: 0 }))).toBe(true)
  })

  test("modelsConfigFrom builds the same thing in code", () => {
    const config = Result.getOrThrow(modelsConfigFrom({ m: { endpoints: [{ url: "http://x/v1" }] } }))
    expect(config.models.m!.timeoutMs).toBe(180_000)
    expect(Result.isFailure(modelsConfigFrom({ m: { endpoints: [] } }))).toBe(true)
  })
})

const view = fc.record({
  inFlight: fc.nat({ max: 8 }),
  maxConcurrency: fc.integer({ min: 1, max: 8 }),
  healthy: fc.boolean(),
  disabled: fc.option(fc.constant("no key"), { nil: undefined }),
  removed: fc.boolean(),
})
const views = fc.array(view, { minLength: 1, maxLength: 6 })

describe("routing", () => {
  propTest.prop([views, fc.option(fc.nat({ max: 7 }), { nil: undefined }), fc.nat()])(
    "never picks an endpoint that cannot take the call; picks one whenever any can",
    (endpoints, preferred, rotation) => {
      const index = pickEndpoint(endpoints, { preferred, rotation })
      if (index === undefined) expect(endpoints.some(canTake)).toBe(false)
      else expect(canTake(endpoints[index]!)).toBe(true)
    },
  )

  propTest.prop([views, fc.nat()])(
    "without affinity or failures it takes the least in-flight",
    (endpoints, rotation) => {
      const index = pickEndpoint(endpoints, { rotation })
      if (index === undefined) return
      const least = Math.min(...endpoints.filter(canTake).map((e) => e.inFlight))
      expect(endpoints[index]!.inFlight).toBe(least)
    },
  )

  propTest.prop([views, fc.nat({ max: 5 }), fc.nat()])(
    "affinity wins while its endpoint can take the call",
    (endpoints, preferred, rotation) => {
      fc.pre(preferred < endpoints.length && canTake(endpoints[preferred]!))
      expect(pickEndpoint(endpoints, { preferred, rotation })).toBe(preferred)
    },
  )

  propTest.prop([views, fc.uniqueArray(fc.nat({ max: 5 })), fc.nat()])(
    "an endpoint this call failed on is taken only when no other can",
    (endpoints, failed, rotation) => {
      const avoid = new Set(failed)
      const index = pickEndpoint(endpoints, { avoid, rotation })
      if (index !== undefined && avoid.has(index))
        expect(endpoints.some((e, i) => !avoid.has(i) && canTake(e))).toBe(false)
    },
  )

  test("a removed endpoint is never picked, even when the episode is pinned to it", () => {
    const endpoints: Array<RoutingView> = [
      { inFlight: 0, maxConcurrency: 4, healthy: true, removed: true },
      { inFlight: 3, maxConcurrency: 4, healthy: true },
    ]
    expect(canTake(endpoints[0]!)).toBe(false)
    expect(pickEndpoint(endpoints, { preferred: 0 })).toBe(1)
  })

  test("equal loads are spread round-robin", () => {
    const idle: Array<RoutingView> = [0, 1, 2].map(() => ({ inFlight: 0, maxConcurrency: 4, healthy: true }))
    expect([0, 1, 2, 3].map((rotation) => pickEndpoint(idle, { rotation }))).toEqual([0, 1, 2, 0])
  })

  propTest.prop([
    fc.integer({ min: 1, max: 40 }),
    fc.nat({ max: 5000 }),
    fc.nat({ max: 60_000 }),
    fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  ])(
    "backoff grows from base, stays within [ceiling/2, max] and honours retry-after up to max",
    (retry, base, max, random) => {
      const ceiling = Math.min(max, base * 2 ** (retry - 1))
      const delay = backoffDelay(retry, base, max, random)
      expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling / 2))
      expect(delay).toBeLessThanOrEqual(Math.ceil(ceiling))
      expect(backoffDelay(retry, base, max, random, 10 * max + 1)).toBe(Math.round(Math.max(max, delay)))
    },
  )

  test("latency percentiles over a bounded window", () => {
    const window = new LatencyWindow(100)
    expect(window.percentile(50)).toBeUndefined()
    for (let ms = 1; ms <= 250; ms++) window.add(ms)
    // Only the last 100 (151..250) are kept.
    expect(window.percentile(50)).toBe(200)
    expect(window.percentile(99)).toBe(249)
    expect(window.percentile(100)).toBe(250)
  })
})

const model: ModelConfig = Result.getOrThrow(
  modelsConfigFrom({
    agent: {
      served: "Qwen3-4B",
      endpoints: [{ url: "http://x/v1" }],
      returnTokenIds: true,
      fingerprintAsPolicyVersion: true,
    },
  }),
).models.agent!

const request = {
  model: "agent",
  requestId: "req-1",
  messages: [
    { role: "system", content: "s" },
    { role: "user", content: "q" },
    { role: "assistant", content: "", toolCalls: [{ callId: "c1", tool: "search", arguments: { q: 1 } }] },
    { role: "tool", content: "r", toolCallId: "c1" },
  ],
  tools: [{ name: "search", parameters: { type: "object" } }],
  maxTokens: 100,
  logprobs: true,
} as const

describe("wire translation", () => {
  test("the request carries served name, tool calls as JSON text, tools, limits and vLLM token ids", () => {
    const body = requestBody(model, request) as unknown as Record<string, unknown>
    expect(body).toMatchObject({
      model: "Qwen3-4B",
      max_tokens: 100,
      logprobs: true,
      return_token_ids: true,
      tools: [{ type: "function", function: { name: "search", parameters: { type: "object" } } }],
    })
    expect((body.messages as Array<unknown>)[2]).toEqual({
      role: "assistant",
      content: "",
      tool_calls: [{ id: "c1", type: "function", function: { name: "search", arguments: '{"q":1}' } }],
    })
    expect((body.messages as Array<unknown>)[3]).toEqual({ role: "tool", content: "r", tool_call_id: "c1" })
  })

  test("the answer: parsed arguments (raw when unparseable), reasoning, usage, version, ids, log-probs", () => {
    const data = {
      id: "x",
      object: "chat.completion",
      created: 0,
      model: "Qwen3-4B",
      system_fingerprint: "fp-1",
      choices: [
        {
          index: 0,
          finish_reason: "tool_calls",
          message: {
            role: "assistant",
            content: null,
            reasoning_content: "think",
            tool_calls: [
              { id: "a", type: "function", function: { name: "search", arguments: '{"q":"x"}' } },
              { id: "", type: "function", function: { name: "fetch", arguments: "{broken" } },
            ],
          },
          logprobs: { content: [{ token: "a", logprob: -0.5, bytes: [], top_logprobs: [] }] },
          token_ids: [7, 8],
        },
      ],
      usage: { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 },
    } as unknown as ChatCompletion
    const headers = new Headers({ "x-policy-version": "step-42" })
    expect(readCompletion(model, request, data, headers, "http://x/v1", 5)).toEqual({
      endpoint: "http://x/v1",
      latencyMs: 5,
      finishReason: "tool_calls",
      content: "",
      reasoning: "think",
      toolCalls: [
        { callId: "a", tool: "search", arguments: { q: "x" } },
        { callId: "req-1-1", tool: "fetch", arguments: "{broken" },
      ],
      usage: { promptTokens: 11, completionTokens: 2 },
      policyVersion: "step-42",
      tokenIds: [7, 8],
      logprobs: [-0.5],
    })
    // Without the header, the fingerprint (when configured).
    const fallback = readCompletion(model, request, data, new Headers(), "e", 1)
    expect(fallback).toMatchObject({ policyVersion: "fp-1" })
    expect(readCompletion(model, request, { ...data, choices: [] }, headers, "e", 1)).toMatchObject({
      kind: "endpoint",
      code: "bad_response",
    })
  })

  test("a tool call without a name is the endpoint's fault, named by its index; object arguments are taken as they are", () => {
    const body = (toolCalls: unknown) =>
      ({
        choices: [
          {
            index: 0,
            finish_reason: "tool_calls",
            message: { role: "assistant", content: "", tool_calls: toolCalls },
          },
        ],
      }) as unknown as ChatCompletion
    const headers = new Headers()
    expect(readCompletion(model, request, body([{ id: "a", type: "function" }]), headers, "e", 1)).toEqual({
      kind: "endpoint",
      code: "bad_response",
      message: "choices[0].message.tool_calls[0] has no function.name",
    })
    expect(readCompletion(model, request, body("nope"), headers, "e", 1)).toMatchObject({
      code: "bad_response",
    })
    expect(
      readCompletion(
        model,
        request,
        body([{ id: "b", type: "function", function: { name: "search", arguments: { q: 1 } } }]),
        headers,
        "e",
        1,
      ),
    ).toMatchObject({ toolCalls: [{ callId: "b", tool: "search", arguments: { q: 1 } }] })
  })

  propTest.prop([fc.jsonValue(), fc.jsonValue()])(
    "never throws on whatever a server sends as a message or its tool calls",
    (message, toolCalls) => {
      const data = {
        choices: [
          {
            index: 0,
            finish_reason: "stop",
            message: {
              ...(typeof message === "object" && message !== null && !Array.isArray(message) ? message : {}),
              tool_calls: toolCalls,
            },
          },
        ],
      } as unknown as ChatCompletion
      const read = readCompletion(model, request, data, new Headers(), "e", 1)
      expect(read).toBeTypeOf("object")
    },
  )

  test("client errors are classified once", () => {
    const api = (status: number, headers: Record<string, string> = {}) =>
      APIError.generate(status, { error: { message: "m" } }, "m", new Headers(headers))
    expect(classify(api(429, { "retry-after": "2" }), 1)).toMatchObject({
      kind: "transient",
      code: "http_429",
      retryAfterMs: 2000,
    })
    expect(classify(api(503), 1)).toMatchObject({ kind: "transient", code: "http_503" })
    expect(classify(api(401), 1)).toMatchObject({ kind: "endpoint", code: "http_401" })
    expect(classify(api(400), 1)).toMatchObject({ kind: "request", code: "http_400" })
    expect(classify(new APIConnectionTimeoutError(), 9)).toMatchObject({ kind: "transient", code: "timeout" })
    expect(classify(new APIConnectionError({ cause: new Error("socket hang up") }), 1)).toMatchObject({
      kind: "transient",
      code: "connection",
    })
    expect(classify(new SyntaxError("Unexpected token <"), 1)).toMatchObject({ kind: "endpoint" })
  })

  test("retry-after: OpenAI's retry-after-ms first, then seconds, then an HTTP date", () => {
    const now = () => Date.parse("2026-01-01T00:00:00Z")
    const of = (headers: Record<string, string>) => retryAfterOf(new Headers(headers), now)
    expect(of({ "retry-after-ms": "1500", "retry-after": "9" })).toBe(1500)
    expect(of({ "retry-after": "2.5" })).toBe(2500)
    expect(of({ "retry-after": "Thu, 01 Jan 2026 00:00:30 GMT" })).toBe(30_000)
    expect(of({ "retry-after": "Wed, 31 Dec 2025 23:00:00 GMT" })).toBe(0)
    expect(of({ "retry-after": "soon" })).toBeUndefined()
    expect(of({ "retry-after": "-3" })).toBeUndefined()
    expect(of({})).toBeUndefined()
  })

  test("failures while reading a stream: broken connection and error events are transient", () => {
    const terminated = new TypeError("terminated", { cause: new Error("other side closed") })
    expect(classifyStreamError(terminated, 1)).toMatchObject({
      kind: "transient",
      code: "stream_broken",
      message: expect.stringContaining("other side closed"),
    })
    expect(
      classifyStreamError(new APIError(undefined, { message: "overloaded" }, undefined, undefined), 1),
    ).toMatchObject({ kind: "transient", code: "stream_error" })
    expect(classifyStreamError(new SyntaxError("Unexpected token"), 1)).toMatchObject({
      kind: "endpoint",
      code: "bad_response",
    })
  })
})

/** The chunks of a scripted stream, as the openai client yields them. */
const chunksOf = (events: ReadonlyArray<string>): Array<ChatCompletionChunk> =>
  events
    .map((event) => event.replace(/^data: /, "").trim())
    .filter((data) => data !== "[DONE]")
    .map((data) => JSON.parse(data) as ChatCompletionChunk)

const scriptedReply: fc.Arbitrary<ScriptedReply> = fc.record(
  {
    reasoning: fc.string({ maxLength: 40 }),
    content: fc.string({ maxLength: 60 }),
    toolCalls: fc.array(
      fc.record({
        name: fc.stringMatching(/^[a-z_]{1,12}$/),
        arguments: fc.oneof(
          fc.dictionary(
            fc.stringMatching(/^[a-z]{1,6}$/),
            fc.oneof(fc.string({ maxLength: 20 }), fc.integer()),
          ),
          fc.string({ maxLength: 20 }),
        ),
      }),
      { maxLength: 3 },
    ),
  },
  { requiredKeys: [] },
)

describe("stream assembly", () => {
  propTest.prop([scriptedReply, fc.boolean(), fc.boolean()])(
    "a streamed answer assembles to exactly the non-streamed completion; the deltas rebuild it",
    (reply, logprobs, returnTokenIds) => {
      const chat: ChatRequest = {
        model: "m",
        messages: [{ role: "user", content: "Your task: q" }],
        logprobs,
        return_token_ids: returnTokenIds,
      }
      const generation = planGeneration(chat, reply, { callIndex: 0, episodeKey: "k" })
      const meta = { id: "c", created: 1, model: "m" }
      const headers = new Headers()
      // Through JSON, as on the wire (a log-prob of -0 arrives as 0 either way).
      const body = JSON.parse(JSON.stringify(completionBody(generation, meta))) as ChatCompletion
      const plain = readCompletion(model, request, body, headers, "e", 1)
      const assembly = new StreamAssembly()
      const pieces: Array<DeltaPiece> = []
      for (const chunk of chunksOf(completionStreamEvents(generation, meta, true)))
        pieces.push(...assembly.add(chunk))
      expect(assembly.finished && assembly.hasUsage).toBe(true)
      const streamed = readCompletion(model, request, assembly.toBody(logprobs), headers, "e", 1)
      expect(streamed).toEqual(plain)
      if ("kind" in plain) return
      expect(pieces.map((p) => p.content ?? "").join("")).toBe(plain.content)
      expect(pieces.map((p) => p.reasoning ?? "").join("")).toBe(plain.reasoning ?? "")
      const args = generation.toolCalls.map((_, index) =>
        pieces
          .filter((p) => p.toolCall?.index === index)
          .map((p) => p.toolCall?.arguments ?? "")
          .join(""),
      )
      expect(args).toEqual(generation.toolCalls.map((call) => call.arguments))
    },
  )

  test("a stream cut before its finish reason is not finished", () => {
    const generation = planGeneration(
      { model: "m", messages: [{ role: "user", content: "q" }] },
      { content: "a few words of content" },
      { callIndex: 0, episodeKey: "k" },
    )
    const events = completionStreamEvents(generation, { id: "c", created: 1, model: "m" }, true)
    const assembly = new StreamAssembly()
    for (const chunk of chunksOf(events.slice(0, 3))) assembly.add(chunk)
    expect(assembly.finished).toBe(false)
    expect(assembly.chunks).toBe(3)
  })
})

describe("endpoint group", () => {
  const config = (urls: ReadonlyArray<string>, ejectAfterFailures = 3) =>
    Result.getOrThrow(
      modelsConfigFrom({
        m: { endpoints: urls.map((url) => ({ url, maxConcurrency: 2 })), ejectAfterFailures },
      }),
    ).models.m!
  const noClient = { client: undefined, disabled: undefined }
  const take = (group: EndpointGroup, affinityKey?: string, timeoutMs = 0): Ticket => {
    const ticket: Ticket = { endpoint: undefined }
    Effect.runSync(group.acquire(ticket, affinityKey, undefined, timeoutMs))
    return ticket
  }
  const leave = (group: EndpointGroup, url: string, drain: boolean) =>
    Effect.runPromise(Result.getOrThrow(group.leave(url, "test", drain)))
  const recorder = () => {
    const recorded: Array<PoolEvent> = []
    return { recorded, record: (event: PoolEvent) => void recorded.push(event) }
  }

  test("a drained removal takes no new call, ends when its last call does, and ids stay stable", async () => {
    const { recorded, record } = recorder()
    const group = new EndpointGroup(config(["http://a/v1", "http://b/v1"]), [noClient, noClient], record)
    const pinned = take(group, "episode")
    const a = pinned.endpoint!
    expect(a.url).toBe("http://a/v1")
    group.release(pinned)
    const held = take(group, "episode")
    expect(held.endpoint).toBe(a)
    let drained = false
    const removal = leave(group, "http://a/v1/", true).then(() => {
      drained = true
    })
    expect(group.member("http://a/v1/")).toBeUndefined()
    expect(group.recordOf(a)).toMatchObject({ membership: "left" })
    // Every new call goes to b, the episode pinned to a included; a stays listed while it has a call.
    const others = [take(group, "episode"), take(group)]
    expect(others.map((t) => t.endpoint?.url)).toEqual(["http://b/v1", "http://b/v1"])
    expect(take(group).endpoint).toBeUndefined()
    expect(group.endpoints.map((e) => e.url)).toEqual(["http://a/v1", "http://b/v1"])
    await Promise.resolve()
    expect(drained).toBe(false)
    group.release(held)
    await removal
    expect(group.endpoints.map((e) => `${e.id} ${e.url}`)).toEqual(["1 http://b/v1"])
    expect(group.recordOf(a)).toBeUndefined()
    // A later member gets a fresh id; the episode now pinned to b stays there.
    const c = Result.getOrThrow(group.join({ url: "http://c/v1", maxConcurrency: 2 }, noClient, "operator"))
    expect(c.id).toBe(2)
    for (const t of others) group.release(t)
    expect(take(group, "episode").endpoint?.url).toBe("http://b/v1")
    expect(recorded.map((e) => `${e.type} ${"endpoint" in e ? e.endpoint : ""}`)).toEqual([
      "EndpointJoined http://a/v1",
      "EndpointJoined http://b/v1",
      "EndpointLeft http://a/v1",
      "EndpointJoined http://c/v1",
    ])
  })

  test("a removal without drain evicts its in-flight calls; an empty group waits for a member", async () => {
    const group = new EndpointGroup(config(["http://a/v1"]), [noClient])
    const held = take(group)
    const a = held.endpoint!
    const removal = leave(group, "http://a/v1", false)
    expect(a.eviction.signal.aborted).toBe(true)
    group.release(held)
    await removal
    expect(group.endpoints).toEqual([])
    expect(group.unusable).toBeUndefined()
    expect(group.capacitySummary()).toContain("no endpoints")
    expect(take(group).endpoint).toBeUndefined()
    // A call waiting for a slot gets the endpoint added next.
    const waiting: Ticket = { endpoint: undefined }
    const wait = Effect.runPromise(group.acquire(waiting, undefined, undefined, 60_000))
    expect(group.waiting).toBe(1)
    group.join({ url: "http://b/v1", maxConcurrency: 1 }, noClient, "operator")
    await wait
    expect(waiting.endpoint?.url).toBe("http://b/v1")
  })

  test("a second copy, a stranger and an operator's endpoint without its key are refused", () => {
    const group = new EndpointGroup(config(["http://a/v1"]), [noClient])
    const refusal = (result: Result.Result<unknown, { code: string }>) =>
      Result.isFailure(result) ? result.failure.code : "joined"
    expect(refusal(group.join({ url: "http://a/v1/", maxConcurrency: 1 }, noClient, "operator"))).toBe(
      "already_member",
    )
    const keyless = { client: undefined, disabled: "env var K (apiKeyEnv) is not set" }
    expect(refusal(group.join({ url: "http://k/v1", maxConcurrency: 1 }, keyless, "operator"))).toBe(
      "missing_key",
    )
    expect(refusal(group.leave("http://x/v1", "test", true))).toBe("not_member")
    expect(group.endpoints.map((e) => e.url)).toEqual(["http://a/v1"])
  })

  test("a configured endpoint without its key is listed, never routed to; all such make the group unusable", () => {
    const keyless = { client: undefined, disabled: "env var K is not set" }
    const { recorded, record } = recorder()
    const mixed = new EndpointGroup(config(["http://a/v1", "http://b/v1"]), [keyless, noClient], record)
    expect(recorded.map((e) => e.type === "EndpointJoined" && e.endpoint)).toEqual(["http://b/v1"])
    expect(mixed.unusable).toBeUndefined()
    expect([take(mixed), take(mixed), take(mixed)].map((t) => t.endpoint?.url)).toEqual([
      "http://b/v1",
      "http://b/v1",
      undefined,
    ])
    expect(mixed.capacitySummary()).toBe("http://a/v1 disabled, http://b/v1 2/2 in flight")
    const none = new EndpointGroup(config(["http://a/v1"]), [keyless])
    expect(none.unusable).toBe("env var K is not set")
  })

  test("a 429 counts toward ejection and apart; probe failures eject a healthy endpoint; a probe returns it", () => {
    const { recorded, record } = recorder()
    const group = new EndpointGroup(config(["http://a/v1", "http://b/v1"]), [noClient, noClient], record)
    const [a, b] = group.endpoints
    const limited = { kind: "transient", code: "http_429", message: "slow down" } as const
    const ejects = (events: ReadonlyArray<{ type: string }>) =>
      events.some((e) => e.type === "EndpointEjected")
    expect(ejects(group.observeFailure(a!, limited, 0))).toBe(false)
    expect(ejects(group.observeFailure(a!, limited, 0))).toBe(false)
    expect(ejects(group.observeFailure(a!, limited, 0))).toBe(true)
    expect([a!.rateLimited, a!.failures, group.rateLimited, group.recordOf(a!)!.health]).toEqual([
      3,
      3,
      3,
      "ejected",
    ])
    // A bad request is nobody's fault but the caller's: not counted.
    group.observeFailure(b!, { kind: "request", code: "http_400", message: "too long" }, 0)
    expect([b!.calls, b!.failures, group.recordOf(b!)!.consecutiveFailures]).toEqual([0, 0, 0])
    const down = { answered: false, reason: "probe: down" } as const
    expect(ejects(group.observeProbe(b!, "health", down, 0))).toBe(false)
    group.observeProbe(b!, "health", { answered: true }, 0)
    expect(ejects(group.observeProbe(b!, "health", down, 0))).toBe(false)
    expect(ejects(group.observeProbe(b!, "health", down, 0))).toBe(false)
    expect(ejects(group.observeProbe(b!, "health", down, 0))).toBe(true)
    expect([
      b!.probeFailures,
      group.recordOf(b!)!.consecutiveProbeFailures,
      group.recordOf(b!)!.health,
    ]).toEqual([4, 3, "ejected"])
    expect(group.probesDue(0, "all").map((d) => `${d.endpoint.url} ${d.probe}`)).toEqual([
      "http://a/v1 return",
      "http://b/v1 return",
    ])
    expect(group.observeProbe(b!, "return", { answered: true }, 0).map((e) => e.type)).toEqual([
      "EndpointReturned",
    ])
    expect(group.observeProbe(b!, "return", { answered: true }, 0)).toEqual([])
    expect(group.recordOf(b!)!.consecutiveProbeFailures).toBe(0)
    expect(recorded.map((e) => `${e.type} ${"endpoint" in e ? e.endpoint : ""}`)).toEqual([
      "EndpointJoined http://a/v1",
      "EndpointJoined http://b/v1",
      "EndpointEjected http://a/v1",
      "EndpointEjected http://b/v1",
      "EndpointReturned http://b/v1",
    ])
  })

  test("a call waiting for a slot gets the endpoint that returns", async () => {
    const group = new EndpointGroup(config(["http://a/v1"], 1), [noClient])
    const [a] = group.endpoints
    group.observeFailure(a!, { kind: "transient", code: "timeout", message: "slow" }, 0)
    expect(take(group).endpoint).toBeUndefined()
    const waiting: Ticket = { endpoint: undefined }
    const wait = Effect.runPromise(group.acquire(waiting, undefined, undefined, 60_000))
    group.observeProbe(a!, "return", { answered: true }, 0)
    await wait
    expect(waiting.endpoint).toBe(a)
  })

  test("an update pauses every member at once; one becomes idle when its last call ends; calls wait for the update's end", async () => {
    const { recorded, record } = recorder()
    const group = new EndpointGroup(config(["http://a/v1", "http://b/v1"]), [noClient, noClient], record)
    const [a, b] = group.endpoints
    const inFlight = take(group)
    expect(inFlight.endpoint).toBe(a)
    expect(group.startUpdates("v2")).toEqual([a, b])
    // Paused, neither takes a call; a call waits rather than fails.
    expect(take(group).endpoint).toBeUndefined()
    const waiting: Ticket = { endpoint: undefined }
    const wait = Effect.runPromise(group.acquire(waiting, undefined, undefined, 60_000))
    expect(group.waiting).toBe(1)
    let idle = false
    const idled = Effect.runPromise(group.idle(a!)).then(() => {
      idle = true
    })
    await Effect.runPromise(group.idle(b!))
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(idle).toBe(false)
    group.release(inFlight)
    await idled
    expect(group.waiting).toBe(1)
    // b's update fails: ejected, still no call; a's succeeds: the waiting call gets it.
    group.observeUpdateFailed(b!, "pause: HTTP 500: no", 4, undefined)
    expect(group.waiting).toBe(1)
    group.observeUpdated(a!, "v2", 7, "sha")
    await wait
    expect(waiting.endpoint).toBe(a)
    expect(group.startUpdates("v2")).toEqual([b])
    expect(recorded.filter((e) => e.type !== "EndpointJoined")).toEqual([
      {
        type: "EndpointWeightsUpdated",
        model: "m",
        endpoint: "http://b/v1",
        version: "v2",
        ok: false,
        error: "pause: HTTP 500: no",
        ms: 4,
      },
      {
        type: "EndpointEjected",
        model: "m",
        endpoint: "http://b/v1",
        reason: "weight update to v2 failed: pause: HTTP 500: no",
        failures: 1,
      },
      {
        type: "EndpointWeightsUpdated",
        model: "m",
        endpoint: "http://a/v1",
        version: "v2",
        ok: true,
        ms: 7,
        checksum: "sha",
      },
    ])
  })

  /** What the shell may be told, in any order, about a group of three endpoints. */
  const operation = fc.oneof(
    fc.record({
      op: fc.constant("take" as const),
      affinity: fc.option(fc.constantFrom("e1", "e2"), { nil: undefined }),
    }),
    fc.record({ op: fc.constant("release" as const), index: fc.nat() }),
    fc.record({
      op: fc.constant("fail" as const),
      endpoint: fc.nat({ max: 2 }),
      kind: fc.constantFrom("transient", "endpoint", "request"),
      retryAfterMs: fc.option(fc.nat({ max: 100 }), { nil: undefined }),
    }),
    fc.record({ op: fc.constant("succeed" as const), endpoint: fc.nat({ max: 2 }) }),
    fc.record({
      op: fc.constant("probe" as const),
      endpoint: fc.nat({ max: 2 }),
      probe: fc.constantFrom("health", "return"),
      answered: fc.boolean(),
    }),
    fc.record({ op: fc.constant("tick" as const), ms: fc.nat({ max: 60 }) }),
  )

  propTest.prop([fc.array(operation, { minLength: 20, maxLength: 120 }), fc.integer({ min: 1, max: 3 })])(
    "an ejected endpoint is never routed to until a probe returns it",
    (operations, ejectAfterFailures) => {
      const urls = ["http://a/v1", "http://b/v1", "http://c/v1"]
      /** What the recorded events say, by URL: out from its ejection to its return. */
      const out = new Set<string>()
      const group = new EndpointGroup(
        config(urls, ejectAfterFailures),
        [noClient, noClient, noClient],
        (event) => {
          if (event.type === "EndpointEjected") out.add(event.endpoint)
          if (event.type === "EndpointReturned") out.delete(event.endpoint)
        },
      )
      const endpoints = group.endpoints
      const held: Array<Ticket> = []
      let now = 0
      for (const step of operations) {
        switch (step.op) {
          case "take": {
            const ticket = take(group, step.affinity)
            if (ticket.endpoint === undefined)
              expect(endpoints.some((e) => !out.has(e.url) && e.inFlight < e.maxConcurrency)).toBe(false)
            else {
              expect(out.has(ticket.endpoint.url)).toBe(false)
              held.push(ticket)
            }
            break
          }
          case "release":
            if (held.length > 0) group.release(held.splice(step.index % held.length, 1)[0]!)
            break
          case "fail":
            group.observeFailure(
              endpoints[step.endpoint]!,
              {
                kind: step.kind,
                code: "http_503",
                message: "down",
                ...(step.retryAfterMs === undefined ? {} : { retryAfterMs: step.retryAfterMs }),
              },
              now,
            )
            break
          case "succeed":
            group.observeSuccess(endpoints[step.endpoint]!, 1, undefined)
            break
          case "probe":
            group.observeProbe(
              endpoints[step.endpoint]!,
              step.probe,
              step.answered ? { answered: true } : { answered: false, reason: "probe: down" },
              now,
            )
            break
          case "tick":
            now += step.ms
            break
        }
        // The decider's health and the recorded events agree at every step.
        for (const endpoint of endpoints)
          expect(group.recordOf(endpoint)!.health === "ejected").toBe(out.has(endpoint.url))
      }
    },
  )
})

describe("pool events", () => {
  test("EndpointLeft is a valid event of its own", () => {
    const left = { type: "EndpointLeft", model: "m", endpoint: "http://a/v1", reason: "drain" } as const
    const meta = { eventId: "e1", recordedAt: "2026-01-01T00:00:00Z", correlationId: "m", causationId: "p" }
    expect(Result.isSuccess(encodeBodyJson({ ...meta, actor: "inference", event: left }))).toBe(true)
  })
})
