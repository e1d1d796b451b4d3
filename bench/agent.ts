/**
 * The agent benchmark: many concurrent episodes of many turns, each turn a zero-latency in-process
 * scripted model call and an in-process echo tool call, run through the episode shell on the
 * embedded log and on JetStream. Reports agent steps (model turns) per second, events per second
 * and memory per live episode, against a plain in-process loop doing the same model and tool work
 * without a log (the baseline), and against JetStream's raw pipelined append rate measured in the
 * same run (the target: ≥ 50% of it in events/s, and ≤ 2 MB RSS per live episode).
 */
import * as os from "node:os"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { defaultPolicy } from "../src/actors/agent/decider.ts"
import { parseForEpisode } from "../src/actors/agent/index.ts"
import { type EpisodePorts, runEpisode } from "../src/actors/agent/shell.ts"
import type { Completion } from "../src/events/chat.ts"
import { decodeEvent, UndecodableEvent } from "../src/events/codec.ts"
import { makeEmbeddedLog } from "../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../src/events/log/jetStreamLog.ts"
import { connectNats } from "../src/events/log/natsConnection.ts"
import type { NewEvent } from "../src/events/schema.ts"
import { entitySubject } from "../src/events/subjects.ts"
import { startNatsServer } from "../src/runtime/natsServerProcess.ts"
import type { Benchmark } from "./benchmark.ts"
import { measureCpu, Resources } from "./resources.ts"

interface Measured {
  readonly backend: "memory" | "embedded" | "jetstream"
  readonly phase: string
  readonly seconds: number
  readonly steps: number
  readonly events: number
  readonly stepsPerSecond: number
  readonly eventsPerSecond: number
  readonly rssPerEpisodeMB?: number
  /** CPU per event of this process and of the nats-server it started (JetStream phases). */
  readonly cpuMicrosPerEvent?: { readonly client: number; readonly server: number | undefined }
}

const usage = { promptTokens: 10, completionTokens: 5 }

/** The scripted model: calls `echo` until the episode has `turns` tool results, then answers. */
const decideReply = (requestId: string, toolResults: number, turns: number): Completion =>
  toolResults >= turns
    ? { endpoint: "in-process", latencyMs: 0, finishReason: "stop", content: "<answer>done</answer>", usage }
    : {
        endpoint: "in-process",
        latencyMs: 0,
        finishReason: "tool_calls",
        content: "",
        toolCalls: [{ callId: `${requestId}#0`, tool: "echo", arguments: { text: `turn ${toolResults}` } }],
        usage,
      }

const ports = (turns: number, sample: () => void = () => undefined): EpisodePorts => ({
  model: {
    complete: (request) =>
      Effect.sync(() => {
        sample()
        return decideReply(request.requestId, request.messages.filter((m) => m.role === "tool").length, turns)
      }),
  },
  tools: {
    call: ({ arguments: args }) =>
      Effect.succeed({ ok: true as const, content: args as never, truncated: false }),
  },
  parse: parseForEpisode,
})

