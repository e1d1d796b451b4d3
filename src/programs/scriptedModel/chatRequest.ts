/**
 * What the scripted model server (a test double for a GPU server) accepts and how it refuses: the
 * validation of a `POST /v1/chat/completions` body, and the OpenAI-style `{ error: { message, type,
 * param, code } }` body of every refusal, so clients map them to their usual typed errors.
 */
import type { ChatRequest, ScriptedError } from "./script.ts"

/** Why a body is not a chat request this server can answer (a 400). */
export interface RequestProblem {
  readonly message: string
  readonly code: string
  readonly param: string | null
}

export type ParsedChatRequest =
  | { readonly ok: true; readonly request: ChatRequest }
  | { readonly ok: false; readonly problem: RequestProblem }

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  405: "invalid_request_error",
  413: "invalid_request_error",
  429: "rate_limit_error",
}

/** The body of an error response, typed by status the way OpenAI's API types them. */
export const openAiErrorBody = (error: ScriptedError, param: string | null = null) => ({
  error: {
    message: error.message,
    type: error.type ?? ERROR_TYPES[error.status] ?? (error.status >= 500 ? "server_error" : "api_error"),
    param,
    code: error.code ?? null,
  },
})

const problem = (message: string, code: string, param: string | null = null): ParsedChatRequest => ({
  ok: false,
  problem: { message, code, param },
})

/** What is wrong with a request's `model` (absent is fine: the first served model answers). */
export const modelProblem = (
  model: unknown,
  models: ReadonlyArray<string> | undefined,
): RequestProblem | undefined => {
  if (model !== undefined && typeof model !== "string")
    return { message: "'model' must be a string", code: "invalid_model", param: "model" }
  if (models !== undefined && model !== undefined && !models.includes(model))
    return {
      message: `the model '${model}' does not exist; this server serves ${models.join(", ")}`,
      code: "model_not_found",
      param: "model",
    }
  return undefined
}

/**
 * Checks the fields the server acts on; everything else passes through to the script. A request
 * without `model` gets the first served model (or `scripted`).
 */
export const parseChatRequest = (
  text: string,
  models: ReadonlyArray<string> | undefined,
): ParsedChatRequest => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    return problem(`the request body is not valid JSON: ${(cause as Error).message}`, "invalid_json")
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return problem("the request body must be a JSON object", "invalid_body")
  }
  const body = parsed as Record<string, unknown>
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) {
    return problem("'messages' is required and must be a non-empty array", "missing_messages", "messages")
  }
  const badMessage = messages.findIndex(
    (message: unknown) =>
      typeof message !== "object" ||
      message === null ||
      typeof (message as { role?: unknown }).role !== "string",
  )
  if (badMessage >= 0) {
    return problem(
      `messages[${badMessage}] must be an object with a string 'role'`,
      "invalid_message",
      "messages",
    )
  }
  const model = body.model
  const badModel = modelProblem(model, models)
  if (badModel !== undefined) return { ok: false, problem: badModel }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
    return problem("'stream' must be a boolean", "invalid_stream", "stream")
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    return problem("the scripted test double answers n = 1 only", "unsupported_n", "n")
  }
  if (body.tools !== undefined && body.tools !== null && !Array.isArray(body.tools)) {
    return problem("'tools' must be an array", "invalid_tools", "tools")
  }
  return {
    ok: true,
    request: {
      ...body,
      messages,
      model: (model as string | undefined) ?? models?.[0] ?? "scripted",
    } as ChatRequest,
  }
}
