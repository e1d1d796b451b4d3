/**
 * `rollout eval`: one command for a whole evaluation. Loads the benchmark file (decrypting in
 * memory), builds the agent's live ports (the inference pool from models.yaml, `--base-url`
 * pointing the model at a server; the tools of tools.yaml or the built-in ones), runs every task k
 * times with a live progress bar on stderr (done/total, accuracy so far, failures, ETA), scores
 * each sample as it ends, prints the report and writes `report.md`, `report.json` and
 * `samples.csv` under `<data-dir>/runs/<run>/`. Running it again with the same `--run` resumes.
 * With `--dispatch` (NATS) the episodes run on the agent workers instead (`episodeRunner.ts`).
 * Where episodes run and the judge are built by the composition root (`app/evaluation.ts`).
 */
import * as path from "node:path"
import cliProgress from "cli-progress"
import * as Effect from "effect/Effect"
import { benchmarkSpec } from "../../actors/evaluator/datasets/benchmarks.ts"
import { loadBenchmark } from "../../actors/evaluator/datasets/datasetLoader.ts"
import { formatIssue, type LoadIssue } from "../../actors/evaluator/datasets/task.ts"
import { writeReportFiles } from "../../actors/evaluator/evalReport.ts"
import { type EvalProgress, RUN_ID_PATTERN, runEvaluation } from "../../actors/evaluator/evalRun.ts"
import type { JudgeSettings } from "../../actors/evaluator/scoring/judge.ts"
import {
  isScorerName,
  needsJudge,
  SCORER_NAMES,
  type ScorerName,
} from "../../actors/evaluator/scoring/scorers.ts"
import {
  loadModelsConfig,
  modelUrlVariable,
  unknownModelMessage,
} from "../../actors/inference/modelsConfig.ts"
import { requireReachable } from "../../actors/inference/pool/endpointProbe.ts"
import { agentToolsConfig } from "../../app/actors.ts"
import { episodeRunnerFor, poolJudge } from "../../app/evaluation.ts"
import { evalReport } from "../../projections/scoreboard/queries.ts"
import { percent, reportText } from "../../projections/scoreboard/render.ts"
import { summarizeUndecodable } from "../../projections/undecodable.ts"
import { benchmarkFlags } from "../terminal/benchmarkFlags.ts"
import { undecodableLine } from "../terminal/damageReport.ts"
import {
  configFrom,
  type GlobalOptions,
  integerFlag,
  printJson,
  progressLine,
  UsageError,
  withRuntime,
} from "../terminal/invocation.ts"

export interface EvalOptions {
  readonly bench: string
  readonly data: string
  readonly model: string
  readonly baseUrl?: string
  readonly k?: string
  readonly concurrency?: string
  readonly limit?: string
  readonly run?: string
  readonly scorer?: string
  readonly judgeModel?: string
  readonly judgeBaseUrl?: string
  readonly ids?: string
  readonly map?: string
  readonly format?: string
  readonly plaintext?: boolean
  /** Go on without the data file's bad rows (recorded in the run); default: refuse with the list. */
  readonly skipBadRows?: boolean
  readonly maxTurns?: string
  /** tools.yaml servers the agent gets (default: all of them). */
  readonly tools?: string
  /** Episodes go to `rollout worker --roles agent` processes instead of running here. */
  readonly dispatch?: boolean
  readonly json?: boolean
}

