/**
 * The `calcTeacher` script (the scripted model server's teacher for `rollout rl demo`'s recorded
 * demonstrations): given "What is A times B?" it calls the calculator with `A*B`; given the tool's
 * result it answers `<answer>…</answer>` with the number copied from the tool message — checked
 * with results that are not A·B, so a teacher that multiplied would fail; malformed requests get a
 * 400 naming the message at fault. Fuzzed with fast-check, and once through the real server with
 * the official `openai` client.
 */
import { fc, test } from "@fast-check/vitest"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { calcOperands, calcTeacher } from "../../src/programs/scriptedModel/calcTeacher.ts"
import type { ChatMessage, ChatRequest, ScriptedReply } from "../../src/programs/scriptedModel/script.ts"
import { startScriptedModelServer } from "../../src/programs/scriptedModel/server.ts"

const PROMPT = "Your task is to answer the user's question: "
const context = { callIndex: 0, episodeKey: undefined }

const request = (messages: ReadonlyArray<ChatMessage>): ChatRequest => ({ model: "calc-teacher", messages })

const ask = (messages: ReadonlyArray<ChatMessage>) =>
  calcTeacher()(request(messages), context) as ScriptedReply

const question = (a: number, b: number): ChatMessage => ({
  role: "user",
  content: `${PROMPT}What is ${a} times ${b}?`,
})

const called = (a: number, b: number): ChatMessage => ({
  role: "assistant",
  content: "",
  tool_calls: [
    {
      id: "call_1",
      type: "function",
      function: { name: "calculator", arguments: JSON.stringify({ expression: `${a}*${b}` }) },
    },
  ],
})

const result = (content: NonNullable<ChatMessage["content"]>): ChatMessage => ({
  role: "tool",
  tool_call_id: "call_1",
  content,
})

describe("calcTeacher", () => {
  it("calls the calculator with A*B, as the bundled demonstrations do", () => {
    expect(ask([question(582, 614)])).toEqual({
      toolCalls: [{ name: "calculator", arguments: { expression: "582*614" } }],
    })
  })

  it("answers with the number the tool returned, not one it computed", () => {
    // 582 × 614 = 357348; the tool says otherwise and the teacher repeats the tool.
    expect(ask([question(582, 614), called(582, 614), result("111111")])).toEqual({
      content: "<answer>111111</answer>",
    })
    // A text-part content (and trailing structured content) is read the same way.
    expect(
      ask([question(582, 614), called(582, 614), result([{ type: "text", text: '357348\n{"x":1}' }])]),
    ).toEqual({ content: "<answer>357348</answer>" })
  })

  test.prop([fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 0, max: 99_999 }), fc.bigInt()])(
    "for any operands the call names them, and the answer is the tool's value verbatim",
    (a, b, value) => {
      const call = ask([question(a, b)])
      expect(call.toolCalls?.[0]?.arguments).toEqual({ expression: `${a}*${b}` })
      const reply = ask([question(a, b), called(a, b), result(` ${value} `)])
      expect(reply).toEqual({ content: `<answer>${value}</answer>` })
    },
  )

  it("refuses malformed requests with a 400 naming the message at fault", () => {
    const noUser = ask([{ role: "system", content: "hello" }])
    expect(noUser.error).toMatchObject({ status: 400 })
    expect(noUser.error?.message).toBe("calcTeacher: the request has no user message")

    const notCalc = ask([{ role: "user", content: `${PROMPT}Who wrote Hamlet?` }])
    expect(notCalc.error?.status).toBe(400)
    expect(notCalc.error?.message).toContain(
      'messages[0] (the first user message) holds no "What is A times B?"',
    )
    expect(notCalc.error?.message).toContain("Who wrote Hamlet?")

    const badTool = ask([
      question(3, 4),
      called(3, 4),
      result("error at column 2 of the expression: unexpected token"),
    ])
    expect(badTool.error?.status).toBe(400)
    expect(badTool.error?.message).toContain("messages[2] (the tool result) does not start with an integer")

    expect(calcOperands({ model: "m", messages: undefined as never })).toBe(
      "the request has no messages list",
    )
  })

  it("drives a whole episode through the scripted server and the official openai client", async () => {
    const server = await startScriptedModelServer({ script: calcTeacher(), models: ["calc-teacher"] })
    try {
      const client = new OpenAI({ baseURL: server.url, apiKey: "unused", maxRetries: 0 })
      const tools = [
        {
          type: "function" as const,
          function: { name: "calculator", parameters: { type: "object", properties: { expression: {} } } },
        },
      ]
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: "user", content: `${PROMPT}What is 317 times 999?` },
      ]
      const first = await client.chat.completions.create({ model: "calc-teacher", messages, tools })
      const call = first.choices[0]?.message.tool_calls?.[0]
      expect(first.choices[0]?.finish_reason).toBe("tool_calls")
      expect(call?.type === "function" ? call.function : undefined).toMatchObject({
        name: "calculator",
        arguments: JSON.stringify({ expression: "317*999" }),
      })
      messages.push(first.choices[0]!.message, { role: "tool", tool_call_id: call!.id, content: "316683" })
      const second = await client.chat.completions.create({ model: "calc-teacher", messages, tools })
      expect(second.choices[0]?.message.content).toBe("<answer>316683</answer>")

      await expect(
        client.chat.completions.create({
          model: "calc-teacher",
          messages: [{ role: "user", content: "hi" }],
        }),
      ).rejects.toMatchObject({ status: 400 })
    } finally {
      await server.stop()
    }
  })
})
