/**
 * `rollout rl demo`: a policy that learns through rollout, end to end on CPU. It starts the Python
 * policy server (trainer/rollout_trainer, vLLM's routes) and AgentDock's calculator (data/calc),
 * evaluates the untrained policy on the held-out split (Avg@k through `runEvaluation`: agent
 * episodes on the real pool and tools), warm-starts it with the trainer's SFT mode, loads that
 * checkpoint through the weight-update route, evaluates it, trains it with GRPO through `runRl`
 * (sampler, episodes, rewards, batches, the trainer bridge, the Python trainer as a subprocess over
 * HTTP with a bearer token), evaluates again, and finally merges the RL policy with the warm one at
 * a few weights and evaluates each merge. The figures come from the log: rewards per step
 * (SampleScored of the groups each step placed), the trainer's lag-0 importance ratio
 * (TrainerStepReported), staleness recounted from the published batch files. Every phase reports
 * on `say`; the command only parses flags and prints.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { parseForEpisode } from "../actors/agent/index.ts"
import { poolModelPort } from "../actors/agent/modelPort.ts"
import type { EpisodePorts } from "../actors/agent/ports.ts"
import { loadBenchmark } from "../actors/evaluator/datasets/datasetLoader.ts"
import { runHere } from "../actors/evaluator/episodeRunner.ts"
import { runEvaluation, runSubject } from "../actors/evaluator/evalRun.ts"
import { exportRun } from "../actors/evaluator/exportTrajectories.ts"
import { modelsConfigFrom } from "../actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../actors/inference/pool.ts"
import type { InferencePool } from "../actors/inference/ports.ts"
import { rlConfigFrom } from "../actors/sampler/rlConfig.ts"
import { runRl } from "../actors/sampler/sampler.ts"
import { dockToolPort } from "../actors/tools/agentToolPort.ts"
import { startDock } from "../actors/tools/dock.ts"
import { loadToolsConfig } from "../actors/tools/toolsConfig.ts"
import { startTrainerBridge } from "../actors/trainer/bridge.ts"
import { bridgeTokenFile, loadOrCreateBridgeToken } from "../actors/trainer/bridgeToken.ts"
import { foldEvents } from "../events/log/readEvents.ts"
import type { EpisodePolicy } from "../events/schema.ts"
import { mergeModels } from "../programs/merge/mergeModels.ts"
import { calcTeacher } from "../programs/scriptedModel/calcTeacher.ts"
import { startScriptedModelServer } from "../programs/scriptedModel/server.ts"
import { decodeBatch } from "../projections/batches/batchFile.ts"
import { foldBatches } from "../projections/batches/queries.ts"
import type { Runtime } from "./wiring.ts"

/** Something the demo needs is missing or broke; the reason names what and where. */
export class RlDemoFailed extends Schema.TaggedError<RlDemoFailed>()("RlDemoFailed", {
  reason: Schema.String,
}) {
  override get message(): string {
    return `rl demo: ${this.reason}`
  }
}

export type DemoRewards = "grpo" | "dapo" | "agentcpm"

/** Every knob of the demo (the command's flags); defaults live in the command. */
export interface RlDemoSettings {
  /** The interpreter with torch (Debian's /usr/bin/python3). */
  readonly python: string
  /** The Python package's directory (trainer/), the subprocesses' working directory. */
  readonly trainerDir: string
  /** data/calc: train.jsonl, heldout.jsonl, demonstrations.jsonl, tools.yaml. */
  readonly calcDir: string
  /** The demo's id: its runs are `<id>-demos`, `<id>-base`, `<id>-warm`, `<id>-rl`, `<id>-rl-eval`, `<id>-merge-<w>`. */
  readonly id: string
  /** Checkpoints (warm start, trainer versions, merges) go here. */
  readonly out: string
  /** The run directory the reward curve is written to (<data-dir>/runs/<rl run>). */
  readonly runDir: string
  readonly eval: {
    /** Held-out tasks evaluated (the first n of heldout.jsonl). */
    readonly tasks: number
    readonly k: number
    readonly concurrency: number
  }
  /**
   * Demonstrations recorded for the warm start: the first n training tasks run as episodes of the
   * scripted calc teacher through AgentDock's calculator (run `<id>-demos`), the correct ones
   * exported as SFT chat JSONL. 0: warm-start from data/calc/demonstrations.jsonl instead.
   */
  readonly demonstrations: number
  readonly sft: {
    readonly steps: number
    readonly lr: number
    readonly batchSize: number
    readonly seed: number
    /** Stop the warm start once calc episodes on the training split reach this exact match (0: never). */
    readonly stopAt: number
  }
  readonly rl: {
    readonly steps: number
    /** Groups with signal per training step. */
    readonly groups: number
    readonly groupSize: number
    readonly lr: number
    readonly concurrency: number
    readonly maxLag: number
    readonly rewards: DemoRewards
    readonly maxUnconsumedBatches: number
    readonly seed: number
    /** Training tasks the sampler draws from (the first n of train.jsonl). */
    readonly trainTasks: number
  }
  /** Linear merge weights of the RL policy against the warm one; empty: no merge phase. */
  readonly mergeWeights: ReadonlyArray<number>
  /** Seed of the untrained model the server starts with. */
  readonly serverSeed: number
  readonly episode: { readonly maxTurns: number; readonly maxResponseTokens: number }
  /** Kill the trainer (SIGKILL) once it has reported this step, and start another (it resumes). */
  readonly killTrainerAfter?: number
}

export interface PhaseTime {
  readonly phase: string
  readonly seconds: number
}

export interface StepPoint {
  readonly step: number
  /** Mean score of the samples of the groups this step placed (kept or dropped), null if none. */
  readonly reward: number | null
  readonly groups: number
  readonly samples: number
  /** The trainer's mean importance ratio over lag-0 tokens (null: no lag-0 token in the step). */
  readonly ratioLag0: number | null
  readonly loss: number | null
}

export interface Target {
  readonly name: string
  readonly goal: string
  readonly actual: number | string | null
  readonly pass: boolean
}

