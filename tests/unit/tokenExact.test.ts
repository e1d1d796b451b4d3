/**
 * A token-exact model group (`tokens: exact`) on the pool's side, without a server: the key decodes
 * from models.yaml (default `text`; a bad value is an error with file, path and line); the request
 * asks for ids and one log-prob per token, always sends its temperature and sends reasoning back;
 * the answer's prompt ids, sampled ids, log-probs, temperature and weight versions (spans, else the
 * version header over every token) are read, and an answer lacking any of them is a `bad_response`;
 * a stream's first-chunk prompt ids reach the same completion; `weight_versions` are checked
 * (fast-check: never throws, accepted spans tile the sampled tokens); and a long prompt's ids go
 * to the blob store by hash and read back whole.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test as prop } from "@fast-check/vitest"
import { Effect, Exit, Result, Scope } from "effect"
import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions"
import { afterEach, describe, expect, it } from "vitest"
import {
  type ConfigError,
  loadModelsConfig,
  type ModelConfig,
  modelsConfigFrom,
} from "../../src/actors/inference/modelsConfig.ts"
import { readWeightVersions } from "../../src/actors/inference/pool/exactTokens.ts"
import {
  type CompletionRequest,
  readCompletion,
  requestBody,
} from "../../src/actors/inference/pool/openAiCall.ts"
import { StreamAssembly } from "../../src/actors/inference/pool/streamingCall.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { DomainEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"

const tempDirs: Array<string> = []
const tempDir = (files: Record<string, string> = {}): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-exact-"))
  tempDirs.push(dir)
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}
afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const groupOf = (extra: Record<string, unknown>): ModelConfig =>
  Result.getOrThrow(
    modelsConfigFrom({ agent: { served: "Qwen3-4B", endpoints: [{ url: "http://x/v1" }], ...extra } }),
  ).models.agent!

const exact = groupOf({ tokens: "exact" })
const text = groupOf({})

const request: CompletionRequest = {
  model: "agent",
  requestId: "ep/model/2",
  messages: [
    { role: "user", content: "q" },
    {
      role: "assistant",
      content: "",
      reasoning: "I should search.",
      toolCalls: [{ callId: "c1", tool: "search", arguments: { q: "x" } }],
    },
    { role: "tool", content: "r", toolCallId: "c1" },
  ],
  maxTokens: 100,
}

describe("the tokens key of a model group", () => {
  it("decodes exact, defaults to text, and names file, path and line of a bad value", () => {
    expect(exact.tokens).toBe("exact")
    expect(text.tokens).toBe("text")
    const good = tempDir({
      "models.yaml":
        "models:\n  policy:\n    endpoints:\n      - url: http://127.0.0.1:8000/v1\n    tokens: exact\n",
    })
    expect(Effect.runSync(loadModelsConfig({ dir: good, env: {} })).models.policy?.tokens).toBe("exact")
    const bad = tempDir({
      "models.yaml":
        "models:\n  policy:\n    endpoints:\n      - url: http://127.0.0.1:8000/v1\n    tokens: exactly\n",
    })
    const failure = Effect.runSync(Effect.flip(loadModelsConfig({ dir: bad, env: {} }))) as ConfigError
    expect(failure).toMatchObject({ path: "models.policy.tokens", line: 5 })
    expect(failure.message).toContain("models.yaml")
  })
})

describe("a token-exact request", () => {
  it("asks for ids and one log-prob per token, sends its temperature and sends reasoning back", () => {
    const body = requestBody(exact, request) as unknown as Record<string, unknown>
    expect(body).toMatchObject({ return_token_ids: true, logprobs: true, top_logprobs: 0, temperature: 1 })
    expect((body.messages as Array<unknown>)[1]).toEqual({
      role: "assistant",
      content: "",
      reasoning_content: "I should search.",
      tool_calls: [{ id: "c1", type: "function", function: { name: "search", arguments: '{"q":"x"}' } }],
    })
    expect(requestBody(exact, { ...request, temperature: 0.6 })).toMatchObject({ temperature: 0.6 })
    const configured = groupOf({ tokens: "exact", extraBody: { temperature: 0.7 } })
    expect(requestBody(configured, request)).toMatchObject({ temperature: 0.7 })
  })

  it("a text group sends none of it, and never the reasoning", () => {
    const body = requestBody(text, request) as unknown as Record<string, unknown>
    for (const key of ["return_token_ids", "logprobs", "top_logprobs", "temperature"])
      expect(body).not.toHaveProperty(key)
    expect((body.messages as Array<unknown>)[1]).not.toHaveProperty("reasoning_content")
  })
})

const entry = (logprob: number) => ({ token: "t", logprob, bytes: [], top_logprobs: [] })
const answer = (choiceExtra: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  ({
    id: "x",
    object: "chat.completion",
    created: 0,
    model: "Qwen3-4B",
    choices: [
      {
        index: 0,
        finish_reason: "stop",
        message: { role: "assistant", content: "ok" },
        logprobs: { content: [entry(-0.25), entry(-1.5), entry(0)] },
        token_ids: [11, 12, 13],
        ...choiceExtra,
      },
    ],
    usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 },
    prompt_token_ids: [1, 2, 3, 4],
    ...top,
  }) as unknown as ChatCompletion

const read = (data: ChatCompletion, headers: Record<string, string> = {}, config = exact) =>
  readCompletion(config, request, data, new Headers(headers), "http://x/v1", 5)

describe("a token-exact answer", () => {
  it("carries prompt ids, sampled ids, log-probs, temperature and the versions of its spans", () => {
    const spans = [
      { version: 6, start: 0, end: 2 },
      { version: "7", start: 2, end: 3 },
    ]
    expect(read(answer({ weight_versions: spans }), { "x-policy-version": "7" })).toMatchObject({
      promptTokenIds: [1, 2, 3, 4],
      tokenIds: [11, 12, 13],
      logprobs: [-0.25, -1.5, 0],
      temperature: 1,
      policyVersion: "7",
      weightVersions: [
        { version: "6", start: 0, end: 2 },
        { version: "7", start: 2, end: 3 },
      ],
    })
  })

  it("without spans, the version read with the response covers every sampled token; without either, none", () => {
    expect(read(answer({}), { "x-policy-version": "step-9" })).toMatchObject({
      weightVersions: [{ version: "step-9", start: 0, end: 3 }],
    })
    expect(read(answer({}))).not.toHaveProperty("weightVersions")
  })

  it("an answer lacking any of it is the endpoint's bad_response, saying what is missing", () => {
    const missing = [
      [answer({}, { prompt_token_ids: undefined }), /no prompt_token_ids/],
      [answer({ token_ids: undefined }), /no token_ids/],
      [answer({ token_ids: [1, 2.5, 3] }), /no token_ids/],
      [answer({ logprobs: { content: [entry(-1)] } }), /1 log-probs for 3 sampled tokens/],
      [answer({ logprobs: null }), /no log-probs for 3/],
      [answer({ weight_versions: [{ version: "1", start: 0, end: 2 }] }), /cover 2 of 3/],
    ] as const
    for (const [data, message] of missing)
      expect(read(data)).toMatchObject({ kind: "endpoint", code: "bad_response", message })
  })

  it("a text group reads ids as before and nothing more", () => {
    const completion = read(answer({}), { "x-policy-version": "7" }, groupOf({ returnTokenIds: true }))
    expect(completion).toMatchObject({ tokenIds: [11, 12, 13], logprobs: [-0.25, -1.5, 0] })
    for (const key of ["promptTokenIds", "temperature", "weightVersions"])
      expect(completion).not.toHaveProperty(key)
  })

  it("a stream's first-chunk prompt ids and per-chunk ids assemble to the same completion", () => {
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      ({
        id: "x",
        object: "chat.completion.chunk",
        created: 0,
        model: "Qwen3-4B",
        choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }],
        ...extra,
      }) as unknown as ChatCompletionChunk
    const assembly = new StreamAssembly()
    assembly.add(
      chunk({ delta: { role: "assistant", content: "" }, token_ids: [] }, { prompt_token_ids: [1, 2, 3, 4] }),
    )
    assembly.add(chunk({ delta: { content: "o" }, token_ids: [11], logprobs: { content: [entry(-0.25)] } }))
    assembly.add(chunk({ delta: { content: "k" }, token_ids: [12], logprobs: { content: [entry(-1.5)] } }))
    assembly.add(
      chunk({ delta: {}, token_ids: [13], logprobs: { content: [entry(0)] }, finish_reason: "stop" }),
    )
    assembly.add({
      ...chunk({}),
      choices: [],
      usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 },
    })
    const streamed = read(assembly.toBody(true))
    const plain = read(answer({}))
    expect(streamed).toEqual(plain)
  })
})

describe("weight_versions", () => {
  prop.prop([fc.jsonValue(), fc.nat({ max: 50 })])(
    "reading them never throws; what it accepts tiles the tokens",
    (raw, count) => {
      const read = readWeightVersions(raw, count)
      if ("problem" in read) return
      let next = 0
      for (const span of read) {
        expect(span.start).toBe(next)
        expect(span.end).toBeGreaterThan(span.start)
        next = span.end
      }
      expect(next).toBe(count)
    },
  )

  prop.prop([fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 8 })])(
    "consecutive spans are read as sent",
    (lengths) => {
      let start = 0
      const spans = lengths.map((length, i) => {
        const span = { version: i, start, end: start + length }
        start += length
        return span
      })
      expect(readWeightVersions(spans, start)).toEqual(
        spans.map((s) => ({ ...s, version: String(s.version) })),
      )
    },
  )
})

describe("long prompt ids", () => {
  it("go to the blob store by hash and read back whole", async () => {
    const dataDir = tempDir()
    const promptTokenIds = Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 151_936)
    const event: DomainEvent = {
      type: "ModelResponded",
      episodeId: "ep",
      turn: 1,
      requestId: "ep/model/1",
      endpoint: "http://x/v1",
      latencyMs: 5,
      finishReason: "stop",
      content: "ok",
      usage: { promptTokens: promptTokenIds.length, completionTokens: 2 },
      tokenIds: [11, 12],
      logprobs: [-0.5, -0.25],
      promptTokenIds,
      temperature: 1,
      weightVersions: [{ version: "3", start: 0, end: 2 }],
    }
    const scope = Effect.runSync(Scope.make())
    try {
      const log = await Effect.runPromise(
        Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace: "exact", fsync: "never" })),
      )
      const subject = entitySubject("exact", "episode", "ep")
      await Effect.runPromise(
        log.append(subject, [
          {
            eventId: "e1",
            recordedAt: "2026-01-01T00:00:00.000Z",
            correlationId: "ep",
            causationId: "ep",
            actor: "agent",
            event,
          },
        ]),
      )
      const line = fs
        .readFileSync(path.join(dataDir, "log", "exact", "events.ndjson"), "utf8")
        .split("\n")[0]!
      const stored = JSON.parse(line) as { body: { blobs?: unknown; event: Record<string, unknown> } }
      expect(stored.body.blobs).toEqual([["promptTokenIds"]])
      expect(stored.body.event.promptTokenIds).toMatchObject({ $blob: { mediaType: "application/json" } })
      expect(line.length).toBeLessThan(4096)
      const read = await Effect.runPromise(readEvents(log, { filter: subject }))
      expect(read.undecodable).toEqual([])
      expect(read.state.map((envelope) => envelope.event)).toEqual([event])
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})
