/**
 * An RL run end to end over real HTTP on the embedded log: the sampler (`runRl`) starts GRPO groups
 * as agent episodes through the inference pool (`tokens: exact`, official openai client) against
 * the scripted model server (a test double for vLLM: chat template with token ids, log-probs,
 * vLLM's weight-update routes), scores them, publishes the steps the batch plan closes, and the
 * trainer bridge serves them to the simulated trainer (a test double), whose versions the pool
 * loads on the server. Checked: every sample scored once, every published step derived again from
 * the log to the same hash, no sample in two steps, every trained token within η of its step,
 * every step acknowledged once, versions loaded in order; then a run stopped part-way (its
 * fiber interrupted, as a kill leaves it) and started again finishes with the same guarantees,
 * starting no group twice.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import { afterEach, describe, expect, it } from "vitest"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { poolModelPort } from "../../src/actors/agent/modelPort.ts"
import type { EpisodePorts } from "../../src/actors/agent/ports.ts"
import { EpisodeStuck } from "../../src/actors/agent/shell.ts"
import type { Task } from "../../src/actors/evaluator/datasets/task.ts"
import { type EpisodeRunner, runHere } from "../../src/actors/evaluator/episodeRunner.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import type { InferencePool } from "../../src/actors/inference/ports.ts"
import { deriveBatch } from "../../src/actors/sampler/batchDerivation.ts"
import { rlConfigFrom } from "../../src/actors/sampler/rlConfig.ts"
import { runRl } from "../../src/actors/sampler/sampler.ts"
import { startTrainerBridge } from "../../src/actors/trainer/bridge.ts"
import { runSimulatedTrainer } from "../../src/actors/trainer/simulatedTrainer.ts"
import type { BlobStoreShape } from "../../src/events/log/blobStore.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { fileBlobDir, fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { EventOf } from "../../src/events/schema.ts"
import { assistantTurns, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { decodeBatch } from "../../src/projections/batches/batchFile.ts"
import { acquire } from "../support/scoped.ts"

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const TOKEN = "rl-run-test-token-0123456789"

/** Calls echo once, then answers: right for about half the samples (by a hash of the episode). */
const script: Script = (request, context) => {
  const turn = assistantTurns(request) + 1
  if (turn === 1) return { content: "Let me check.", toolCalls: [{ name: "echo", arguments: { text: "x" } }] }
  const id = context.episodeId ?? ""
  let h = 0
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return { content: h % 2 === 0 ? "<answer>blue</answer>" : "<answer>red</answer>" }
}

const tasks: ReadonlyArray<Task> = Array.from({ length: 4 }, (_, i) => ({
  taskId: `t${i}`,
  question: `What colour is thing ${i}?`,
  answer: "blue",
  metadata: {},
}))

interface World {
  readonly log: EventLogShape
  readonly blobs: BlobStoreShape
  readonly pool: InferencePool
  readonly ports: EpisodePorts
  readonly server: ScriptedModelServer
  readonly namespace: string
}

const world = async (dataDir: string, server: ScriptedModelServer): Promise<World> => {
  const namespace = "rl"
  const { value: log, close } = await acquire(makeEmbeddedLog({ dataDir, namespace, fsync: "never" }))
  cleanups.push(close)
  const models = Result.getOrThrow(
    modelsConfigFrom({
      policy: {
        endpoints: [{ url: server.url }],
        tokens: "exact",
        weightUpdates: "vllm",
        retries: 1,
        backoffMs: 10,
      },
    }),
  )
  const { value: pool, close: closePool } = await acquire(makeInferencePool(models, { log, namespace }))
  cleanups.push(closePool)
  const ports: EpisodePorts = {
    model: poolModelPort(pool),
    tools: {
      call: ({ arguments: args }) => Effect.succeed({ ok: true as const, content: args, truncated: false }),
    },
    toolSpecs: [{ name: "echo", description: "echo", parameters: { type: "object" } }],
    parse: parseForEpisode,
  }
  return { log, blobs: fileBlobStore(fileBlobDir(dataDir, namespace)), pool, ports, server, namespace }
}

