/**
 * `rollout rl run|status|batches|batch`: the sampler of an RL run with the trainer bridge beside it,
 * and what the log says of a run's training steps. `run` checks everything it will use before its
 * first append (the config, the task set, the RL model group — token-exact, reachable, with a
 * weight-update API when a bridge serves it — and the judge), then samples until the task set or
 * the steps asked for are done and, with a bridge, until the trainer has taken every batch. The
 * rest read the `batches` projection (`status`, `batches`) or derive a step again from the log
 * (`batch --verify`). The work is the sampler's, the bridge's and the projection's; this parses
 * flags and prints.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { benchmarkSpec, parseCustomMapping } from "../../actors/evaluator/datasets/benchmarks.ts"
import { loadBenchmark } from "../../actors/evaluator/datasets/datasetLoader.ts"
import { formatIssue } from "../../actors/evaluator/datasets/task.ts"
import { runHere, runOnWorkers } from "../../actors/evaluator/episodeRunner.ts"
import { RUN_ID_PATTERN } from "../../actors/evaluator/evalRun.ts"
import type { JudgeSettings } from "../../actors/evaluator/scoring/judge.ts"
import {
  isScorerName,
  needsJudge,
  SCORER_NAMES,
  type ScorerName,
} from "../../actors/evaluator/scoring/scorers.ts"
import {
  loadModelsConfig,
  type ModelConfig,
  unknownModelMessage,
} from "../../actors/inference/modelsConfig.ts"
import { requireReachable } from "../../actors/inference/pool/endpointProbe.ts"
import { serverRoot, sglangVersion, vllmVersion } from "../../actors/inference/pool/weightUpdate.ts"
import { makeInferencePool } from "../../actors/inference/pool.ts"
import { deriveBatch } from "../../actors/sampler/batchDerivation.ts"
import { loadRlConfig } from "../../actors/sampler/rlConfig.ts"
import { type RlProgress, runRl } from "../../actors/sampler/sampler.ts"
import { startTrainerBridge } from "../../actors/trainer/bridge.ts"
import { bridgeTokenFile, loadOrCreateBridgeToken } from "../../actors/trainer/bridgeToken.ts"
import { runSimulatedTrainer, SIMULATED_TRAINER_NAME } from "../../actors/trainer/simulatedTrainer.ts"
import { agentToolsConfig, liveAgentPortsAndPool } from "../../app/actors.ts"
import { poolJudge } from "../../app/evaluation.ts"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import { entitySubject } from "../../events/subjects.ts"
import { decodeBatch } from "../../projections/batches/batchFile.ts"
import { foldBatches, type RunPlanView, runPlan } from "../../projections/batches/queries.ts"
import { dropReasons } from "../../projections/rewards/dropReasons.ts"
import { terminalText } from "../../projections/terminalText.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  progressLine,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface RlRunOptions {
  readonly config?: string
  readonly run?: string
  readonly tools?: string
  readonly dispatch?: boolean
  readonly bridgePort?: string
  readonly bridgeHost?: string
  /** False with `--no-bridge`. */
  readonly bridge?: boolean
  readonly simulatedTrainer?: string
  readonly json?: boolean
}

const progressText = (p: RlProgress): string =>
  `rl ${p.runId}: groups ${p.groupsStarted} started (${p.groupsInFlight} in flight), ${p.samplesScored} samples scored, steps ${p.stepsPublished} published / ${p.stepsConsumed} trained, version ${p.liveVersion}${p.waiting === "done" ? "" : `, waiting: ${p.waiting.replace("_", " ")}`}`

/**
 * The RL config and the configuration directory of `rl run`. The global `--config` names the
 * directory (models.yaml, tools.yaml, rollout.yaml); given a file (`--config config/rl.yaml`), it
 * names the RL config, and the directory is the file's. Default: `<dir>/rl.yaml`.
 */
