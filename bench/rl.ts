/**
 * The RL benchmark (issue 12, point 8): asynchronous against synchronous training on the same
 * "GPU" budget. Both modes run the real data plane — the sampler (`runRl`) starting GRPO groups as
 * agent episodes through the inference pool (`tokens: exact`) against the scripted model server
 * (a test double for vLLM: chat template with ids, log-probs, vLLM's weight-update routes) with a
 * fixed latency per call and a fixed number of calls in flight (the pool's `maxConcurrency`: the
 * GPU's batch slots), an in-process echo tool, the batch plan, the trainer bridge over HTTP and the
 * simulated trainer (a test double with a fixed step time: the GPU's training time), on the
 * embedded log. Episode lengths (turns) are drawn from a lognormal distribution keyed by the
 * episode, so both modes see the same episodes; about half the answers are right.
 *
 * Synchronous is η = 0: a step's groups are sampled, the step is trained, the new version loaded,
 * and only then does the next step's sampling start — the long tail of each step idles the slots.
 * Asynchronous is η = `--eta` (default 4): sampling goes on while the trainer trains, bounded by the
 * staleness brake. Throughput is trained samples per second of wall time over `--steps` steps.
 * Staleness violations are recounted from the published batches' tensors (a trained token whose
 * step − version > η). Targets: async/sync ≥ 2.5× at η ≤ 4, 0 violations in both modes.
 * Flags: --steps, --eta, --latency-ms, --slots, --train-ms, --sigma, --json, --check.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import { parseForEpisode } from "../src/actors/agent/index.ts"
import { poolModelPort } from "../src/actors/agent/modelPort.ts"
import type { EpisodePorts } from "../src/actors/agent/ports.ts"
import type { Task } from "../src/actors/evaluator/datasets/task.ts"
import { runHere } from "../src/actors/evaluator/episodeRunner.ts"
import { modelsConfigFrom } from "../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../src/actors/inference/pool.ts"
import { rlConfigFrom } from "../src/actors/sampler/rlConfig.ts"
import { runRl } from "../src/actors/sampler/sampler.ts"
import { startTrainerBridge } from "../src/actors/trainer/bridge.ts"
import { runSimulatedTrainer } from "../src/actors/trainer/simulatedTrainer.ts"
import { makeEmbeddedLog } from "../src/events/log/embeddedLog.ts"
import { fileBlobDir, fileBlobStore } from "../src/events/log/fileBlobStore.ts"
import { readEvents } from "../src/events/log/readEvents.ts"
import type { EventOf } from "../src/events/schema.ts"
import { assistantTurns, type Script } from "../src/programs/scriptedModel/script.ts"
import { startScriptedModelServer } from "../src/programs/scriptedModel/server.ts"
import { decodeBatch } from "../src/projections/batches/batchFile.ts"
import { type DropReason, dropReasons } from "../src/projections/rewards/dropReasons.ts"
import type { Benchmark } from "./benchmark.ts"

const TARGET_RATIO = 2.5

const stderrLogger = Logger.make(({ message }) => {
  if (process.env.ROLLOUT_BENCH_VERBOSE === "1") process.stderr.write(`${String(message)}\n`)
})
const TOKEN = "bench-rl-token-0123456789abcdef"

/** A stable 32-bit hash of a string (FNV-1a). */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** A standard normal draw from two uniform hashes (Box–Muller), deterministic per key. */
const normalOf = (key: string): number => {
  const u1 = (hash(`${key}#1`) + 1) / 4294967297
  const u2 = (hash(`${key}#2`) + 1) / 4294967297
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
}

/** Turns of an episode: lognormal with median `median` and shape `sigma`, 1 … 40. */
const turnsOf = (episode: string, median: number, sigma: number): number =>
  Math.max(1, Math.min(40, Math.round(median * Math.exp(sigma * normalOf(episode)))))

/** Echo until the episode's drawn length, then answer (right for about half the episodes). */
const lognormalScript =
  (median: number, sigma: number): Script =>
  (request, context) => {
    // Keyed by group and sample, not run: both modes draw the same episodes.
    const episode = (context.episodeId ?? context.episodeKey ?? "none").split("/").slice(1).join("/")
    const turn = assistantTurns(request) + 1
    if (turn < turnsOf(episode, median, sigma))
      return { content: `step ${turn}`, toolCalls: [{ name: "echo", arguments: { text: `t${turn}` } }] }
    return { content: hash(`${episode}/answer`) % 2 === 0 ? "<answer>blue</answer>" : "<answer>red</answer>" }
  }

interface ModeResult {
  readonly mode: "sync" | "async"
  readonly eta: number
  readonly seconds: number
  readonly steps: number
  readonly trainedSamples: number
  readonly samplesPerSecond: number
  readonly episodes: number
  readonly modelCalls: number
  /** Trained tokens whose step − version exceeded η, recounted from the batches' tensors. */
  readonly violations: number
  readonly lags: Readonly<Record<string, number>>
  /** Samples dropped by reason, as fractions of the samples scored. */
  readonly filtered: Readonly<Record<string, number>>
}

