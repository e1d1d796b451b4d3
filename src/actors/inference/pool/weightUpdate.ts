/**
 * One server's weight update through its own API, as the inference pool runs it for a published
 * version: vLLM's native sequence (`GET /is_paused` → `POST /pause?mode=keep` → `POST
 * /init_weight_transfer_engine {init_info: {}}` (a server's first update) → `POST
 * /start_weight_update` → `POST /update_weights {update_info: {path}}` → `POST
 * /finish_weight_update {weight_version}` → `GET /weight_info` → `POST /resume`) or SGLang's `POST
 * /update_weights_from_disk {model_path, weight_version, abort_all_requests: false, flush_cache:
 * true}` read back by `GET /model_info` (`/get_model_info` on servers older than that route). The
 * server's root is the endpoint's OpenAI base URL without its `/v1`. The version is read back
 * before vLLM resumes, so a server that reports another version is never resumed; after a failed
 * step nothing more is sent (the disk backend is not transactional: a partial load must not serve).
 * Each request is bounded by the group's `timeoutMs`. What an outcome means for the endpoint is
 * the decider's to say.
 */
import * as http from "node:http"
import * as https from "node:https"
import * as Effect from "effect/Effect"

/** A published version, and where its checkpoint is on the servers' disks. */
export interface WeightsToLoad {
  readonly version: string
  readonly path: string
}

/** The step that failed (`pause`, `update_weights`, `weight_info`, …) and what the server said. */
export interface UpdateFailure {
  readonly step: string
  readonly message: string
}

/** Where and how to reach one server's weight API. */
export interface WeightServer {
  /** The server's root URL (see `serverRoot`). */
  readonly root: string
  /** Sent as a bearer token when set (the endpoint's key; never in a failure's message). */
  readonly apiKey: string | undefined
  readonly timeoutMs: number
}

/** The server's root: the endpoint's OpenAI base URL without its trailing `/v1`. */
export const serverRoot = (endpointUrl: string): string =>
  endpointUrl.replace(/\/+$/, "").replace(/\/v1$/, "")

/** What an error body says: OpenAI's `error.message`, FastAPI's `detail`, SGLang's `message`, or the text. */
const errorMessage = (body: unknown, text: string): string => {
  if (typeof body === "object" && body !== null) {
    const record = body as Record<string, unknown>
    const error = record.error
    if (
      typeof error === "object" &&
      error !== null &&
      typeof (error as { message?: unknown }).message === "string"
    )
      return (error as { message: string }).message
    if (typeof error === "string") return error
    if (typeof record.detail === "string") return record.detail
    if (typeof record.message === "string") return record.message
  }
  return text.slice(0, 500)
}

interface Answer {
  readonly status: number
  readonly body: unknown
  readonly text: string
}

/** Sends one request on a connection of its own and reads the whole answer, within `timeoutMs`. */
const exchange = (
  url: URL,
  method: "GET" | "POST",
  headers: Readonly<Record<string, string>>,
  body: string | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ status: number; text: string }> =>
  new Promise((resolve, reject) => {
    // No pooled connection: updates are rare, and a keep-alive socket of a server that restarted
    // since the last publish would fail the first step.
    const send = url.protocol === "https:" ? https.request : http.request
    const request = send(url, { method, headers, agent: false, signal }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => {
        clearTimeout(timer)
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") })
      })
      response.on("error", fail)
    })
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    function fail(error: Error) {
      clearTimeout(timer)
      reject(error)
    }
    request.on("error", fail)
    request.end(body)
  })

