/**
 * The eval benchmark (issue 5, point 7): one evaluation of `--tasks` synthetic tasks × `-k` samples
 * through `runEvaluation` (the `gaia` scorer) with a zero-latency in-process scripted model that
 * calls the in-process `echo` tool 2–3 times and then answers, about half of the answers correct,
 * on the embedded log and on JetStream (a private nats-server). Then, on each backend, the time to
 * rebuild the score projections (`scoreboard`, `runs`) from position 0 through the projection
 * runner (`rebuildProjection`: `log.read`, decode, fold, checkpoints in the backend's checkpoint
 * store), against same-run baselines over the same events: reading them without folding, reading
 * and decoding them, `JSON.parse` of their bodies in memory, and the folds alone over in-memory
 * envelopes. The eval itself is compared with a plain in-memory loop doing the same model, tool and
 * scoring work without a log. Target: each projection rebuilds from JetStream at ≥ 100,000 events/s.
 * A phase running longer than 300 s is aborted with a message saying so. Flags: --tasks, -k,
 * --concurrency, --repeats, --json, --check.
 */
import * as os from "node:os"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { extractAnswer } from "../src/actors/agent/answer.ts"
import { builtinToolSpecs, builtinTools } from "../src/actors/agent/builtinTools.ts"
import { parseForEpisode } from "../src/actors/agent/index.ts"
import type { EpisodePorts } from "../src/actors/agent/ports.ts"
import type { Task } from "../src/actors/evaluator/datasets/task.ts"
import { type EvalProgress, type EvalRunResult, runEvaluation } from "../src/actors/evaluator/evalRun.ts"
import { gaiaScore } from "../src/actors/evaluator/scoring/gaiaScorer.ts"
import type { Completion } from "../src/events/chat.ts"
import { decodeEvent, UndecodableEvent } from "../src/events/codec.ts"
import { makeEmbeddedLog } from "../src/events/log/embeddedLog.ts"
import type { EventLogShape, LogEntry } from "../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../src/events/log/jetStreamLog.ts"
import { connectNats } from "../src/events/log/natsConnection.ts"
import type { Envelope, LogRecord } from "../src/events/schema.ts"
import { type AnyProjection, foldAll } from "../src/projections/projection.ts"
import { rebuildProjection, rebuildProjections } from "../src/projections/runner/runner.ts"
import { runs } from "../src/projections/runs/runs.ts"
import { type ScoreboardState, scoreboard } from "../src/projections/scoreboard/scoreboard.ts"
import {
  type CheckpointStoreShape,
  checkpointBucketFor,
  fileCheckpointDir,
  fileCheckpointStore,
  kvCheckpointStore,
} from "../src/runtime/checkpointStore.ts"
import { startNatsServer } from "../src/runtime/natsServerProcess.ts"
import type { Benchmark } from "./benchmark.ts"
import { Resources } from "./resources.ts"

const PHASE_LIMIT_MS = 300_000
const NAMESPACE = "evalbench"
const TARGET_REBUILD_EVENTS_PER_SECOND = 100_000

type Backend = "memory" | "embedded" | "jetstream"

interface EvalMeasured {
  readonly backend: Backend
  readonly phase: string
  readonly seconds: number
  readonly episodes: number
  readonly episodesPerSecond: number
  readonly events: number
  readonly eventsPerSecond: number
  readonly correct: number
  readonly expectedCorrect: number
  readonly avgAtK?: number
  readonly passAtK?: number
}

interface RebuildMeasured {
  readonly backend: Exclude<Backend, "memory">
  /** `rebuild-all`: every score projection, one after the other (events: the log's, once). */
  readonly kind: "rebuild" | "rebuild-all" | "rebuild-one-read" | "baseline"
  readonly phase: string
  /** Events consumed by one pass (the log's events for a read; folded events for a fold). */
  readonly events: number
  /** The median pass. */
  readonly seconds: number
  readonly eventsPerSecond: number
  /** Every pass, in order (the first one may be the cold one). */
  readonly runs: ReadonlyArray<number>
}

// ---------------------------------------------------------------------------------------------
// The synthetic benchmark and the scripted model

interface Synthetic {
  readonly task: Task
  /** An answer GAIA's rules count as correct, written differently from the ground truth. */
  readonly right: string
  readonly wrong: string
}