export const rlConfigPaths = (configOption: string | undefined): { file: string; dir: string } => {
  const given = configOption ?? "config"
  const isFile =
    /\.ya?ml$/i.test(given) ||
    (fs.existsSync(given) && fs.statSync(given, { throwIfNoEntry: false })?.isFile() === true)
  return isFile
    ? { file: given, dir: path.dirname(given) }
    : { file: path.join(given, "rl.yaml"), dir: given }
}

export const rlRunCommand = (commandGlobal: GlobalOptions, options: RlRunOptions) =>
  Effect.gen(function* () {
    const paths = rlConfigPaths(options.config ?? commandGlobal.config)
    const configFile = paths.file
    const global: GlobalOptions = { ...commandGlobal, config: paths.dir }
    const rl = yield* loadRlConfig(configFile)
    const bridgeWanted = options.bridge !== false
    const simulatedMs = yield* integerFlag("--simulated-trainer", options.simulatedTrainer, 0)
    if (simulatedMs !== undefined && !bridgeWanted)
      return yield* Effect.fail(
        new UsageError("--simulated-trainer trains through the bridge: drop --no-bridge"),
      )
    const bridgePort = (yield* integerFlag("--bridge-port", options.bridgePort, 0)) ?? 0
    if (bridgePort > 65535)
      return yield* Effect.fail(
        new UsageError(`--bridge-port must be at most 65535, got "${options.bridgePort}"`),
      )
    const runId =
      options.run ?? `rl-${rl.model}-${new Date().toISOString().replace(/[-:]/g, "").slice(0, 15)}`
    if (!RUN_ID_PATTERN.test(runId))
      return yield* Effect.fail(
        new UsageError(
          `--run "${runId}": a run id is letters, digits, '.', '_' and '-', starting with a letter or digit`,
        ),
      )
    const dispatch = options.dispatch === true

    // The RL model group: token-exact (batches are never re-tokenized), and loadable when a bridge serves it.
    const configDir = paths.dir
    const models = yield* loadModelsConfig({ dir: configDir })
    const group = models.models[rl.model]
    if (group === undefined)
      return yield* Effect.fail(
        new UsageError(`${configFile}: model: ${unknownModelMessage(models, rl.model)}`),
      )
    if (group.tokens !== "exact")
      return yield* Effect.fail(
        new UsageError(
          `${configFile}: model "${rl.model}" is not token-exact: set tokens: exact on it in models.yaml (an RL run records the servers' token ids and log-probs, never re-tokenized text)`,
        ),
      )
    if (bridgeWanted && group.weightUpdates === "none")
      return yield* Effect.fail(
        new UsageError(
          `model "${rl.model}" has weightUpdates: none in models.yaml, so the trainer's weights could not reach its servers: set weightUpdates: vllm or sglang (or pass --no-bridge)`,
        ),
      )

    // The task set, with the evaluation's loaders; a bad row stops the run before anything is written.
    const bench = rl.tasks.bench
    const mapping = rl.tasks.map === undefined ? undefined : parseCustomMapping(rl.tasks.map)
    if (typeof mapping === "string")
      return yield* Effect.fail(new UsageError(`${configFile}: tasks.map: ${mapping}`))
    const loaded = yield* loadBenchmark(bench, rl.tasks.data, {
      ...(rl.tasks.ids === undefined ? {} : { ids: rl.tasks.ids }),
      ...(mapping === undefined ? {} : { mapping }),
      ...(rl.tasks.format === undefined ? {} : { format: rl.tasks.format }),
      ...(rl.tasks.plaintext ? { plaintext: true } : {}),
    })
    if (loaded.errors.length > 0) {
      for (const issue of loaded.errors.slice(0, 10)) process.stderr.write(`  ${formatIssue(issue)}\n`)
      return yield* Effect.fail(
        new UsageError(
          `${rl.tasks.data}: ${loaded.errors.length} bad row(s) (listed above); fix them before training on the file`,
        ),
      )
    }
    const tasks = rl.tasks.limit === undefined ? loaded.tasks : loaded.tasks.slice(0, rl.tasks.limit)
    if (tasks.length === 0)
      return yield* Effect.fail(new UsageError(`${rl.tasks.data}: no tasks to train on`))

    const scorerName = rl.scorer ?? benchmarkSpec(bench, mapping).scorer
    if (!isScorerName(scorerName))
      return yield* Effect.fail(
        new UsageError(`unknown scorer "${scorerName}"; scorers: ${SCORER_NAMES.join(", ")}`),
      )
    const scorer: ScorerName = scorerName
    if (needsJudge(scorer) && rl.judgeModel === undefined)
      return yield* Effect.fail(
        new UsageError(
          `${configFile}: the ${scorer} scorer needs a judge: set judgeModel (a model in models.yaml), or scorer: gaia for exact match`,
        ),
      )
    if (rl.judgeModel !== undefined && models.models[rl.judgeModel] === undefined)
      return yield* Effect.fail(
        new UsageError(`${configFile}: judgeModel: ${unknownModelMessage(models, rl.judgeModel)}`),
      )
    const tools = options.tools
      ?.split(",")
      .map((t) => t.trim())
      .filter((t) => t !== "")
    if (!dispatch) yield* agentToolsConfig(configDir, tools)
    const warnings = yield* requireReachable(models, [
      { model: rl.model, role: "RL policy" },
      ...(needsJudge(scorer) && rl.judgeModel !== undefined ? [{ model: rl.judgeModel, role: "judge" }] : []),
    ])
    for (const warning of warnings) process.stderr.write(`rollout: warning: ${warning}\n`)

    const config = yield* configFrom(global)
    if (dispatch && config.log.backend !== "nats")
      return yield* Effect.fail(
        new UsageError(
          "--dispatch needs the NATS log (--log nats --nats <url>): on the embedded log no other process can take the episodes",
        ),
      )
    const json = options.json === true
    return yield* withRuntime(config, { clientName: "rollout-rl-run" }, (runtime) =>
      Effect.gen(function* () {
        // A new run counts weight versions from 0, the weights it starts from: a server still on a
        // later version (an earlier run's) would make every token look newer than its step.
        if (!(yield* runInLog(runtime.log, runId))) {
          const served = yield* servedVersions(group)
          const ahead = served.filter((s) => s.version !== null && s.version !== "0")
          if (ahead.length > 0)
            return yield* Effect.fail(
              new UsageError(
                `model "${rl.model}": ${ahead.map((s) => `${s.url} serves weight version ${s.version}`).join("; ")}: a new RL run counts versions from 0 (the weights it starts from). Restart the server from the starting checkpoint, or resume the run that published that version (--run <id>)`,
              ),
            )
        }

        // Episodes here share the pool the bridge loads weights through; dispatched ones run on
        // the workers, whose servers the bridge's own pool updates.
        const local = dispatch
          ? undefined
          : yield* liveAgentPortsAndPool({
              log: runtime.log,
              configDir,
              ...(tools === undefined ? {} : { servers: tools }),
            })
        const runner =
          local === undefined
            ? yield* runOnWorkers(runtime.log, { bus: runtime.bus, invocation: String(Date.now()) })
            : runHere(local.ports)
        const pool =
          local?.pool ??
          (yield* makeInferencePool(models, { log: runtime.log, namespace: runtime.log.namespace }))
        let judge: JudgeSettings | undefined
        if (needsJudge(scorer) && rl.judgeModel !== undefined)
          judge = {
            model: rl.judgeModel,
            port: yield* poolJudge(models, rl.judgeModel, runtime.log),
            temperature: 0,
          }

        let bridgeUrl: string | undefined
        let tokenFile: string | undefined
        let token: string | undefined
        let trainedBefore = 0
        if (bridgeWanted) {
          tokenFile = bridgeTokenFile(config.log.dataDir, config.log.namespace, runId)
          token = loadOrCreateBridgeToken(tokenFile).token
          const bridge = yield* startTrainerBridge({
            log: runtime.log,
            blobs: runtime.blobs,
            pool,
            runId,
            model: rl.model,
            host: options.bridgeHost ?? "127.0.0.1",
            port: bridgePort,
            token,
            ...(runtime.nats === undefined ? {} : { nats: runtime.nats }),
          }).pipe(Effect.mapError((fault) => new UsageError(fault.error)))
          bridgeUrl = bridge.http.url
          // A resumed run's trainer has trained the steps the bridge saw acknowledged.
          trainedBefore = (yield* bridge.core.status.pipe(Effect.orElseSucceed(() => ({ next: 0 })))).next
          if (!json)
            process.stderr.write(
              `trainer bridge: ${bridgeUrl} (Authorization: Bearer <the token in ${tokenFile}>); API in docs/training.md\n`,
            )
        }

        // The simulated trainer, when asked for: a test double that trains nothing.
        const simulated =
          simulatedMs === undefined || bridgeUrl === undefined || token === undefined
            ? undefined
            : runSimulatedTrainer({
                url: bridgeUrl,
                token,
                stepMs: simulatedMs,
                startVersion: trainedBefore,
                checkpointPath: (version) =>
                  path.resolve(
                    config.log.dataDir,
                    "runs",
                    runId,
                    "simulated-checkpoints",
                    `version-${version}`,
                  ),
              })
        if (simulated !== undefined && !json)
          process.stderr.write(`training with the ${SIMULATED_TRAINER_NAME}: ${simulatedMs} ms per step\n`)
        simulated?.catch(() => undefined)

        if (!json)
          process.stderr.write(
            `rl ${runId}: ${bench} (${tasks.length} tasks) × ${rl.groupSize} samples per group, ${rl.epochs} epoch(s)${rl.steps === undefined ? "" : `, at most ${rl.steps} steps`}, model ${rl.model}, scorer ${scorer}, rewards ${rl.rewards.profile}, η = ${rl.staleness.maxLag}, batch ${"groups" in rl.batch ? `${rl.batch.groups} groups` : `${rl.batch.tokens} tokens`}; episodes in ${runner.where}\n`,
          )
        const line = json ? undefined : progressLine()
        const result = yield* runRl({
          log: runtime.log,
          blobs: runtime.blobs,
          runner,
          config: rl,
          tasks,
          benchmark: bench,
          scorer,
          ...(judge === undefined ? {} : { judge }),
          runId,
          waitForTrainer: bridgeWanted,
          onProgress: (p) => line?.update(progressText(p)),
        })
        const trained =
          simulated === undefined
            ? undefined
            : yield* Effect.promise(() => simulated.catch((e: Error) => ({ error: e.message })))
        const folded = yield* foldBatches({ log: runtime.log, checkpoints: runtime.checkpoints })
        const view = runPlan(folded.state, runId)
        line?.done(`rl ${runId}: done`)
        if (json)
          return printJson({
            ...result,
            bridge: bridgeUrl ?? null,
            tokenFile: tokenFile ?? null,
            trainer:
              trained === undefined
                ? null
                : "error" in trained
                  ? { error: trained.error }
                  : { name: trained.trainer, steps: trained.steps.length },
            status: view === undefined ? null : statusJson(view),
          })
        if (view !== undefined) process.stdout.write(statusText(view))
        for (const lost of result.lost.slice(0, 10))
          process.stderr.write(`rollout: lost ${lost.episodeId}: ${lost.reason}\n`)
        if (result.undecodable > 0)
          process.stderr.write(
            `rollout: rl: ${result.undecodable} log entries could not be decoded (the run went on without them)\n`,
          )
      }),
    )
  }).pipe(Effect.scoped)

