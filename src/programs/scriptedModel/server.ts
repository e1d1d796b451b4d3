/**
 * The scripted model server: an OpenAI-compatible HTTP server (`/v1/models`, `/v1/chat/completions`
 * with and without streaming, `/health`) whose answers come from a deterministic script instead of a
 * model; a script can also fail a call (an HTTP error, a hang, a stream cut mid-way). It is a TEST
 * DOUBLE for a GPU inference server, used by tests, benchmarks and the offline demo, and says so in
 * every response (`x-rollout-test-double: scripted`, the `rollout-scripted-test-double`
 * fingerprint, `owned_by` of its models) and in its startup line. A request names its episode in
 * the `x-rollout-episode` header (as the inference pool sends it); scripts key what they choose per
 * episode by that, and without it fall back to the task and the arrival order (see `ScriptContext`).
 * vLLM's and SGLang's weight-update routes serve a version that a trainer's update changes
 * (`weightRoutes.ts`). Prompts are rendered to token ids by a chat template (`chatTemplate.ts`),
 * and vLLM's token-in routes (`POST /tokenize`, `POST /v1/completions` with a token-id prompt) are
 * served (`tokenRoutes.ts`). Built on `node:http` because effect's HTTP platform crashes on Node 20.
 */
import { timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { EPISODE_HEADER, parseEpisodeHeader } from "../../actors/inference/episodeHeader.ts"
import { TEST_DOUBLE_HEADER, TEST_DOUBLE_OWNER } from "../../actors/inference/testDouble.ts"
import { openAiErrorBody, parseChatRequest } from "./chatRequest.ts"
import type { ChatTemplateName } from "./chatTemplate.ts"
import { completionBody, completionStreamEvents, planGeneration, textCompletionBody } from "./completion.ts"
import { Vocabulary } from "./pseudoTokens.ts"
import {
  type ChatRequest,
  episodeKeyOf,
  type Script,
  type ScriptContext,
  type ScriptedError,
  type ScriptedReply,
} from "./script.ts"
import {
  type ParsedTextCompletion,
  parseTextCompletion,
  TOKENIZE_ROUTE,
  tokenizeAnswer,
} from "./tokenRoutes.ts"
import { isWeightRoute, ScriptedWeights, type ScriptedWeightsOptions } from "./weightRoutes.ts"

export interface ScriptedModelServerOptions {
  readonly script: Script
  /** Default 127.0.0.1: a test double has no business on a public interface. */
  readonly host?: string
  /** Default 0: a free port picked by the OS. */
  readonly port?: number
  /** When set, `/v1/*` requires `Authorization: Bearer <token>` (401 otherwise); `/health` stays open. */
  readonly token?: string
  /** Delay before every chat completion answer (added to a reply's `hangMs`). */
  readonly latencyMs?: number | ((request: ChatRequest) => number)
  /**
   * The models served; a request naming another gets 400, one naming none gets the first.
   * Default: `["scripted"]` is listed and any name is accepted.
   */
  readonly models?: ReadonlyArray<string>
  /** Receives the startup line and script failures; the server writes nothing else anywhere. */
  readonly log?: (line: string) => void
  /** How many recent requests `requests` keeps; default 1000, 0 to keep none (benchmarks). */
  readonly recordLimit?: number
  /** The served weight version and its update routes (see `weightRoutes.ts`). */
  readonly weights?: ScriptedWeightsOptions
  /**
   * How prompts become token ids: `keep-reasoning` (default) renders history as it was sampled;
   * `drop-past-reasoning` drops past turns' reasoning as Qwen3's template does (see `chatTemplate.ts`).
   */
  readonly chatTemplate?: ChatTemplateName
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  /** Lower-cased header names; `authorization` is redacted. */
  readonly headers: Readonly<Record<string, string>>
  /** The chat request when the body was a valid one. */
  readonly body: ChatRequest | undefined
  readonly callIndex: number | undefined
  readonly episodeKey: string | undefined
  /** The episode the request named in its `x-rollout-episode` header (decoded), if any. */
  readonly episodeId: string | undefined
  /** The HTTP status answered, or undefined while pending (or when the client went away first). */
  readonly status: number | undefined
}

export interface ScriptedModelServer {
  /** The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`. */
  readonly url: string
  readonly port: number
  /** The most recent requests received, oldest first (see `recordLimit`). */
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Replaces the script for later requests; `callIndex` keeps counting. */
  readonly setScript: (script: Script) => void
  /** Closes the listener and every connection, ending pending (hanging) answers; idempotent. */
  readonly stop: () => Promise<void>
}

export const MAX_BODY_BYTES = 32 * 1024 * 1024

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** What one server instance keeps between requests. */
interface ServerState {
  readonly options: ScriptedModelServerOptions
  /** Replaced by `setScript`. */
  script: Script
  /** Valid chat completion requests so far (the next one's `callIndex`). */
  callIndex: number
  /** Every request so far (the next one's `x-request-id`). */
  requestCount: number
  readonly recordLimit: number
  readonly requests: Array<RecordedRequest>
  /** One per answer still pending: aborted when the server stops. */
  readonly pending: Set<AbortController>
  readonly log: (line: string) => void
  readonly weights: ScriptedWeights
  /** Every id this server produced and its text, to read token-id prompts back. */
  readonly vocabulary: Vocabulary
}

const tokenMatches = (header: string | undefined, token: string): boolean => {
  const expected = Buffer.from(`Bearer ${token}`)
  const given = Buffer.from(header ?? "")
  return given.length === expected.length && timingSafeEqual(given, expected)
}

const wait = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done, { once: true })
  })