const CITIES = ["Lisbon", "Kyoto", "Valparaíso", "Tromsø", "Ouagadougou", "Reykjavík", "Hobart", "Tbilisi"]

/** Tasks in GAIA's three comparison modes (number, list, string), about a third each. */
const syntheticTasks = (n: number): ReadonlyArray<Synthetic> =>
  Array.from({ length: n }, (_, i): Synthetic => {
    const taskId = `t${String(i).padStart(4, "0")}`
    const level = String((i % 3) + 1)
    const base = { taskId, level, category: ["number", "list", "string"][i % 3]!, metadata: {} }
    switch (i % 3) {
      case 0: {
        const value = 1000 + i * 7
        return {
          task: { ...base, question: `How many widgets did plant ${taskId} ship?`, answer: String(value) },
          right: `$${value.toLocaleString("en")}`,
          wrong: String(value + 1),
        }
      }
      case 1:
        return {
          task: {
            ...base,
            question: `Which three codes does ${taskId} list, in order?`,
            answer: `alpha${i}, beta; ${i * 3}`,
          },
          right: ` ALPHA${i} ,Beta; ${i * 3}.0`,
          wrong: `alpha${i}, beta`,
        }
      default: {
        const city = CITIES[i % CITIES.length]!
        return {
          task: { ...base, question: `Which city hosts archive ${taskId}?`, answer: `The City of ${city}` },
          right: `the city of ${city.toLowerCase()}!`,
          wrong: "unknown",
        }
      }
    }
  })

/** Whether the scripted model answers sample `sample` of task `i` correctly: about half of them. */
const answersRight = (i: number, sample: number): boolean => (i * 31 + sample * 17) % 100 < 50

/** How many `echo` calls the scripted model makes before answering: 2 or 3. */
const echoCallsFor = (i: number, sample: number): number => 2 + ((i + sample) % 2)

const usage = { promptTokens: 40, completionTokens: 12 }

/** The scripted reply for a sample after `toolResults` echo results. */
const scriptedReply = (
  requestId: string,
  item: Synthetic,
  i: number,
  sample: number,
  toolResults: number,
): Completion =>
  toolResults >= echoCallsFor(i, sample)
    ? {
        endpoint: "in-process",
        latencyMs: 0,
        finishReason: "stop",
        content: `I checked it. <answer>${answersRight(i, sample) ? item.right : item.wrong}</answer>`,
        usage,
      }
    : {
        endpoint: "in-process",
        latencyMs: 0,
        finishReason: "tool_calls",
        content: "",
        toolCalls: [
          {
            callId: `${requestId}#0`,
            tool: "echo",
            arguments: { text: `${item.task.taskId} lookup ${toolResults}` },
          },
        ],
        usage,
      }

/**
 * Lets the event loop turn when a run starves it. On the embedded log an evaluation goes from
 * microtask to microtask (its appends are synchronous), so timers (the progress line, the phase's
 * time limit) and Ctrl-C would wait for the end of the run. A ticker notes each turn of the loop;
 * once none came for a second, every model call waits for the next turn (a pause that reshuffles
 * which episodes interleave, so it stays rare: a shorter one cost the embedded run ~25%). On
 * JetStream the run waits for acks anyway, and this never holds anything up.
 */
const makeBreather = (): { readonly breathe: Effect.Effect<void>; readonly stop: () => void } => {
  let lastTurn = performance.now()
  let gate: Promise<void> | undefined
  const ticker = setInterval(() => {
    lastTurn = performance.now()
  }, 25)
  const breathe = Effect.suspend(() => {
    if (gate === undefined && performance.now() - lastTurn < 1000) return Effect.void
    if (gate === undefined)
      gate = new Promise<void>((resolve) =>
        setTimeout(() => {
          gate = undefined
          lastTurn = performance.now()
          resolve()
        }, 0),
      )
    const wait = gate
    return Effect.promise(() => wait)
  })
  return { breathe, stop: () => clearInterval(ticker) }
}

/**
 * The in-process ports: the model reads the task and sample from the request id
 * (`<runId>/<taskId>/<sample>/model/<turn>`); the tools are the built-in `echo`.
 */