/** Whether the log holds the run already (a resume). */
const runInLog = (log: EventLogShape, runId: string) =>
  Effect.map(
    foldEvents(log, { filter: entitySubject(log.namespace, "run", runId) }, false, () => true),
    (folded) => folded.state,
  )

/** The weight version each endpoint of an RL group reports serving (null: none, or no answer). */
const servedVersions = (group: ModelConfig) =>
  Effect.forEach(group.endpoints, (endpoint) => {
    const server = {
      root: serverRoot(endpoint.url),
      apiKey: endpoint.apiKeyEnv === undefined ? undefined : process.env[endpoint.apiKeyEnv],
      timeoutMs: 5_000,
    }
    const read = group.weightUpdates === "sglang" ? sglangVersion(server) : vllmVersion(server)
    return read.pipe(
      Effect.map((version) => ({ url: endpoint.url, version })),
      Effect.orElseSucceed(() => ({ url: endpoint.url, version: null })),
    )
  })

/** The latest RL run in a folded state (runs are listed in the order they started). */
const latestRun = (state: { readonly runs: Readonly<Record<string, unknown>> }): string | undefined =>
  Object.keys(state.runs).at(-1)

const withPlan = <A>(
  global: GlobalOptions,
  runOption: string | undefined,
  use: (view: RunPlanView, location: string) => Effect.Effect<A, UsageError>,
) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const folded = yield* foldBatches({
          log: runtime.log,
          checkpoints: runtime.checkpoints,
          checkpointEvery: runtime.config.projections.checkpointEvery,
        })
        const runId = runOption ?? latestRun(folded.state)
        if (runId === undefined)
          return yield* Effect.fail(new UsageError(`no RL run in the log at ${runtime.location}`))
        const view = runPlan(folded.state, runId)
        if (view === undefined)
          return yield* Effect.fail(new UsageError(`no RL run "${runId}" in the log at ${runtime.location}`))
        return yield* use(view, runtime.location)
      }),
    )
  })