interface Settings {
  readonly steps: number
  readonly latencyMs: number
  readonly slots: number
  readonly trainMs: number
  readonly median: number
  readonly sigma: number
  readonly groupSize: number
  readonly groups: number
}

const runMode = async (mode: "sync" | "async", eta: number, s: Settings): Promise<ModeResult> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `rollout-bench-rl-${mode}-`))
  const scope = Effect.runSync(Scope.make())
  const server = await startScriptedModelServer({
    script: lognormalScript(s.median, s.sigma),
    weights: { version: "0" },
    latencyMs: s.latencyMs,
  })
  const stop = new AbortController()
  try {
    const namespace = "bench"
    const log = await Effect.runPromise(
      Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace, fsync: "never" })),
    )
    const blobs = fileBlobStore(fileBlobDir(dataDir, namespace))
    const models = Result.getOrThrow(
      modelsConfigFrom({
        policy: {
          endpoints: [{ url: server.url, maxConcurrency: s.slots }],
          tokens: "exact",
          weightUpdates: "vllm",
          queueTimeoutMs: 600_000,
          retries: 1,
        },
      }),
    )
    const pool = await Effect.runPromise(Scope.provide(scope)(makeInferencePool(models, { log, namespace })))
    const ports: EpisodePorts = {
      model: poolModelPort(pool),
      tools: {
        call: ({ arguments: args }) => Effect.succeed({ ok: true as const, content: args, truncated: false }),
      },
      toolSpecs: [{ name: "echo", description: "echo", parameters: { type: "object" } }],
      parse: parseForEpisode,
    }
    const runId = `bench-${mode}`
    // The bridge logs each weight publish; on stderr, so stdout stays the report (one JSON object).
    const bridge = await Effect.runPromise(
      Scope.provide(scope)(
        startTrainerBridge({ log, blobs, pool, runId, model: "policy", token: TOKEN }),
      ).pipe(Effect.provide(Logger.layer([stderrLogger]))),
    )
    const tasks: ReadonlyArray<Task> = Array.from({ length: s.steps * s.groups }, (_, i) => ({
      taskId: `t${i}`,
      question: `What colour is thing ${i}?`,
      answer: "blue",
      metadata: {},
    }))
    const config = Result.getOrThrow(
      rlConfigFrom({
        tasks: { bench: "custom", data: "(bench)" },
        model: "policy",
        groupSize: s.groupSize,
        // Episodes in flight: as many as the staleness brake and the trainer let through.
        concurrency: s.groupSize * s.groups * (eta + 1),
        epochs: 1,
        steps: s.steps,
        batch: { groups: s.groups },
        staleness: { maxLag: eta },
        maxUnconsumedBatches: eta + 1,
        rewards: { profile: "grpo" },
        scorer: "gaia",
        policy: { maxTurns: 45 },
      }),
    )
    const started = performance.now()
    const trainer = runSimulatedTrainer({
      url: bridge.http.url,
      token: TOKEN,
      stepMs: s.trainMs,
      checkpointPath: (v) => path.join(dataDir, "checkpoints", `version-${v}`),
      waitSeconds: 1,
      signal: stop.signal,
    })
    const result = await Effect.runPromise(
      Effect.scoped(
        runRl({
          log,
          blobs,
          runner: runHere(ports),
          config,
          tasks,
          benchmark: "custom",
          scorer: "gaia",
          runId,
          waitForTrainer: true,
          onProgress: (p) => {
            if (process.env.ROLLOUT_BENCH_VERBOSE === "1")
              process.stderr.write(`${mode}: ${JSON.stringify(p)}\n`)
          },
        }),
      ),
    )
    const seconds = (performance.now() - started) / 1000
    stop.abort()
    await trainer.catch(() => undefined)

    const events = (await Effect.runPromise(readEvents(log))).state.map((e) => e.event)
    const published = events.filter((e): e is EventOf<"BatchPublished"> => e.type === "BatchPublished")
    let violations = 0
    const lags: Record<string, number> = {}
    for (const batch of published) {
      const decoded = Result.getOrThrow(decodeBatch(await Effect.runPromise(blobs.get(batch.blob))))
      for (let t = 0; t < decoded.tokenIds.length; t++) {
        if (decoded.lossMask[t] !== 1) continue
        const lag = batch.step - decoded.versions[t]!
        if (lag > eta || lag < 0) violations++
        lags[String(lag)] = (lags[String(lag)] ?? 0) + 1
      }
    }
    const scored = events.filter((e) => e.type === "SampleScored").length
    const drops: Record<string, number> = {}
    for (const batch of published)
      for (const [reason, count] of Object.entries(batch.drops)) drops[reason] = (drops[reason] ?? 0) + count
    const filtered = Object.fromEntries(
      dropReasons
        .filter((r: DropReason) => (drops[r] ?? 0) > 0)
        .map((r) => [r, Number(((drops[r] ?? 0) / Math.max(1, scored)).toFixed(4))]),
    )
    const trainedSamples = published.reduce((sum, b) => sum + b.samples, 0)
    return {
      mode,
      eta,
      seconds,
      steps: result.stepsPublished,
      trainedSamples,
      samplesPerSecond: trainedSamples / seconds,
      episodes: scored,
      modelCalls: events.filter((e) => e.type === "ModelResponded").length,
      violations,
      lags,
      filtered,
    }
  } finally {
    stop.abort()
    await server.stop()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

const runRlBenchmark = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      steps: { type: "string", default: "12" },
      eta: { type: "string", default: "4" },
      "latency-ms": { type: "string", default: "200" },
      slots: { type: "string", default: "64" },
      "train-ms": { type: "string", default: "800" },
      sigma: { type: "string", default: "1.0" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const number = (name: string, value: string | undefined, min: number): number => {
    const n = Number(value)
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got "${value}"`)
    return n
  }
  const eta = Math.floor(number("eta", values.eta, 1))
  const settings: Settings = {
    steps: Math.floor(number("steps", values.steps, 1)),
    latencyMs: number("latency-ms", values["latency-ms"], 0),
    slots: Math.floor(number("slots", values.slots, 1)),
    trainMs: number("train-ms", values["train-ms"], 0),
    median: 4,
    sigma: number("sigma", values.sigma, 0),
    groupSize: 8,
    groups: 4,
  }
  const log = (text: string) => {
    if (!values.json) process.stderr.write(`${text}\n`)
  }
  log(
    `rl benchmark: ${settings.steps} steps of ${settings.groups} groups × ${settings.groupSize} samples; turns lognormal (median ${settings.median}, σ ${settings.sigma}); model ${settings.latencyMs} ms per call, ${settings.slots} slots; simulated trainer ${settings.trainMs} ms per step`,
  )
  log("synchronous (η = 0) …")
  const sync = await runMode("sync", 0, settings)
  log(`asynchronous (η = ${eta}) …`)
  const asyncResult = await runMode("async", eta, settings)
  const ratio = asyncResult.samplesPerSecond / sync.samplesPerSecond
  const targets = [
    {
      name: `async (η = ${eta}) / sync trained samples per second`,
      goal: `≥ ${TARGET_RATIO}× at η ≤ 4`,
      actual: `${ratio.toFixed(2)}×`,
      pass: ratio >= TARGET_RATIO && eta <= 4,
    },
    {
      name: "staleness violations, async",
      goal: "0",
      actual: String(asyncResult.violations),
      pass: asyncResult.violations === 0,
    },
    {
      name: "staleness violations, sync",
      goal: "0",
      actual: String(sync.violations),
      pass: sync.violations === 0,
    },
  ]
  const environment = {
    node: process.version,
    cpus: os.cpus().length,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  }
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ benchmark: "rl", settings: { ...settings, eta }, environment, sync, async: asyncResult, ratio, targets })}\n`,
    )
  } else {
    const row = (r: ModeResult) =>
      [
        `${r.mode} (η = ${r.eta})`.padEnd(15),
        `${r.seconds.toFixed(2)} s`.padStart(9),
        `${r.steps} steps`.padStart(9),
        `${r.trainedSamples} trained`.padStart(12),
        `${r.samplesPerSecond.toFixed(1)} samples/s`.padStart(17),
        `${(r.samplesPerSecond / sync.samplesPerSecond).toFixed(2)}×`.padStart(7),
        `${r.episodes} episodes, ${r.modelCalls} calls`.padStart(26),
        `  lags ${Object.entries(r.lags)
          .map(([l, n]) => `${l}:${n}`)
          .join(" ")}`,
        `  filtered ${
          Object.entries(r.filtered)
            .map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`)
            .join(", ") || "none"
        }`,
      ].join("  ")
    process.stdout.write(
      `\nnode ${environment.node}, ${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}\n${row(sync)}\n${row(asyncResult)}\n\n`,
    )
    for (const t of targets)
      process.stdout.write(`${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.actual} (goal ${t.goal})\n`)
  }
  return values.check && targets.some((t) => !t.pass) ? 1 : 0
}

export const rlBenchmark: Benchmark = {
  name: "rl",
  summary:
    "asynchronous vs synchronous RL on the same model slots and trainer: sampler, batches, bridge, simulated trainer (--steps, --eta, --latency-ms, --slots, --train-ms, --sigma, --json, --check)",
  run: runRlBenchmark,
}
