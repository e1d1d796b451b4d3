import * as os from "node:os"
import { parseArgs } from "node:util"
import { Effect, Result, Stream } from "effect"
import { decodeBody, encodeBodyJson } from "../src/events/codec.ts"
import { makeEmbeddedLog } from "../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../src/events/log/eventLog.ts"
import { makeJetStreamLog } from "../src/events/log/jetStreamLog.ts"
import { connectNats } from "../src/events/log/natsConnection.ts"
import type { NewEvent } from "../src/events/schema.ts"
import { entitySubject } from "../src/events/subjects.ts"
import { startNatsServer } from "../src/runtime/natsServerProcess.ts"
import type { Benchmark } from "./benchmark.ts"
import { Resources } from "./resources.ts"

const NAMESPACE = "bench"
const BODY_BYTES = 512
const SUBJECTS = 1_000
const BATCH = 1_000
const CONCURRENT_APPENDS = 4
const SERIAL_MAX = 20_000
const PARSE_SAMPLE = 50_000

interface Phase {
  readonly backend: "memory" | "jetstream" | "embedded"
  readonly phase: string
  readonly events: number
  readonly seconds: number
  readonly perSecond: number
  readonly note?: string
}

interface Target {
  readonly name: string
  readonly goal: string
  readonly actual: number
  readonly threshold: number
  readonly pass: boolean
}

// ---------------------------------------------------------------------------------------------
// Events of ~512 bytes

const padFor = (() => {
  let cached: string | undefined
  return (): string => {
    if (cached !== undefined) return cached
    const bare = encodeBodyJson(makeEvent("ev-500000", 500_000, ""))
    const length = Result.isSuccess(bare) ? Buffer.byteLength(bare.success) : 0
    cached = "x".repeat(Math.max(0, BODY_BYTES - length))
    return cached
  }
})()

function makeEvent(eventId: string, seq: number, worker = padFor()): NewEvent {
  return {
    eventId,
    recordedAt: "2026-01-01T00:00:00.000Z",
    correlationId: "bench-run",
    causationId: `cmd-${eventId}`,
    actor: "bench",
    event: { type: "ProbeRecorded", probeId: "bench", seq, worker },
  }
}

const subjectOf = (i: number) => entitySubject(NAMESPACE, "probe", `p${i % SUBJECTS}`)

// ---------------------------------------------------------------------------------------------
// Progress on stderr

class Progress {
  private done = 0
  private readonly started = performance.now()
  private lastPrint = 0
  private readonly tty = process.stderr.isTTY === true

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  tick(n: number): void {
    this.done += n
    const now = performance.now()
    if (now - this.lastPrint < (this.tty ? 250 : 5_000)) return
    this.lastPrint = now
    this.print(now, false)
  }

  finish(done: number): void {
    this.done = done
    this.print(performance.now(), true)
  }

  private print(now: number, final: boolean): void {
    const rate = Math.round(this.done / ((now - this.started) / 1000 || 1e-9))
    const line = `  ${this.label}: ${this.done.toLocaleString("en")}/${this.total.toLocaleString("en")} (${rate.toLocaleString("en")}/s)`
    if (this.tty) process.stderr.write(`\r${line.padEnd(78)}${final ? "\n" : ""}`)
    else process.stderr.write(`${line}\n`)
  }
}

