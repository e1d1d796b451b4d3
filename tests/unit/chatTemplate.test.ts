/**
 * The scripted model server's chat template (a test double's, `chatTemplate.ts`), pure, under
 * fast-check: a rendered conversation reads back into the same conversation; a turn sent back as it
 * was answered (content, reasoning, tool calls) renders to its sampled ids verbatim, so the next
 * prompt extends the last prompt and the sampled ids; under `drop-past-reasoning` a user message
 * after a turn with reasoning makes the next prompt drift exactly where that reasoning began; and
 * the vocabulary reads back every id it learned and refuses an id two texts share.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { tokenDrift } from "../../src/actors/agent/tokenDrift.ts"
import {
  type ChatTemplateName,
  parsePrompt,
  promptTokenCount,
  promptTokens,
  SPECIAL,
} from "../../src/programs/scriptedModel/chatTemplate.ts"
import { planGeneration } from "../../src/programs/scriptedModel/completion.ts"
import { FIRST_SPECIAL_ID, tokenId, Vocabulary } from "../../src/programs/scriptedModel/pseudoTokens.ts"
import type { ChatMessage, ChatRequest, ScriptedReply } from "../../src/programs/scriptedModel/script.ts"

const text = fc.string({ unit: "grapheme", maxLength: 40 })
const reasoning = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 })
const call = fc.record({
  name: fc.stringMatching(/^[a-z_]{1,12}$/),
  arguments: fc.oneof(fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.oneof(text, fc.integer())), text),
})
const reply: fc.Arbitrary<ScriptedReply> = fc.record(
  { reasoning, content: text, toolCalls: fc.array(call, { maxLength: 2 }) },
  { requiredKeys: [] },
)

/** An assistant message as a client sends a turn back: content, reasoning and calls as answered. */
const echoOf = (request: ChatRequest, answer: ScriptedReply): ChatMessage => {
  const generation = planGeneration(request, answer, { callIndex: 0, episodeKey: "k" })
  return {
    role: "assistant",
    content: generation.content,
    ...(generation.reasoning === "" ? {} : { reasoning_content: generation.reasoning }),
    ...(generation.toolCalls.length === 0
      ? {}
      : {
          tool_calls: generation.toolCalls.map((c) => ({
            id: c.id,
            type: "function",
            function: { name: c.name, arguments: c.arguments },
          })),
        }),
  }
}

const sampledIds = (request: ChatRequest, answer: ScriptedReply) =>
  planGeneration(request, answer, { callIndex: 0, episodeKey: "k" }).pieces.map((piece) => piece.id)

const ids = (request: ChatRequest, template: ChatTemplateName = "keep-reasoning") =>
  promptTokens(request, template).map((token) => token.id)

const message = fc.oneof(
  fc.record({ role: fc.constantFrom("system", "user", "tool"), content: text }),
  reply.map((answer) => echoOf({ model: "m", messages: [{ role: "user", content: "q" }] }, answer)),
)