export interface RlDemoReport {
  readonly id: string
  readonly namespace: string
  readonly log: string
  readonly runs: {
    /** The recorded demonstrations' run; null when the warm start read the bundled file. */
    readonly demos: string | null
    readonly base: string
    readonly warm: string
    readonly rl: string
    readonly rlEval: string
    readonly merges: ReadonlyArray<string>
  }
  readonly heldout: {
    readonly tasks: number
    readonly k: number
    readonly base: number
    readonly warm: number
    readonly rl: number
  }
  /** What the warm start learned from: the SFT file, and the recorded episodes behind it. */
  readonly demonstrations: {
    readonly file: string
    /** The teacher's episodes (k = 1 per task), the correct ones, and the lines written. */
    readonly episodes: number
    readonly correct: number
    readonly exported: number
  }
  readonly steps: ReadonlyArray<StepPoint>
  readonly stepsTrained: number
  /** BatchConsumed events per step (each step is acknowledged once). */
  readonly acknowledgements: Readonly<Record<string, number>>
  readonly trainerRestarts: ReadonlyArray<TrainerRestart>
  readonly ratioLag0: { readonly min: number | null; readonly max: number | null; readonly steps: number }
  readonly staleness: { readonly maxLag: number; readonly trainedTokens: number; readonly violations: number }
  readonly merge: ReadonlyArray<{ readonly weight: number; readonly avgAtK: number; readonly run: string }>
  /** Evaluation samples that could not run to an end (counted as wrong), by run. */
  readonly evaluationFailures: ReadonlyArray<{
    readonly run: string
    readonly samples: number
    readonly first: string
  }>
  readonly rewardCurve: string
  readonly checkpoints: { readonly warm: string; readonly rl: string }
  readonly phases: ReadonlyArray<PhaseTime>
  readonly seconds: number
  readonly targets: ReadonlyArray<Target>
}

const fail = (reason: string) => Effect.fail(new RlDemoFailed({ reason }))

/** The served model group's name; the policy server serves it under the same name. */
const MODEL = "policy"
/** The env var, in the pool's own env (never the process's), holding the server's generated key. */
const KEY_VAR = "ROLLOUT_RL_DEMO_POLICY_KEY"

/**
 * The interpreter can import torch; otherwise an error naming what to install. Another `python3`
 * earlier on the PATH may lack torch, so the demo takes an explicit path.
 */
export const checkTorch = (python: string): Effect.Effect<string, RlDemoFailed> =>
  Effect.suspend(() => {
    const probe = spawnSync(python, ["-c", "import torch, sys; print(torch.__version__)"], {
      encoding: "utf8",
      timeout: 60_000,
    })
    const install =
      "install Debian's python3 and python3-torch (with libopenblas0-pthread), as `npm run setup` does, or give --python <interpreter with torch>"
    if (probe.error !== undefined) return fail(`cannot run ${python}: ${probe.error.message}; ${install}`)
    if (probe.status !== 0)
      return fail(
        `${python} cannot import torch (${(probe.stderr ?? "").trim().split("\n").at(-1) ?? "no message"}); ${install}`,
      )
    return Effect.succeed(probe.stdout.trim())
  })

/**
 * The demo's child processes still running: a signal that ends the command ends them too (the
 * command's handler kills them), so an interrupted demo leaves no policy server behind.
 */
export const demoChildren = new Set<ChildProcess>()

/** A child process that is ended (SIGTERM, then SIGKILL) when the scope closes. */
const scopedChild = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  onLine?: (line: string) => void,
): Effect.Effect<
  { child: ChildProcess; exited: Promise<number | null>; stderr: () => string; lines: string[] },
  never,
  Scope.Scope
> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      // The trainer and the policy server end when their stdin closes: when this process ends,
      // however it ends (SIGKILL included), they do not run on as orphans.
      const ours = args[0] === "-m" && /^rollout_trainer\.(server|train)$/.test(args[1] ?? "")
      const child = spawn(command, ours ? [...args, "--exit-with-stdin"] : [...args], {
        cwd,
        stdio: ["pipe", "pipe", "pipe"],
      })
      demoChildren.add(child)
      child.once("exit", () => demoChildren.delete(child))
      let err = ""
      child.stderr?.on("data", (chunk: Buffer) => {
        err = (err + chunk.toString("utf8")).slice(-4000)
      })
      // Its stdout lines (the trainer prints one JSON object per line), the last 200.
      const lines: string[] = []
      readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        lines.push(line)
        if (lines.length > 200) lines.shift()
        onLine?.(line)
      })
      const exited = new Promise<number | null>((resolve) => {
        child.once("exit", (code) => resolve(code))
        child.once("error", (error) => {
          err += `\n${error.message}`
          resolve(-1)
        })
      })
      return { child, exited, stderr: () => err, lines }
    }),
    ({ child, exited }) =>
      Effect.promise(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
        await exited
        clearTimeout(timer)
      }),
  )

/** Runs a Python module to its end; its last stderr lines name a failure. */
const runPython = (python: string, cwd: string, args: ReadonlyArray<string>, what: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const proc = yield* scopedChild(python, args, cwd)
      const code = yield* Effect.promise(() => proc.exited)
      if (code !== 0)
        return yield* fail(
          `${what} exited with ${code}: ${proc.stderr().trim().split("\n").slice(-3).join(" | ")}`,
        )
    }),
  )

