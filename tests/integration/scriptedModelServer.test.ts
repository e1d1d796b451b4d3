/**
 * The scripted model server (a test double for a GPU inference server) against the official openai
 * client over real loopback HTTP: plain and streamed completions with tool calls, usage, log-probs
 * and token ids, per-episode sequences under concurrency, scripted HTTP failures and cut streams,
 * token auth, bad input, the test-double labelling, and a `stop()` that frees the port. Episodes
 * named in the `x-rollout-episode` header (as the inference pool sends it): a retried turn is the
 * same sample, two servers answer the same episodes alike, a malformed header is refused. Every
 * test is bounded to a few dozen requests.
 */
import * as http from "node:http"
import * as net from "node:net"
import { Effect, Result } from "effect"
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  RateLimitError,
} from "openai"
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTokenLogprob,
} from "openai/resources/chat/completions"
import { afterEach, describe, expect, it } from "vitest"
import { EPISODE_HEADER } from "../../src/actors/inference/episodeHeader.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import { countTokens } from "../../src/programs/scriptedModel/pseudoTokens.ts"
import {
  parseScriptName,
  type Script,
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  type ScriptedReply,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { acquire } from "../support/scoped.ts"

const started: Array<ScriptedModelServer> = []
const closers: Array<() => Promise<void>> = []
const start = async (options: ScriptedModelServerOptions): Promise<ScriptedModelServer> => {
  const server = await startScriptedModelServer(options)
  started.push(server)
  return server
}
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  await Promise.all(started.splice(0).map((server) => server.stop()))
})

const clientFor = (server: ScriptedModelServer, apiKey = "x", timeout?: number): OpenAI =>
  new OpenAI({ baseURL: server.url, apiKey, maxRetries: 0, ...(timeout === undefined ? {} : { timeout }) })

/** The rejection of a promise (undefined when it resolved), for asserting on typed client errors. */
const errorOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  )

const task = (question: string): Array<ChatCompletionMessageParam> => [
  { role: "system", content: "You are a research agent." },
  { role: "user", content: `Your task is to answer the user's question: ${question}.` },
]

/** One non-streaming turn of a fresh episode. */
const ask = (client: OpenAI, question: string) =>
  client.chat.completions.create({ model: "scripted", messages: task(question) })

const rich: ScriptedReply = {
  reasoning: "I should look this up twice.",
  content: "Searching now.",
  toolCalls: [
    { name: "search", arguments: { queries: ["capital of France", "Paris population"], top_k: 5 } },
    { name: "fetch_url", arguments: { urls: ["https://example.org/a"], purpose: "find the population" } },
  ],
}

/** Accumulates stream deltas the way an agent loop would. */
const accumulate = (chunks: ReadonlyArray<ChatCompletionChunk>) => {
  let content = ""
  let reasoning = ""
  let finishReason: string | null = null
  const calls: Array<{ id: string; name: string; arguments: string; pieces: number }> = []
  const logprobs: Array<ChatCompletionTokenLogprob> = []
  for (const chunk of chunks) {
    const choice = chunk.choices[0]
    if (choice === undefined) continue
    const delta = choice.delta as typeof choice.delta & { reasoning_content?: string }
    content += delta.content ?? ""
    reasoning += delta.reasoning_content ?? ""
    for (const call of delta.tool_calls ?? []) {
      calls[call.index] ??= { id: "", name: "", arguments: "", pieces: 0 }
      const slot = calls[call.index]!
      if (call.id !== undefined) slot.id = call.id
      if (call.function?.name !== undefined) slot.name = call.function.name
      if (call.function?.arguments) {
        slot.arguments += call.function.arguments
        slot.pieces++
      }
    }
    logprobs.push(...(choice.logprobs?.content ?? []))
    finishReason = choice.finish_reason ?? finishReason
  }
  return { content, reasoning, finishReason, calls, logprobs }
}

