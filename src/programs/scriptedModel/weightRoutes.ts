/**
 * The scripted test double's weight-update routes, so the inference pool's weight updates are
 * tested over real HTTP: vLLM's native sequence (`POST /pause?mode=keep|wait` → `POST
 * /init_weight_transfer_engine {init_info}` (accepted in any phase) → `POST /start_weight_update` → `POST /update_weights {update_info: {path}}` → `POST
 * /finish_weight_update {weight_version}` → `POST /resume`, `GET /weight_info`, `GET /is_paused`)
 * as a state machine that refuses a request outside the sequence with a 409 and a message (a bad
 * body with a 400), and SGLang's `POST /update_weights_from_disk {model_path, weight_version}` →
 * `{success, message, num_paused_requests}` (read back by `GET /model_info` or `/get_model_info`).
 * "Loading" checks that the path is an absolute `.safetensors` file, or a directory holding one;
 * nothing is read beyond that. The served version is stamped on every chat answer in the
 * `x-policy-version` header (the pool's default) and chat answers wait while the engine is paused
 * (a paused vLLM holds requests, it does not fail them). `failUpdates` makes updates fail: the load
 * step (as a broken checkpoint would), a named step, or `"version"` — the update is acknowledged
 * but the old version is still served, as a read back shows.
 */
import * as fs from "node:fs/promises"
import type * as http from "node:http"
import * as path from "node:path"
import { DEFAULT_POLICY_VERSION_HEADER } from "../../actors/inference/modelsConfig.ts"
import { openAiErrorBody } from "./chatRequest.ts"

/** A step of either API, as `failUpdates` names it. */
export type WeightStep =
  | "pause"
  | "start_weight_update"
  | "update_weights"
  | "finish_weight_update"
  | "resume"
  | "update_weights_from_disk"

export interface ScriptedWeightsOptions {
  /** The version served at start; default none (`weight_version: null`, no version header). */
  readonly version?: string
  /**
   * Makes every update fail: `true` fails the load (`update_weights`, `update_weights_from_disk`)
   * with a 500 (400 for SGLang), leaving the weights in doubt; a step name fails that step with a
   * 500; `"version"` acknowledges the whole sequence but keeps serving the old version.
   */
  readonly failUpdates?: boolean | WeightStep | "version"
  /** How long a load takes (the engine stays paused meanwhile); default 0. */
  readonly loadMs?: number
}

/**
 * `serving`: takes requests. `paused`: holds them (vLLM `/pause`). `updating`: a weight update
 * started. `loaded`: weights loaded, not yet finished. `failed`: a load failed part-way; paused,
 * the weights in doubt, a new update may start. `loading`: an SGLang load is running.
 */
export type WeightPhase = "serving" | "paused" | "updating" | "loaded" | "failed" | "loading"

/** What a weight route answers. */
export interface WeightAnswer {
  readonly status: number
  readonly body: unknown
}

const ROUTES = new Set([
  "POST /pause",
  "POST /resume",
  "GET /is_paused",
  "POST /init_weight_transfer_engine",
  "POST /start_weight_update",
  "POST /update_weights",
  "POST /finish_weight_update",
  "GET /weight_info",
  "POST /update_weights_from_disk",
  "GET /model_info",
  "GET /get_model_info",
])

/** True for `METHOD /path` (no query, no trailing slash) of a weight route. */
export const isWeightRoute = (route: string): boolean => ROUTES.has(route)

/** vLLM answers an error with an OpenAI-style body. */
const refuse = (status: number, message: string, code: string): WeightAnswer => ({
  status,
  body: openAiErrorBody({ status, message, code }),
})

const ok = (body: unknown): WeightAnswer => ({ status: 200, body })

/** The body as a JSON object (an empty body is `{}`), or why it is not one. */
const jsonObject = (text: string): Record<string, unknown> | string => {
  if (text.trim() === "") return {}
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : "the body must be a JSON object"
  } catch {
    return "the body is not valid JSON"
  }
}