const reasonsText = (drops: Readonly<Record<string, number>>): string => {
  const parts = dropReasons.filter((r) => (drops[r] ?? 0) > 0).map((r) => `${r} ${drops[r]}`)
  return parts.length === 0 ? "none" : parts.join(", ")
}

const lagsText = (lags: ReadonlyArray<{ readonly lag: number; readonly tokens: number }>): string =>
  lags.length === 0 ? "-" : lags.map((l) => `${l.lag}:${l.tokens}`).join(" ")

export const statusJson = (view: RunPlanView) => ({
  run: view.runId,
  model: view.model,
  batch: view.batch,
  staleness: view.staleness,
  finished: view.finished,
  configError: view.configError,
  groups: {
    started: view.groups.started,
    completed: view.groups.completed,
    inFlight: view.groups.inFlight.length,
  },
  steps: view.steps.map((s) => ({
    step: s.step,
    groups: s.groups,
    samples: s.samples,
    trainedTokens: s.trainedTokens,
    lags: s.lags,
    drops: Object.fromEntries(dropReasons.filter((r) => s.drops[r] > 0).map((r) => [r, s.drops[r]])),
    closedBy: s.closedBy,
    hash: s.published?.hash ?? null,
    consumed: s.consumed,
  })),
  open: { groups: view.open.groups, samples: view.open.samples, trainedTokens: view.open.trainedTokens },
  published: view.published.length,
  consumed: view.consumed.length,
  unconsumed: view.unconsumed,
  drops: Object.fromEntries(dropReasons.map((r) => [r, view.drops[r]])),
  versions: view.versions,
  lastReport: view.lastReport,
})