describe("completions through the official openai client", () => {
  it("answers a non-streaming request with content, usage and the test-double labels", async () => {
    const lines: Array<string> = []
    const server = await start({ script: scripts.echo(), log: (line) => lines.push(line) })
    const messages = task("What is the capital of France?")
    const { data, response } = await clientFor(server)
      .chat.completions.create({ model: "scripted", messages })
      .withResponse()

    expect(response.headers.get("x-rollout-test-double")).toBe("scripted")
    expect(data.system_fingerprint).toBe("rollout-scripted-test-double")
    expect(data.object).toBe("chat.completion")
    expect(data.choices[0]?.message.content).toBe(
      "Your task is to answer the user's question: What is the capital of France?.",
    )
    expect(data.choices[0]?.finish_reason).toBe("stop")
    expect(data.choices[0]?.logprobs).toBeNull()
    // Prompt tokens, through the documented template and pseudo-tokenizer: per message <|im_start|>,
    // its role line, its text and <|im_end|>; then the generation prompt <|im_start|>assistant\n.
    const prompt =
      messages.reduce((sum, m) => sum + 2 + countTokens(`${m.role}\n`) + countTokens(String(m.content)), 0) +
      1 +
      countTokens("assistant\n")
    // The turn's tokens, then the <|im_end|> it stopped with.
    const completion = countTokens(data.choices[0]?.message.content ?? "") + 1
    expect(data.usage).toEqual({
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
    })
    expect(lines).toEqual([
      `scripted model server (TEST DOUBLE, not a real model) listening on ${server.url}`,
    ])
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    expect(server.requests.map((r) => [r.method, r.path, r.status, r.callIndex])).toEqual([
      ["POST", "/v1/chat/completions", 200, 0],
    ])
    expect(server.requests[0]?.headers.authorization).toBe("<redacted>")
  })

  it("labels the model list and health as a test double", async () => {
    const server = await start({ script: scripts.echo(), models: ["qwen3-4b", "minicpm4"] })
    const models = await clientFor(server).models.list()
    expect(models.data.map((m) => [m.id, m.owned_by])).toEqual([
      ["qwen3-4b", "rollout-scripted-test-double"],
      ["minicpm4", "rollout-scripted-test-double"],
    ])
    const health = await fetch(server.url.replace(/\/v1$/, "/health"))
    expect(health.status).toBe(200)
    expect(health.headers.get("x-rollout-test-double")).toBe("scripted")
    expect(await health.json()).toEqual({ status: "ok", test_double: "scripted" })
  })

  it("runs an echo-tool episode: tool calls round-trip until the answer", async () => {
    const server = await start({ script: scripts.echoTool({ tool: "search", turns: 3 }) })
    const client = clientFor(server)
    const messages = task("Round trip")
    const finishes: Array<string> = []
    for (let turn = 0; turn < 10; turn++) {
      const completion = await client.chat.completions.create({
        model: "scripted",
        messages,
        tools: [{ type: "function", function: { name: "search", parameters: { type: "object" } } }],
      })
      const choice = completion.choices[0]!
      finishes.push(choice.finish_reason)
      messages.push(choice.message as ChatCompletionMessageParam)
      if (choice.finish_reason !== "tool_calls") break
      for (const call of choice.message.tool_calls ?? []) {
        if (call.type !== "function") throw new Error("expected a function call")
        const args = JSON.parse(call.function.arguments) as { text: string }
        messages.push({ role: "tool", tool_call_id: call.id, content: `echo: ${args.text}` })
      }
    }
    expect(finishes).toEqual(["tool_calls", "tool_calls", "tool_calls", "stop"])
    const calls = messages.flatMap((m) => (m.role === "assistant" ? (m.tool_calls ?? []) : []))
    expect(calls.map((c) => (c.type === "function" ? [c.function.name, c.function.arguments] : []))).toEqual([
      ["search", '{"text":"turn 1"}'],
      ["search", '{"text":"turn 2"}'],
      ["search", '{"text":"turn 3"}'],
    ])
    expect(new Set(calls.map((c) => c.id)).size).toBe(3)
    expect(messages.at(-1)).toMatchObject({ role: "assistant", content: "<answer>done</answer>" })
  })

  it("streams reasoning, content and tool-call arguments in pieces that reassemble to the plain reply", async () => {
    const server = await start({ script: () => rich })
    const client = clientFor(server)
    const request = { model: "scripted", messages: task("Stream"), logprobs: true, top_logprobs: 2 }
    const plain = await client.chat.completions.create(request)
    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks: Array<ChatCompletionChunk> = []
    for await (const chunk of stream) chunks.push(chunk)
    const streamed = accumulate(chunks)

    expect(chunks.every((c) => c.system_fingerprint === "rollout-scripted-test-double")).toBe(true)
    expect(streamed.content).toBe("Searching now.")
    expect(streamed.reasoning).toBe("I should look this up twice.")
    expect(streamed.finishReason).toBe("tool_calls")
    expect(streamed.calls.map((c) => [c.name, JSON.parse(c.arguments)])).toEqual(
      rich.toolCalls!.map((c) => [c.name, c.arguments]),
    )
    expect(streamed.calls.every((c) => c.pieces > 3)).toBe(true)
    // Same request, same answer: ids, arguments, log-probs and usage agree with the non-streamed one.
    const message = plain.choices[0]!.message as ChatCompletion["choices"][0]["message"] & {
      reasoning_content?: string
    }
    expect(message.reasoning_content).toBe(streamed.reasoning)
    expect(
      message.tool_calls?.map((c) =>
        c.type === "function" ? [c.id, c.function.name, c.function.arguments] : [],
      ),
    ).toEqual(streamed.calls.map((c) => [c.id, c.name, c.arguments]))
    expect(streamed.logprobs).toEqual(plain.choices[0]!.logprobs!.content)
    const usageChunk = chunks.at(-1)!
    expect(usageChunk.choices).toEqual([])
    expect(usageChunk.usage).toEqual(plain.usage)
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true)
  })

  it("agrees with the openai client's own stream accumulator", async () => {
    const server = await start({ script: () => rich })
    const final = await clientFor(server)
      .chat.completions.stream({ model: "scripted", messages: task("Helper") })
      .finalChatCompletion()
    const calls = final.choices[0]!.message.tool_calls ?? []
    expect(calls.map((c) => (c.type === "function" ? JSON.parse(c.function.arguments) : undefined))).toEqual(
      rich.toolCalls!.map((c) => c.arguments),
    )
    expect(final.choices[0]!.finish_reason).toBe("tool_calls")
  })

  it("returns deterministic log-probs covering every generated token, and vLLM-style token ids", async () => {
    const server = await start({ script: () => ({ content: "The answer is forty-two." }) })
    const client = clientFor(server)
    const params: ChatCompletionCreateParamsNonStreaming & { return_token_ids: boolean } = {
      model: "scripted",
      messages: task("Logprobs"),
      logprobs: true,
      top_logprobs: 3,
      return_token_ids: true,
    }
    type WithIds = ChatCompletion & {
      prompt_token_ids: Array<number>
      choices: Array<{ token_ids: Array<number> }>
    }
    const first = (await client.chat.completions.create(params)) as WithIds
    const second = (await client.chat.completions.create(params)) as WithIds
    const entries = first.choices[0]!.logprobs!.content!
    // Every sampled token, the end-of-turn token included (as vLLM's log-probs cover it).
    expect(entries.map((e) => e.token).join("")).toBe("The answer is forty-two.<|im_end|>")
    expect(entries.length).toBe(first.usage!.completion_tokens)
    for (const entry of entries) {
      expect(entry.logprob).toBeLessThanOrEqual(0)
      expect(entry.top_logprobs).toHaveLength(3)
      expect(entry.top_logprobs[0]).toMatchObject({ token: entry.token, logprob: entry.logprob })
    }
    expect(first.choices[0]!.token_ids).toHaveLength(entries.length)
    expect(first.prompt_token_ids).toHaveLength(first.usage!.prompt_tokens)
    expect(second.choices[0]!.logprobs).toEqual(first.choices[0]!.logprobs)
    expect(second.prompt_token_ids).toEqual(first.prompt_token_ids)
  })

  it("keeps a separate sequence per episode when episodes run concurrently", async () => {
    const replies = ["first", "second", "third"].map((content) => ({ content }))
    const server = await start({ script: scripts.sequence(replies), latencyMs: (r) => r.messages.length % 3 })
    const client = clientFor(server)
    const episode = async (n: number): Promise<Array<string | null>> => {
      const messages = task(`Question ${n}`)
      const answers: Array<string | null> = []
      for (let turn = 0; turn < 3; turn++) {
        const completion = await client.chat.completions.create({ model: "scripted", messages })
        answers.push(completion.choices[0]!.message.content)
        messages.push({ role: "assistant", content: completion.choices[0]!.message.content })
        messages.push({ role: "user", content: "go on" })
      }
      return answers
    }
    const results = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(episode))
    expect(results).toEqual(Array.from({ length: 8 }, () => ["first", "second", "third"]))
    expect(new Set(server.requests.map((r) => r.episodeKey)).size).toBe(8)
    // A fourth request of an episode has no reply left: a loud 500, not a silent repeat.
    const exhausted = await errorOf(ask(client, "Question 0"))
    expect(exhausted).toBeInstanceOf(InternalServerError)
    expect((exhausted as InternalServerError).code).toBe("script_exhausted")
  })

  it("answers from a table keyed by the last user or tool message", async () => {
    const script = scripts.fromTable({
      rules: [
        { match: "ping", reply: { content: "pong" } },
        { match: /^echo: turn \d+$/g, reply: { content: "<answer>tool seen</answer>" } },
      ],
      default: { content: "unknown" },
    })
    const server = await start({ script })
    const client = clientFor(server)
    const ask = async (messages: Array<ChatCompletionMessageParam>) =>
      (await client.chat.completions.create({ model: "scripted", messages })).choices[0]!.message.content
    expect(await ask([{ role: "user", content: "ping" }])).toBe("pong")
    expect(await ask([{ role: "user", content: "ping!" }])).toBe("unknown")
    const withTool: Array<ChatCompletionMessageParam> = [
      { role: "user", content: "task" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "c1", type: "function", function: { name: "echo", arguments: "{}" } }],
      },
      { role: "tool", tool_call_id: "c1", content: "echo: turn 1" },
    ]
    // Twice: a global RegExp must not keep state between requests.
    expect(await ask(withTool)).toBe("<answer>tool seen</answer>")
    expect(await ask(withTool)).toBe("<answer>tool seen</answer>")
  })
})