/** One request to the server's root; fails with the step on a transport error or a timeout. */
const request = (
  server: WeightServer,
  step: string,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Effect.Effect<Answer, UpdateFailure> =>
  Effect.tryPromise({
    try: async (signal) => {
      const headers: Record<string, string> = {}
      if (body !== undefined) headers["content-type"] = "application/json"
      if (server.apiKey !== undefined) headers.authorization = `Bearer ${server.apiKey}`
      const text = body === undefined ? undefined : JSON.stringify(body)
      const answer = await exchange(
        new URL(`${server.root}${route}`),
        method,
        headers,
        text,
        server.timeoutMs,
        signal,
      )
      let parsed: unknown
      try {
        parsed = JSON.parse(answer.text)
      } catch {
        parsed = undefined
      }
      return { status: answer.status, body: parsed, text: answer.text }
    },
    catch: (error) => ({
      step,
      message: `${method} ${route}: ${error instanceof Error ? error.message : String(error)}`,
    }),
  })

/** A request that must answer 2xx; its body. */
const expectOk = (
  server: WeightServer,
  step: string,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Effect.Effect<unknown, UpdateFailure> =>
  Effect.flatMap(request(server, step, method, route, body), (answer) =>
    answer.status >= 200 && answer.status < 300
      ? Effect.succeed(answer.body)
      : Effect.fail({ step, message: `HTTP ${answer.status}: ${errorMessage(answer.body, answer.text)}` }),
  )

/** The `weight_version` of an answer (`null` when the server has none), or a failure naming `step`. */
const versionIn = (body: unknown, step: string): Effect.Effect<string | null, UpdateFailure> => {
  const version =
    typeof body === "object" && body !== null
      ? (body as { weight_version?: unknown }).weight_version
      : undefined
  if (typeof version === "string") return Effect.succeed(version)
  if (version === null) return Effect.succeed(null)
  return Effect.fail({
    step,
    message: `the answer has no weight_version: ${JSON.stringify(body)?.slice(0, 200)}`,
  })
}

/** Fails unless the server reports serving `expected`. */
const checkVersion = (
  live: string | null,
  expected: string,
  step: string,
): Effect.Effect<void, UpdateFailure> =>
  live === expected
    ? Effect.void
    : Effect.fail({
        step,
        message: `the server reports version ${live ?? "none"} after the update to ${expected}`,
      })

/** The version a vLLM server reports serving. */
export const vllmVersion = (server: WeightServer): Effect.Effect<string | null, UpdateFailure> =>
  Effect.flatMap(expectOk(server, "weight_info", "GET", "/weight_info"), (body) =>
    versionIn(body, "weight_info"),
  )

/** The version an SGLang server reports serving (`/model_info`, else the older `/get_model_info`). */
export const sglangVersion = (server: WeightServer): Effect.Effect<string | null, UpdateFailure> =>
  Effect.gen(function* () {
    const current = yield* request(server, "model_info", "GET", "/model_info")
    const answer =
      current.status === 404 ? yield* request(server, "model_info", "GET", "/get_model_info") : current
    if (answer.status < 200 || answer.status >= 300)
      return yield* Effect.fail({
        step: "model_info",
        message: `HTTP ${answer.status}: ${errorMessage(answer.body, answer.text)}`,
      })
    return yield* versionIn(answer.body, "model_info")
  })

/** What an update found that an earlier one had left on the server (undefined: it was serving). */
export interface UpdateOutcome {
  readonly recovered?: string
}

/**
 * Whether a vLLM server is paused (`GET /is_paused`); a server without the route counts as serving.
 * A server found paused before an update was left so by an earlier update that stopped part-way (its
 * updater killed between `/pause` and `/resume`), or paused by hand: it holds every request until
 * someone resumes it.
 */
const vllmPaused = (server: WeightServer): Effect.Effect<boolean, UpdateFailure> =>
  Effect.flatMap(request(server, "is_paused", "GET", "/is_paused"), (answer) => {
    if (answer.status === 404) return Effect.succeed(false)
    const paused =
      typeof answer.body === "object" && answer.body !== null
        ? (answer.body as { is_paused?: unknown }).is_paused
        : undefined
    if (answer.status >= 200 && answer.status < 300 && typeof paused === "boolean")
      return Effect.succeed(paused)
    return Effect.fail({
      step: "is_paused",
      message:
        answer.status >= 200 && answer.status < 300
          ? `the answer has no is_paused: ${answer.text.slice(0, 200)}`
          : `HTTP ${answer.status}: ${errorMessage(answer.body, answer.text)}`,
    })
  })

/**
 * vLLM's native sequence; succeeds once the server serves `weights.version` again. The transfer
 * engine is initialised (`POST /init_weight_transfer_engine`) unless `initialized` says this
 * caller has done so on this server already. A server found paused is not paused again, and one
 * found with an update still open (its `/start_weight_update` answers 409) has the whole
 * checkpoint loaded over whatever the stopped update applied; the outcome says so.
 */
export const updateVllm = (
  server: WeightServer,
  weights: WeightsToLoad,
  options: { readonly initialized: boolean } = { initialized: false },
): Effect.Effect<UpdateOutcome, UpdateFailure> =>
  Effect.gen(function* () {
    const paused = yield* vllmPaused(server)
    if (!paused) yield* expectOk(server, "pause", "POST", "/pause?mode=keep")
    // The disk backend needs no settings: `init_info` is empty.
    if (!options.initialized)
      yield* expectOk(server, "init_weight_transfer_engine", "POST", "/init_weight_transfer_engine", {
        init_info: {},
      })
    const start = yield* request(server, "start_weight_update", "POST", "/start_weight_update", {})
    const opened = start.status >= 200 && start.status < 300
    if (!opened && !(paused && start.status === 409))
      return yield* Effect.fail({
        step: "start_weight_update",
        message: `HTTP ${start.status}: ${errorMessage(start.body, start.text)}`,
      })
    yield* expectOk(server, "update_weights", "POST", "/update_weights", {
      update_info: { path: weights.path },
    })
    yield* expectOk(server, "finish_weight_update", "POST", "/finish_weight_update", {
      weight_version: weights.version,
    })
    // Read back while still paused: a server on another version is never resumed.
    yield* checkVersion(yield* vllmVersion(server), weights.version, "weight_info")
    yield* expectOk(server, "resume", "POST", "/resume", {})
    if (!paused) return {}
    return {
      recovered: opened
        ? "the server was found paused (an earlier update stopped part-way, or it was paused by hand); it serves again"
        : "the server was found paused with a weight update still open (an earlier update stopped part-way); the whole checkpoint was loaded over it",
    }
  })

/** SGLang's load from disk (it holds its own requests meanwhile), then the version read back. */
export const updateSglang = (
  server: WeightServer,
  weights: WeightsToLoad,
): Effect.Effect<UpdateOutcome, UpdateFailure> =>
  Effect.gen(function* () {
    const step = "update_weights_from_disk"
    const answer = yield* request(server, step, "POST", "/update_weights_from_disk", {
      model_path: weights.path,
      weight_version: weights.version,
      abort_all_requests: false,
      flush_cache: true,
    })
    const body = answer.body as { success?: unknown; message?: unknown } | undefined
    if (answer.status < 200 || answer.status >= 300 || body?.success !== true)
      return yield* Effect.fail({
        step,
        message: `HTTP ${answer.status}: ${errorMessage(answer.body, answer.text) || "success is not true"}`,
      })
    yield* checkVersion(yield* sglangVersion(server), weights.version, "model_info")
    return {}
  })