export const statusText = (view: RunPlanView): string => {
  const lines = [
    `run ${terminalText(view.runId)} (model ${terminalText(view.model)}): ${view.finished ? "finished" : "running"}; batch ${"groups" in view.batch ? `${view.batch.groups} groups` : `${view.batch.tokens} tokens`}, η = ${view.staleness.maxLag} (${view.staleness.policy})`,
    `groups: ${view.groups.started} started, ${view.groups.completed} completed, ${view.groups.inFlight.length} in flight`,
    `steps: ${view.stepsClosed} closed, ${view.published.length} published, ${view.consumed.length} trained (${view.unconsumed} waiting for the trainer); open step: ${view.open.groups} groups, ${view.open.samples} samples`,
    `versions: ${
      Object.entries(view.versions.endpoints)
        .map(([endpoint, v]) => `${terminalText(endpoint)} ${v.version}${v.ok ? "" : " (failed)"}`)
        .join(", ") || "none updated yet"
    }${view.versions.announced === null ? "" : `; last published ${view.versions.announced}`}`,
    `drops: ${reasonsText(view.drops)}`,
  ]
  if (view.steps.length > 0) {
    lines.push("", "step  groups  samples  trained tokens  lags (lag:tokens)  drops  trained")
    for (const s of view.steps)
      lines.push(
        `${String(s.step).padStart(4)}  ${String(s.groups).padStart(6)}  ${String(s.samples).padStart(7)}  ${String(s.trainedTokens).padStart(14)}  ${lagsText(s.lags).padEnd(17)}  ${reasonsText(s.drops)}  ${s.consumed ? "yes" : "no"}`,
      )
  }
  if (view.lastReport !== null) {
    const metrics = Object.entries(view.lastReport.metrics)
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
      .join(", ")
    lines.push("", `trainer, step ${view.lastReport.step} → version ${view.lastReport.version}: ${metrics}`)
  }
  return `${lines.join("\n")}\n`
}

