/**
 * The trainer bridge over NATS, for trainers that speak NATS rather than HTTP: the same operations
 * as the HTTP API, as request/reply subjects `<ns>.bridge.<run>.{next,batch,weights,metrics,status}`
 * (the run id escaped into one token as event subjects do). A request is a JSON object (the HTTP
 * query's or body's fields) with the header `authorization: Bearer <token>`; the reply is a JSON
 * object with the HTTP status in `status` and, for a batch, the `BatchPublished` payload (its
 * `blob` ref included) rather than the bytes: the trainer reads those from the namespace's Object
 * Store, where the batch builder put them. `requestBridge` is that client side, for trainers and
 * tests written in TypeScript.
 */
import { headers, type Msg, type Subscription } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { NatsHandle } from "../../events/log/natsConnection.ts"
import { escapeToken } from "../../events/subjects.ts"
import { bearerMatches, tokenDigest } from "../tools/gatewayHttp.ts"
import type { BridgeCore, BridgeError } from "./bridgeCore.ts"
import { MAX_WAIT_SECONDS, parseNextBody, parseStepSegment, parseWeightsBody } from "./bridgeState.ts"

export const BRIDGE_OPERATIONS = ["next", "batch", "weights", "metrics", "status"] as const
export type BridgeOperation = (typeof BRIDGE_OPERATIONS)[number]

/** The subject of one operation of a run's bridge. */
export const bridgeSubject = (namespace: string, runId: string, operation: BridgeOperation): string =>
  `${namespace}.bridge.${escapeToken(runId)}.${operation}`

/** Request bodies are small JSON objects, as over HTTP. */
const MAX_REQUEST_BYTES = 256 * 1024

export interface BridgeNats {
  /** The subjects served, by operation. */
  readonly subjects: Readonly<Record<BridgeOperation, string>>
}

const reply = (msg: Msg, body: Readonly<Record<string, unknown>>): void => {
  if (msg.reply === undefined || msg.reply === "") return
  msg.respond(JSON.stringify(body))
}

const refusal = (error: BridgeError) => ({ status: error.status, error: error.error })

const parseRequest = (msg: Msg): { readonly body: unknown } | { readonly error: string } => {
  if (msg.data.byteLength > MAX_REQUEST_BYTES)
    return { error: `body: larger than ${MAX_REQUEST_BYTES} bytes` }
  if (msg.data.byteLength === 0) return { body: undefined }
  try {
    return { body: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(msg.data)) as unknown }
  } catch {
    return { error: "body: not JSON" }
  }
}

const runCore = <A>(core: BridgeCore, effect: Effect.Effect<A, BridgeError>, signal: AbortSignal) =>
  core.runExit(effect, { signal }).then((exit): { ok: A } | { error: BridgeError } => {
    if (Exit.isSuccess(exit)) return { ok: exit.value }
    const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
    return {
      error:
        failure?._tag === "Fail"
          ? failure.error
          : { status: 500, error: "internal error in the trainer bridge" },
    }
  })

/** One request to one operation: the JSON reply, as a status and fields. */
const answer = async (
  core: BridgeCore,
  operation: BridgeOperation,
  body: unknown,
  signal: AbortSignal,
): Promise<Readonly<Record<string, unknown>>> => {
  switch (operation) {
    case "next": {
      const request = parseNextBody(body)
      if (request._tag === "Failure") return refusal(request.failure)
      const result = await runCore(core, core.next(request.success), signal)
      if ("error" in result) return refusal(result.error)
      const value = result.ok
      if (value.kind === "finished")
        return { status: 410, error: `run ${core.runId}: finished, and every batch was acknowledged` }
      if (value.kind === "empty") return { status: 204, run: core.runId, step: value.step }
      return {
        status: 200,
        run: core.runId,
        step: value.batch.step,
        hash: value.batch.hash,
        batch: value.batch,
      }
    }
    case "batch": {
      const field =
        typeof body === "object" && body !== null && !Array.isArray(body)
          ? (body as { step?: unknown }).step
          : undefined
      if (typeof field !== "number" && typeof field !== "string")
        return { status: 400, error: "step: required, a non-negative integer" }
      const step = parseStepSegment(String(field))
      if (step._tag === "Failure") return refusal(step.failure)
      const result = await runCore(core, core.batch(step.success), signal)
      if ("error" in result) return refusal(result.error)
      return { status: 200, run: core.runId, step: result.ok.step, hash: result.ok.hash, batch: result.ok }
    }
    case "weights": {
      const request = parseWeightsBody(body)
      if (request._tag === "Failure") return refusal(request.failure)
      const result = await runCore(core, core.publishWeights(request.success), signal)
      if ("error" in result) return refusal(result.error)
      const { status, report } = result.ok
      return {
        status,
        ...report,
        ...(status === 502 ? { error: `no endpoint of ${report.model} took version ${report.version}` } : {}),
      }
    }
    case "metrics": {
      const result = await runCore(core, core.reportMetrics(body), signal)
      if ("error" in result) return refusal(result.error)
      return { status: 200, ...result.ok }
    }
    case "status": {
      const result = await runCore(core, core.status, signal)
      if ("error" in result) return refusal(result.error)
      return { status: 200, ...result.ok }
    }
  }
}