/** Starts the policy server on a free loopback port: its URL. */
const startPolicyServer = (settings: RlDemoSettings, apiKey: string) =>
  Effect.gen(function* () {
    const proc = yield* scopedChild(
      settings.python,
      [
        "-m",
        "rollout_trainer.server",
        "--port",
        "0",
        "--api-key",
        apiKey,
        "--served-model-name",
        MODEL,
        // The untrained weights are labelled apart: the RL run's versions are 0, 1, … from the warm start.
        "--version",
        "base",
        "--seed",
        String(settings.serverSeed),
        "--threads",
        "1",
      ],
      settings.trainerDir,
    )
    const first = yield* Effect.promise(
      () =>
        new Promise<string | undefined>((resolve) => {
          readline.createInterface({ input: proc.child.stdout! }).once("line", resolve)
          void proc.exited.then(() => resolve(undefined))
        }),
    )
    if (first === undefined)
      return yield* fail(
        `the policy server (${settings.python} -m rollout_trainer.server in ${settings.trainerDir}) exited before listening: ${proc.stderr().trim().split("\n").slice(-3).join(" | ")}`,
      )
    const parsed = Result.try(() => JSON.parse(first) as { url?: unknown })
    if (Result.isFailure(parsed) || typeof parsed.success.url !== "string")
      return yield* fail(`the policy server's first line is not {"url": …}: ${first.slice(0, 200)}`)
    return parsed.success.url
  })

/** The agent's ports: the pool's model, AgentDock's calculator from data/calc/tools.yaml. */
const demoPorts = (runtime: Runtime, pool: InferencePool, calcDir: string) =>
  Effect.gen(function* () {
    const tools = yield* loadToolsConfig(calcDir).pipe(
      Effect.mapError((e) => new RlDemoFailed({ reason: e.message })),
    )
    if (tools.servers.calculator === undefined)
      return yield* fail(`${calcDir}/tools.yaml declares no calculator server`)
    const dock = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => startDock({ log: runtime.log, config: tools, servers: ["calculator"] }),
        catch: (error) =>
          new RlDemoFailed({
            reason: `AgentDock could not start the calculator of ${calcDir}/tools.yaml (run from the repository root, after npm run build): ${(error as Error).message}`,
          }),
      }),
      (d) => Effect.promise(() => d.close()),
    )
    const pooled = dockToolPort(dock)
    const ports: EpisodePorts = {
      model: poolModelPort(pool),
      tools: pooled.port,
      toolSpecs: pooled.specs,
      parse: parseForEpisode,
    }
    return ports
  })

const loadSplit = (file: string, limit: number) =>
  Effect.gen(function* () {
    const loaded = yield* loadBenchmark("custom", file).pipe(
      Effect.mapError((e) => new RlDemoFailed({ reason: e.message })),
    )
    if (loaded.errors.length > 0) return yield* fail(`${file}: ${loaded.errors.length} bad row(s)`)
    const tasks = loaded.tasks.slice(0, limit)
    if (tasks.length === 0) return yield* fail(`${file}: no tasks`)
    return tasks
  })

/** Loads a checkpoint directory as `version` through the pool's weight-update sequence. */
const loadWeights = (pool: InferencePool, version: string, dir: string) =>
  Effect.gen(function* () {
    const report = yield* pool
      .publishWeights(MODEL, { version, path: path.resolve(dir) })
      .pipe(Effect.mapError((e) => new RlDemoFailed({ reason: `loading ${dir}: ${e.message}` })))
    const bad = report.endpoints.filter((e) => !e.ok)
    if (report.endpoints.length === 0 || bad.length > 0)
      return yield* fail(
        `loading ${dir} as version ${version}: ${bad.map((e) => `${e.endpoint}: ${e.error ?? "failed"}`).join("; ") || "no endpoint"}`,
      )
  })

/** The groups the batch plan placed in each step of the run (the projection's own account). */
const placedByPlan = (runtime: Runtime, runId: string) =>
  Effect.gen(function* () {
    const folded = yield* foldBatches({ log: runtime.log, checkpoints: runtime.checkpoints }).pipe(
      Effect.mapError((e) => new RlDemoFailed({ reason: `the batches projection: ${e.message}` })),
    )
    const plan = folded.state.runs[runId]
    if (plan === undefined) return yield* fail(`no RL run ${runId} in the batch plan`)
    const out = new Map<number, string[]>()
    for (const [group, step] of Object.entries(plan.placed)) out.set(step, [...(out.get(step) ?? []), group])
    return out
  })

/**
 * What the RL run's own stream says, folded as it grows (each read starts after the last): the
 * trainer's reports, the published and acknowledged steps, and each group's scores. Groups enter
 * steps in the order they complete (their last sample scored), and a step holds every group that
 * completed after the previous step's last one up to its own last kept group (`BatchPublished.groups`),
 * so the groups a step placed — kept or dropped — are known from the stream alone as it goes.
 */
interface RunFacts {
  readonly reports: Map<number, { ratioLag0: number | null; loss: number | null }>
  readonly batches: Array<{
    step: number
    blob: Parameters<Runtime["blobs"]["get"]>[0]
    groups: ReadonlyArray<string>
  }>
  readonly consumed: Set<number>
  /** step → BatchConsumed events seen for it. */
  readonly acks: Map<number, number>
  readonly scores: Map<string, number[]>
  readonly sizes: Map<string, number>
  /** Groups in the order they completed. */
  readonly completed: string[]
  /** step → the groups it placed. */
  readonly placed: Map<number, ReadonlyArray<string>>
  cursor: number
  last: number
}

const emptyFacts = (): RunFacts => ({
  reports: new Map(),
  batches: [],
  consumed: new Set(),
  acks: new Map(),
  scores: new Map(),
  sizes: new Map(),
  completed: [],
  placed: new Map(),
  cursor: 0,
  last: 0,
})