export const rlStatusCommand = (
  global: GlobalOptions,
  options: { readonly run?: string; readonly json?: boolean },
) =>
  withPlan(global, options.run, (view) =>
    Effect.sync(() =>
      options.json === true ? printJson(statusJson(view)) : process.stdout.write(statusText(view)),
    ),
  )

export const rlBatchesCommand = (
  global: GlobalOptions,
  options: { readonly run?: string; readonly json?: boolean },
) =>
  withPlan(global, options.run, (view) =>
    Effect.sync(() => {
      const rows = view.steps.map((s) => ({
        step: s.step,
        hash: s.published?.hash ?? null,
        blob: s.published?.blob ?? null,
        groups: s.groups,
        samples: s.samples,
        trainedTokens: s.trainedTokens,
        lags: s.lags,
        consumed: s.consumed,
      }))
      if (options.json === true) return printJson({ run: view.runId, batches: rows })
      if (rows.length === 0) return process.stdout.write(`run ${terminalText(view.runId)}: no batch yet\n`)
      process.stdout.write("step  hash              groups  samples  trained tokens  trained\n")
      for (const r of rows)
        process.stdout.write(
          `${String(r.step).padStart(4)}  ${(r.hash ?? "(not published)").slice(0, 16).padEnd(16)}  ${String(r.groups).padStart(6)}  ${String(r.samples).padStart(7)}  ${String(r.trainedTokens).padStart(14)}  ${r.consumed ? "yes" : "no"}\n`,
        )
    }),
  )