const config = Result.getOrThrow(
  rlConfigFrom({
    tasks: { bench: "custom", data: "tasks.jsonl" },
    model: "policy",
    groupSize: 4,
    concurrency: 8,
    epochs: 3,
    batch: { groups: 2 },
    staleness: { maxLag: 1 },
    maxUnconsumedBatches: 2,
    rewards: { profile: "grpo" },
    scorer: "gaia",
    policy: { maxTurns: 4 },
  }),
)

/** Starts the bridge and the simulated trainer on `w`; resolves once the trainer is done. */
const train = async (w: World, runId: string, dataDir: string) => {
  const { value: bridge, close } = await acquire(
    startTrainerBridge({ log: w.log, blobs: w.blobs, pool: w.pool, runId, model: "policy", token: TOKEN }),
  )
  cleanups.push(close)
  const stop = new AbortController()
  cleanups.push(() => stop.abort())
  return runSimulatedTrainer({
    url: bridge.http.url,
    token: TOKEN,
    stepMs: 5,
    checkpointPath: (v) => path.join(dataDir, "checkpoints", `version-${v}`),
    waitSeconds: 1,
    signal: stop.signal,
  }).catch((error: Error) => ({ error: error.message }))
}

const sample = (w: World, runId: string, runner: EpisodeRunner = runHere(w.ports)) =>
  runRl({
    log: w.log,
    blobs: w.blobs,
    runner,
    config,
    tasks,
    benchmark: "custom",
    scorer: "gaia",
    runId,
    waitForTrainer: true,
  })

/** What the log says once the run is over, checked against every guarantee. */
const checkRun = async (w: World, runId: string) => {
  const events = (await Effect.runPromise(readEvents(w.log))).state.map((e) => e.event)
  const groups = events.filter((e): e is EventOf<"GroupStarted"> => e.type === "GroupStarted")
  expect(groups.length).toBe(tasks.length * config.epochs)
  expect(new Set(groups.map((g) => g.group)).size).toBe(groups.length)
  const scored = events.filter((e): e is EventOf<"SampleScored"> => e.type === "SampleScored")
  expect(scored.length).toBe(groups.length * config.groupSize)
  expect(new Set(scored.map((s) => s.episodeId)).size).toBe(scored.length)
  const published = events.filter((e): e is EventOf<"BatchPublished"> => e.type === "BatchPublished")
  expect(published.length).toBeGreaterThan(0)
  expect(published.map((b) => b.step)).toEqual(published.map((_, i) => i))
  const seen = new Set<string>()
  for (const batch of published) {
    const derived = await Effect.runPromise(deriveBatch(w.log, runId, batch.step))
    expect(derived.hash).toBe(batch.hash)
    const bytes = await Effect.runPromise(w.blobs.get(batch.blob))
    const decoded = Result.getOrThrow(decodeBatch(bytes))
    for (const sequence of decoded.sequences) {
      expect(seen.has(`${sequence.episode}@${sequence.turns[0]}`)).toBe(false)
      seen.add(`${sequence.episode}@${sequence.turns[0]}`)
    }
    for (let t = 0; t < decoded.tokenIds.length; t++)
      if (decoded.lossMask[t] === 1) expect(batch.step - decoded.versions[t]!).toBeLessThanOrEqual(1)
  }
  const consumed = events.filter((e): e is EventOf<"BatchConsumed"> => e.type === "BatchConsumed")
  expect(consumed.map((c) => c.step).sort((a, b) => a - b)).toEqual(published.map((b) => b.step))
  const updates = events.filter(
    (e): e is EventOf<"EndpointWeightsUpdated"> => e.type === "EndpointWeightsUpdated" && e.ok,
  )
  expect(updates.map((u) => Number(u.version))).toEqual(published.map((b) => b.step + 1))
  return { groups, scored, published }
}

