/**
 * A simulated trainer — a test double for a real trainer (it trains nothing), for tests and
 * benchmarks: it speaks the bridge's HTTP API exactly as a trainer would. It loops: `GET
 * /v1/batches/next` (acknowledging the step it trained last), checks the batch's bytes against
 * its hash, "trains" for a configurable step time, reports the step (`POST /v1/metrics`, whose
 * metrics say `simulated_trainer: 1`) and publishes the next weight version (`POST /v1/weights
 * {version: step + 1}`), and so on until the run has finished (410) or it has trained the steps
 * it was asked to. It names itself "simulated-trainer (test double)" in every acknowledgement, so
 * the log says what trained. A bridge that is restarting (connection refused or reset, 503) is
 * retried with the same request: acknowledgements and publishes are idempotent on the bridge.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Result from "effect/Result"
import { writeSafetensors } from "../../events/tensors/safetensors.ts"

export const SIMULATED_TRAINER_NAME = "simulated-trainer (test double)"

export interface SimulatedTrainerOptions {
  /** The bridge's base URL, `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly token: string
  /** How long one "optimizer step" takes. */
  readonly stepMs: number
  /** The checkpoint directory of a version, as the inference servers see it (posted to /v1/weights). */
  readonly checkpointPath: (version: number) => string
  /**
   * Writes each version's folder with a `model.safetensors` naming it a test double (default
   * true); false posts paths that need not exist.
   */
  readonly writeCheckpoints?: boolean
  /**
   * The version of the checkpoint it starts from (default 0): it has trained steps 0 … v−1, so its
   * first call acknowledges step v−1, as a trainer restarted from that checkpoint would.
   */
  readonly startVersion?: number
  /** Stops after training this many steps (default: until the run has finished). */
  readonly maxSteps?: number
  /** The long-poll wait of each `next`, in seconds (default 5). */
  readonly waitSeconds?: number
  /** How long a bridge may stay unreachable before the trainer gives up (default 60 s). */
  readonly unreachableForMs?: number
  readonly signal?: AbortSignal
  /** Called after each trained step. */
  readonly onStep?: (step: TrainedStep) => void
}

export interface TrainedStep {
  readonly step: number
  readonly hash: string
  readonly bytes: number
  /** The version it published after the step. */
  readonly version: number
  /** Endpoints that loaded the version (the bridge's answer). */
  readonly endpointsUpdated: number
  readonly endpoints: number
}

export interface SimulatedTrainerResult {
  readonly trainer: typeof SIMULATED_TRAINER_NAME
  readonly steps: ReadonlyArray<TrainedStep>
  /** True when the bridge said the run finished and every batch was acknowledged (410). */
  readonly finished: boolean
  /** Requests retried because the bridge was unreachable or unavailable. */
  readonly retries: number
}

export class TrainerRefused extends Error {
  override readonly name = "TrainerRefused"
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted === true) return resolve()
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true },
    )
  })