export const rlBatchCommand = (
  global: GlobalOptions,
  stepText: string,
  options: { readonly run?: string; readonly verify?: boolean; readonly json?: boolean },
) =>
  Effect.gen(function* () {
    const step = yield* integerFlag("<step>", stepText, 0)
    const config = yield* configFrom(global)
    return yield* withRuntime(config, { mode: "reader" }, (runtime) =>
      Effect.gen(function* () {
        const folded = yield* foldBatches({ log: runtime.log, checkpoints: runtime.checkpoints })
        const runId = options.run ?? latestRun(folded.state)
        if (runId === undefined)
          return yield* Effect.fail(new UsageError(`no RL run in the log at ${runtime.location}`))
        const view = runPlan(folded.state, runId)
        if (view === undefined)
          return yield* Effect.fail(new UsageError(`no RL run "${runId}" in the log at ${runtime.location}`))
        const published = view.steps.find((s) => s.step === step)?.published ?? null
        if (options.verify === true) {
          if (published === null)
            return yield* Effect.fail(
              new UsageError(
                `run ${runId} has not published step ${step} (rollout rl batches lists what it has)`,
              ),
            )
          const derived = yield* deriveBatch(runtime.log, runId, step!).pipe(
            Effect.mapError((e) => new UsageError(e.message)),
          )
          const same = derived.hash === published.hash
          const stored = yield* runtime.blobs.get(published.blob).pipe(
            Effect.map((bytes) => ({ ok: true as const, bytes: bytes.byteLength })),
            Effect.catch((e) => Effect.succeed({ ok: false as const, error: e.message })),
          )
          const verdict = {
            run: runId,
            step,
            published: published.hash,
            derived: derived.hash,
            equal: same,
            blob: stored.ok ? { stored: true, bytes: stored.bytes } : { stored: false, error: stored.error },
          }
          if (!same || !stored.ok) process.exitCode = 1
          if (options.json === true) return printJson(verdict)
          return process.stdout.write(
            same
              ? `step ${step} of ${runId}: verified — derived again from the log, sha256 ${derived.hash} as published${stored.ok ? "" : `; but the stored blob is unreadable: ${stored.error}`}\n`
              : `step ${step} of ${runId}: DIFFERS — published ${published.hash}, derived ${derived.hash}\n`,
          )
        }
        if (published === null)
          return yield* Effect.fail(
            new UsageError(
              `run ${runId} has not published step ${step} (rollout rl batches lists what it has)`,
            ),
          )
        const bytes = yield* runtime.blobs
          .get(published.blob)
          .pipe(Effect.mapError((e) => new UsageError(e.message)))
        const decoded = decodeBatch(bytes)
        if (Result.isFailure(decoded))
          return yield* Effect.fail(
            new UsageError(`the stored batch of step ${step} does not decode: ${decoded.failure.message}`),
          )
        const batch = decoded.success
        if (options.json === true)
          return printJson({
            run: batch.run,
            step: batch.step,
            hash: published.hash,
            sequences: batch.sequences,
            lags: batch.lags,
            drops: batch.drops,
            tensors: {
              token_ids: [...batch.tokenIds],
              loss_mask: [...batch.lossMask],
              logprobs: [...batch.logprobs],
              advantages: [...batch.advantages],
              versions: [...batch.versions],
              seq_offsets: [...batch.seqOffsets],
              temperature: [...batch.temperature],
            },
          })
        const lines = [
          `step ${batch.step} of ${terminalText(batch.run)}: sha256 ${published.hash}, ${batch.sequences.length} sequences, ${batch.tokenIds.length} tokens (${batch.lossMask.reduce((a, b) => a + b, 0)} trained); lags ${lagsText(batch.lags)}; drops ${reasonsText(batch.drops)}`,
          "",
          "seq  episode                         turns    tokens  trained  advantage  score  split",
        ]
        batch.sequences.forEach((s, i) => {
          const from = batch.seqOffsets[i]!
          const to = batch.seqOffsets[i + 1]!
          let trained = 0
          for (let t = from; t < to; t++) trained += batch.lossMask[t]!
          lines.push(
            `${String(i).padStart(3)}  ${terminalText(s.episode).padEnd(30).slice(0, 30)}  ${`${s.turns[0]}-${s.turns[1]}`.padEnd(7)}  ${String(to - from).padStart(6)}  ${String(trained).padStart(7)}  ${s.advantage.toFixed(4).padStart(9)}  ${String(s.score).padStart(5)}  ${s.split}`,
          )
        })
        process.stdout.write(`${lines.join("\n")}\n`)
      }),
    )
  })