const advanceFacts = (runtime: Runtime, runId: string, facts: RunFacts) =>
  Effect.map(
    foldEvents(
      runtime.log,
      { filter: runSubject(runtime.log.namespace, runId), from: facts.last + 1 },
      facts,
      (acc, { event }) => {
        if (!("runId" in event) || event.runId !== runId) return acc
        if (event.type === "GroupStarted") acc.sizes.set(event.group, event.samples)
        else if (event.type === "SampleScored" && event.group !== undefined) {
          const scores = [...(acc.scores.get(event.group) ?? []), event.score]
          acc.scores.set(event.group, scores)
          if (scores.length === acc.sizes.get(event.group)) acc.completed.push(event.group)
        } else if (event.type === "BatchPublished") {
          acc.batches.push({ step: event.step, blob: event.blob, groups: event.groups })
          const kept = new Set(event.groups)
          let end = acc.cursor
          for (let i = acc.cursor; i < acc.completed.length; i++) if (kept.has(acc.completed[i]!)) end = i + 1
          acc.placed.set(event.step, acc.completed.slice(acc.cursor, end))
          acc.cursor = end
        } else if (event.type === "TrainerStepReported") {
          const lag0 = event.ratioByLag.find((r) => r.lag === 0 && r.tokens > 0)
          acc.reports.set(event.step, {
            ratioLag0: lag0?.meanRatio ?? null,
            loss: event.metrics.loss ?? null,
          })
        } else if (event.type === "BatchConsumed") {
          acc.consumed.add(event.step)
          acc.acks.set(event.step, (acc.acks.get(event.step) ?? 0) + 1)
        }
        return acc
      },
    ),
    (folded) => {
      folded.state.last = Math.max(folded.state.last, folded.last)
      return folded.state
    },
  ).pipe(Effect.mapError((e) => new RlDemoFailed({ reason: e.message })))

/** A step's reward: the mean score of the samples of the groups it placed. */
const stepPoint = (facts: RunFacts, step: number, placed: ReadonlyArray<string>): StepPoint => {
  let sum = 0
  let samples = 0
  for (const group of placed)
    for (const score of facts.scores.get(group) ?? []) {
      sum += score
      samples += 1
    }
  const report = facts.reports.get(step)
  return {
    step,
    reward: samples === 0 ? null : sum / samples,
    groups: placed.length,
    samples,
    ratioLag0: report?.ratioLag0 ?? null,
    loss: report?.loss ?? null,
  }
}

/** Trained tokens and the tokens among them older than η, recounted from the batch files' tensors. */
const recountStaleness = (runtime: Runtime, facts: RunFacts, maxLag: number) =>
  Effect.gen(function* () {
    let trained = 0
    let violations = 0
    for (const { step, blob } of facts.batches) {
      const bytes = yield* runtime.blobs
        .get(blob)
        .pipe(Effect.mapError((e) => new RlDemoFailed({ reason: `batch of step ${step}: ${e.message}` })))
      const decoded = decodeBatch(bytes)
      if (Result.isFailure(decoded))
        return yield* fail(`the batch of step ${step} does not decode: ${decoded.failure.message}`)
      const batch = decoded.success
      for (let i = 0; i < batch.lossMask.length; i++) {
        if (batch.lossMask[i] !== 1) continue
        trained += 1
        const version = batch.versions[i]!
        if (version < 0 || step - version > maxLag || step - version < 0) violations += 1
      }
    }
    return { trained, violations }
  })

/** The reward curve as a small hand-written SVG: reward per step, with the held-out Avg@k marks. */
export const rewardCurveSvg = (
  points: ReadonlyArray<StepPoint>,
  heldout: { readonly warm: number; readonly rl: number; readonly k: number },
): string => {
  const width = 640
  const height = 360
  const left = 56
  const right = 16
  const top = 32
  const bottom = 48
  const plotW = width - left - right
  const plotH = height - top - bottom
  const lastStep = Math.max(1, ...points.map((p) => p.step))
  const x = (step: number) => left + (step / lastStep) * plotW
  const y = (value: number) => top + (1 - Math.min(1, Math.max(0, value))) * plotH
  const drawn = points.filter((p) => p.reward !== null)
  const line = drawn.map((p) => `${x(p.step).toFixed(1)},${y(p.reward!).toFixed(1)}`).join(" ")
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (v) =>
        `<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${width - right}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11">${v.toFixed(2)}</text>`,
    )
    .join("\n  ")
  const xTicks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => Math.round(f * lastStep))
    .filter((s, i, all) => all.indexOf(s) === i)
    .map(
      (s) =>
        `<text x="${x(s).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle" font-size="11">${s}</text>`,
    )
    .join("\n  ")
  const mark = (value: number, label: string, color: string) =>
    `<line x1="${left}" y1="${y(value).toFixed(1)}" x2="${width - right}" y2="${y(value).toFixed(1)}" stroke="${color}" stroke-dasharray="4 3"/><text x="${width - right - 4}" y="${(y(value) - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="${color}">${label} ${(value * 100).toFixed(1)}%</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
  <rect width="${width}" height="${height}" fill="white"/>
  <text x="${left}" y="20" font-size="13">Reward per RL step (mean exact-match score of the step's groups)</text>
  ${grid}
  ${xTicks}
  <text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle" font-size="12">training step</text>
  ${mark(heldout.warm, `held-out Avg@${heldout.k} after warm start`, "#888")}
  ${mark(heldout.rl, `held-out Avg@${heldout.k} after RL`, "#2a7")}
  <polyline fill="none" stroke="#36c" stroke-width="2" points="${line}"/>
  ${drawn.map((p) => `<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.reward!).toFixed(1)}" r="2" fill="#36c"/>`).join("")}