/** Runs the loop until the run finishes, `maxSteps` are trained, or `signal` aborts. */
export const runSimulatedTrainer = async (
  options: SimulatedTrainerOptions,
): Promise<SimulatedTrainerResult> => {
  const authorization = `Bearer ${options.token}`
  const wait = options.waitSeconds ?? 5
  const steps: Array<TrainedStep> = []
  let retries = 0
  let trained = (options.startVersion ?? 0) - 1
  const aborted = () => options.signal?.aborted === true

  /** A request, retried while the bridge is down or restarting; a refusal (4xx) is thrown. */
  const request = async (path: string, init: RequestInit = {}): Promise<Response> => {
    let downSince: number | undefined
    for (;;) {
      if (aborted()) throw new TrainerRefused("aborted")
      try {
        const response = await fetch(`${options.url}${path}`, {
          ...init,
          headers: {
            authorization,
            ...(init.body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        })
        if (response.status !== 503) return response
        await response.arrayBuffer()
      } catch (error) {
        if (aborted()) throw new TrainerRefused("aborted")
        if (!(error instanceof TypeError)) throw error
      }
      downSince ??= Date.now()
      if (Date.now() - downSince > (options.unreachableForMs ?? 60_000))
        throw new TrainerRefused(
          `the bridge at ${options.url} was unreachable for ${options.unreachableForMs ?? 60_000} ms (${path})`,
        )
      retries++
      await sleep(100, options.signal)
    }
  }

  const refused = async (what: string, response: Response): Promise<never> => {
    const text = await response.text()
    throw new TrainerRefused(`${what}: ${response.status} ${text}`)
  }

  while (options.maxSteps === undefined || steps.length < options.maxSteps) {
    const query = new URLSearchParams({ wait: String(wait), trainer: SIMULATED_TRAINER_NAME })
    if (trained >= 0) query.set("ack", String(trained))
    let response: Response
    try {
      response = await request(`/v1/batches/next?${query}`)
    } catch (error) {
      if (error instanceof TrainerRefused && aborted()) break
      throw error
    }
    if (response.status === 204) {
      await response.arrayBuffer()
      continue
    }
    if (response.status === 410) {
      await response.arrayBuffer()
      return { trainer: SIMULATED_TRAINER_NAME, steps, finished: true, retries }
    }
    if (response.status !== 200) await refused("next", response)
    const step = Number(response.headers.get("rollout-step"))
    const hash = response.headers.get("rollout-hash") ?? ""
    const bytes = new Uint8Array(await response.arrayBuffer())
    const actual = createHash("sha256").update(bytes).digest("hex")
    if (actual !== hash)
      throw new TrainerRefused(`step ${step}: the batch's bytes hash to ${actual}, the bridge said ${hash}`)
    if (step !== trained + 1)
      throw new TrainerRefused(
        `step ${step} handed out after step ${trained}: the bridge skipped or repeated a step`,
      )

    await sleep(options.stepMs, options.signal)
    const version = step + 1
    const metrics = await request("/v1/metrics", {
      method: "POST",
      body: JSON.stringify({
        step,
        version,
        metrics: { loss: 1 / (step + 1), simulated_trainer: 1 },
        ratioByLag: [{ lag: 0, tokens: bytes.byteLength, meanRatio: 1 }],
      }),
    })
    if (metrics.status !== 200) await refused("metrics", metrics)
    await metrics.arrayBuffer()
    // Its "checkpoint": a folder with one small safetensors file saying what it is, so a server
    // that checks the path before loading finds one (the scripted double does; vLLM would refuse it).
    const checkpoint = options.checkpointPath(version)
    if (options.writeCheckpoints !== false) {
      fs.mkdirSync(checkpoint, { recursive: true })
      // One tensor holding the version, and metadata naming the test double: a real safetensors
      // file (servers that check the format accept it), with no model weights in it.
      fs.writeFileSync(
        path.join(checkpoint, "model.safetensors"),
        Result.getOrThrow(
          writeSafetensors(
            { "simulated.version": { dtype: "I64", shape: [1], data: new BigInt64Array([BigInt(version)]) } },
            { trainer: SIMULATED_TRAINER_NAME, step: String(step), batch: hash },
          ),
        ),
      )
    }
    const weights = await request("/v1/weights", {
      method: "POST",
      body: JSON.stringify({ version, path: checkpoint }),
    })
    // 502: no endpoint took the version; the trainer goes on, as a real one would (the pool ejected them).
    if (weights.status !== 200 && weights.status !== 502) await refused("weights", weights)
    const report = (await weights.json()) as { endpoints?: ReadonlyArray<{ ok: boolean }> }
    const endpoints = report.endpoints ?? []
    trained = step
    const done: TrainedStep = {
      step,
      hash,
      bytes: bytes.byteLength,
      version,
      endpointsUpdated: endpoints.filter((e) => e.ok).length,
      endpoints: endpoints.length,
    }
    steps.push(done)
    options.onStep?.(done)
  }
  // The last step trained is acknowledged before leaving, so the log says it was consumed.
  if (trained >= 0 && !aborted()) {
    const query = new URLSearchParams({ ack: String(trained), wait: "0", trainer: SIMULATED_TRAINER_NAME })
    const response = await request(`/v1/batches/next?${query}`)
    await response.arrayBuffer()
    if (response.status >= 400 && response.status !== 410)
      throw new TrainerRefused(`ack ${trained}: ${response.status}`)
  }
  return { trainer: SIMULATED_TRAINER_NAME, steps, finished: false, retries }
}