describe("the scripted chat template", () => {
  test.prop([
    fc.array(message, { minLength: 1, maxLength: 6 }),
    fc.option(fc.array(fc.jsonValue(), { maxLength: 2 })),
  ])("a rendered conversation reads back into the same conversation", (messages, tools) => {
    const request: ChatRequest = { model: "m", messages, ...(tools === null ? {} : { tools }) }
    const tokens = promptTokens(request)
    expect(tokens.length).toBe(promptTokenCount(request))
    const parsed = parsePrompt(tokens)
    expect(parsed.ok).toBe(true)
    if (!parsed.ok) return
    // Tool-call ids are not rendered; everything else comes back.
    const plain = (m: ChatMessage) => ({
      role: m.role,
      content: typeof m.content === "string" ? m.content : "",
      reasoning: m.reasoning_content ?? "",
      calls: (m.tool_calls ?? []).map((c) => [c.function?.name, c.function?.arguments]),
    })
    expect(parsed.messages.map(plain)).toEqual(messages.map(plain))
    const sentTools = tools === null || tools.length === 0 ? undefined : JSON.parse(JSON.stringify(tools))
    expect(parsed.tools).toEqual(sentTools)
  })

  test.prop([fc.array(message, { maxLength: 4 }), reply, text])(
    "a turn sent back as answered renders to its sampled ids: the next prompt extends prompt + sampled",
    (history, answer, toolResult) => {
      const request: ChatRequest = { model: "m", messages: [{ role: "user", content: "task" }, ...history] }
      const next: ChatRequest = {
        model: "m",
        messages: [...request.messages, echoOf(request, answer), { role: "tool", content: toolResult }],
      }
      const reached = [...ids(request), ...sampledIds(request, answer)]
      expect(ids(next).slice(0, reached.length)).toEqual(reached)
      expect(
        tokenDrift({ turn: 1, prompt: ids(request), sampled: sampledIds(request, answer) }, ids(next)),
      ).toBeUndefined()
    },
  )

  test.prop([reply.filter((r) => (r.reasoning ?? "") !== ""), text])(
    "drop-past-reasoning: after a new user message, the prompt drifts where the past reasoning began",
    (answer, feedback) => {
      const request: ChatRequest = { model: "m", messages: [{ role: "user", content: "task" }] }
      const template = "drop-past-reasoning"
      const withTool: ChatRequest = {
        model: "m",
        messages: [...request.messages, echoOf(request, answer), { role: "tool", content: "r" }],
      }
      // Still after the last user message: the reasoning is kept and the prompt extends.
      const reached = { turn: 1, prompt: ids(request, template), sampled: sampledIds(request, answer) }
      expect(tokenDrift(reached, ids(withTool, template))).toBeUndefined()
      const withUser: ChatRequest = {
        ...withTool,
        messages: [...withTool.messages, { role: "user", content: feedback }],
      }
      const drift = tokenDrift(reached, ids(withUser, template))
      // The first sampled token was <think>; the rewritten history has the content there instead.
      expect(reached.sampled[0]).toBe(SPECIAL.thinkStart.id)
      expect(drift?.index).toBe(reached.prompt.length)
    },
  )

  it("closes a turn that stopped by itself with <|im_end|>, and not one cut at the length limit", () => {
    const request: ChatRequest = { model: "m", messages: [{ role: "user", content: "q" }] }
    expect(sampledIds(request, { content: "done" }).at(-1)).toBe(SPECIAL.imEnd.id)
    expect(sampledIds(request, { content: "cut off", finishReason: "length" })).not.toContain(
      SPECIAL.imEnd.id,
    )
  })

  it("says what is wrong with a prompt it did not render, and where", () => {
    const tokens = promptTokens({ messages: [{ role: "user", content: "hello there" }] })
    const end = tokens.findIndex((token) => token.id === SPECIAL.imEnd.id)
    expect(parsePrompt(tokens.slice(0, end))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/user message without <\|im_end\|> at token 0/),
    })
    expect(parsePrompt(tokens.slice(0, -3))).toMatchObject({
      ok: false,
      problem: `a message without its role line at token ${end + 1}`,
    })
    expect(parsePrompt(tokens.slice(1))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/expected <\|im_start\|>/),
    })
    const noGenerationPrompt = promptTokens(
      { messages: [{ role: "user", content: "x" }] },
      "keep-reasoning",
      false,
    )
    expect(parsePrompt(noGenerationPrompt)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/does not end with the assistant's generation prompt/),
    })
  })
})

describe("the vocabulary", () => {
  test.prop([fc.array(text, { maxLength: 30 })])(
    "reads back every id it learned (texts never take a special id)",
    (texts) => {
      const vocabulary = new Vocabulary()
      const tokens = promptTokens({
        messages: texts.map((content) => ({ role: "user", content })),
      })
      for (const token of tokens) vocabulary.learn(token.text, token.id)
      for (const token of tokens) {
        if (token.id >= FIRST_SPECIAL_ID) continue
        const known = vocabulary.text(token.id)
        // A clash between two of these texts is refused, never guessed.
        if (typeof known === "string") expect(known).toBe(token.text)
        else expect(known.problem).toMatch(/stands for more than one text/)
      }
    },
  )

  it("refuses an id two texts share, and one it never produced", () => {
    // Hashes collide: find two texts with one id.
    const seen = new Map<number, string>()
    let pair: [string, string] | undefined
    for (let i = 0; pair === undefined; i++) {
      const candidate = `w${i}`
      const other = seen.get(tokenId(candidate))
      if (other !== undefined) pair = [other, candidate]
      else seen.set(tokenId(candidate), candidate)
    }
    const vocabulary = new Vocabulary()
    vocabulary.learn(pair[0], tokenId(pair[0]))
    expect(vocabulary.text(tokenId(pair[0]))).toBe(pair[0])
    vocabulary.learn(pair[1], tokenId(pair[1]))
    expect(vocabulary.text(tokenId(pair[0]))).toEqual({
      problem: `token id ${tokenId(pair[0])} stands for more than one text here ("${pair[0]}", "${pair[1]}")`,
    })
    expect(vocabulary.text(7)).toEqual({ problem: "token id 7 is not one this server has produced" })
  })
})