/** A live progress display on stderr: a bar on a terminal, a line every few seconds elsewhere. */
const progressDisplay = () => {
  const format = (p: EvalProgress) => {
    const accuracy = p.done === 0 ? "–" : percent(p.correct / p.done)
    // Infrastructure failures said apart: a model server that went away is not a bad agent.
    const failures =
      p.infrastructure === 0 ? `${p.failures}` : `${p.failures} (${p.infrastructure} infrastructure)`
    return { accuracy, failures }
  }
  if (process.stderr.isTTY === true) {
    const bar = new cliProgress.SingleBar(
      {
        format:
          "eval {bar} {value}/{total} | accuracy {accuracy} | failures {failures} | ETA {eta_formatted}",
        stream: process.stderr,
        etaBuffer: 64,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    )
    let started = false
    return {
      update: (p: EvalProgress) => {
        if (!started) {
          started = true
          bar.start(p.total, p.done, format(p))
        } else bar.update(p.done, format(p))
      },
      stop: () => {
        if (started) bar.stop()
      },
    }
  }
  const line = progressLine()
  const t0 = Date.now()
  let first: number | undefined
  return {
    update: (p: EvalProgress) => {
      first ??= p.done
      const f = format(p)
      const rate = (p.done - first) / Math.max(1, Date.now() - t0)
      const eta = rate > 0 ? `${Math.round((p.total - p.done) / rate / 1000)} s` : "–"
      line.update(
        `eval ${p.done}/${p.total} | accuracy ${f.accuracy} | failures ${f.failures} | ETA ${eta}`,
        p.done === p.total,
      )
    },
    stop: () => {},
  }
}

/** The exit status of a run in which no sample could reach the model (its report is printed). */
export const NO_MODEL_EXIT_CODE = 4

/** `data inspect`'s status for a file with bad rows, which eval refuses without `--skip-bad-rows`. */
const BAD_ROWS_EXIT_CODE = 3
/** Bad rows listed on the terminal; `rollout data inspect` lists every one. */
const BAD_ROWS_SHOWN = 20

/** What `RunStarted` records of the rows a run left out: how many and where (the first 100). */
const skippedBadRows = (issues: ReadonlyArray<LoadIssue>) => ({
  count: issues.length,
  rows: [...issues]
    .sort((a, b) => a.file.localeCompare(b.file) || a.row - b.row)
    .slice(0, 100)
    .map((i) => (i.row > 0 ? `${path.basename(i.file)}:${i.row}` : path.basename(i.file))),
})

/** How long `--dispatch` waits for a first ended episode before asking whether workers run. */
const DISPATCH_HINT_MS = 30_000

const defaultRunId = (bench: string, model: string): string => {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "")
  return `${bench}-${model}-${stamp}`.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 128)
}