describe("rollout rl run, in process", () => {
  it("samples every group, publishes every step once, and the trainer takes them all", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-run-"))
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
    const server = await startScriptedModelServer({ script, weights: { version: "0" } })
    cleanups.push(() => server.stop())
    const w = await world(dataDir, server)
    const trainer = train(w, "rl-a", dataDir)
    const result = await Effect.runPromise(Effect.scoped(sample(w, "rl-a")))
    expect(result.lost).toEqual([])
    expect(result.undecodable).toBe(0)
    const trained = await trainer
    expect("error" in trained ? trained.error : "ok").toBe("ok")
    const { published } = await checkRun(w, "rl-a")
    expect(result.stepsPublished).toBe(published.length)
  }, 120_000)

  it("a sample whose episode never runs to an end loses its group, and the run goes on without it", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-lost-"))
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
    const server = await startScriptedModelServer({ script, weights: { version: "0" } })
    cleanups.push(() => server.stop())
    const w = await world(dataDir, server)
    const here = runHere(w.ports)
    // Sample 2 of the second group never gets to an end: its runner fails every time it is asked.
    const doomed = "rl-c/g000001/2"
    let asked = 0
    const runs = new Map<string, number>()
    const runner: EpisodeRunner = {
      where: "this process, one episode refused (a test double)",
      run: (log, start) =>
        start.episodeId === doomed
          ? Effect.suspend(() => {
              asked++
              return Effect.fail(new EpisodeStuck(`a worker gave up on episode ${doomed}`))
            })
          : Effect.suspend(() => {
              runs.set(start.episodeId, (runs.get(start.episodeId) ?? 0) + 1)
              return here.run(log, start)
            }),
    }
    const trainer = train(w, "rl-c", dataDir)
    const result = await Effect.runPromise(Effect.scoped(sample(w, "rl-c", runner)))
    await trainer
    // Tried once more, then given up on once: no endless retry. Every other episode ran once.
    expect(asked).toBe(2)
    expect(runs.size).toBe(tasks.length * config.epochs * config.groupSize - 1)
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([])
    expect(result.lost).toEqual([{ episodeId: doomed, reason: `a worker gave up on episode ${doomed}` }])
    const events = (await Effect.runPromise(readEvents(w.log))).state.map((e) => e.event)
    const groups = events.filter((e): e is EventOf<"GroupStarted"> => e.type === "GroupStarted")
    expect(groups.length).toBe(tasks.length * config.epochs)
    const scored = events.filter((e): e is EventOf<"SampleScored"> => e.type === "SampleScored")
    expect(scored.length).toBe(groups.length * config.groupSize - 1)
    expect(events.some((e) => e.type === "RunFinished")).toBe(true)
    // The incomplete group entered no step; every other sample did or was dropped with a reason.
    const published = events.filter((e): e is EventOf<"BatchPublished"> => e.type === "BatchPublished")
    for (const batch of published) {
      const decoded = Result.getOrThrow(decodeBatch(await Effect.runPromise(w.blobs.get(batch.blob))))
      for (const sequence of decoded.sequences)
        expect(sequence.episode.startsWith("rl-c/g000001/")).toBe(false)
    }
    const placed = published.flatMap((b) => b.groups)
    expect(placed).not.toContain("g000001")
    expect(placed.length).toBe(groups.length - 1)
  }, 120_000)

  it("a run stopped part-way and started again finishes, starting no group twice", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-resume-"))
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
    const server = await startScriptedModelServer({ script, weights: { version: "0" }, latencyMs: 5 })
    cleanups.push(() => server.stop())
    const w = await world(dataDir, server)
    const trainer = train(w, "rl-b", dataDir)
    // The first invocation stops once a few groups have started.
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const fiber = yield* Effect.forkScoped(sample(w, "rl-b"))
          while (true) {
            const events = (yield* readEvents(w.log)).state
            if (events.filter((e) => e.event.type === "SampleScored").length >= 10) break
            yield* Effect.sleep(10)
          }
          yield* Fiber.interrupt(fiber)
        }),
      ),
    )
    const result = await Effect.runPromise(Effect.scoped(sample(w, "rl-b")))
    expect(result.resumed).toBe(true)
    expect(result.lost).toEqual([])
    await trainer
    await checkRun(w, "rl-b")
  }, 120_000)
})
