/**
 * Native tool calls: the ones a server parsed itself (vLLM and SGLang do, for OpenAI-style
 * function calling) and the pool handed over in the completion's `toolCalls`, each with its
 * arguments decoded once — the JSON object, or the text as sent when it was not one. An object is
 * taken as it is; text is read leniently here, because servers pass through whatever JSON the model
 * wrote; anything else is a FORMAT_ERROR in the words of the function-calling interface the model
 * used (`function.name`, `function.arguments`).
 */
import type { Json } from "effect/Schema"
import type { ToolCall } from "../../../events/chat.ts"
import { parseLenientJson } from "./lenientJson.ts"
import { describeJson, isJsonObject, type ParsedToolCall, type TurnCollector } from "./parsedTurn.ts"

/** The call as the model wrote it, for an error's excerpt: `name(arguments)`. */
const excerptOf = (tool: string, args: Json): string =>
  `${tool}(${typeof args === "string" ? args : JSON.stringify(args)})`

/** Reads the native calls of a turn, in order, into the collector. */
export const readNativeToolCalls = (calls: ReadonlyArray<ToolCall>, collector: TurnCollector): void => {
  for (const call of calls) {
    const { tool, arguments: args } = call
    if (typeof tool !== "string" || tool.trim().length === 0) {
      collector.reject(
        "function.name is missing or empty",
        excerptOf(typeof tool === "string" ? tool : "?", args),
        "openai",
      )
      continue
    }
    const id = typeof call.callId === "string" && call.callId.length > 0 ? call.callId : undefined
    if (typeof args === "string") {
      if (args.trim().length === 0) {
        collector.accept(tool, {}, id)
        continue
      }
      const parsed = parseLenientJson(args)
      if (!parsed.ok)
        collector.reject(
          `function.arguments is not valid JSON: ${parsed.reason}`,
          excerptOf(tool, args),
          "openai",
        )
      else if (!isJsonObject(parsed.value))
        collector.reject(
          `function.arguments must be a JSON object, got ${describeJson(parsed.value)}`,
          excerptOf(tool, args),
          "openai",
        )
      else collector.accept(tool, parsed.value, id)
    } else if (isJsonObject(args)) collector.accept(tool, args, id)
    else
      collector.reject(
        `function.arguments must be a JSON object, got ${describeJson(args)}`,
        excerptOf(tool, args),
        "openai",
      )
  }
}

/** A parsed call as the pool would hand it over: the object is the decoded arguments. */
export const renderNativeToolCall = (call: ParsedToolCall): ToolCall => ({
  callId: call.callId,
  tool: call.tool,
  arguments: call.arguments,
})
