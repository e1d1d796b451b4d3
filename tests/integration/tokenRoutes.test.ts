/**
 * The scripted model server's token-in routes (a test double for vLLM's) over real loopback HTTP
 * with the official openai client: `/tokenize` renders exactly the prompt ids a chat completion
 * reports; `/v1/completions` with those ids samples exactly the ids and log-probs the chat did; a
 * client that never re-tokenizes (prompt + sampled ids + the rendered new message) gets the next
 * turn a chat would have given; scripted `weight_versions` spans reach the answer; and prompts the
 * server cannot read (an id it never produced, text, a cut template, a stream) are 400s that say why.
 */
import OpenAI, { BadRequestError } from "openai"
import type { ChatCompletion, ChatCompletionMessageParam } from "openai/resources/chat/completions"
import type { Completion as TextCompletion } from "openai/resources/completions"
import { afterEach, describe, expect, it } from "vitest"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  type ScriptedReply,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"

const started: Array<ScriptedModelServer> = []
const start = async (options: ScriptedModelServerOptions): Promise<ScriptedModelServer> => {
  const server = await startScriptedModelServer(options)
  started.push(server)
  return server
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.stop()))
})

const clientFor = (server: ScriptedModelServer) =>
  new OpenAI({ baseURL: server.url, apiKey: "x", maxRetries: 0 })
const root = (server: ScriptedModelServer) => server.url.replace(/\/v1$/, "")

