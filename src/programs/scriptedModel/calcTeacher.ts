/**
 * The `calcTeacher` script of the scripted model server (a TEST DOUBLE, not a model): the teacher
 * whose episodes become the warm-start demonstrations of `rollout rl demo`. For the calc task's
 * "What is A times B?" it calls the `calculator` tool with `A*B` (the expression the bundled
 * demonstrations use), and once the tool has answered it replies `<answer>…</answer>` with the
 * number read from the tool message. It never multiplies: the answer is whatever the real tool
 * returned, so a demonstration is only as right as the recorded tool call.
 */
import { type ChatRequest, messageText, type Script, type ScriptedReply } from "./script.ts"

/** The calculator tool's name, as AgentDock offers it. */
export const CALC_TOOL = "calculator"

/** The question inside the agent's first user message (which wraps it in the task prompt). */
const QUESTION = /What is (\d+) times (\d+)\?/

/** A request the teacher cannot answer: an HTTP 400 naming what is wrong and where. */
const malformed = (why: string): ScriptedReply => ({
  error: { status: 400, message: `calcTeacher: ${why}`, code: "calc_teacher_malformed_request" },
})

/** The operands of the task, from the conversation's first user message. */
export const calcOperands = (request: ChatRequest): { a: string; b: string } | string => {
  if (!Array.isArray(request.messages)) return "the request has no messages list"
  const first = request.messages.findIndex((m) => m?.role === "user")
  if (first === -1) return "the request has no user message"
  const text = messageText(request.messages[first]!)
  const match = QUESTION.exec(text)
  if (match === null)
    return `messages[${first}] (the first user message) holds no "What is A times B?": ${JSON.stringify(text.slice(0, 120))}`
  return { a: match[1]!, b: match[2]! }
}

/**
 * The reply to one request: the tool call while the conversation has no tool result, then the
 * answer copied from the last tool message. A pure function of the request.
 */
export const calcTeacher = (): Script => (request) => {
  const operands = calcOperands(request)
  if (typeof operands === "string") return malformed(operands)
  const toolIndex = request.messages.findLastIndex((m) => m?.role === "tool")
  if (toolIndex === -1)
    return { toolCalls: [{ name: CALC_TOOL, arguments: { expression: `${operands.a}*${operands.b}` } }] }
  // The tool's text; AgentDock may append structured content after it, so the value is the
  // leading integer and nothing else is trusted.
  const result = messageText(request.messages[toolIndex]!).trim()
  const value = /^-?\d+/.exec(result)?.[0]
  if (value === undefined)
    return malformed(
      `messages[${toolIndex}] (the tool result) does not start with an integer: ${JSON.stringify(result.slice(0, 120))}`,
    )
  return { content: `<answer>${value}</answer>` }
}