/** Answers the run's bridge subjects for the life of the scope. */
export const serveBridgeNats = (
  core: BridgeCore,
  options: { readonly nats: NatsHandle; readonly token: string },
): Effect.Effect<BridgeNats, never, Scope.Scope> =>
  Effect.gen(function* () {
    const namespace = core.subject.split(".")[0]!
    const expected = tokenDigest(options.token)
    const stopping = new AbortController()
    const subjects = Object.fromEntries(
      BRIDGE_OPERATIONS.map((operation) => [operation, bridgeSubject(namespace, core.runId, operation)]),
    ) as Record<BridgeOperation, string>
    const subscriptions: Array<Subscription> = []
    const serve = (operation: BridgeOperation, msg: Msg) => {
      if (!bearerMatches(msg.headers?.get("authorization") || undefined, expected)) {
        reply(msg, {
          status: 401,
          error: "authorization: missing or wrong bearer token (header authorization: Bearer <token>)",
        })
        return
      }
      const parsed = parseRequest(msg)
      if ("error" in parsed) {
        reply(msg, { status: 400, error: parsed.error })
        return
      }
      answer(core, operation, parsed.body, stopping.signal).then(
        (body) => reply(msg, body),
        () => reply(msg, { status: 500, error: "internal error in the trainer bridge" }),
      )
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const operation of BRIDGE_OPERATIONS)
          subscriptions.push(
            options.nats.nc.subscribe(subjects[operation], {
              callback: (error, msg) => {
                if (error === null) serve(operation, msg)
              },
            }),
          )
      }),
      () =>
        Effect.sync(() => {
          stopping.abort()
          for (const subscription of subscriptions) subscription.unsubscribe()
        }),
    )
    // The subscriptions are registered with the server before anyone is told they exist.
    yield* Effect.promise(() => options.nats.nc.flush())
    return { subjects }
  })

export interface BridgeNatsClientOptions {
  readonly nats: NatsHandle
  readonly namespace: string
  readonly runId: string
  readonly token: string
}

/**
 * One request to a run's bridge over NATS; resolves with the reply's fields (its `status` among
 * them). A `next` waits `wait` seconds on the bridge, so the request allows that much more.
 */
export const requestBridge = async (
  client: BridgeNatsClientOptions,
  operation: BridgeOperation,
  body: Readonly<Record<string, unknown>> = {},
): Promise<Readonly<Record<string, unknown>> & { readonly status: number }> => {
  const h = headers()
  h.set("authorization", `Bearer ${client.token}`)
  const wait = typeof body.wait === "number" ? Math.min(body.wait, MAX_WAIT_SECONDS) : 30
  const timeout = (operation === "next" ? wait * 1000 : 0) + 30_000
  const msg = await client.nats.nc.request(
    bridgeSubject(client.namespace, client.runId, operation),
    JSON.stringify(body),
    { headers: h, timeout },
  )
  return JSON.parse(new TextDecoder().decode(msg.data)) as Readonly<Record<string, unknown>> & {
    readonly status: number
  }
}