</svg>
`
}

/** The demo's pass/fail figures (issue 13's "Done when"). */
export const demoTargets = (report: {
  readonly heldout: RlDemoReport["heldout"]
  readonly stepsTrained: number
  readonly steps: ReadonlyArray<StepPoint>
  readonly staleness: RlDemoReport["staleness"]
}): ReadonlyArray<Target> => {
  const ratios = report.steps.map((s) => s.ratioLag0)
  const measured = ratios.filter((r): r is number => r !== null)
  const min = measured.length === 0 ? null : Math.min(...measured)
  const max = measured.length === 0 ? null : Math.max(...measured)
  const k = report.heldout.k
  return [
    {
      name: `held-out Avg@${k} after the warm start`,
      goal: "<= 0.30",
      actual: report.heldout.warm,
      pass: report.heldout.warm <= 0.3,
    },
    {
      name: `held-out Avg@${k} after RL`,
      goal: ">= 0.80",
      actual: report.heldout.rl,
      pass: report.heldout.rl >= 0.8,
    },
    {
      name: "RL steps",
      goal: "<= 300",
      actual: report.stepsTrained,
      pass: report.stepsTrained >= 1 && report.stepsTrained <= 300,
    },
    {
      name: "mean importance ratio at lag 0, every step",
      goal: "within [0.98, 1.02]",
      actual:
        min === null
          ? null
          : `[${min}, ${max}] over the ${measured.length} of ${ratios.length} steps that trained lag-0 tokens`,
      // A step whose trained tokens were all sampled by older versions has no lag-0 mean to check
      // (the sampler runs ahead of the trainer); every step that has one must be in the band.
      pass: measured.length > 0 && min! >= 0.98 && max! <= 1.02,
    },
    {
      name: "staleness violations (trained tokens with step - version > eta)",
      goal: "0",
      actual: report.staleness.violations,
      pass: report.staleness.violations === 0 && report.staleness.trainedTokens > 0,
    },
  ]
}

/** The trainer's checkpoint versions in `dir` (its `version-<v>` directories), ascending. */
const checkpointVersions = (dir: string): number[] =>
  (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .map((name) => /^version-(\d+)$/.exec(name)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number)
    .sort((a, b) => a - b)

/** The version a trainer said it starts from (its first `{"event": "start"}` line), within 60 s. */
const firstStartLine = async (proc: { lines: string[]; exited: Promise<number | null> }) => {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    for (const line of proc.lines) {
      const parsed = Result.try(() => JSON.parse(line) as { event?: unknown; version?: unknown })
      if (
        Result.isSuccess(parsed) &&
        parsed.success.event === "start" &&
        typeof parsed.success.version === "number"
      )
        return parsed.success.version
    }
    const ended = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r("wait"), 100))])
    if (ended !== "wait") return null
  }
  return null
}

export interface TrainerRestart {
  /** The step whose report made the demo kill the trainer. */
  readonly afterStep: number
  /** The newest checkpoint on disk when it was killed. */
  readonly lastCheckpoint: number
  /** The version the next trainer said it started from (its `start` line). */
  readonly resumedFromVersion: number | null
}

/** The scripted teacher's model name in its own pool (never the policy's group). */
const TEACHER = "calc-teacher"

/**
 * The "demonstrations" phase: the scripted calc teacher (a test double in this process) answers the
 * first `settings.demonstrations` training tasks through the agent and AgentDock's calculator, as
 * evaluation run `runId` (k = 1), and the correct episodes are exported as SFT chat JSONL by the
 * export's own code (`rollout export --format sft --correct-only`) to `<data-dir>/runs/<runId>/export-sft`.
 * Each line also gets the `tools` the episodes were offered: the export does not carry them, and
 * the policy's template renders them into the system turn, as in the RL prompts.
 */
const recordDemonstrations = (
  runtime: Runtime,
  settings: RlDemoSettings,
  ports: EpisodePorts,
  runId: string,
  hooks: RlDemoHooks,
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const teacher = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => startScriptedModelServer({ script: calcTeacher(), models: [TEACHER], recordLimit: 0 }),
          catch: (error) =>
            new RlDemoFailed({ reason: `the calc teacher could not start: ${(error as Error).message}` }),
        }),
        (server) => Effect.promise(() => server.stop()),
      )
      hooks.say(
        `  calc teacher ${teacher.url} (scripted model server, a TEST DOUBLE: it calls the calculator and copies its result)`,
      )
      const models = modelsConfigFrom({
        [TEACHER]: { served: TEACHER, endpoints: [{ url: teacher.url, maxConcurrency: 64 }], retries: 1 },
      })
      if (Result.isFailure(models))
        return yield* fail(`the teacher's models config: ${models.failure.message}`)
      const pool = yield* makeInferencePool(models.success, {
        log: runtime.log,
        namespace: runtime.log.namespace,
        env: {},
      })
      const trainFile = path.join(settings.calcDir, "train.jsonl")
      const tasks = yield* loadSplit(trainFile, settings.demonstrations)
      let lastShown = 0
      const result = yield* runEvaluation({
        log: runtime.log,
        runner: runHere({ ...ports, model: poolModelPort(pool) }),
        tasks,
        benchmark: "custom",
        scorer: "gaia",
        model: TEACHER,
        k: 1,
        concurrency: settings.eval.concurrency,
        runId,
        policy: {
          maxTurns: settings.episode.maxTurns,
          maxResponseTokens: settings.episode.maxResponseTokens,
          contextReset: "none",
        },
        config: { data: trainFile, demo: settings.id, policyLabel: "calc teacher (scripted test double)" },
        onProgress: (p) => {
          const now = Date.now()
          if (now - lastShown < 5000 && p.done < p.total) return
          lastShown = now
          hooks.say(`  demonstrations ${runId}: ${p.done}/${p.total}, ${p.correct} correct`)
        },
      }).pipe(Effect.mapError((e) => new RlDemoFailed({ reason: e.message })))
      const correct = result.metrics.avgAtK * tasks.length
      const dir = path.join(path.dirname(settings.runDir), runId, "export-sft")
      const summary = yield* exportRun(runtime.log, result.state, result.board, "sft", dir, {
        correctOnly: true,
      }).pipe(Effect.mapError((e) => new RlDemoFailed({ reason: `exporting ${runId}: ${e.message}` })))
      const file = path.resolve(dir, "sft.jsonl")
      const tools = (ports.toolSpecs ?? []).map((t) => ({ type: "function", function: t }))
      const lines = fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "")
      if (lines.length === 0)
        return yield* fail(`${runId}: no correct demonstration to warm-start from (of ${tasks.length})`)
      if (lines.length !== summary.episodes || summary.undecodable.length > 0)
        return yield* fail(
          `${file}: ${lines.length} lines for ${summary.episodes} exported episodes, ${summary.undecodable.length} undecodable entries`,
        )
      fs.writeFileSync(
        file,
        `${lines.map((line) => JSON.stringify({ ...(JSON.parse(line) as object), tools })).join("\n")}\n`,
      )
      hooks.say(
        `  ${lines.length} correct of ${tasks.length} teacher episodes (run ${runId}) exported to ${file}`,
      )
      return { file, episodes: tasks.length, correct: Math.round(correct), exported: lines.length }
    }),
  )