const sendJson = (
  res: http.ServerResponse,
  record: Mutable<RecordedRequest>,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void => {
  record.status = status
  const text = JSON.stringify(body)
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  })
  res.end(text)
}

const sendError = (
  res: http.ServerResponse,
  record: Mutable<RecordedRequest>,
  error: ScriptedError,
  headers: Record<string, string> = {},
  param: string | null = null,
): void =>
  sendJson(
    res,
    record,
    error.status,
    openAiErrorBody(error, param),
    error.retryAfterSeconds === undefined
      ? headers
      : { ...headers, "retry-after": String(error.retryAfterSeconds) },
  )

/** Reads the body up to the limit; undefined when it was too large (413 already sent). */
const readBody = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  record: Mutable<RecordedRequest>,
): Promise<Buffer | undefined> =>
  new Promise((resolve, reject) => {
    const tooLarge = () => {
      // Keep reading (and discarding) so the client sees the 413 rather than a reset connection.
      req.removeAllListeners("data")
      req.resume()
      sendError(
        res,
        record,
        {
          status: 413,
          message: `the request body exceeds ${MAX_BODY_BYTES} bytes`,
          code: "body_too_large",
        },
        { connection: "close" },
      )
      resolve(undefined)
    }
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return tooLarge()
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) return tooLarge()
      chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks, size)))
    req.on("error", reject)
  })

/** What the token routes need of the server: its models, its chat template and its vocabulary. */
const tokenOptions = (state: ServerState) => ({
  models: state.options.models,
  template: state.options.chatTemplate ?? ("keep-reasoning" as const),
  vocabulary: state.vocabulary,
})

/**
 * A `/v1/chat/completions` request — or a `/v1/completions` one (`text`), whose token-id prompt is
 * read back into the chat it renders: its body parsed, its episode named, the script's reply sent.
 */
const completeChat = async (
  state: ServerState,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  record: Mutable<RecordedRequest>,
  kind: "chat" | "text" = "chat",
): Promise<void> => {
  const raw = await readBody(req, res, record)
  if (raw === undefined) return
  const parsed =
    kind === "chat"
      ? parseChatRequest(raw.toString("utf8"), state.options.models)
      : parseTextCompletion(raw.toString("utf8"), tokenOptions(state))
  if (!parsed.ok) {
    const { message, code, param } = parsed.problem
    return sendError(res, record, { status: 400, message, code }, {}, param)
  }
  const request = parsed.request
  const episode = parseEpisodeHeader(req.headersDistinct[EPISODE_HEADER])
  if (!episode.ok) {
    return sendError(res, record, { status: 400, message: episode.message, code: "invalid_episode_header" })
  }
  const context: ScriptContext = {
    callIndex: state.callIndex++,
    episodeKey: episodeKeyOf(request),
    ...(episode.episodeId === undefined ? {} : { episodeId: episode.episodeId }),
  }
  record.body = request
  record.callIndex = context.callIndex
  record.episodeKey = context.episodeKey
  record.episodeId = episode.episodeId

  // Aborted when the client goes away or the server stops, so a hanging reply never outlives either.
  const abort = new AbortController()
  state.pending.add(abort)
  res.once("close", () => abort.abort())
  try {
    const prompt =
      kind === "text" ? (parsed as Extract<ParsedTextCompletion, { ok: true }>).prompt : undefined
    await answerChat(state, res, record, request, context, abort.signal, prompt)
  } finally {
    state.pending.delete(abort)
  }
}