/** Why weights cannot be loaded from `target`, or undefined when they can. */
const loadProblem = async (target: string): Promise<string | undefined> => {
  if (!path.isAbsolute(target)) return `${target} is not an absolute path`
  const info = await fs.stat(target).catch(() => undefined)
  if (info === undefined) return `no such file or directory: ${target}`
  if (info.isFile())
    return target.endsWith(".safetensors") ? undefined : `${target} is not a .safetensors file`
  const names = await fs.readdir(target)
  return names.some((name) => name.endsWith(".safetensors")) ? undefined : `no .safetensors file in ${target}`
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** One server's weights: the version it serves, where it is in an update, and held requests. */
export class ScriptedWeights {
  private phaseNow: WeightPhase = "serving"
  private versionNow: string | undefined
  /** Requests held while the engine is not serving. */
  private readonly held = new Set<() => void>()

  constructor(private readonly options: ScriptedWeightsOptions = {}) {
    this.versionNow = options.version
  }

  get version(): string | undefined {
    return this.versionNow
  }

  get phase(): WeightPhase {
    return this.phaseNow
  }

  /** Resolves once the engine serves (at once when it does), or when `signal` aborts. */
  whileHeld(signal: AbortSignal): Promise<void> {
    if (this.phaseNow === "serving" || signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const release = () => {
        this.held.delete(release)
        signal.removeEventListener("abort", release)
        resolve()
      }
      this.held.add(release)
      signal.addEventListener("abort", release, { once: true })
    })
  }

  /** Puts the served version on a response, in the header the pool reads by default. */
  stamp(res: http.ServerResponse): void {
    if (this.versionNow !== undefined) res.setHeader(DEFAULT_POLICY_VERSION_HEADER, this.versionNow)
  }

  private enter(phase: WeightPhase): void {
    this.phaseNow = phase
    if (phase === "serving") for (const release of [...this.held]) release()
  }

  private fails(step: WeightStep): boolean {
    const fail = this.options.failUpdates
    const load = step === "update_weights" || step === "update_weights_from_disk"
    return fail === step || (fail === true && load)
  }

  /** Answers `route` (see `isWeightRoute`) with its query string and body text. */
  async answer(route: string, query: URLSearchParams, body: string): Promise<WeightAnswer> {
    const parsed = jsonObject(body)
    if (typeof parsed === "string") return refuse(400, parsed, "invalid_json")
    switch (route) {
      case "GET /weight_info":
        return ok({ weight_version: this.versionNow ?? null })
      case "GET /is_paused":
        return ok({ is_paused: this.phaseNow !== "serving" })
      case "GET /model_info":
      case "GET /get_model_info":
        return ok({ model_path: "scripted", is_generation: true, weight_version: this.versionNow ?? null })
      case "POST /pause":
        return this.pause(query.get("mode") ?? "keep")
      case "POST /resume":
        return this.resume()
      case "POST /init_weight_transfer_engine": {
        const info = parsed.init_info
        if (typeof info !== "object" || info === null || Array.isArray(info))
          return refuse(400, "Missing 'init_info' (an object) in request body", "bad_request")
        return ok({ message: "Weight transfer initialized" })
      }
      case "POST /start_weight_update":
        return this.start()
      case "POST /update_weights":
        return this.load(parsed)
      case "POST /finish_weight_update":
        return this.finish(parsed)
      case "POST /update_weights_from_disk":
        return this.loadFromDisk(parsed)
      default:
        return refuse(404, `no weight route ${route}`, "not_found")
    }
  }

  private pause(mode: string): WeightAnswer {
    if (mode !== "keep" && mode !== "wait")
      return refuse(
        400,
        `mode ${mode}: the scripted test double pauses with mode=keep or mode=wait`,
        "bad_mode",
      )
    if (this.fails("pause")) return refuse(500, "scripted failure at pause", "scripted_failure")
    if (this.phaseNow === "updating" || this.phaseNow === "loaded" || this.phaseNow === "loading")
      return refuse(409, "a weight update is in progress; finish it before pausing again", "conflict")
    if (this.phaseNow === "serving") this.enter("paused")
    return ok({ status: "paused" })
  }

  private resume(): WeightAnswer {
    if (this.fails("resume")) return refuse(500, "scripted failure at resume", "scripted_failure")
    if (this.phaseNow === "updating" || this.phaseNow === "loaded" || this.phaseNow === "loading")
      return refuse(409, "a weight update is in progress: POST /finish_weight_update first", "conflict")
    this.enter("serving")
    return ok({ status: "resumed" })
  }

  private start(): WeightAnswer {
    if (this.phaseNow === "serving")
      return refuse(409, "the engine is serving: POST /pause before /start_weight_update", "conflict")
    if (this.phaseNow !== "paused" && this.phaseNow !== "failed")
      return refuse(409, "a weight update is already in progress", "conflict")
    if (this.fails("start_weight_update"))
      return refuse(500, "scripted failure at start_weight_update", "scripted_failure")
    this.enter("updating")
    return ok({ message: "Weight update started" })
  }

  private async load(body: Record<string, unknown>): Promise<WeightAnswer> {
    const info = body.update_info
    const target =
      typeof info === "object" && info !== null ? (info as Record<string, unknown>).path : undefined
    if (typeof target !== "string" || target === "")
      return refuse(400, "Missing 'update_info.path' (the directory to load) in request body", "bad_request")
    if (this.phaseNow !== "updating" && this.phaseNow !== "loaded")
      return refuse(409, "no weight update in progress: POST /start_weight_update first", "conflict")
    if (this.options.loadMs !== undefined && this.options.loadMs > 0) await sleep(this.options.loadMs)
    const problem = this.fails("update_weights")
      ? "scripted failure: the load stopped part-way"
      : await loadProblem(target)
    if (problem !== undefined) {
      // The disk backend is not transactional: what was loaded before the failure stays loaded.
      this.enter("failed")
      return refuse(500, `loading weights failed: ${problem}`, "load_failed")
    }
    this.enter("loaded")
    return ok({ message: "Weights updated" })
  }

  private finish(body: Record<string, unknown>): WeightAnswer {
    const version = body.weight_version
    if (version !== undefined && version !== null && typeof version !== "string")
      return refuse(400, "weight_version must be a string", "bad_request")
    if (this.phaseNow === "updating")
      return refuse(409, "no weights loaded: POST /update_weights before finishing", "conflict")
    if (this.phaseNow !== "loaded")
      return refuse(409, "no weight update in progress: POST /start_weight_update first", "conflict")
    if (this.fails("finish_weight_update"))
      return refuse(500, "scripted failure at finish_weight_update", "scripted_failure")
    if (typeof version === "string" && this.options.failUpdates !== "version") this.versionNow = version
    this.enter("paused")
    return ok({ message: "Weight update finished" })
  }

  /** SGLang pauses, loads and resumes on its own; a failure leaves the old weights serving. */
  private async loadFromDisk(body: Record<string, unknown>): Promise<WeightAnswer> {
    const failed = (status: number, message: string): WeightAnswer => ({
      status,
      body: { success: false, message, num_paused_requests: 0 },
    })
    const target = body.model_path
    const version = body.weight_version
    if (typeof target !== "string" || target === "") return failed(400, "model_path is required")
    if (version !== undefined && version !== null && typeof version !== "string")
      return failed(400, "weight_version must be a string")
    if (this.phaseNow !== "serving") return failed(409, `the engine is ${this.phaseNow}, not serving`)
    this.enter("loading")
    if (this.options.loadMs !== undefined && this.options.loadMs > 0) await sleep(this.options.loadMs)
    const problem = this.fails("update_weights_from_disk")
      ? "scripted failure: the load stopped part-way"
      : await loadProblem(target)
    if (problem === undefined && typeof version === "string" && this.options.failUpdates !== "version")
      this.versionNow = version
    this.enter("serving")
    if (problem !== undefined) return failed(400, `Failed to update weights: ${problem}`)
    return ok({ success: true, message: "Succeeded to update model weights.", num_paused_requests: 0 })
  }
}