export interface RlDemoHooks {
  /** A line of progress (stderr). */
  readonly say: (line: string) => void
  /** A training step the trainer reported, as soon as it is in the log. */
  readonly onStep?: (point: StepPoint) => void
}

/** The whole demo on an open runtime; the runtime's namespace should be the demo's own. */
export const runRlDemo = (
  runtime: Runtime,
  settings: RlDemoSettings,
  hooks: RlDemoHooks,
): Effect.Effect<RlDemoReport, RlDemoFailed, Scope.Scope> =>
  Effect.gen(function* () {
    const started = performance.now()
    const phases: PhaseTime[] = []
    const evalFailures: Array<{ run: string; samples: number; first: string }> = []
    const phase = <A, E, R>(name: string, body: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const t0 = performance.now()
        hooks.say(`[${name}] …`)
        const value = yield* body
        const seconds = (performance.now() - t0) / 1000
        phases.push({ phase: name, seconds: Math.round(seconds * 10) / 10 })
        hooks.say(`[${name}] done in ${seconds.toFixed(1)} s`)
        return value
      })
    const { id } = settings
    const runs = {
      demos: `${id}-demos`,
      base: `${id}-base`,
      warm: `${id}-warm`,
      rl: `${id}-rl`,
      rlEval: `${id}-rl-eval`,
    }
    const policy: Partial<EpisodePolicy> = {
      maxTurns: settings.episode.maxTurns,
      maxResponseTokens: settings.episode.maxResponseTokens,
      // The toy model's context is 256 tokens; an episode is about 90.
      contextBudget: 256,
      contextReserve: 16,
      contextReset: "none",
    }

    const { pool, ports, heldout, train } = yield* phase(
      "start",
      Effect.gen(function* () {
        const torch = yield* checkTorch(settings.python)
        hooks.say(`  python ${settings.python} with torch ${torch}`)
        const apiKey = randomBytes(24).toString("hex")
        const server = yield* startPolicyServer(settings, apiKey)
        hooks.say(`  policy server ${server} (untrained, seed ${settings.serverSeed})`)
        const models = modelsConfigFrom({
          [MODEL]: {
            served: MODEL,
            endpoints: [{ url: server, apiKeyEnv: KEY_VAR, maxConcurrency: 64 }],
            tokens: "exact",
            weightUpdates: "vllm",
            retries: 1,
            backoffMs: 50,
          },
        })
        if (Result.isFailure(models))
          return yield* fail(`the in-memory models config: ${models.failure.message}`)
        const pool = yield* makeInferencePool(models.success, {
          log: runtime.log,
          namespace: runtime.log.namespace,
          env: { [KEY_VAR]: apiKey },
        })
        const ports = yield* demoPorts(runtime, pool, settings.calcDir)
        hooks.say(`  AgentDock: ${ports.toolSpecs?.map((t) => t.name).join(", ")}`)
        const heldout = yield* loadSplit(path.join(settings.calcDir, "heldout.jsonl"), settings.eval.tasks)
        const train = yield* loadSplit(path.join(settings.calcDir, "train.jsonl"), settings.rl.trainTasks)
        return { pool, ports, heldout, train }
      }),
    )

    const evaluate = (runId: string, label: string) =>
      Effect.gen(function* () {
        let lastShown = 0
        const result = yield* runEvaluation({
          log: runtime.log,
          runner: runHere(ports),
          tasks: heldout,
          benchmark: "custom",
          scorer: "gaia",
          model: MODEL,
          k: settings.eval.k,
          concurrency: settings.eval.concurrency,
          runId,
          policy,
          config: { data: path.join(settings.calcDir, "heldout.jsonl"), demo: id, policyLabel: label },
          onProgress: (p) => {
            const now = Date.now()
            if (now - lastShown < 5000 && p.done < p.total) return
            lastShown = now
            hooks.say(`  eval ${runId}: ${p.done}/${p.total}, ${p.correct} correct`)
          },
        }).pipe(Effect.mapError((e) => new RlDemoFailed({ reason: e.message })))
        // Samples that could not run to an end count as wrong in Avg@k; the demo goes on and says so,
        // unless no sample reached the model at all.
        if (result.status !== "completed" && result.reachedModel === 0)
          return yield* fail(`evaluation ${runId} finished ${result.status}: no sample reached the model`)
        if (result.failed.length > 0) {
          evalFailures.push({ run: runId, samples: result.failed.length, first: result.failed[0]!.reason })
          hooks.say(
            `  warning: ${result.failed.length} sample(s) of ${runId} could not run to an end (first: ${result.failed[0]!.reason}); they count as wrong`,
          )
        }
        const avg = result.metrics.avgAtK
        hooks.say(
          `  held-out Avg@${settings.eval.k} of the ${label} policy: ${(avg * 100).toFixed(1)}% (${heldout.length} tasks × ${settings.eval.k}; run ${runId})`,
        )
        return avg
      })

    const base = yield* phase("eval base", evaluate(runs.base, "untrained"))

    // The warm start's data: episodes of a scripted teacher through the same agent and calculator,
    // recorded in the log like any run, so every demonstration is a replayable episode.
    const demonstrations =
      settings.demonstrations === 0
        ? yield* Effect.sync(() => {
            const file = path.resolve(settings.calcDir, "demonstrations.jsonl")
            hooks.say(`  warm start from ${file} (--demonstrations 0: not recorded as episodes)`)
            return { file, episodes: 0, correct: 0, exported: 0 }
          })
        : yield* phase("demonstrations", recordDemonstrations(runtime, settings, ports, runs.demos, hooks))

    const warmDir = path.join(settings.out, "warm")
    yield* phase(
      "warm start (SFT)",
      Effect.gen(function* () {
        fs.rmSync(warmDir, { recursive: true, force: true })
        yield* runPython(
          settings.python,
          settings.trainerDir,
          [
            "-m",
            "rollout_trainer.train",
            "--sft",
            demonstrations.file,
            "--out",
            path.resolve(warmDir),
            "--steps",
            String(settings.sft.steps),
            "--lr",
            String(settings.sft.lr),
            "--batch-size",
            String(settings.sft.batchSize),
            "--seed",
            String(settings.sft.seed),
            "--threads",
            "1",
            // A warm start just good enough that groups carry signal, measured rather than guessed.
            ...(settings.sft.stopAt > 0
              ? [
                  "--stop-tasks",
                  path.resolve(settings.calcDir, "train.jsonl"),
                  "--stop-at",
                  String(settings.sft.stopAt),
                ]
              : []),
          ],
          "the SFT warm start (rollout_trainer.train --sft)",
        )
        // Version 0 of the RL run: loaded through the same route the bridge uses.
        yield* loadWeights(pool, "0", warmDir)
        hooks.say(`  warm checkpoint ${warmDir} loaded as version 0 through the weight-update route`)
      }),
    )
    const warm = yield* phase("eval warm", evaluate(runs.warm, "warm-started"))

    const checkpoints = path.join(settings.out, "checkpoints")
    const facts = emptyFacts()
    const restarts: TrainerRestart[] = []
    const trained = yield* phase(
      "rl",
      Effect.scoped(
        Effect.gen(function* () {
          fs.rmSync(checkpoints, { recursive: true, force: true })
          const config = rlConfigFrom({
            tasks: { bench: "custom", data: path.join(settings.calcDir, "train.jsonl") },
            model: MODEL,
            groupSize: settings.rl.groupSize,
            // Enough passes that the step cap, not the task set, ends the run.
            epochs: Math.max(
              1,
              Math.ceil((settings.rl.steps * settings.rl.groups * 8) / Math.max(1, train.length)),
            ),
            steps: settings.rl.steps,
            concurrency: settings.rl.concurrency,
            seed: settings.rl.seed,
            rewards: { profile: settings.rl.rewards },
            staleness: { maxLag: settings.rl.maxLag },
            batch: { groups: settings.rl.groups },
            maxUnconsumedBatches: settings.rl.maxUnconsumedBatches,
            scorer: "gaia",
            policy,
          })
          if (Result.isFailure(config)) return yield* fail(`the RL config: ${config.failure.message}`)
          const tokenFile = bridgeTokenFile(runtime.config.log.dataDir, runtime.log.namespace, runs.rl)
          const { token } = loadOrCreateBridgeToken(tokenFile)
          const bridge = yield* startTrainerBridge({
            log: runtime.log,
            blobs: runtime.blobs,
            pool,
            runId: runs.rl,
            model: MODEL,
            host: "127.0.0.1",
            port: 0,
            token,
            ...(runtime.nats === undefined ? {} : { nats: runtime.nats }),
          }).pipe(Effect.mapError((fault) => new RlDemoFailed({ reason: fault.error })))
          hooks.say(
            `  trainer bridge ${bridge.http.url}; trainer: ${settings.python} -m rollout_trainer.train`,
          )
          const startTrainer = () =>
            scopedChild(
              settings.python,
              [
                "-m",
                "rollout_trainer.train",
                "--bridge",
                bridge.http.url,
                "--token-file",
                tokenFile,
                "--checkpoints",
                path.resolve(checkpoints),
                "--init",
                path.resolve(warmDir),
                "--lr",
                String(settings.rl.lr),
                "--wait",
                "10",
                "--threads",
                "1",
              ],
              settings.trainerDir,
              killOnStep,
            )
          /**
           * `killTrainerAfter`: the trainer is killed with SIGKILL the moment it prints that step
           * (trained, checkpoint saved, version published, not yet acknowledged), and the watcher
           * below starts another with the same flags: it resumes from its last checkpoint.
           */
          let killed: { afterStep: number; lastCheckpoint: number } | undefined
          function killOnStep(line: string) {
            const after = settings.killTrainerAfter
            if (after === undefined || killed !== undefined) return
            const parsed = Result.try(() => JSON.parse(line) as { event?: unknown; step?: unknown })
            if (Result.isFailure(parsed)) return
            const { event, step } = parsed.success
            if (event !== "step" || typeof step !== "number" || step < after) return
            killed = { afterStep: step, lastCheckpoint: checkpointVersions(checkpoints).at(-1) ?? 0 }
            trainer.child.kill("SIGKILL")
          }
          let trainer = yield* startTrainer()
          // The steps as the trainer reports them, read from the run's stream as they arrive.
          let shown = -1
          const showSteps = Effect.gen(function* () {
            yield* advanceFacts(runtime, runs.rl, facts)
            for (let step = shown + 1; facts.reports.has(step) && facts.placed.has(step); step++) {
              shown = step
              hooks.onStep?.(stepPoint(facts, step, facts.placed.get(step)!))
            }
          })
          const killAndRestart = Effect.gen(function* () {
            if (killed === undefined || restarts.length > 0) return
            const { afterStep, lastCheckpoint } = killed
            yield* Effect.promise(() => trainer.exited)
            hooks.say(
              `  killed the trainer (SIGKILL) as it reported step ${afterStep}; its last checkpoint: version ${lastCheckpoint}; starting another`,
            )
            trainer = yield* startTrainer()
            const started = yield* Effect.promise(() => firstStartLine(trainer))
            restarts.push({ afterStep, lastCheckpoint, resumedFromVersion: started })
            hooks.say(`  the new trainer resumed from version ${started ?? "?"}`)
          })
          const watcher = Effect.forever(
            Effect.andThen(
              Effect.sleep("500 millis"),
              Effect.andThen(Effect.ignore(showSteps), killAndRestart),
            ),
          )
          // A trainer that ends on its own with an error ends the demo (one killed above is replaced).
          const trainerDied = Effect.gen(function* () {
            while (true) {
              yield* Effect.sleep("500 millis")
              const { child } = trainer
              const byUs = killed !== undefined && restarts.length === 0
              if ((child.exitCode !== null && child.exitCode !== 0) || (child.signalCode !== null && !byUs))
                return yield* fail(
                  `the trainer exited with ${child.exitCode ?? child.signalCode}: ${trainer.stderr().trim().split("\n").slice(-3).join(" | ")}`,
                )
            }
          })
          let lastProgress = 0
          const sampled = runRl({
            log: runtime.log,
            blobs: runtime.blobs,
            runner: runHere(ports),
            config: config.success,
            tasks: train,
            benchmark: "custom",
            scorer: "gaia",
            runId: runs.rl,
            waitForTrainer: true,
            onProgress: (p) => {
              const now = Date.now()
              if (now - lastProgress < 10_000) return
              lastProgress = now
              hooks.say(
                `  rl: ${p.groupsStarted} groups started, ${p.samplesScored} samples scored, steps ${p.stepsPublished} published / ${p.stepsConsumed} trained, serving version ${p.liveVersion}`,
              )
            },
          }).pipe(Effect.mapError((e) => new RlDemoFailed({ reason: e.message })))
          const watching = yield* Effect.forkScoped(watcher)
          const result = yield* Effect.raceFirst(sampled, trainerDied)
          yield* Fiber.interrupt(watching)
          // The bridge answers 410 once the run is over and every batch acknowledged: the trainer ends.
          const code = yield* Effect.promise(() =>
            Promise.race([trainer.exited, new Promise<"slow">((r) => setTimeout(() => r("slow"), 30_000))]),
          )
          if (code !== 0) hooks.say(`  the trainer did not end on its own (${code}); stopping it`)
          yield* Effect.ignore(showSteps)
          for (const lost of result.lost.slice(0, 5)) hooks.say(`  lost ${lost.episodeId}: ${lost.reason}`)
          return result.stepsConsumed
        }),
      ),
    )
    const rlDir = path.join(checkpoints, `version-${trained}`)
    if (!fs.existsSync(path.join(rlDir, "model.safetensors")))
      return yield* fail(`the trainer's last checkpoint ${rlDir} is missing`)
    const rl = yield* phase("eval rl", evaluate(runs.rlEval, "RL-trained"))

    const merges: Array<{ weight: number; avgAtK: number; run: string }> = []
    if (settings.mergeWeights.length > 0)
      yield* phase(
        "merge",
        Effect.gen(function* () {
          let index = 0
          for (const weight of settings.mergeWeights) {
            const out = path.join(settings.out, "merged", `w-${weight}`)
            yield* mergeModels({
              method: "linear",
              base: warmDir,
              models: [{ dir: rlDir, weight }],
              params: { base_weight: 1 - weight },
              out,
            }).pipe(
              Effect.mapError((e) => new RlDemoFailed({ reason: `merge at weight ${weight}: ${e.message}` })),
            )
            // Integer labels after the RL run's last version, so a later sampler of this namespace
            // never reads an older label for the endpoint.
            index += 1
            yield* loadWeights(pool, String(trained + index), out)
            const run = `${id}-merge-${index}`
            hooks.say(`  merge ${weight} × RL + ${1 - weight} × warm → ${out}`)
            const avgAtK = yield* evaluate(run, `merged (RL weight ${weight})`)
            merges.push({ weight, avgAtK, run })
          }
        }),
      )

    // The figures, from the log: the stream read to its end, the plan's placement as the check.
    yield* advanceFacts(runtime, runs.rl, facts)
    const byPlan = yield* placedByPlan(runtime, runs.rl)
    const staleness = yield* recountStaleness(runtime, facts, settings.rl.maxLag)
    const steps: StepPoint[] = facts.batches
      .map((b) => b.step)
      .filter((step) => facts.consumed.has(step))
      .sort((a, b) => a - b)
      .map((step) => stepPoint(facts, step, byPlan.get(step) ?? facts.placed.get(step) ?? []))
    const differing = steps.filter(
      (p) =>
        [...(byPlan.get(p.step) ?? [])].sort().join() !== [...(facts.placed.get(p.step) ?? [])].sort().join(),
    )
    if (differing.length > 0)
      hooks.say(
        `  note: the live reward of step(s) ${differing.map((p) => p.step).join(", ")} counted other groups than the batch plan placed; the figures use the plan's`,
      )
    fs.mkdirSync(settings.runDir, { recursive: true })
    const rewardCurve = path.join(settings.runDir, "reward-curve.svg")
    const heldoutFigures = { tasks: heldout.length, k: settings.eval.k, base, warm, rl }
    fs.writeFileSync(rewardCurve, rewardCurveSvg(steps, { warm, rl, k: settings.eval.k }))
    const measured = steps.map((s) => s.ratioLag0).filter((r): r is number => r !== null)
    const stalenessFigures = {
      maxLag: settings.rl.maxLag,
      trainedTokens: staleness.trained,
      violations: staleness.violations,
    }
    const report: RlDemoReport = {
      id,
      namespace: runtime.log.namespace,
      log: runtime.location,
      runs: {
        ...runs,
        demos: settings.demonstrations === 0 ? null : runs.demos,
        merges: merges.map((m) => m.run),
      },
      heldout: heldoutFigures,
      demonstrations,
      steps,
      stepsTrained: trained,
      acknowledgements: Object.fromEntries([...facts.acks.entries()].map(([step, n]) => [String(step), n])),
      trainerRestarts: restarts,
      ratioLag0: {
        min: measured.length === 0 ? null : Math.min(...measured),
        max: measured.length === 0 ? null : Math.max(...measured),
        steps: measured.length,
      },
      staleness: stalenessFigures,
      merge: merges,
      evaluationFailures: evalFailures,
      rewardCurve,
      checkpoints: { warm: warmDir, rl: rlDir },
      phases,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      targets: demoTargets({
        heldout: heldoutFigures,
        stepsTrained: trained,
        steps,
        staleness: stalenessFigures,
      }),
    }

    return report
  })