const timed = async (
  backend: Phase["backend"],
  phase: string,
  events: number,
  body: (progress: Progress) => Promise<number | undefined>,
  note?: string,
): Promise<Phase> => {
  const progress = new Progress(`${backend} ${phase}`, events)
  const start = performance.now()
  const counted = await body(progress)
  const seconds = (performance.now() - start) / 1000
  const n = counted ?? events
  progress.finish(n)
  return {
    backend,
    phase,
    events: n,
    seconds,
    perSecond: n / seconds,
    ...(note === undefined ? {} : { note }),
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

const parseBaseline = async (n: number): Promise<Phase[]> => {
  const sample = Math.min(n, PARSE_SAMPLE)
  const texts: string[] = []
  for (let i = 0; i < sample; i++) {
    const body = encodeBodyJson(makeEvent(`ev-${i}`, i))
    if (Result.isFailure(body)) throw body.failure
    texts.push(body.success)
  }
  const bytes = texts.map((t) => new TextEncoder().encode(t))
  const note = `${sample.toLocaleString("en")} distinct bodies, cycled`
  let sink = 0
  const parse = await timed(
    "memory",
    "JSON.parse (baseline)",
    n,
    async (p) => {
      for (let i = 0; i < n; i++) {
        sink += (JSON.parse(texts[i % sample]!) as { event: { seq: number } }).event.seq
        if ((i & 0xffff) === 0) p.tick(i === 0 ? 0 : 0x10000)
      }
      return undefined
    },
    note,
  )
  const decode = await timed(
    "memory",
    "decodeBody (bytes → record)",
    n,
    async (p) => {
      for (let i = 0; i < n; i++) {
        const r = decodeBody(bytes[i % sample]!, i + 1, "bench.ev.probe.p0")
        if (Result.isSuccess(r)) sink += r.success.position
        if ((i & 0xffff) === 0) p.tick(i === 0 ? 0 : 0x10000)
      }
      return undefined
    },
    "UTF-8 decode + JSON.parse + envelope checks",
  )
  if (sink === -1) process.stderr.write("") // keeps the loops from being optimised away
  return [parse, decode]
}

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/** The same three phases on any adapter: serial appends, pipelined appends, full replay. */
const logPhases = async (
  backend: "jetstream" | "embedded",
  log: EventLogShape,
  n: number,
  serial: number,
): Promise<Phase[]> => {
  const serialPhase = await timed(
    backend,
    "append, serial",
    serial,
    async (p) => {
      // The actor pattern: each append expects the subject's last position and awaits the ack.
      const last = new Map<string, number>()
      await run(
        Effect.gen(function* () {
          for (let i = 0; i < serial; i++) {
            const subject = subjectOf(i)
            const appended = yield* log.append(subject, [makeEvent(`s-${i}`, i)], {
              expectedLastPosition: last.get(subject) ?? 0,
            })
            last.set(subject, appended.positions[0]!)
            p.tick(1)
          }
        }),
      )
      return undefined
    },
    serial < n
      ? `min(--events, ${SERIAL_MAX.toLocaleString("en")}) events, one ack awaited at a time`
      : "one ack awaited at a time",
  )

  const batches = Math.ceil(n / BATCH)
  const pipelinedPhase = await timed(
    backend,
    "append, pipelined",
    n,
    async (p) => {
      await run(
        Effect.forEach(
          Array.from({ length: batches }, (_, b) => b),
          (b) =>
            Effect.suspend(() => {
              const events: NewEvent[] = []
              for (let i = b * BATCH; i < Math.min(n, (b + 1) * BATCH); i++)
                events.push(makeEvent(`ev-${i}`, i))
              return Effect.tap(log.append(subjectOf(b), events), () =>
                Effect.sync(() => p.tick(events.length)),
              )
            }),
          { concurrency: CONCURRENT_APPENDS, discard: true },
        ),
      )
      return undefined
    },
    `batches of ${BATCH} events, ${CONCURRENT_APPENDS} batches at a time, no expectation`,
  )

  let broken = 0
  const replayPhase = await timed(
    backend,
    "replay (read all)",
    n + serial,
    async (p) => {
      let count = 0
      await run(
        Stream.runForEachArray(log.read(), (entries) =>
          Effect.sync(() => {
            count += entries.length
            for (const e of entries) if ("_tag" in e) broken++
            p.tick(entries.length)
          }),
        ),
      )
      if (count !== n + serial)
        throw new Error(`${backend} replay read ${count} events, expected ${n + serial}`)
      return count
    },
    "every event decoded by decodeBody",
  )
  if (broken > 0) throw new Error(`${backend} replay met ${broken} undecodable events`)
  return [serialPhase, pipelinedPhase, replayPhase]
}

// ---------------------------------------------------------------------------------------------
// Report

const rate = (x: number) => Math.round(x).toLocaleString("en")

const renderTable = (
  phases: ReadonlyArray<Phase>,
  targets: ReadonlyArray<Target>,
  baseline: number,
): string => {
  const rows = phases.map((p) => [
    p.backend,
    p.phase,
    p.events.toLocaleString("en"),
    p.seconds.toFixed(2),
    rate(p.perSecond),
    `${((p.perSecond / baseline) * 100).toFixed(1)}%`,
  ])
  const header = ["backend", "phase", "events", "seconds", "events/s", "of JSON.parse"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ")
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)]
  const notes = phases.filter((p) => p.note !== undefined).map((p) => `  ${p.backend} ${p.phase}: ${p.note}`)
  out.push("", "notes:", ...notes, "", "targets:")
  for (const t of targets) {
    out.push(`  ${t.pass ? "PASS" : "MISS"}  ${t.name}: ${rate(t.actual)}/s (goal ${t.goal})`)
  }
  return out.join("\n")
}

// ---------------------------------------------------------------------------------------------

const runLog = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      events: { type: "string", default: "1000000" },
      serial: { type: "string" },
      json: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
    },
    strict: true,
  })
  const n = Number(values.events)
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--events must be a positive integer, got ${values.events}`)
  const serial = values.serial === undefined ? Math.min(n, SERIAL_MAX) : Number(values.serial)
  if (!Number.isInteger(serial) || serial < 1) throw new Error(`--serial must be a positive integer`)

  const resources = new Resources()
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up\n`)
    resources.release().finally(() => process.exit(130))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    process.stderr.write(`log benchmark: ${n.toLocaleString("en")} events of ~${BODY_BYTES} bytes\n`)
    const phases: Phase[] = [...(await parseBaseline(n))]

    const storeDir = resources.tempDir("rollout-bench-nats-")
    const server = await startNatsServer({ storeDir })
    resources.add(() => server.stop())
    const handle = await resources.scoped(connectNats({ servers: server.url, name: "rollout-bench" }))
    const natsVersion = handle.nc.info?.version ?? "unknown"
    const jetStream = await run(makeJetStreamLog(handle, { namespace: NAMESPACE }))
    phases.push(...(await logPhases("jetstream", jetStream, n, serial)))

    const dataDir = resources.tempDir("rollout-bench-embedded-")
    const embedded = await resources.scoped(
      makeEmbeddedLog({ dataDir, namespace: NAMESPACE, fsync: "interval" }),
    )
    phases.push(...(await logPhases("embedded", embedded, n, serial)))

    const find = (backend: Phase["backend"], phase: string) =>
      phases.find((p) => p.backend === backend && p.phase.startsWith(phase))!.perSecond
    const baseline = find("memory", "JSON.parse")
    const targets: Target[] = [
      {
        name: "JetStream pipelined append",
        goal: "≥ 20,000/s",
        threshold: 20_000,
        actual: find("jetstream", "append, pipelined"),
      },
      {
        name: "JetStream replay",
        goal: "≥ 100,000/s",
        threshold: 100_000,
        actual: find("jetstream", "replay"),
      },
      {
        name: "embedded replay",
        goal: `≥ 40% of JSON.parse = ${rate(baseline * 0.4)}/s`,
        threshold: baseline * 0.4,
        actual: find("embedded", "replay"),
      },
    ].map((t) => ({ ...t, pass: t.actual >= t.threshold }))

    const environment = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      natsServer: natsVersion,
      embeddedFsync: "interval",
    }
    if (values.json) {
      const report = {
        benchmark: "log",
        events: n,
        serialEvents: serial,
        bodyBytes: BODY_BYTES,
        environment,
        phases: phases.map((p) => ({ ...p, ofJsonParse: p.perSecond / baseline })),
        targets,
      }
      process.stdout.write(`${JSON.stringify(report)}\n`)
    } else {
      process.stdout.write(
        `\nlog benchmark: ${n.toLocaleString("en")} events of ~${BODY_BYTES} bytes; node ${environment.node}, ` +
          `${environment.cpus} cpus, load ${environment.loadAverage.join(" ")}, nats-server ${natsVersion}\n\n`,
      )
      process.stdout.write(`${renderTable(phases, targets, baseline)}\n`)
    }
    return values.check && targets.some((t) => !t.pass) ? 1 : 0
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    await resources.release()
  }
}

export const logBenchmark: Benchmark = {
  name: "log",
  summary:
    "append and replay on JetStream and the embedded log vs JSON.parse (--events N, --serial N, --json, --check)",
  run: runLog,
}