const tokenize = async (server: ScriptedModelServer, body: unknown) => {
  const response = await fetch(`${root(server)}/tokenize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

type WithIds = ChatCompletion & {
  prompt_token_ids: Array<number>
  choices: Array<{ token_ids: Array<number> }>
}
type TextWithIds = TextCompletion & {
  choices: Array<
    TextCompletion["choices"][number] & { token_ids: Array<number>; prompt_token_ids: Array<number> }
  >
}

const chatWithIds = async (server: ScriptedModelServer, messages: Array<ChatCompletionMessageParam>) =>
  (await clientFor(server).chat.completions.create({
    model: "scripted",
    messages,
    logprobs: true,
    top_logprobs: 0,
    return_token_ids: true,
  } as never)) as unknown as WithIds

const completeIds = async (server: ScriptedModelServer, prompt: ReadonlyArray<number>) =>
  (await clientFor(server).completions.create({
    model: "scripted",
    prompt: [...prompt],
    logprobs: 0,
    max_tokens: 256,
    return_token_ids: true,
  } as never)) as unknown as TextWithIds

const task: Array<ChatCompletionMessageParam> = [
  { role: "system", content: "You are a research agent." },
  { role: "user", content: "Your task is to answer the user's question: what is 6 times 7?" },
]

const thinkingSearch: ScriptedReply = {
  reasoning: "I should check with the tool first.",
  content: "Checking.",
  toolCalls: [{ name: "search", arguments: { query: "6 times 7", top_k: 3 } }],
}

describe("token-in routes", () => {
  it("/tokenize renders exactly the prompt ids a chat completion reports", async () => {
    const server = await start({ script: () => thinkingSearch })
    const chat = await chatWithIds(server, task)
    const { status, body } = await tokenize(server, {
      model: "scripted",
      messages: task,
      return_token_strs: true,
    })
    expect(status).toBe(200)
    expect(body.tokens).toEqual(chat.prompt_token_ids)
    expect(body.count).toBe(chat.prompt_token_ids.length)
    expect(body.count).toBe(chat.usage?.prompt_tokens)
    expect(body.max_model_len).toBeGreaterThan(0)
    expect((body.token_strs as Array<string>).slice(0, 3)).toEqual(["<|im_start|>", "syst", "em"])
    // Without the generation prompt: the five tokens of `<|im_start|>assistant\n` fewer.
    const bare = await tokenize(server, { messages: task, add_generation_prompt: false })
    expect(bare.body.tokens).toEqual(chat.prompt_token_ids.slice(0, bare.body.count as number))
    expect(chat.prompt_token_ids.length - (bare.body.count as number)).toBe(5)
  })

  it("/v1/completions with those ids samples exactly what the chat did", async () => {
    const server = await start({ script: () => thinkingSearch })
    const chat = await chatWithIds(server, task)
    const text = await completeIds(server, chat.prompt_token_ids)
    const choice = text.choices[0]!
    expect(text.object).toBe("text_completion")
    expect(choice.token_ids).toEqual(chat.choices[0]!.token_ids)
    expect(choice.prompt_token_ids).toEqual(chat.prompt_token_ids)
    expect(choice.logprobs?.token_logprobs).toEqual(chat.choices[0]!.logprobs!.content!.map((e) => e.logprob))
    expect(choice.finish_reason).toBe("tool_calls")
    expect(choice.text).toBe(
      '<think>I should check with the tool first.</think>Checking.<tool_call>{"name": "search", "arguments": {"query":"6 times 7","top_k":3}}</tool_call>',
    )
    expect(text.usage).toEqual(chat.usage)
  })

  it("a client that never re-tokenizes gets the next turn a chat would have given", async () => {
    const server = await start({ script: scripts.echoTool({ tool: "echo", turns: 2 }) })
    // Turn 1, token-in.
    const first = await tokenize(server, { messages: task })
    const turn1 = await completeIds(server, first.body.tokens as Array<number>)
    const sampled = turn1.choices[0]!.token_ids
    // The tool's answer is the only new text: rendered on its own (with the next generation prompt).
    const result: ChatCompletionMessageParam = { role: "tool", tool_call_id: "c", content: "echo: turn 1" }
    const rest = await tokenize(server, { messages: [result] })
    const prompt2 = [
      ...(first.body.tokens as Array<number>),
      ...sampled,
      ...(rest.body.tokens as Array<number>),
    ]
    const turn2 = await completeIds(server, prompt2)
    // The same two turns through chat completions, the first answer sent back as answered.
    const chat1 = await chatWithIds(server, task)
    expect(chat1.choices[0]!.token_ids).toEqual(sampled)
    const answered = chat1.choices[0]!.message
    const chat2 = await chatWithIds(server, [
      ...task,
      answered as ChatCompletionMessageParam,
      { ...result, tool_call_id: answered.tool_calls![0]!.id },
    ])
    expect(chat2.prompt_token_ids).toEqual(prompt2)
    expect(turn2.choices[0]!.token_ids).toEqual(chat2.choices[0]!.token_ids)
    expect(turn2.choices[0]!.text).toContain('"arguments": {"text":"turn 2"}')
  })

  it("sends a script's weight versions as vLLM's spans over the sampled tokens", async () => {
    const server = await start({
      script: () => ({
        content: "forty-two",
        weightVersions: [{ version: "7", tokens: 2 }, { version: "8" }],
      }),
    })
    const chat = await chatWithIds(server, task)
    const n = chat.choices[0]!.token_ids.length
    expect((chat.choices[0] as unknown as { weight_versions: unknown }).weight_versions).toEqual([
      { version: "7", start: 0, end: 2 },
      { version: "8", start: 2, end: n },
    ])
  })

  it("refuses what it cannot read with a 400 that says why", async () => {
    const server = await start({ script: () => thinkingSearch })
    const client = clientFor(server)
    const prompt = (await tokenize(server, { messages: task })).body.tokens as Array<number>
    const refusal = async (body: Record<string, unknown>) => {
      const error = await client.completions.create({ model: "scripted", ...body } as never).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(BadRequestError)
      return error as BadRequestError
    }
    // An id this server never produced (below the special ids, so it is an ordinary token's).
    const unknown = await refusal({ prompt: [...prompt.slice(0, 4), 99, ...prompt.slice(4)] })
    expect(unknown.code).toBe("unknown_token")
    expect(unknown.message).toMatch(/prompt\[4\]: token id 99 is not one this server has produced/)
    expect((await refusal({ prompt: "plain text" })).code).toBe("unsupported_prompt")
    const cut = await refusal({ prompt: prompt.slice(0, -5) })
    expect(cut.code).toBe("invalid_prompt")
    expect(cut.message).toMatch(/does not end with the assistant's generation prompt/)
    expect((await refusal({ prompt, stream: true })).code).toBe("unsupported_stream")
    expect((await refusal({ prompt: [] })).code).toBe("invalid_prompt")
    const bad = await tokenize(server, { messages: "nope" })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ error: { code: "missing_messages" } })
  })
})