/**
 * Runs the script on a parsed request and sends what it replied — after its latency and hang, as
 * an error, a completion or a stream (cut when the reply says so) — unless `signal` aborted first.
 */
const answerChat = async (
  state: ServerState,
  res: http.ServerResponse,
  record: Mutable<RecordedRequest>,
  request: ChatRequest,
  context: ScriptContext,
  signal: AbortSignal,
  tokenPrompt?: ReadonlyArray<number>,
): Promise<void> => {
  let reply: ScriptedReply
  try {
    reply = await state.script(request, context)
    if (typeof reply !== "object" || reply === null) throw new TypeError(`it returned ${String(reply)}`)
  } catch (cause) {
    state.log(`scripted model server: the script threw on call ${context.callIndex}: ${String(cause)}`)
    return sendError(res, record, {
      status: 500,
      message: `the script threw: ${String(cause)}`,
      code: "script_error",
    })
  }
  const { options } = state
  const latency = typeof options.latencyMs === "function" ? options.latencyMs(request) : options.latencyMs
  const delay = (latency ?? 0) + (reply.hangMs ?? 0)
  if (delay > 0) await wait(delay, signal)
  // A paused engine holds the answer; it goes out with the version served then.
  await state.weights.whileHeld(signal)
  if (signal.aborted) return
  state.weights.stamp(res)
  if (reply.error !== undefined) return sendError(res, record, reply.error)

  const generation = planGeneration(request, reply, context, {
    template: state.options.chatTemplate ?? "keep-reasoning",
    vocabulary: state.vocabulary,
    ...(tokenPrompt === undefined ? {} : { prompt: tokenPrompt }),
  })
  const meta = {
    id: `${tokenPrompt === undefined ? "chatcmpl" : "cmpl"}-scripted-${context.callIndex}`,
    created: Math.floor(Date.now() / 1000),
    model: request.model,
  }
  if (tokenPrompt !== undefined) return sendJson(res, record, 200, textCompletionBody(generation, meta))
  if (request.stream !== true) return sendJson(res, record, 200, completionBody(generation, meta))
  record.status = 200
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" })
  const events = completionStreamEvents(generation, meta, request.stream_options?.include_usage === true)
  return streamEvents(res, events, reply.cutStream, signal)
}

/**
 * Sends a stream's events (headers already written): all of them, or — a reply's `cutStream` —
 * the first `afterEvents` and then an end, a stall until `signal` aborts, or a dropped connection.
 */
const streamEvents = async (
  res: http.ServerResponse,
  events: ReadonlyArray<string>,
  cut: ScriptedReply["cutStream"],
  signal: AbortSignal,
): Promise<void> => {
  if (cut === undefined) return void res.end(events.join(""))
  const sent = events.slice(0, Math.max(0, Math.trunc(cut.afterEvents))).join("")
  if (cut.how === "end") return void res.end(sent)
  if (cut.how === "stall") {
    if (sent === "") res.flushHeaders()
    else res.write(sent)
    await wait(2 ** 31 - 1, signal)
    return void res.destroy()
  }
  // Flush what is kept (at least the headers), then drop the connection before the chunked
  // body's end, as a server that crashes mid-answer does.
  if (sent === "") res.flushHeaders()
  await new Promise<void>((resolve) => {
    const socket = res.socket
    if (sent !== "") res.write(sent, () => resolve())
    else if (socket !== null) socket.write("", () => resolve())
    else resolve()
  })
  res.destroy()
}

/** The record of a request as it arrives (headers lower-cased, `authorization` redacted). */
const recordOf = (req: http.IncomingMessage, path: string): Mutable<RecordedRequest> => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue
    headers[name] = name === "authorization" ? "<redacted>" : Array.isArray(value) ? value.join(", ") : value
  }
  return {
    method: req.method ?? "GET",
    path,
    headers,
    body: undefined,
    callIndex: undefined,
    episodeKey: undefined,
    episodeId: undefined,
    status: undefined,
  }
}