const scriptedPorts = (items: ReadonlyArray<Synthetic>, breathe: Effect.Effect<void>): EpisodePorts => {
  const byId = new Map(items.map((item, i) => [item.task.taskId, i]))
  return {
    model: {
      complete: (request) =>
        Effect.andThen(
          breathe,
          Effect.sync(() => {
            const parts = request.requestId.split("/")
            const i = byId.get(parts[1] ?? "")
            const sample = Number(parts[2])
            if (i === undefined || !Number.isInteger(sample))
              throw new Error(`scripted model: unexpected request id ${request.requestId}`)
            let toolResults = 0
            for (const m of request.messages) if (m.role === "tool") toolResults++
            return scriptedReply(request.requestId, items[i]!, i, sample, toolResults)
          }),
        ),
    },
    tools: builtinTools,
    toolSpecs: builtinToolSpecs,
    parse: parseForEpisode,
  }
}

const expectedCorrect = (tasks: number, k: number): number => {
  let n = 0
  for (let i = 0; i < tasks; i++) for (let s = 0; s < k; s++) if (answersRight(i, s)) n++
  return n
}

// ---------------------------------------------------------------------------------------------
// Phases

/**
 * Runs `body` with a signal that aborts on Ctrl-C or after PHASE_LIMIT_MS; a phase over its limit
 * rejects with a message naming it.
 */
const phase = async <A>(
  label: string,
  interrupt: AbortSignal,
  body: (signal: AbortSignal) => Promise<A>,
): Promise<A> => {
  const controller = new AbortController()
  let limit: ReturnType<typeof setTimeout> | undefined
  let onAbort: (() => void) | undefined
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => {
      controller.abort()
      reject(new Error(`eval benchmark: interrupted during phase "${label}"`))
    }
    if (interrupt.aborted) onAbort()
    else interrupt.addEventListener("abort", onAbort, { once: true })
    limit = setTimeout(() => {
      controller.abort()
      reject(
        new Error(
          `eval benchmark: phase "${label}" did not finish within ${PHASE_LIMIT_MS / 1000} s; aborting`,
        ),
      )
    }, PHASE_LIMIT_MS)
  })
  try {
    return await Promise.race([body(controller.signal), stopped])
  } finally {
    clearTimeout(limit)
    if (onAbort !== undefined) interrupt.removeEventListener("abort", onAbort)
  }
}

const run = <A, E>(effect: Effect.Effect<A, E>, signal: AbortSignal): Promise<A> =>
  Effect.runPromise(effect, { signal })

/** The baseline of the eval: the same model, echo and GAIA scoring work in a plain loop, no log. */
const plainLoop = async (items: ReadonlyArray<Synthetic>, k: number): Promise<EvalMeasured> => {
  const started = performance.now()
  let correct = 0
  let episodes = 0
  for (let sample = 0; sample < k; sample++) {
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const messages: Array<{ role: string; content: string }> = [
        { role: "user", content: item.task.question },
      ]
      let toolResults = 0
      for (let turn = 1; ; turn++) {
        const reply = scriptedReply(
          `plain/${item.task.taskId}/${sample}/model/${turn}`,
          item,
          i,
          sample,
          toolResults,
        )
        messages.push({ role: "assistant", content: reply.content })
        if (reply.toolCalls === undefined) {
          const score = gaiaScore(extractAnswer(reply.content, "answer_tag"), item.task.answer)
          if (score.correct) correct++
          break
        }
        for (const call of reply.toolCalls) {
          const outcome = await Effect.runPromise(
            builtinTools.call({
              episodeId: "plain",
              callId: call.callId,
              tool: call.tool,
              arguments: call.arguments,
            }),
          )
          messages.push({ role: "tool", content: JSON.stringify(outcome) })
          toolResults++
        }
      }
      episodes++
    }
  }
  const seconds = (performance.now() - started) / 1000
  return {
    backend: "memory",
    phase: "plain loop: model, echo, gaia (baseline)",
    seconds,
    episodes,
    episodesPerSecond: episodes / seconds,
    events: 0,
    eventsPerSecond: 0,
    correct,
    expectedCorrect: expectedCorrect(items.length, k),
  }
}

