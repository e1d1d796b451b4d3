/**
 * The trainer bridge's HTTP server (docs/training.md, "The bridge's HTTP API"): any trainer, in
 * any language, takes the run's batches (`GET /v1/batches/next`, long-poll, acknowledging the step
 * it trained), publishes weight versions (`POST /v1/weights`), reports its steps (`POST
 * /v1/metrics`) and reads the bridge's status. Plain `node:http` on 127.0.0.1 by default, a bearer
 * token on every request (compared in constant time, never logged or recorded), bodies capped,
 * every refusal a JSON `{error}` naming what was wrong. `startTrainerBridge` starts the bridge of
 * one run: the core (`bridgeCore.ts`), this server and, given a NATS connection, the same
 * operations as NATS request/reply subjects (`bridgeNats.ts`).
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import type { NatsHandle } from "../../events/log/natsConnection.ts"
import { BodyTooLarge, bearerMatches, readBody, sendJson, tokenDigest } from "../tools/gatewayHttp.ts"
import {
  type BridgeCore,
  type BridgeError,
  type BridgeFault,
  makeBridgeCore,
  type TrainerBridgeOptions,
} from "./bridgeCore.ts"
import { type BridgeNats, serveBridgeNats } from "./bridgeNats.ts"
import { parseNextQuery, parseStepSegment, parseWeightsBody } from "./bridgeState.ts"

/** Request bodies (weights, metrics) are small JSON objects; anything larger is refused (413). */
export const MAX_BODY_BYTES = 256 * 1024

export interface BridgeHttpOptions {
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Default 0: a free port. */
  readonly port?: number
  readonly token: string
  readonly maxBodyBytes?: number
}

export interface BridgeHttp {
  /** `http://host:port` */
  readonly url: string
  readonly port: number
  /** Stops taking requests and ends the open ones (long-polls included). */
  readonly close: () => Promise<void>
}

type Route =
  | { readonly kind: "next" }
  | { readonly kind: "batch"; readonly segment: string }
  | { readonly kind: "weights" }
  | { readonly kind: "metrics" }
  | { readonly kind: "status" }

const ROUTES: ReadonlyArray<{
  readonly pattern: RegExp
  readonly method: "GET" | "POST"
  readonly route: (m: RegExpExecArray) => Route
}> = [
  { pattern: /^\/v1\/batches\/next$/, method: "GET", route: () => ({ kind: "next" }) },
  { pattern: /^\/v1\/batches\/([^/]+)$/, method: "GET", route: (m) => ({ kind: "batch", segment: m[1]! }) },
  { pattern: /^\/v1\/weights$/, method: "POST", route: () => ({ kind: "weights" }) },
  { pattern: /^\/v1\/metrics$/, method: "POST", route: () => ({ kind: "metrics" }) },
  { pattern: /^\/v1\/status$/, method: "GET", route: () => ({ kind: "status" }) },
]

/** The route a method and path name, or the refusal (404 unknown path, 405 wrong method). */
export const routeOf = (
  method: string,
  pathname: string,
):
  | { readonly route: Route }
  | { readonly status: 404 | 405; readonly error: string; readonly allow?: string } => {
  for (const { pattern, method: allowed, route } of ROUTES) {
    const match = pattern.exec(pathname)
    if (match === null) continue
    if (method !== allowed)
      return { status: 405, error: `${method} ${pathname}: use ${allowed}`, allow: allowed }
    return { route: route(match) }
  }
  return {
    status: 404,
    error: `no route ${JSON.stringify(pathname.slice(0, 100))} (routes: GET /v1/batches/next, GET /v1/batches/<step>, POST /v1/weights, POST /v1/metrics, GET /v1/status)`,
  }
}

const sendError = (res: http.ServerResponse, error: BridgeError): void =>
  sendJson(res, error.status, { error: error.error })

/** Runs a core operation; a defect (a bug) is answered 500 rather than left hanging. */
const run = <A>(
  core: BridgeCore,
  effect: Effect.Effect<A, BridgeError>,
  signal: AbortSignal,
): Promise<Result.Result<A, BridgeError>> =>
  core.runExit(effect, { signal }).then((exit) => {
    if (Exit.isSuccess(exit)) return Result.succeed(exit.value)
    const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (failure?._tag === "Fail") return Result.fail(failure.error)
    return Result.fail<BridgeFault>({ status: 500, error: "internal error in the trainer bridge" })
  })

const readJson = async (
  req: http.IncomingMessage,
  limit: number,
): Promise<Result.Result<unknown, { status: 400 | 413; error: string }>> => {
  let raw: Buffer
  try {
    raw = await readBody(req, limit)
  } catch (error) {
    if (error instanceof BodyTooLarge)
      return Result.fail({ status: 413, error: `body: larger than ${limit} bytes` })
    throw error
  }
  try {
    return Result.succeed(JSON.parse(raw.toString("utf8")) as unknown)
  } catch {
    return Result.fail({ status: 400, error: "body: not JSON" })
  }
}