/** One request: recorded, labelled as the test double's, checked for its token and routed. */
const handle = async (
  state: ServerState,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> => {
  const path = (req.url ?? "/").split("?")[0] ?? "/"
  const record = recordOf(req, path)
  if (state.recordLimit > 0) {
    state.requests.push(record)
    if (state.requests.length > state.recordLimit) state.requests.shift()
  }
  res.setHeader(TEST_DOUBLE_HEADER, "scripted")
  res.setHeader("x-request-id", `scripted-${state.requestCount++}`)

  const route = `${req.method} ${path.replace(/\/+$/, "")}`
  if (route === "GET /health") {
    return sendJson(res, record, 200, { status: "ok", test_double: "scripted" })
  }
  if (isWeightRoute(route)) {
    const raw = await readBody(req, res, record)
    if (raw === undefined) return
    const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "")
    const answer = await state.weights.answer(route, query, raw.toString("utf8"))
    return sendJson(res, record, answer.status, answer.body)
  }
  if (route === TOKENIZE_ROUTE) {
    const raw = await readBody(req, res, record)
    if (raw === undefined) return
    const answer = tokenizeAnswer(raw.toString("utf8"), tokenOptions(state))
    return sendJson(res, record, answer.status, answer.body)
  }
  if (!path.startsWith("/v1/")) {
    req.resume()
    return sendError(res, record, {
      status: 404,
      message: `no route ${req.method} ${path}`,
      code: "not_found",
    })
  }
  const token = state.options.token
  if (token !== undefined && !tokenMatches(req.headers.authorization, token)) {
    req.resume()
    return sendError(res, record, {
      status: 401,
      message: "missing or wrong bearer token (the scripted test double was started with a token)",
      code: "invalid_api_key",
    })
  }
  switch (route) {
    case "GET /v1/models": {
      const served = state.options.models ?? ["scripted"]
      return sendJson(res, record, 200, {
        object: "list",
        data: served.map((id) => ({ id, object: "model", created: 0, owned_by: TEST_DOUBLE_OWNER })),
      })
    }
    case "POST /v1/chat/completions":
      return completeChat(state, req, res, record)
    case "POST /v1/completions":
      return completeChat(state, req, res, record, "text")
    default:
      req.resume()
      return sendError(res, record, {
        status: path === "/v1/models" || path === "/v1/chat/completions" ? 405 : 404,
        message: `no route ${req.method} ${path} on the scripted test double`,
        code: "not_found",
      })
  }
}

/** A bug or a broken socket: answer 500 if still possible, never crash the test process. */
const failRequest = (res: http.ServerResponse, cause: unknown, log: (line: string) => void): void => {
  log(`scripted model server: request failed: ${String(cause)}`)
  if (!res.headersSent) {
    res.writeHead(500, { "content-type": "application/json" })
    res.end(JSON.stringify({ error: { message: String(cause), type: "server_error", code: null } }))
  } else res.destroy()
}

/** Listens on the host and port (0: any free one); resolves with the OpenAI base URL. */
const listen = async (
  server: http.Server,
  port: number,
  host: string,
): Promise<{ url: string; port: number }> => {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const hostInUrl = address.family === "IPv6" ? `[${address.address}]` : address.address
  return { url: `http://${hostInUrl}:${address.port}/v1`, port: address.port }
}

export const startScriptedModelServer = async (
  options: ScriptedModelServerOptions,
): Promise<ScriptedModelServer> => {
  const state: ServerState = {
    options,
    script: options.script,
    callIndex: 0,
    requestCount: 0,
    recordLimit: options.recordLimit ?? 1000,
    requests: [],
    pending: new Set(),
    log: options.log ?? (() => {}),
    weights: new ScriptedWeights(options.weights),
    vocabulary: new Vocabulary(),
  }
  const server = http.createServer((req, res) => {
    handle(state, req, res).catch((cause: unknown) => failRequest(res, cause, state.log))
  })
  // Longer than clients' idle pools keep sockets, so reused connections are not closed under them.
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000

  const { url, port } = await listen(server, options.port ?? 0, options.host ?? "127.0.0.1")
  state.log(`scripted model server (TEST DOUBLE, not a real model) listening on ${url}`)

  let stopped: Promise<void> | undefined
  return {
    url,
    port,
    get requests() {
      return state.requests
    },
    setScript: (next) => {
      state.script = next
    },
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        for (const abort of state.pending) abort.abort()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopped
    },
  }
}

// The scripts and their vocabulary, so callers need only this module.
export type {
  ChatMessage,
  ChatRequest,
  FinishReason,
  Script,
  ScriptContext,
  ScriptedError,
  ScriptedReply,
  ScriptedToolCall,
} from "./script.ts"
export { parseScriptName, SCRIPT_NAME_HELP, scripts } from "./scripts.ts"