/** The baseline: the same model and tool work and message building, in a plain loop, no log. */
const baseline = async (episodes: number, turns: number): Promise<Measured> => {
  const started = performance.now()
  let steps = 0
  await Promise.all(
    Array.from({ length: episodes }, async (_, e) => {
      const messages: Array<{ role: string; content: string }> = [{ role: "user", content: `task ${e}` }]
      for (let turn = 1; ; turn++) {
        const reply = decideReply(`b${e}/${turn}`, messages.filter((m) => m.role === "tool").length, turns)
        steps++
        messages.push({ role: "assistant", content: reply.content })
        if (reply.toolCalls === undefined) break
        for (const call of reply.toolCalls)
          messages.push({ role: "tool", content: JSON.stringify(call.arguments) })
        // Yield like an I/O-bound loop would, so episodes interleave.
        if (turn % 10 === 0) await new Promise<void>((resolve) => setImmediate(resolve))
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  return {
    backend: "memory",
    phase: "plain loop (baseline)",
    seconds,
    steps,
    events: 0,
    stepsPerSecond: steps / seconds,
    eventsPerSecond: 0,
  }
}

const episodesOn = async (
  backend: "embedded" | "jetstream",
  log: EventLogShape,
  episodes: number,
  turns: number,
): Promise<Measured> => {
  const before = (await Effect.runPromise(log.stats)).events
  global.gc?.()
  const rssBefore = process.memoryUsage().rss
  let peak = rssBefore
  // Sampled from inside the work: a busy run can starve timers, so an interval would miss the peak.
  let calls = 0
  const sample = () => {
    if (++calls % 500 === 0) peak = Math.max(peak, process.memoryUsage().rss)
  }
  let finished = 0
  const progress = setInterval(
    () => process.stderr.write(`  ${backend}: ${finished}/${episodes} episodes\r`),
    1000,
  )
  const started = performance.now()
  try {
    await Effect.runPromise(
      Effect.forEach(
        Array.from({ length: episodes }, (_, i) => i),
        (i) =>
          Effect.tap(
            runEpisode(log, ports(turns, sample), `bench-${backend}-${i}`, {
              kind: "start",
              episodeId: `bench-${backend}-${i}`,
              taskId: `t${i}`,
              sampleIndex: 0,
              question: `benchmark task ${i}`,
              model: "scripted",
              policy: { ...defaultPolicy, maxTurns: turns + 5 },
            }),
            (state) =>
              Effect.sync(() => {
                if (state.outcome !== "answered") throw new Error(`episode ${i} ended ${state.outcome}`)
                finished++
              }),
          ),
        { concurrency: "unbounded", discard: true },
      ),
    )
  } finally {
    clearInterval(progress)
  }
  const seconds = (performance.now() - started) / 1000
  const events = (await Effect.runPromise(log.stats)).events - before
  const steps = episodes * (turns + 1)
  return {
    backend,
    phase: `${episodes} episodes × ${turns} turns`,
    seconds,
    steps,
    events,
    stepsPerSecond: steps / seconds,
    eventsPerSecond: events / seconds,
    rssPerEpisodeMB: (peak - rssBefore) / episodes / 1024 / 1024,
  }
}

/** JetStream's raw pipelined append rate in this run: the reference for the events/s target. */
const rawAppend = async (log: EventLogShape, n: number): Promise<Measured> => {
  const batch = 1000
  const started = performance.now()
  await Effect.runPromise(
    Effect.forEach(
      Array.from({ length: Math.ceil(n / batch) }, (_, b) => b),
      (b) => {
        const events: NewEvent[] = Array.from({ length: batch }, (_, i) => ({
          eventId: `raw-${b}-${i}`,
          recordedAt: new Date().toISOString(),
          correlationId: "bench",
          causationId: "bench",
          actor: "bench",
          event: { type: "ProbeRecorded", probeId: "raw", seq: b * batch + i, worker: "bench" },
        }))
        return log.append(entitySubject(log.namespace, "probe", `raw${b % 100}`), events)
      },
      { concurrency: 4, discard: true },
    ),
  )
  const seconds = (performance.now() - started) / 1000
  return {
    backend: "jetstream",
    phase: "raw pipelined append (reference)",
    seconds,
    steps: 0,
    events: n,
    stepsPerSecond: 0,
    eventsPerSecond: n / seconds,
  }
}

/**
 * The episodes' own writes without the agent: a recorded episode's events appended again, as the
 * shell appends them (one event per append, each expecting the subject's last position), for as
 * many episodes at once, under ids and subjects of the same length, into a fresh stream on the same
 * server (`target`; the episodes started on a stream holding only the reference's events, so a
 * fresh one gives the writes the easier start). What is left of the runtime's cost when the
 * agent's decisions, the model and the tools cost nothing: the ceiling of the episodes phase.
 */
const agentWritesAlone = async (
  log: EventLogShape,
  target: EventLogShape,
  episodes: number,
  perEpisode: number,
): Promise<Measured> => {
  const recorded: NewEvent[] = []
  await Effect.runPromise(
    Stream.runForEachArray(
      log.read({ filter: entitySubject(log.namespace, "episode", "bench-jetstream-0") }),
      (entries) =>
        Effect.sync(() => {
          for (const entry of entries) {
            if (entry instanceof UndecodableEvent) throw new Error(`bench agent: ${entry.message}`)
            if (recorded.length >= perEpisode) continue
            const decoded = decodeEvent(entry)
            if (Result.isFailure(decoded)) throw new Error(`bench agent: ${decoded.failure.message}`)
            const { eventId, recordedAt, correlationId, causationId, actor, event } = decoded.success
            recorded.push({ eventId, recordedAt, correlationId, causationId, actor, event })
          }
        }),
    ),
  )
  if (recorded.length === 0) throw new Error("bench agent: no recorded episode to append again")
  const started = performance.now()
  await Effect.runPromise(
    Effect.forEach(
      Array.from({ length: episodes }, (_, i) => i),
      (i) =>
        Effect.gen(function* () {
          const episodeId = `bench-jetstream-${i}`
          const subject = entitySubject(target.namespace, "episode", episodeId)
          let last = 0
          for (const e of recorded) {
            const own = (text: string) => text.replaceAll("bench-jetstream-0", episodeId)
            const event = { ...e, eventId: own(e.eventId), correlationId: own(e.correlationId) }
            const appended = yield* target.append(subject, [{ ...event, causationId: own(e.causationId) }], {
              expectedLastPosition: last,
            })
            last = appended.positions[0]!
          }
        }),
      { concurrency: "unbounded", discard: true },
    ),
  )
  const seconds = (performance.now() - started) / 1000
  const events = episodes * recorded.length
  return {
    backend: "jetstream",
    phase: "the episodes' writes alone (ceiling)",
    seconds,
    steps: 0,
    events,
    stepsPerSecond: 0,
    eventsPerSecond: events / seconds,
  }
}

/** The JetStream phases: a private nats-server, the raw append reference, then the episodes. */
const onJetStream = async (resources: Resources, episodes: number, turns: number) => {
  const server = await startNatsServer({ storeDir: resources.tempDir("rollout-bench-agent-nats-") })
  resources.add(() => server.stop())
  const handle = await resources.scoped(connectNats({ servers: server.url, name: "rollout-bench-agent" }))
  const jetStream = await Effect.runPromise(makeJetStreamLog(handle, { namespace: "agent" }))
  const withCpu = async (work: () => Promise<Measured>): Promise<Measured> => {
    const { result, clientCpu, serverCpu } = await measureCpu(server.pid(), work)
    const per = (seconds: number) => (seconds * 1e6) / result.events
    return {
      ...result,
      cpuMicrosPerEvent: {
        client: per(clientCpu),
        server: serverCpu === undefined ? undefined : per(serverCpu),
      },
    }
  }
  const raw = await withCpu(() => rawAppend(jetStream, 200_000))
  const run = await withCpu(() => episodesOn("jetstream", jetStream, episodes, turns))
  // A quarter of each episode's events (at least 40) keeps this phase short.
  const fresh = await Effect.runPromise(makeJetStreamLog(handle, { namespace: "alone" }))
  const alone = await withCpu(() =>
    agentWritesAlone(jetStream, fresh, episodes, Math.max(40, Math.ceil(run.events / episodes / 4))),
  )
  return { raw, episodes: run, alone }
}

const rate = (x: number) => Math.round(x).toLocaleString("en")

const runAgent = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      episodes: { type: "string", default: "1000" },
      turns: { type: "string", default: "100" },
      backends: { type: "string", default: "embedded,jetstream" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const episodes = Number(values.episodes)
  const turns = Number(values.turns)
  if (!Number.isInteger(episodes) || episodes < 1) throw new Error(`--episodes must be a positive integer`)
  if (!Number.isInteger(turns) || turns < 1) throw new Error(`--turns must be a positive integer`)
  const backends = new Set(values.backends.split(",").map((b) => b.trim()))
  for (const b of backends)
    if (b !== "embedded" && b !== "jetstream")
      throw new Error(`--backends: unknown backend "${b}" (embedded, jetstream)`)
  const resources = new Resources()
  const onSignal = () => {
    resources.release().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  try {
    process.stderr.write(`agent benchmark: ${episodes} concurrent episodes × ${turns} turns\n`)
    const results: Measured[] = [await baseline(episodes, turns)]
    if (backends.has("embedded")) {
      const embedded = await resources.scoped(
        makeEmbeddedLog({
          dataDir: resources.tempDir("rollout-bench-agent-"),
          namespace: "agent",
          fsync: "interval",
        }),
      )
      results.push(await episodesOn("embedded", embedded, episodes, turns))
    }
    const js = backends.has("jetstream") ? await onJetStream(resources, episodes, turns) : undefined
    if (js !== undefined) results.push(js.raw, js.episodes, js.alone)
    const base = results[0]!.stepsPerSecond
    const targets = [
      ...(js === undefined
        ? []
        : [
            {
              name: "JetStream events/s vs raw pipelined append",
              goal: "≥ 50%",
              actual: js.episodes.eventsPerSecond / js.raw.eventsPerSecond,
              pass: js.episodes.eventsPerSecond >= js.raw.eventsPerSecond * 0.5,
            },
          ]),
      ...results
        .filter((r) => r.rssPerEpisodeMB !== undefined)
        .map((r) => ({
          name: `${r.backend} RSS per live episode`,
          goal: "≤ 2 MB",
          actual: r.rssPerEpisodeMB!,
          pass: r.rssPerEpisodeMB! <= 2,
        })),
    ]
    const environment = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    }
    // Where the episodes stand between the raw reference and their own writes alone.
    const ceiling =
      js === undefined
        ? undefined
        : {
            writesAloneOfRaw: js.alone.eventsPerSecond / js.raw.eventsPerSecond,
            episodesOfWritesAlone: js.episodes.eventsPerSecond / js.alone.eventsPerSecond,
          }
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ benchmark: "agent", episodes, turns, environment, results: results.map((r) => ({ ...r, ofBaselineSteps: r.steps > 0 ? r.stepsPerSecond / base : undefined })), targets, ceiling })}\n`,
      )
    } else {
      process.stdout.write(
        `\nagent benchmark: ${episodes} episodes × ${turns} turns; node ${environment.node}, ${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}\n\n`,
      )
      const rows = results.map((r) =>
        [
          r.backend.padEnd(9),
          r.phase.padEnd(34),
          `${r.seconds.toFixed(2)} s`.padStart(9),
          r.steps > 0 ? `${rate(r.stepsPerSecond)} steps/s`.padStart(18) : "".padStart(18),
          r.steps > 0 ? `${(r.stepsPerSecond / base).toFixed(3)}×`.padStart(8) : "".padStart(8),
          r.events > 0 ? `${rate(r.eventsPerSecond)} events/s`.padStart(18) : "".padStart(18),
          r.rssPerEpisodeMB === undefined ? "" : `${r.rssPerEpisodeMB.toFixed(3)} MB/episode`,
          r.cpuMicrosPerEvent === undefined
            ? ""
            : `CPU/event: client ${r.cpuMicrosPerEvent.client.toFixed(1)} µs, nats-server ${r.cpuMicrosPerEvent.server?.toFixed(1) ?? "?"} µs`,
        ].join("  "),
      )
      process.stdout.write(`${rows.join("\n")}\n\n`)
      for (const t of targets) {
        process.stdout.write(
          `${t.pass ? "PASS" : "MISS"}  ${t.name}: ${t.actual.toFixed(3)} (goal ${t.goal})\n`,
        )
      }
      if (ceiling !== undefined)
        process.stdout.write(
          `\nthe episodes' writes alone reach ${ceiling.writesAloneOfRaw.toFixed(3)} of the raw append rate; ` +
            `the episodes reach ${ceiling.episodesOfWritesAlone.toFixed(3)} of their writes alone\n`,
        )
    }
    return values.check && targets.some((t) => !t.pass) ? 1 : 0
  } finally {
    process.off("SIGINT", onSignal)
    await resources.release()
  }
}

export const agentBenchmark: Benchmark = {
  name: "agent",
  summary:
    "concurrent episodes through the episode shell on both logs vs a plain loop, with the JetStream ceiling (--episodes, --turns, --backends, --json, --check)",
  run: runAgent,
}