/** Serves `core` over HTTP until `close`. */
export const startBridgeHttp = async (core: BridgeCore, options: BridgeHttpOptions): Promise<BridgeHttp> => {
  const expected = tokenDigest(options.token)
  const limit = options.maxBodyBytes ?? MAX_BODY_BYTES
  const stopping = new AbortController()

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (!bearerMatches(req.headers.authorization, expected)) {
      req.resume()
      sendJson(
        res,
        401,
        { error: "authorization: missing or wrong bearer token (Authorization: Bearer <token>)" },
        {
          "www-authenticate": "Bearer",
        },
      )
      return
    }
    let url: URL
    try {
      url = new URL(req.url ?? "/", "http://bridge")
    } catch {
      sendJson(res, 400, { error: "path: not a valid request target" })
      return
    }
    const found = routeOf(req.method ?? "GET", url.pathname)
    if (!("route" in found)) {
      req.resume()
      sendJson(
        res,
        found.status,
        { error: found.error },
        found.allow === undefined ? {} : { allow: found.allow },
      )
      return
    }
    const route = found.route
    switch (route.kind) {
      case "next": {
        const request = parseNextQuery(url.searchParams)
        if (Result.isFailure(request)) return sendError(res, request.failure)
        // A trainer that hangs up stops its wait; the bridge stopping ends every wait.
        const gone = new AbortController()
        res.on("close", () => gone.abort())
        const signal = AbortSignal.any([gone.signal, stopping.signal])
        const answer = await run(core, core.next(request.success), signal)
        if (Result.isFailure(answer)) return sendError(res, answer.failure)
        const value = answer.success
        if (value.kind === "finished") {
          sendJson(res, 410, { error: `run ${core.runId}: finished, and every batch was acknowledged` })
          return
        }
        if (value.kind === "empty") {
          res.writeHead(204, {
            "rollout-run": core.runId,
            "rollout-step": String(value.step),
            "cache-control": "no-store",
          })
          res.end()
          return
        }
        return sendBatch(res, core, value.batch, signal)
      }
      case "batch": {
        const step = parseStepSegment(route.segment)
        if (Result.isFailure(step)) return sendError(res, step.failure)
        const found = await run(core, core.batch(step.success), stopping.signal)
        if (Result.isFailure(found)) return sendError(res, found.failure)
        return sendBatch(res, core, found.success, stopping.signal)
      }
      case "weights": {
        const body = await readJson(req, limit)
        if (Result.isFailure(body)) return sendError(res, body.failure as BridgeError)
        const request = parseWeightsBody(body.success)
        if (Result.isFailure(request)) return sendError(res, request.failure)
        const result = await run(core, core.publishWeights(request.success), stopping.signal)
        if (Result.isFailure(result)) return sendError(res, result.failure)
        const { status, report } = result.success
        sendJson(res, status, {
          ...report,
          ...(status === 502
            ? { error: `no endpoint of ${report.model} took version ${report.version}` }
            : {}),
        })
        return
      }
      case "metrics": {
        const body = await readJson(req, limit)
        if (Result.isFailure(body)) return sendError(res, body.failure as BridgeError)
        const result = await run(core, core.reportMetrics(body.success), stopping.signal)
        if (Result.isFailure(result)) return sendError(res, result.failure)
        sendJson(res, 200, result.success)
        return
      }
      case "status": {
        const status = await run(core, core.status, stopping.signal)
        if (Result.isFailure(status)) return sendError(res, status.failure)
        sendJson(res, 200, status.success)
        return
      }
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      // A failure past the point of answering (the socket went away): nothing left to tell anyone.
      if (!res.headersSent) sendJson(res, 500, { error: "internal error in the trainer bridge" })
      else res.destroy()
    })
  })
  // Long-polls wait up to 60 s: keep the server's own timeouts above that.
  server.requestTimeout = 120_000
  server.headersTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        stopping.abort()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const sendBatch = async (
  res: http.ServerResponse,
  core: BridgeCore,
  batch: Parameters<BridgeCore["batchBytes"]>[0],
  signal: AbortSignal,
): Promise<void> => {
  const bytes = await run(core, core.batchBytes(batch), signal)
  if (Result.isFailure(bytes)) return sendError(res, bytes.failure)
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": bytes.success.byteLength,
    "cache-control": "no-store",
    "rollout-run": core.runId,
    "rollout-step": String(batch.step),
    "rollout-hash": batch.hash,
  })
  res.end(bytes.success)
}

export interface StartTrainerBridgeOptions extends TrainerBridgeOptions, BridgeHttpOptions {
  /** Given, the bridge also answers on NATS subjects (`bridgeNats.ts`). */
  readonly nats?: NatsHandle
}

export interface TrainerBridge {
  readonly core: BridgeCore
  readonly http: BridgeHttp
  readonly nats?: BridgeNats
}

/**
 * Starts the bridge of one run for the life of the scope: its state rebuilt from the log, the HTTP
 * server and, with `nats`, the NATS subjects. Closing the scope stops both and ends open waits.
 */
export const startTrainerBridge = (
  options: StartTrainerBridgeOptions,
): Effect.Effect<TrainerBridge, BridgeFault, Scope.Scope> =>
  Effect.gen(function* () {
    const core = yield* makeBridgeCore(options)
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => startBridgeHttp(core, options),
        catch: (error): BridgeFault => ({
          status: 500,
          error: `trainer bridge: cannot listen on ${options.host ?? "127.0.0.1"}:${options.port ?? 0}: ${(error as Error).message}`,
        }),
      }),
      (started) => Effect.promise(() => started.close()),
    )
    if (options.nats === undefined) return { core, http: server }
    const nats = yield* serveBridgeNats(core, { nats: options.nats, token: options.token })
    return { core, http: server, nats }
  })