export const evalCommand = (global: GlobalOptions, options: EvalOptions) =>
  Effect.gen(function* () {
    const { benchmark: bench, mapping, format } = yield* benchmarkFlags(options.bench, options)
    const scorerName = options.scorer ?? benchmarkSpec(bench, mapping).scorer
    if (!isScorerName(scorerName))
      return yield* Effect.fail(
        new UsageError(`unknown scorer "${scorerName}"; scorers: ${SCORER_NAMES.join(", ")}`),
      )
    const scorer: ScorerName = scorerName
    if (needsJudge(scorer) && options.judgeModel === undefined)
      return yield* Effect.fail(
        new UsageError(
          `the ${scorer} scorer needs a judge model: pass --judge-model <name> (a model in models.yaml, or with --judge-base-url), or --scorer gaia for exact match`,
        ),
      )
    const dispatch = options.dispatch === true
    if (dispatch && (options.baseUrl !== undefined || options.tools !== undefined))
      return yield* Effect.fail(
        new UsageError(
          "--dispatch runs the episodes on the agent workers, with their models.yaml and tools.yaml: --base-url and --tools do not apply (set ROLLOUT_MODEL_<NAME>_URL or the config on the workers)",
        ),
      )
    const k = (yield* integerFlag("-k", options.k)) ?? 8
    const concurrency = (yield* integerFlag("--concurrency", options.concurrency)) ?? 16
    const limit = yield* integerFlag("--limit", options.limit)
    const maxTurns = yield* integerFlag("--max-turns", options.maxTurns)
    const runId = options.run ?? defaultRunId(bench, options.model)
    if (!RUN_ID_PATTERN.test(runId))
      return yield* Effect.fail(
        new UsageError(
          `--run "${runId}": a run id is letters, digits, '.', '_' and '-', starting with a letter or digit`,
        ),
      )
    // The pool reads endpoints from models.yaml and ROLLOUT_MODEL_<NAME>_URL; the flags set the latter.
    if (options.baseUrl !== undefined) process.env[modelUrlVariable(options.model)] = options.baseUrl
    if (options.judgeBaseUrl !== undefined && options.judgeModel !== undefined)
      process.env[modelUrlVariable(options.judgeModel)] = options.judgeBaseUrl
    const configDir = global.config ?? "config"
    const models = yield* loadModelsConfig({ dir: configDir })
    const localModels = [
      ...(dispatch ? [] : [options.model]),
      ...(needsJudge(scorer) ? [options.judgeModel!] : []),
    ]
    for (const name of localModels) {
      // The flag that gives this model an endpoint: the agent's, or the judge's.
      const urlFlag = !dispatch && name === options.model ? "--base-url" : "--judge-base-url"
      if (models.models[name] === undefined)
        return yield* Effect.fail(
          new UsageError(
            unknownModelMessage(models, name) +
              // ROLLOUT_MODEL_<NAME>_URL defines a model the file lacks under its lower-case name.
              (name === name.toLowerCase().replace(/[^a-z0-9]/g, "_")
                ? ` (or pass ${urlFlag})`
                : `; ${urlFlag} defines only lower-case names without '-' or '.': add "${name}" to models.yaml`),
          ),
        )
    }

    const loaded = yield* loadBenchmark(bench, options.data, {
      ...(options.ids === undefined ? {} : { ids: options.ids }),
      ...(mapping === undefined ? {} : { mapping }),
      ...(format === undefined ? {} : { format }),
      ...(options.plaintext === true ? { plaintext: true } : {}),
    })
    const bad = loaded.errors
    if (bad.length > 0 && options.skipBadRows !== true) {
      // Refused before anything is written: a run that silently drops rows measures another set.
      process.stderr.write(`rollout: ${options.data}: ${bad.length} bad row(s), so nothing was run:\n`)
      for (const issue of bad.slice(0, BAD_ROWS_SHOWN)) process.stderr.write(`  ${formatIssue(issue)}\n`)
      if (bad.length > BAD_ROWS_SHOWN)
        process.stderr.write(
          `  … and ${bad.length - BAD_ROWS_SHOWN} more (rollout data inspect lists them all)\n`,
        )
      process.stderr.write(
        `rollout: fix them, or pass --skip-bad-rows to evaluate the ${loaded.tasks.length} good task(s) without them (the run records which rows it left out)\n`,
      )
      process.exitCode = BAD_ROWS_EXIT_CODE
      return
    }
    if (bad.length > 0) {
      process.stderr.write(
        `rollout: ${bad.length} bad row(s) left out of ${options.data} (--skip-bad-rows):\n`,
      )
      for (const issue of bad.slice(0, 10)) process.stderr.write(`  ${formatIssue(issue)}\n`)
    }
    if (loaded.tasks.length === 0)
      return yield* Effect.fail(new UsageError(`${options.data}: no tasks to evaluate`))

    // The tools the agent gets: tools.yaml read and checked (server names, `${NAME}` variables).
    const tools = options.tools
      ?.split(",")
      .map((t) => t.trim())
      .filter((t) => t !== "")
    if (!dispatch) yield* agentToolsConfig(configDir, tools)

    // Every model this process will call answers before anything is written: a wrong endpoint
    // stops here in seconds, naming the URL and the cause, instead of failing every sample.
    const warnings = yield* requireReachable(models, [
      ...(dispatch ? [] : [{ model: options.model, role: "agent" }]),
      ...(needsJudge(scorer) ? [{ model: options.judgeModel!, role: "judge" }] : []),
    ])
    for (const warning of warnings) process.stderr.write(`rollout: warning: ${warning}\n`)

    const config = yield* configFrom(global)
    if (dispatch && config.log.backend !== "nats")
      return yield* Effect.fail(
        new UsageError(
          "--dispatch needs the NATS log (--log nats --nats <url>, or log.backend: nats in rollout.yaml): on the embedded log no other process can take the episodes",
        ),
      )
    const json = options.json === true
    return yield* withRuntime(config, {}, (runtime) =>
      Effect.gen(function* () {
        const runner = yield* episodeRunnerFor(runtime, {
          dispatch,
          configDir,
          servers: tools,
          invocation: String(Date.now()),
        })
        let judge: JudgeSettings | undefined
        if (needsJudge(scorer) && options.judgeModel !== undefined) {
          const port = yield* poolJudge(models, options.judgeModel, runtime.log)
          judge = { model: options.judgeModel, port, temperature: 0 }
        }
        const display = json ? undefined : progressDisplay()
        // Dispatched episodes need workers: if none has ended an episode after a while, say so once.
        let ended = false
        const nudge = dispatch
          ? setTimeout(() => {
              if (!ended)
                process.stderr.write(
                  `\nrollout: no dispatched episode has ended in ${DISPATCH_HINT_MS / 1000} s; are \`rollout worker --roles agent\` processes running on this NATS? (\`rollout status\` shows the agent queue)\n`,
                )
            }, DISPATCH_HINT_MS)
          : undefined
        nudge?.unref()
        const onProgress = (p: EvalProgress) => {
          if (p.done > p.resumedDone) ended = true
          display?.update(p)
        }
        if (!json)
          process.stderr.write(
            `eval ${runId}: ${bench} (${loaded.tasks.length} tasks${limit === undefined ? "" : `, first ${limit}`}) × k = ${k}, model ${options.model}, scorer ${scorer}, concurrency ${concurrency}` +
              `${dispatch ? `; episodes on ${runner.where} (start them with: rollout worker --roles agent)` : ""}\n`,
          )
        const result = yield* runEvaluation({
          log: runtime.log,
          runner,
          tasks: loaded.tasks,
          benchmark: bench,
          scorer,
          ...(judge === undefined ? {} : { judge }),
          model: options.model,
          k,
          concurrency,
          ...(limit === undefined ? {} : { limit }),
          runId,
          ...(maxTurns === undefined ? {} : { policy: { maxTurns } }),
          config: {
            data: path.basename(options.data),
            // Which rows --skip-bad-rows left out (file:row, never their content: rows hold answers).
            ...(bad.length === 0 ? {} : { skippedBadRows: skippedBadRows(bad) }),
            ...(models.models[options.model]?.pricing === undefined
              ? {}
              : { pricing: { ...models.models[options.model]!.pricing! } }),
          },
          onProgress,
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              clearTimeout(nudge)
              display?.stop()
            }),
          ),
        )
        const report = evalReport(result.state, result.board, result.metrics)
        // What the run read from the log (its stream, the episodes, the judge cache) and could not decode.
        const undecodable = summarizeUndecodable(result.undecodable)
        const damage = undecodableLine("eval", undecodable, { first: result.undecodable[0] })
        if (damage !== undefined) process.stderr.write(`rollout: ${damage}\n`)
        // Samples ran and not one got an answer from the model: the report shows why, and the
        // exit status says the run measured nothing.
        const unreached = result.ranNow > 0 && result.reachedModel === 0
        if (unreached) process.exitCode = NO_MODEL_EXIT_CODE
        const files = yield* writeReportFiles(path.resolve(config.log.dataDir, "runs", runId), report)
        const { samples: _samples, ...summary } = report
        if (json)
          return printJson({
            ...summary,
            resumed: result.resumed,
            alreadyScored: result.alreadyScored,
            scoredNow: result.scored,
            failed: result.failed,
            reachedModel: result.reachedModel,
            infrastructureNow: result.infrastructure,
            judge: result.judge,
            undecodable,
            files,
          })
        process.stdout.write(reportText(report))
        process.stdout.write(
          `\n${result.resumed ? `resumed: ${result.alreadyScored} samples were already scored; ` : ""}` +
            `${result.scored} scored now${result.judge.asked + result.judge.cached > 0 ? `; judge: ${result.judge.asked} asked, ${result.judge.cached} from the cache` : ""}\n` +
            `reports: ${files.markdown}, ${files.json}, ${files.csv}\n` +
            `leaderboard: rollout scores · trajectories: rollout export ${runId} --format sft|agenttoleap\n`,
        )
        if (unreached)
          process.stderr.write(`rollout: ${report.reason ?? `no sample reached model ${options.model}`}\n`)
      }),
    )
  }).pipe(Effect.scoped)