/** One `runEvaluation` of every task × k samples on `log`. */
const evaluateOn = async (
  backend: "embedded" | "jetstream",
  log: EventLogShape,
  items: ReadonlyArray<Synthetic>,
  k: number,
  concurrency: number,
  interrupt: AbortSignal,
): Promise<EvalMeasured> => {
  const before = (await run(log.stats, interrupt)).events
  let progress: EvalProgress | undefined
  const total = items.length * k
  const ticker = setInterval(() => {
    const p = progress
    process.stderr.write(
      `  ${backend} eval: ${p?.done ?? 0}/${total} samples, ${p?.correct ?? 0} correct, ${p?.failures ?? 0} failures\r`,
    )
  }, 1000)
  const breather = makeBreather()
  const started = performance.now()
  let result: EvalRunResult
  try {
    result = await phase(`${backend} eval`, interrupt, (signal) =>
      run(
        runEvaluation({
          log,
          ports: scriptedPorts(items, breather.breathe),
          tasks: items.map((item) => item.task),
          benchmark: "synthetic",
          scorer: "gaia",
          model: "scripted",
          k,
          concurrency,
          runId: `bench-${backend}`,
          onProgress: (p) => {
            progress = p
          },
        }),
        signal,
      ),
    )
  } finally {
    breather.stop()
    clearInterval(ticker)
  }
  const seconds = (performance.now() - started) / 1000
  const events = (await run(log.stats, interrupt)).events - before
  const episodes = items.length * k
  if (result.failed.length > 0 || result.scored !== episodes)
    throw new Error(
      `eval benchmark: ${backend} run scored ${result.scored} of ${episodes} samples; ` +
        `${result.failed.length} failed (first: ${JSON.stringify(result.failed[0])})`,
    )
  process.stderr.write(
    `\r  ${backend} eval: ${episodes} samples, ${result.metrics.correct} correct, ${events} events, ${seconds.toFixed(2)} s\n`,
  )
  return {
    backend,
    phase: `runEvaluation ${items.length} tasks × k=${k}`,
    seconds,
    episodes,
    episodesPerSecond: episodes / seconds,
    events,
    eventsPerSecond: events / seconds,
    correct: result.metrics.correct,
    expectedCorrect: expectedCorrect(items.length, k),
    avgAtK: result.metrics.avgAtK,
    ...(result.metrics.passAtK[String(k)] === undefined
      ? {}
      : { passAtK: result.metrics.passAtK[String(k)]! }),
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Times `pass` `repeats` times; each pass returns the events it consumed (the same every time). */
const timed = async (
  repeats: number,
  pass: () => Promise<number>,
): Promise<{ events: number; seconds: number; runs: number[] }> => {
  const runs: number[] = []
  let events = 0
  for (let r = 0; r < repeats; r++) {
    global.gc?.()
    const started = performance.now()
    const n = await pass()
    runs.push((performance.now() - started) / 1000)
    if (r > 0 && n !== events)
      throw new Error(`eval benchmark: a pass consumed ${n} events, an earlier one ${events}`)
    events = n
  }
  return { events, seconds: median(runs), runs }
}

const measured = (
  backend: "embedded" | "jetstream",
  kind: RebuildMeasured["kind"],
  phaseName: string,
  t: { events: number; seconds: number; runs: number[] },
): RebuildMeasured => ({
  backend,
  kind,
  phase: phaseName,
  events: t.events,
  seconds: t.seconds,
  eventsPerSecond: t.events / t.seconds,
  runs: t.runs,
})

const bodyEncoder = new TextEncoder()
const bodyDecoder = new TextDecoder("utf-8", { fatal: true })

/** The stored JSON body of a record, byte for byte as the codec wrote it (same keys, same order). */
const bodyOf = (r: LogRecord): Uint8Array =>
  bodyEncoder.encode(
    JSON.stringify({
      eventId: r.eventId,
      recordedAt: r.recordedAt,
      correlationId: r.correlationId,
      causationId: r.causationId,
      actor: r.actor,
      schemaVersion: r.schemaVersion,
      event: r.payload,
    }),
  )

/**
 * The score projections rebuilt from position 0 through the runner, and the same-run baselines over
 * the same log: read only, read + decode, `JSON.parse` of the bodies, and the folds alone.
 */
const rebuildOn = async (
  backend: "embedded" | "jetstream",
  log: EventLogShape,
  store: CheckpointStoreShape,
  repeats: number,
  expected: { readonly runId: string; readonly correct: number; readonly samples: number },
  interrupt: AbortSignal,
): Promise<RebuildMeasured[]> =>
  phase(`${backend} rebuild`, interrupt, async (signal) => {
    const stats = await run(log.stats, signal)
    const results: RebuildMeasured[] = []
    process.stderr.write(
      `  ${backend} rebuild: ${stats.events} events in the log, ${repeats} pass(es) each\n`,
    )

    // The real path: the runner reading the log, decoding, folding and saving checkpoints.
    const projections: ReadonlyArray<AnyProjection> = [scoreboard as AnyProjection, runs as AnyProjection]
    const states = new Map<string, unknown>()
    const rebuildSeconds: number[][] = []
    for (const projection of projections) {
      const t = await timed(repeats, async () => {
        const result = await run(rebuildProjection(log, store, projection), signal)
        if (result.position !== stats.lastPosition || result.undecodable > 0)
          throw new Error(
            `eval benchmark: rebuilding ${projection.name} ended at ${result.position} ` +
              `(log at ${stats.lastPosition}), ${result.undecodable} undecodable`,
          )
        states.set(projection.name, result.state)
        return stats.events
      })
      rebuildSeconds.push(t.runs)
      results.push(measured(backend, "rebuild", `rebuild ${projection.name} (runner, log.read)`, t))
    }
    // All score projections, one after the other.
    const all = rebuildSeconds[0]!.map((_, r) => rebuildSeconds.reduce((sum, xs) => sum + xs[r]!, 0))
    results.push(
      measured(backend, "rebuild-all", "rebuild all score projections (sum)", {
        events: stats.events,
        seconds: median(all),
        runs: all,
      }),
    )
    // All score projections with one read of the log (`rollout projections rebuild --all`).
    const together = await timed(repeats, async () => {
      const done = await run(rebuildProjections(log, store, projections), signal)
      for (const d of done)
        if (d.position !== stats.lastPosition)
          throw new Error(`eval benchmark: rebuilding ${d.name} together ended at ${d.position}`)
      return stats.events
    })
    results.push(measured(backend, "rebuild-one-read", "rebuild all score projections (one read)", together))
    // What was rebuilt must be the run that was scored.
    const board = (states.get("scoreboard") as ScoreboardState | undefined)?.runs[expected.runId]
    let correct = 0
    let rows = 0
    for (const slots of board?.rows ?? [])
      for (const row of slots) {
        if (row?.verdict != null) rows++
        if (row?.verdict === "correct") correct++
      }
    const summary = (
      states.get("runs") as { runs: Record<string, { samples: { scored: number } }> } | undefined
    )?.runs[expected.runId]
    if (
      rows !== expected.samples ||
      correct !== expected.correct ||
      summary?.samples.scored !== expected.samples
    )
      throw new Error(
        `eval benchmark: the rebuilt ${backend} projections disagree with the run: scoreboard ${rows} scored ` +
          `(${correct} correct), runs ${summary?.samples.scored} scored; expected ${expected.samples} (${expected.correct} correct)`,
      )

    // Baseline 1: the same read, entries counted and dropped (envelope decode only, no fold).
    results.push(
      measured(
        backend,
        "baseline",
        "read only: log.read, no fold",
        await timed(repeats, async () => {
          let n = 0
          await run(
            Stream.runForEachArray(log.read(), (entries) =>
              Effect.sync(() => {
                n += entries.length
              }),
            ),
            signal,
          )
          return n
        }),
      ),
    )
    // Baseline 2: the same read plus the per-event decode (upcast, schema check) the fold does.
    const records: LogRecord[] = []
    results.push(
      measured(
        backend,
        "baseline",
        "read + decodeEvent, no fold",
        await timed(repeats, async () => {
          let n = 0
          records.length = 0
          await run(
            Stream.runForEachArray(log.read(), (entries: ReadonlyArray<LogEntry>) =>
              Effect.sync(() => {
                for (const entry of entries) {
                  if (entry instanceof UndecodableEvent) continue
                  records.push(entry)
                  if (Result.isSuccess(decodeEvent(entry))) n++
                }
              }),
            ),
            signal,
          )
          return n
        }),
      ),
    )
    // Baseline 3: JSON.parse of the same body bytes, in memory (the floor of any decode).
    const bodies = records.map(bodyOf)
    results.push(
      measured(
        backend,
        "baseline",
        "JSON.parse of the same bodies (memory)",
        await timed(repeats, async () => {
          let n = 0
          for (const body of bodies) if (JSON.parse(bodyDecoder.decode(body)) !== null) n++
          return n
        }),
      ),
    )
    // Reference: the folds alone, over envelopes decoded beforehand.
    const envelopes: Envelope[] = []
    for (const record of records) {
      const decoded = decodeEvent(record)
      if (Result.isSuccess(decoded)) envelopes.push(decoded.success)
    }
    for (const projection of projections)
      results.push(
        measured(
          backend,
          "baseline",
          `fold only: ${projection.name} (memory envelopes)`,
          await timed(repeats, async () => {
            foldAll(projection, envelopes)
            return envelopes.length
          }),
        ),
      )
    return results
  })

// ---------------------------------------------------------------------------------------------
// The command

const positive = (name: string, raw: string): number => {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}

const rate = (x: number) => Math.round(x).toLocaleString("en")

const runEval = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      tasks: { type: "string", default: "200" },
      k: { type: "string", short: "k", default: "8" },
      concurrency: { type: "string", default: "64" },
      repeats: { type: "string", default: "3" },
      backends: { type: "string", default: "embedded,jetstream" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const taskCount = positive("tasks", values.tasks)
  const k = positive("k", values.k)
  const concurrency = positive("concurrency", values.concurrency)
  const repeats = positive("repeats", values.repeats)
  const backends = new Set(values.backends.split(",").map((b) => b.trim()))
  for (const b of backends)
    if (b !== "embedded" && b !== "jetstream")
      throw new Error(`--backends: unknown backend "${b}" (embedded, jetstream)`)
  const items = syntheticTasks(taskCount)
  const resources = new Resources()
  const interrupt = new AbortController()
  const onSignal = () => {
    interrupt.abort()
    process.stderr.write("\neval benchmark: interrupted, stopping what it started\n")
    resources.release().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  try {
    process.stderr.write(
      `eval benchmark: ${taskCount} tasks × k=${k} (${taskCount * k} episodes), concurrency ${concurrency}, ` +
        `${repeats} rebuild pass(es)\n`,
    )
    const expected = expectedCorrect(taskCount, k)
    const evals: EvalMeasured[] = [await plainLoop(items, k)]
    const rebuilds: RebuildMeasured[] = []

    // The embedded log, with the file checkpoint store beside it (as `wiring.ts` sets it up).
    if (backends.has("embedded")) {
      const dataDir = resources.tempDir("rollout-bench-eval-")
      const embedded = await resources.scoped(
        makeEmbeddedLog({ dataDir, namespace: NAMESPACE, fsync: "interval" }),
      )
      evals.push(await evaluateOn("embedded", embedded, items, k, concurrency, interrupt.signal))
      rebuilds.push(
        ...(await rebuildOn(
          "embedded",
          embedded,
          fileCheckpointStore(fileCheckpointDir(dataDir, NAMESPACE)),
          repeats,
          { runId: "bench-embedded", correct: expected, samples: taskCount * k },
          interrupt.signal,
        )),
      )
    }

    // JetStream on a private nats-server, with the KV checkpoint store.
    if (backends.has("jetstream")) {
      const server = await startNatsServer({ storeDir: resources.tempDir("rollout-bench-eval-nats-") })
      resources.add(() => server.stop())
      const handle = await resources.scoped(connectNats({ servers: server.url, name: "rollout-bench-eval" }))
      const jetStream = await Effect.runPromise(makeJetStreamLog(handle, { namespace: NAMESPACE }))
      const kv = await Effect.runPromise(
        kvCheckpointStore(handle, { bucket: checkpointBucketFor(NAMESPACE) }),
      )
      evals.push(await evaluateOn("jetstream", jetStream, items, k, concurrency, interrupt.signal))
      rebuilds.push(
        ...(await rebuildOn(
          "jetstream",
          jetStream,
          kv,
          repeats,
          { runId: "bench-jetstream", correct: expected, samples: taskCount * k },
          interrupt.signal,
        )),
      )
    }

    const base = evals[0]!
    // The target: every score projection rebuilt from the log (one read), in events of the log per second.
    const allAtOnce = rebuilds.find((r) => r.backend === "jetstream" && r.kind === "rebuild-one-read")
    const targets = [
      ...(allAtOnce === undefined
        ? []
        : [
            {
              name: "JetStream rebuild of all score projections, events/s",
              goal: `≥ ${rate(TARGET_REBUILD_EVENTS_PER_SECOND)}`,
              actual: rate(allAtOnce.eventsPerSecond),
              pass: allAtOnce.eventsPerSecond >= TARGET_REBUILD_EVENTS_PER_SECOND,
            },
          ]),
      ...evals.map((e) => ({
        name: `${e.backend} correct samples as scripted`,
        goal: String(e.expectedCorrect),
        actual: String(e.correct),
        pass: e.correct === e.expectedCorrect,
      })),
    ]
    const environment = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    }
    const readOf = (backend: string) =>
      rebuilds.find((r) => r.backend === backend && r.phase.startsWith("read only"))?.eventsPerSecond
    const parseOf = (backend: string) =>
      rebuilds.find((r) => r.backend === backend && r.phase.startsWith("JSON.parse"))?.eventsPerSecond
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          benchmark: "eval",
          tasks: taskCount,
          k,
          concurrency,
          repeats,
          environment,
          eval: evals.map((e) => ({ ...e, ofBaseline: e.episodesPerSecond / base.episodesPerSecond })),
          rebuild: rebuilds.map((r) => ({
            ...r,
            ofReadOnly: r.eventsPerSecond / (readOf(r.backend) ?? Number.NaN),
            ofJsonParse: r.eventsPerSecond / (parseOf(r.backend) ?? Number.NaN),
          })),
          targets,
        })}\n`,
      )
    } else {
      process.stdout.write(
        `\neval benchmark: ${taskCount} tasks × k=${k} = ${taskCount * k} episodes, concurrency ${concurrency}; ` +
          `node ${environment.node}, ${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}\n\n`,
      )
      const evalRows = evals.map((e) =>
        [
          e.backend.padEnd(9),
          e.phase.padEnd(40),
          `${e.seconds.toFixed(2)} s`.padStart(9),
          `${rate(e.episodesPerSecond)} ep/s`.padStart(13),
          `${(e.episodesPerSecond / base.episodesPerSecond).toFixed(4)}×`.padStart(9),
          e.events > 0 ? `${rate(e.events)} events`.padStart(14) : "".padStart(14),
          e.events > 0 ? `${rate(e.eventsPerSecond)} events/s`.padStart(17) : "".padStart(17),
          `${e.correct}/${e.episodes} correct`.padStart(17),
          e.avgAtK === undefined ? "" : `  avg@k ${e.avgAtK.toFixed(3)}`,
          e.passAtK === undefined ? "" : ` pass@${k} ${e.passAtK.toFixed(3)}`,
        ].join("  "),
      )
      process.stdout.write(`${evalRows.join("\n")}\n\n`)
      const header = [
        "backend".padEnd(9),
        "rebuild / baseline (median pass)".padEnd(40),
        "seconds".padStart(9),
        "events".padStart(8),
        "events/s".padStart(11),
        "of read".padStart(8),
        "of parse".padStart(9),
        "  passes (s)",
      ].join("  ")
      const rebuildRows = rebuilds.map((r) =>
        [
          r.backend.padEnd(9),
          r.phase.padEnd(40),
          r.seconds.toFixed(3).padStart(9),
          String(r.events).padStart(8),
          rate(r.eventsPerSecond).padStart(11),
          (r.eventsPerSecond / (readOf(r.backend) ?? Number.NaN)).toFixed(3).padStart(8),
          (r.eventsPerSecond / (parseOf(r.backend) ?? Number.NaN)).toFixed(3).padStart(9),
          `  ${r.runs.map((s) => s.toFixed(3)).join(" ")}`,
        ].join("  "),
      )
      process.stdout.write(`${header}\n${rebuildRows.join("\n")}\n\n`)
      for (const t of targets)
        process.stdout.write(`${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.actual} (goal ${t.goal})\n`)
    }
    return values.check && targets.some((t) => !t.pass) ? 1 : 0
  } finally {
    process.off("SIGINT", onSignal)
    await resources.release()
  }
}

export const evalBenchmark: Benchmark = {
  name: "eval",
  summary:
    "a tasks × k evaluation on both logs, then rebuilding the score projections from each (--tasks, -k, --concurrency, --repeats, --backends, --json, --check)",
  run: runEval,
}