describe("failures", () => {
  it("surfaces scripted 429 and 500 as the client's typed errors", async () => {
    const server = await start({ script: scripts.failing({ every: 2, status: 429 }, scripts.echo()) })
    const client = clientFor(server)
    await expect(ask(client, "Fail")).resolves.toMatchObject({ object: "chat.completion" })
    const limited = await errorOf(ask(client, "Fail"))
    expect(limited).toBeInstanceOf(RateLimitError)
    expect((limited as RateLimitError).status).toBe(429)
    expect((limited as RateLimitError).headers.get("x-rollout-test-double")).toBe("scripted")

    server.setScript(() => ({ error: { status: 500, message: "GPU fell over", retryAfterSeconds: 1 } }))
    const failed = await errorOf(ask(client, "Fail"))
    expect(failed).toBeInstanceOf(InternalServerError)
    expect(failed).toMatchObject({ status: 500, type: "server_error" })
    expect((failed as InternalServerError).message).toContain("GPU fell over")
    expect((failed as InternalServerError).headers.get("retry-after")).toBe("1")

    server.setScript(() => {
      throw new Error("bug in the script")
    })
    await expect(ask(client, "Fail")).rejects.toMatchObject({ status: 500, code: "script_error" })
  })

  it("cuts a stream mid-way when the script says so: a reset connection, or an end without a finish", async () => {
    const server = await start({ script: () => ({ ...rich, cutStream: { afterEvents: 4 } }) })
    const client = clientFor(server)
    const streamOf = () =>
      client.chat.completions.create({ model: "scripted", messages: task("Cut"), stream: true })
    const received: Array<ChatCompletionChunk> = []
    const reset = await errorOf(
      (async () => {
        for await (const chunk of await streamOf()) received.push(chunk)
      })(),
    )
    // The client saw the first events, then the connection broke before the body's end.
    expect(received.length).toBe(4)
    expect(reset).toBeInstanceOf(Error)
    expect(String((reset as Error).cause)).toMatch(/closed|reset|terminated/i)

    server.setScript(() => ({ ...rich, cutStream: { afterEvents: 4, how: "end" } }))
    const ended: Array<ChatCompletionChunk> = []
    for await (const chunk of await streamOf()) ended.push(chunk)
    expect(ended.length).toBe(4)
    expect(accumulate(ended).finishReason).toBeNull()
    // A request that does not stream ignores the cut.
    await expect(ask(client, "Whole")).resolves.toMatchObject({ object: "chat.completion" })
  })

  it("hangs past the client's timeout, and stop() ends the hanging request", async () => {
    const server = await start({ script: () => ({ content: "too late", hangMs: 60_000 }) })
    const timedOut = await errorOf(ask(clientFor(server, "x", 200), "Hang"))
    expect(timedOut).toBeInstanceOf(APIConnectionTimeoutError)
    let reached: () => void = () => {}
    const scriptReached = new Promise<void>((resolve) => {
      reached = resolve
    })
    server.setScript(() => {
      reached()
      return { content: "too late", hangMs: 60_000 }
    })
    const outcome = errorOf(ask(clientFor(server), "Hang 2"))
    await scriptReached
    const began = Date.now()
    await server.stop()
    expect(await outcome).toBeInstanceOf(APIConnectionError)
    expect(Date.now() - began).toBeLessThan(5_000)
    expect(server.requests.map((r) => r.status)).toEqual([undefined, undefined])
  })

  it("requires the bearer token when started with one", async () => {
    const server = await start({ script: scripts.echo(), token: "s3cret" })
    const wrong = await errorOf(ask(clientFor(server, "wrong"), "Auth"))
    expect(wrong).toBeInstanceOf(AuthenticationError)
    expect((wrong as AuthenticationError).status).toBe(401)
    const bare = await fetch(`${server.url}/models`)
    expect(bare.status).toBe(401)
    expect(((await bare.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key")
    await expect(ask(clientFor(server, "s3cret"), "Auth")).resolves.toMatchObject({
      object: "chat.completion",
    })
    expect((await fetch(server.url.replace(/\/v1$/, "/health"))).status).toBe(200)
  })

  it("rejects bad input with 400 and an OpenAI-style error body, and oversized bodies with 413", async () => {
    const server = await start({ script: scripts.echo(), models: ["qwen3-4b"] })
    const post = (body: string) =>
      fetch(`${server.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      })
    const refusal = async (body: string) => {
      const response = await post(body)
      return { status: response.status, ...((await response.json()) as { error: object }) }
    }
    expect(await refusal("{not json")).toMatchObject({
      status: 400,
      error: { type: "invalid_request_error", code: "invalid_json", param: null },
    })
    expect(await refusal(JSON.stringify({ model: "qwen3-4b" }))).toMatchObject({
      status: 400,
      error: { code: "missing_messages", param: "messages" },
    })
    const unknownModel = await errorOf(
      clientFor(server).chat.completions.create({ model: "gpt-9", messages: task("Model") }),
    )
    expect(unknownModel).toBeInstanceOf(BadRequestError)
    expect(unknownModel).toMatchObject({ status: 400, code: "model_not_found" })

    const huge = await post(JSON.stringify({ messages: [{ role: "user", content: "x".repeat(33 << 20) }] }))
    expect(huge.status).toBe(413)
    expect(huge.headers.get("x-rollout-test-double")).toBe("scripted")
    // None of these reached the script.
    expect(server.requests.every((r) => r.callIndex === undefined)).toBe(true)
  })
})

describe("episodes named by the x-rollout-episode header", () => {
  const QUESTION = "In which town was the engineer who designed Brackwater Bridge born?"
  const TOOLS = [
    { type: "function" as const, function: { name: "search", parameters: { type: "object" } } },
    { type: "function" as const, function: { name: "fetch_url", parameters: { type: "object" } } },
  ]
  /** The first turn of an episode of the researcher; every sample of the task sends this same body. */
  const firstTurn = (client: OpenAI, episodeId?: string) =>
    client.chat.completions.create(
      { model: "scripted", messages: task(QUESTION), tools: TOOLS },
      episodeId === undefined ? {} : { headers: { [EPISODE_HEADER]: episodeId } },
    )
  const decisionOf = (completion: ChatCompletion) => {
    const message = completion.choices[0]!.message
    return { content: message.content, toolCalls: message.tool_calls }
  }

  it("answers a retried turn as the same sample, and two servers the same episodes alike", async () => {
    const a = clientFor(await start({ script: scripts.researcher({ seed: 0 }) }))
    const serverB = await start({ script: scripts.researcher({ seed: 0 }) })
    const b = clientFor(serverB)
    const episodes = [0, 1, 2, 3, 4, 5].map((k) => `run-x/q1/${k}`)
    const onA = new Map<string, ReturnType<typeof decisionOf>>()
    for (const id of episodes) onA.set(id, decisionOf(await firstTurn(a, id)))
    // Server B: the other order, two turns asked again (the first answers lost in a crash), and
    // requests that name no episode in between.
    for (const id of [...episodes].reverse()) {
      await firstTurn(b)
      expect(decisionOf(await firstTurn(b, id))).toEqual(onA.get(id))
    }
    for (const id of [episodes[0]!, episodes[3]!]) {
      expect(decisionOf(await firstTurn(b, id))).toEqual(onA.get(id))
      expect(decisionOf(await firstTurn(a, id))).toEqual(onA.get(id))
    }
    expect(episodes.map((id) => onA.get(id)?.toolCalls?.[0]?.id)).toEqual(
      [0, 1, 2, 3, 4, 5].map((k) => `call_n${k}_t1`),
    )
    expect(new Set(episodes.map((id) => JSON.stringify(onA.get(id)))).size).toBeGreaterThan(1)
    expect(serverB.requests.filter((r) => r.episodeId !== undefined).map((r) => r.episodeId)).toEqual([
      ...[...episodes].reverse(),
      episodes[0],
      episodes[3],
    ])
  })

  it("without the header, falls back to arrival order: the same turn asked again is a new sample", async () => {
    const server = await start({ script: scripts.researcher({ seed: 0 }) })
    const client = clientFor(server)
    const ids = [await firstTurn(client), await firstTurn(client)].map(
      (c) => decisionOf(c).toolCalls?.[0]?.id,
    )
    expect(ids).toEqual(["call_n0_t1", "call_n1_t1"])
    expect(server.requests.map((r) => r.episodeId)).toEqual([undefined, undefined])
  })

  it("gives a turn the pool asks again after a lost answer the sample it was first given", async () => {
    // The first answer to each episode's first turn is cut mid-stream, as by a crash after the
    // script has answered: the pool retries it, and the retry must not be taken for a new sample.
    const researcher = scripts.researcher({ seed: 0 })
    const lost = new Set<string>()
    const losing: Script = async (request, context) => {
      const reply = await researcher(request, context)
      const key = context.episodeId ?? ""
      if (lost.has(key)) return reply
      lost.add(key)
      return { ...reply, cutStream: { afterEvents: 1 } }
    }
    const flaky = await start({ script: losing })
    const steady = await start({ script: scripts.researcher({ seed: 0 }) })
    const poolOn = async (server: ScriptedModelServer) => {
      const config = Result.getOrThrow(
        modelsConfigFrom({ agent: { endpoints: [{ url: server.url }], stream: true, backoffMs: 0 } }),
      )
      const { value, close } = await acquire(makeInferencePool(config))
      closers.push(close)
      return value
    }
    const [flakyPool, steadyPool] = [await poolOn(flaky), await poolOn(steady)]
    const call = (pool: typeof flakyPool, episodeId: string) =>
      Effect.runPromise(
        pool.complete({
          model: "agent",
          requestId: `${episodeId}/model/1`,
          episodeId,
          messages: [{ role: "user", content: `Your task is to answer the user's question: ${QUESTION}.` }],
          tools: TOOLS.map((t) => ({ name: t.function.name, parameters: t.function.parameters })),
        }),
      )
    for (const episodeId of ["run-y/q1/0", "run-y/q1/1", "run-y/q1/2"]) {
      const retried = await call(flakyPool, episodeId)
      const once = await call(steadyPool, episodeId)
      expect(retried.toolCalls).toEqual(once.toolCalls)
      expect(retried.content).toBe(once.content)
      expect(retried.toolCalls?.[0]?.callId).toBe(`call_n${episodeId.slice(-1)}_t1`)
    }
    // Each first turn reached the flaky server twice, named both times.
    expect(flaky.requests.map((r) => r.episodeId)).toEqual(
      ["run-y/q1/0", "run-y/q1/1", "run-y/q1/2"].flatMap((id) => [id, id]),
    )
  })

  it("reads the episode the inference pool names, percent-encoded where a header needs it", async () => {
    const server = await start({ script: scripts.sequence([{ content: "one" }, { content: "two" }]) })
    const config = Result.getOrThrow(
      modelsConfigFrom({
        plain: { endpoints: [{ url: server.url }] },
        streamed: { endpoints: [{ url: server.url }], stream: true },
      }),
    )
    const { value: pool, close } = await acquire(makeInferencePool(config))
    closers.push(close)
    // Beyond U+00FF too: Node refuses such a header value, and task ids come from datasets.
    const episodeId = "run 1/Müller 日本%/0"
    const messages = [{ role: "user" as const, content: "Your task is to answer the user's question: Who?." }]
    for (const model of ["plain", "streamed"]) {
      const completion = await Effect.runPromise(
        pool.complete({ model, requestId: `${episodeId}/model/${model}`, episodeId, messages }),
      )
      const last = server.requests[server.requests.length - 1]!
      expect(last.episodeId).toBe(episodeId)
      expect(last.headers[EPISODE_HEADER]).toBe("run%201/M%C3%BCller%20%E6%97%A5%E6%9C%AC%25/0")
      expect(last.headers["x-request-id"]).toBe(
        `run%201/M%C3%BCller%20%E6%97%A5%E6%9C%AC%25/0/model/${model}`,
      )
      // The same episode walks one sequence across both calls.
      expect(completion.content).toBe(model === "plain" ? "one" : "two")
    }
    // A call outside an episode (a judge's) names none.
    await Effect.runPromise(pool.complete({ model: "plain", requestId: "judge/1", messages }))
    expect(server.requests[server.requests.length - 1]!.headers[EPISODE_HEADER]).toBeUndefined()
  })

  it("keeps a sequence per named episode, even for the samples of one task", async () => {
    const server = await start({ script: scripts.sequence([{ content: "first" }, { content: "second" }]) })
    const client = clientFor(server)
    const turn = (episodeId: string) =>
      client.chat.completions.create(
        { model: "scripted", messages: task("Same task") },
        { headers: { [EPISODE_HEADER]: episodeId } },
      )
    const answers = []
    for (const id of ["r/t/0", "r/t/1", "r/t/0", "r/t/1"])
      answers.push((await turn(id)).choices[0]!.message.content)
    expect(answers).toEqual(["first", "first", "second", "second"])
  })

  it("refuses a repeated, empty or badly encoded episode header with 400 naming it", async () => {
    const server = await start({ script: scripts.echo() })
    const { port } = server
    const body = JSON.stringify({ messages: [{ role: "user", content: "hi" }] })
    /**
     * Raw HTTP, so a header can be sent twice or empty as a misbehaving client would (as raw headers,
     * `host` is ours to send: Node's server refuses a request without one).
     */
    const post = (episodeHeaders: ReadonlyArray<string>) =>
      new Promise<{ status: number; error: { code: string; message: string } }>((resolve, reject) => {
        const request = http.request({
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/v1/chat/completions",
          headers: [
            "host",
            `127.0.0.1:${port}`,
            "content-type",
            "application/json",
            ...episodeHeaders.flatMap((value) => [EPISODE_HEADER, value]),
          ],
        })
        request.on("response", (response) => {
          let text = ""
          response.on("data", (chunk: Buffer) => {
            text += chunk.toString("utf8")
          })
          response.on("end", () => {
            try {
              resolve({ status: response.statusCode ?? 0, ...(JSON.parse(text) as { error: never }) })
            } catch (cause) {
              reject(
                new Error(`status ${response.statusCode} with a body that is not JSON: ${text}`, { cause }),
              )
            }
          })
        })
        request.on("error", reject)
        request.end(body)
      })
    for (const headers of [["r/t/0", "r/t/1"], [""], ["r/%E0%A4%A"]]) {
      const refused = await post(headers)
      expect(refused.status, JSON.stringify(headers)).toBe(400)
      expect(refused.error.code).toBe("invalid_episode_header")
      expect(refused.error.message).toContain(EPISODE_HEADER)
    }
    expect((await post(["r/t/0"])).status).toBe(200)
    // The refused requests never reached the script.
    expect(server.requests.map((r) => r.callIndex)).toEqual([undefined, undefined, undefined, 0])
  })
})

describe("lifecycle and names", () => {
  it("stop() frees the port, even with keep-alive connections open", async () => {
    const server = await startScriptedModelServer({ script: scripts.echo() })
    const client = clientFor(server)
    await ask(client, "Before stop")
    await server.stop()
    await server.stop()
    await expect(ask(client, "After")).rejects.toBeInstanceOf(APIConnectionError)
    const again = await start({ script: scripts.echo(), port: server.port })
    expect(again.port).toBe(server.port)
    await again.stop()
    // Nothing listens any more: a plain connect is refused.
    const socket = net.connect(server.port, "127.0.0.1")
    const refused = await new Promise((resolve) => socket.once("error", resolve).once("connect", resolve))
    socket.destroy()
    expect(refused).toMatchObject({ code: "ECONNREFUSED" })
  })

  it("parses script names for the command line", async () => {
    const parsed = parseScriptName("failing:2:503:echo-tool:search:1")
    if (!parsed.ok) throw new Error(parsed.message)
    const server = await start({ script: parsed.script })
    const client = clientFor(server)
    const first = await ask(client, "Names")
    expect(first.choices[0]?.message.tool_calls?.[0]).toMatchObject({ function: { name: "search" } })
    await expect(ask(client, "Names")).rejects.toMatchObject({ status: 503 })
    const bad = parseScriptName("echo-tool:search:many")
    expect(bad.ok).toBe(false)
    expect(bad.ok ? "" : bad.message).toContain("turns must be a non-negative integer")
    expect(parseScriptName("gpt").ok).toBe(false)
    expect(parseScriptName("echo-tool")).toMatchObject({
      ok: true,
      description: expect.stringContaining("echo for 3"),
    })
  })
})
