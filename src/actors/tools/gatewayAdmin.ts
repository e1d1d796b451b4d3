/**
 * The gateway's admin surface for the CLI (`rollout dock status|swap|call` against a running
 * dock), behind the same bearer token as the MCP endpoint: `GET /admin/status`,
 * `GET /admin/recording` (lifecycle events waiting for the log), `POST /admin/swap`
 * `{server, version}`, `POST /admin/call` `{name, args?, idempotencyKey?, timeoutMs?}`. A request
 * body that is not what the route takes is refused with 400 saying what it takes; a DockError
 * becomes the HTTP status of its kind.
 */
import type * as http from "node:http"
import { type Dock, type DockCallOptions, DockError } from "./dockTypes.ts"
import { readJsonBody, sendJson } from "./gatewayHttp.ts"

/** The HTTP status of a call or swap the dock could not serve. */
export const dockErrorStatus = (error: DockError): number => {
  switch (error.kind) {
    case "unknown_tool":
      return 404
    case "queue_full":
      return 429
    case "unavailable":
    case "closed":
      return 503
    case "refused":
      return 409
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A swap request's fields, or undefined when the body is not one. */
export const swapRequest = (
  value: unknown,
): { readonly server: string; readonly version: string } | undefined =>
  isRecord(value) &&
  typeof value.server === "string" &&
  value.server !== "" &&
  typeof value.version === "string" &&
  value.version !== ""
    ? { server: value.server, version: value.version }
    : undefined

/** A call request's name, arguments and options, or undefined when the body is not one. */
export const callRequest = (
  value: unknown,
): { readonly name: string; readonly args: unknown; readonly options: DockCallOptions } | undefined => {
  if (
    !isRecord(value) ||
    typeof value.name !== "string" ||
    value.name === "" ||
    (value.idempotencyKey !== undefined && typeof value.idempotencyKey !== "string") ||
    (value.timeoutMs !== undefined &&
      (typeof value.timeoutMs !== "number" || !Number.isFinite(value.timeoutMs) || value.timeoutMs <= 0))
  )
    return undefined
  return {
    name: value.name,
    args: value.args ?? {},
    options: {
      ...(typeof value.idempotencyKey === "string" ? { idempotencyKey: value.idempotencyKey } : {}),
      ...(typeof value.timeoutMs === "number" ? { timeoutMs: value.timeoutMs } : {}),
    },
  }
}

/** Answers with what the dock gave, or with the status of why it could not. */
const answer = async (res: http.ServerResponse, work: () => unknown): Promise<void> => {
  try {
    sendJson(res, 200, await work())
  } catch (error) {
    if (error instanceof DockError)
      sendJson(res, dockErrorStatus(error), { error: error.message, kind: error.kind })
    else sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) })
  }
}

/** Serves one admin route (the caller checked the token). */
export const serveAdmin = async (
  dock: Dock,
  maxBody: number,
  route: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> => {
  const method = req.method ?? ""
  const only = (allowed: string): boolean => {
    if (method === allowed) return true
    sendJson(res, 405, { error: `${route} takes ${allowed}` }, { allow: allowed })
    return false
  }
  switch (route) {
    case "/admin/status":
      if (only("GET")) await answer(res, () => dock.status())
      return
    case "/admin/recording":
      if (only("GET")) sendJson(res, 200, dock.recording?.() ?? null)
      return
    case "/admin/swap": {
      if (!only("POST")) return
      const body = await readJsonBody(req, res, maxBody, false)
      if (body === undefined) return
      const swap = swapRequest(body.value)
      if (swap === undefined) sendJson(res, 400, { error: 'expected {"server": string, "version": string}' })
      else await answer(res, () => dock.swap(swap.server, swap.version))
      return
    }
    case "/admin/call": {
      if (!only("POST")) return
      const body = await readJsonBody(req, res, maxBody, false)
      if (body === undefined) return
      const call = callRequest(body.value)
      if (call === undefined)
        sendJson(res, 400, {
          error:
            'expected {"name": string, "args"?: object, "idempotencyKey"?: string, "timeoutMs"?: number}',
        })
      else await answer(res, () => dock.call(call.name, call.args, call.options))
      return
    }
    default:
      sendJson(res, 404, { error: `no route ${route}` })
  }
}
