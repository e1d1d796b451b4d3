/**
 * The trainer bridge over real loopback HTTP (node's fetch) on a real embedded log and blob store,
 * with weight updates through the real inference pool against scripted model servers speaking
 * vLLM's and SGLang's update routes. The tests write the run's `RunStarted`, `BatchPublished` and
 * `RunFinished` events and the batches' bytes themselves (any bytes, named by their SHA-256), as
 * the sampler and batch builder would. Covered: the bearer token and every kind of bad request
 * (each a JSON error naming what was wrong), the long-poll woken by a publish, acknowledgements
 * recorded once and in order (409 for a step never handed out, 410 once the run finished and all
 * was acknowledged), a batch fetched again, weights loaded on every endpoint (one that fails its
 * update ejected with an `EndpointWeightsUpdated` ok:false; 502 when none took it; versions not
 * above the last refused), metrics recorded once, a bridge rebuilt from the log, and the simulated
 * trainer consuming a run's batches in order.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Result } from "effect"
import fc from "fast-check"
import { afterEach, describe, expect, it } from "vitest"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { type InferencePool, makeInferencePool } from "../../src/actors/inference/pool.ts"
import { startTrainerBridge, type TrainerBridge } from "../../src/actors/trainer/bridge.ts"
import { runSimulatedTrainer, SIMULATED_TRAINER_NAME } from "../../src/actors/trainer/simulatedTrainer.ts"
import type { BlobStoreShape } from "../../src/events/log/blobStore.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { fileBlobDir, fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { DomainEvent, EventOf } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { acquire } from "../support/scoped.ts"

const NS = "bridge"
const RUN = "rl-1"
const TOKEN = "test-token-0123456789abcdef"
const subject = entitySubject(NS, "run", RUN)

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface World {
  readonly dataDir: string
  readonly log: EventLogShape
  readonly blobs: BlobStoreShape
}

const world = async (): Promise<World> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-bridge-"))
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const { value: log, close } = await acquire(makeEmbeddedLog({ dataDir, namespace: NS, fsync: "never" }))
  cleanups.push(close)
  return { dataDir, log, blobs: fileBlobStore(fileBlobDir(dataDir, NS)) }
}

const server = async (options: Partial<ScriptedModelServerOptions> = {}): Promise<ScriptedModelServer> => {
  const started = await startScriptedModelServer({
    script: scripts.echo(),
    weights: { version: "0" },
    ...options,
  })
  cleanups.push(() => started.stop())
  return started
}

const poolOf = async (
  w: World,
  servers: ReadonlyArray<ScriptedModelServer>,
  weightUpdates: "vllm" | "sglang",
): Promise<InferencePool> => {
  const config = Result.getOrThrow(
    modelsConfigFrom({
      policy: { endpoints: servers.map((s) => ({ url: s.url })), weightUpdates, backoffMs: 5 },
    }),
  )
  const { value, close } = await acquire(makeInferencePool(config, { log: w.log }))
  cleanups.push(close)
  return value
}

const bridgeOf = async (
  w: World,
  pool: InferencePool,
): Promise<TrainerBridge & { close: () => Promise<void> }> => {
  const { value, close } = await acquire(
    startTrainerBridge({ log: w.log, blobs: w.blobs, pool, runId: RUN, token: TOKEN }),
  )
  cleanups.push(close)
  return { ...value, close }
}

const append = (w: World, eventId: string, event: DomainEvent) =>
  Effect.runPromise(
    w.log.append(subject, [
      {
        eventId,
        recordedAt: new Date().toISOString(),
        correlationId: RUN,
        causationId: "test",
        actor: "test",
        event,
      },
    ]),
  )

const startRun = (w: World) =>
  append(w, `${RUN}/started`, { type: "RunStarted", runId: RUN, kind: "rl", model: "policy" })

/** Publishes step `step`: random bytes in the blob store, then its `BatchPublished`. */
const publishBatch = async (w: World, step: number): Promise<Uint8Array> => {
  const bytes = new Uint8Array(randomBytes(64 + step))
  const blob = await Effect.runPromise(w.blobs.put(bytes, "application/octet-stream"))
  await append(w, `${RUN}/batch/${step}`, {
    type: "BatchPublished",
    runId: RUN,
    step,
    hash: blob.sha256,
    blob,
    groups: [`task-${step}`],
    samples: 8,
    sequences: 8,
    tokens: bytes.byteLength,
    trainedTokens: 16,
    lags: [{ lag: 0, tokens: 16 }],
    drops: {},
  })
  return bytes
}

const finishRun = (w: World) =>
  append(w, `${RUN}/finished`, { type: "RunFinished", runId: RUN, status: "completed" })

const get = (bridge: TrainerBridge, route: string, token: string | null = TOKEN) =>
  fetch(`${bridge.http.url}${route}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } })

const post = (bridge: TrainerBridge, route: string, body: unknown, token = TOKEN) =>
  fetch(`${bridge.http.url}${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  })

const errorOf = async (response: Response): Promise<string> => {
  expect(response.headers.get("content-type")).toBe("application/json")
  return ((await response.json()) as { error: string }).error
}

const eventsOf = async <T extends DomainEvent["type"]>(
  w: World,
  type: T,
  filter = subject,
): Promise<Array<EventOf<T>>> => {
  const read = await Effect.runPromise(readEvents(w.log, { filter }))
  expect(read.undecodable).toEqual([])
  return read.state.flatMap((e) => (e.event.type === type ? [e.event as EventOf<T>] : []))
}

const checkpoint = (): ((version: number) => string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-ckpt-"))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  return (version) => {
    const at = path.join(dir, `v${version}`)
    fs.mkdirSync(at, { recursive: true })
    fs.writeFileSync(path.join(at, "model.safetensors"), `weights ${version}`)
    return at
  }
}

describe("the trainer bridge over HTTP", () => {
  it("refuses requests without the token, and every bad request with a JSON error naming what was wrong", async () => {
    const w = await world()
    await startRun(w)
    const bridge = await bridgeOf(w, await poolOf(w, [await server()], "vllm"))
    expect(bridge.http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    for (const token of [null, "wrong-token"]) {
      const response = await get(bridge, "/v1/status", token)
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toBe("Bearer")
      expect(await errorOf(response)).toContain("bearer token")
    }
    const cases: ReadonlyArray<[Promise<Response>, number, RegExp]> = [
      [get(bridge, "/v1/nothing"), 404, /no route "\/v1\/nothing"/],
      [get(bridge, "/v1/weights"), 405, /use POST/],
      [get(bridge, "/v1/batches/next?ack=-1"), 400, /^ack: "-1" is not a step/],
      [get(bridge, "/v1/batches/next?wait=soon"), 400, /^wait: /],
      [get(bridge, "/v1/batches/next?ackk=1"), 400, /^"ackk": unknown parameter/],
      [get(bridge, "/v1/batches/x1"), 400, /^step: "x1" is not a step/],
      [get(bridge, "/v1/batches/3"), 404, /^step: 3 is not published/],
      [post(bridge, "/v1/weights", "{not json"), 400, /^body: not JSON/],
      [
        post(bridge, "/v1/weights", { version: "01", path: "/x" }),
        400,
        /^version: "01" is not a weight version/,
      ],
      [post(bridge, "/v1/weights", { version: 1 }), 400, /^path: /],
      [
        post(bridge, "/v1/weights", { version: 0, path: "/x" }),
        400,
        /^version: 0 is not greater than the last published version 0/,
      ],
      [
        post(bridge, "/v1/metrics", { step: 0, version: 1, metrics: { loss: "low" } }),
        400,
        /^metrics\.loss: Expected number/,
      ],
      [
        post(bridge, "/v1/metrics", { step: 0, version: 1, metrics: {}, extra: 1 }),
        400,
        /^\["extra"\]: unknown field/,
      ],
      [post(bridge, "/v1/metrics", "x".repeat(300_000)), 413, /^body: larger than/],
    ]
    for (const [request, status, pattern] of cases) {
      const response = await request
      expect(response.status).toBe(status)
      expect(await errorOf(response)).toMatch(pattern)
    }
    // Nothing of that reached the log.
    expect(await eventsOf(w, "BatchConsumed")).toEqual([])
    expect(await eventsOf(w, "TrainerStepReported")).toEqual([])
    expect(await eventsOf(w, "WeightsPublished")).toEqual([])
  })

  it("answers arbitrary requests (fast-check over real HTTP) with a known status, never a 500, every error as JSON", async () => {
    const w = await world()
    await startRun(w)
    await publishBatch(w, 0)
    const bridge = await bridgeOf(w, await poolOf(w, [await server()], "vllm"))
    const segment = fc.oneof(
      fc.constantFrom("v1", "batches", "next", "weights", "metrics", "status", "0", "1", "%ZZ", ".."),
      fc.string({ maxLength: 6 }).map(encodeURIComponent),
    )
    const request = fc.record({
      method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
      path: fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`),
      query: fc.array(
        fc.tuple(
          fc.oneof(fc.constantFrom("ack", "trainer", "x"), fc.string({ maxLength: 4 })),
          fc.string({ maxLength: 8 }),
        ),
        {
          maxLength: 3,
        },
      ),
      body: fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
        fc
          .record({
            version: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.string({ maxLength: 3 })),
            path: fc.string({ maxLength: 5 }),
          })
          .map((v) => JSON.stringify(v)),
      ),
    })
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path: route, query, body }) => {
        // Every long-poll is cut to no wait, so a run of requests stays quick.
        const params = new URLSearchParams(query)
        params.set("wait", "0")
        const response = await fetch(`${bridge.http.url}${route}?${params}`, {
          method,
          headers: { authorization: `Bearer ${TOKEN}` },
          ...(method === "GET" ? {} : { body }),
        })
        expect([200, 204, 400, 404, 405, 409, 410, 502]).toContain(response.status)
        if (response.status >= 400) {
          expect(response.headers.get("content-type")).toBe("application/json")
          const answer = (await response.json()) as { error?: unknown }
          expect(typeof answer.error).toBe("string")
          expect((answer.error as string).length).toBeGreaterThan(5)
        } else await response.arrayBuffer()
      }),
      { numRuns: 150 },
    )
    // Whatever was asked, the only acknowledgement possible was step 0's, at most once.
    expect((await eventsOf(w, "BatchConsumed")).map((e) => e.step).filter((s) => s !== 0)).toEqual([])
    expect((await eventsOf(w, "BatchConsumed")).length).toBeLessThanOrEqual(1)
  })

  it("long-polls until a batch is published, acknowledges once and in order, hands a batch out again, and says 410 at the end", async () => {
    const w = await world()
    await startRun(w)
    const bridge = await bridgeOf(w, await poolOf(w, [await server()], "vllm"))
    // Nothing published: wait=0 answers 204 at once.
    const empty = await get(bridge, "/v1/batches/next?wait=0")
    expect(empty.status).toBe(204)
    expect(empty.headers.get("rollout-step")).toBe("0")

    // A long-poll is answered as soon as the batch is published.
    const started = performance.now()
    const waiting = get(bridge, "/v1/batches/next?wait=10")
    await new Promise((resolve) => setTimeout(resolve, 300))
    const batch0 = await publishBatch(w, 0)
    const first = await waiting
    expect(first.status).toBe(200)
    expect(performance.now() - started).toBeLessThan(5000)
    expect(first.headers.get("content-type")).toBe("application/octet-stream")
    expect(first.headers.get("rollout-run")).toBe(RUN)
    expect(first.headers.get("rollout-step")).toBe("0")
    const hash0 = first.headers.get("rollout-hash")
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(batch0)

    const batch1 = await publishBatch(w, 1)
    // Acknowledging a step not handed out (1 before 0) is 409 and records nothing.
    const skipped = await get(bridge, "/v1/batches/next?ack=1&wait=0")
    expect(skipped.status).toBe(409)
    expect(await errorOf(skipped)).toMatch(/^ack=1: step 1 was never handed out/)

    const second = await get(bridge, "/v1/batches/next?ack=0&wait=0&trainer=t-1")
    expect(second.status).toBe(200)
    expect(second.headers.get("rollout-step")).toBe("1")
    expect(new Uint8Array(await second.arrayBuffer())).toEqual(batch1)
    // The same ack again (a retry after a lost answer) records nothing and hands out step 1 again.
    const again = await get(bridge, "/v1/batches/next?ack=0&wait=0")
    expect(again.headers.get("rollout-step")).toBe("1")
    await again.arrayBuffer()
    expect(await eventsOf(w, "BatchConsumed")).toEqual([
      { type: "BatchConsumed", runId: RUN, step: 0, trainer: "t-1" },
    ])

    // A published batch is there again by its step.
    const refetched = await get(bridge, "/v1/batches/0")
    expect(refetched.status).toBe(200)
    expect(refetched.headers.get("rollout-hash")).toBe(hash0)
    expect(new Uint8Array(await refetched.arrayBuffer())).toEqual(batch0)

    await finishRun(w)
    // The run finished but step 1 is not acknowledged: it is still handed out.
    const last = await get(bridge, "/v1/batches/next?wait=0")
    expect(last.headers.get("rollout-step")).toBe("1")
    await last.arrayBuffer()
    const gone = await get(bridge, "/v1/batches/next?ack=1&wait=5")
    expect(gone.status).toBe(410)
    expect(await errorOf(gone)).toContain("finished")
    expect((await eventsOf(w, "BatchConsumed")).map((e) => e.step)).toEqual([0, 1])

    const status = (await (await get(bridge, "/v1/status")).json()) as Record<string, unknown>
    expect(status).toMatchObject({
      run: RUN,
      model: "policy",
      published: 2,
      acknowledged: 2,
      next: 2,
      finished: true,
    })
  })

  it("ends a long-poll when the trainer hangs up, and every wait when the bridge closes", async () => {
    const w = await world()
    await startRun(w)
    const bridge = await bridgeOf(w, await poolOf(w, [await server()], "vllm"))
    const abort = new AbortController()
    const hungUp = fetch(`${bridge.http.url}/v1/batches/next?wait=30`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: abort.signal,
    }).catch((error: Error) => error.name)
    await new Promise((resolve) => setTimeout(resolve, 100))
    abort.abort()
    expect(await hungUp).toBe("AbortError")
    const pending = get(bridge, "/v1/batches/next?wait=30").then(
      (r) => r.status,
      () => "closed",
    )
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = performance.now()
    await bridge.close()
    expect(await pending).not.toBe(200)
    expect(performance.now() - started).toBeLessThan(5000)
  })

  it("publishes weights to every vLLM endpoint through the pool: one failing its update is ejected; a repeat re-sends; lower versions are refused", async () => {
    const w = await world()
    await startRun(w)
    const good = await server()
    const bad = await server({ weights: { version: "0", failUpdates: true } })
    const bridge = await bridgeOf(w, await poolOf(w, [good, bad], "vllm"))
    const at = checkpoint()

    const response = await post(bridge, "/v1/weights", { version: 1, path: at(1), checksum: "sha256:abc" })
    expect(response.status).toBe(200)
    const report = (await response.json()) as {
      model: string
      version: string
      endpoints: Array<Record<string, unknown>>
    }
    expect(report.model).toBe("policy")
    expect(report.version).toBe("1")
    const byUrl = Object.fromEntries(report.endpoints.map((e) => [e.endpoint, e]))
    expect(byUrl[good.url]).toMatchObject({ ok: true })
    expect(byUrl[bad.url]).toMatchObject({ ok: false, error: expect.stringContaining("update_weights") })

    // The run stream says the bridge published version 1; the model's stream each endpoint's result.
    expect(await eventsOf(w, "WeightsPublished")).toEqual([
      { type: "WeightsPublished", model: "policy", version: "1" },
    ])
    const inference = entitySubject(NS, "inference", "policy")
    const deadline = Date.now() + 5000
    let updates: Array<EventOf<"EndpointWeightsUpdated">> = []
    while (updates.length < 2 && Date.now() < deadline) {
      updates = await eventsOf(w, "EndpointWeightsUpdated", inference)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(updates.map((u) => [u.endpoint, u.version, u.ok, u.checksum])).toEqual(
      expect.arrayContaining([
        [good.url, "1", true, "sha256:abc"],
        [bad.url, "1", false, "sha256:abc"],
      ]),
    )
    expect((await eventsOf(w, "EndpointEjected", inference)).map((e) => e.endpoint)).toContain(bad.url)

    const status = (await (await get(bridge, "/v1/status")).json()) as {
      version: string
      versions: Record<string, string | null>
    }
    expect(status.version).toBe("1")
    expect(status.versions[good.url]).toBe("1")

    // The same version again (a trainer retrying) is accepted and recorded once; a lower one is refused.
    // The endpoint already serving it is left alone; the failing one is tried again and fails again,
    // so no endpoint took the version this time: 502.
    const repeat = await post(bridge, "/v1/weights", { version: "1", path: at(1) })
    expect(repeat.status).toBe(502)
    const repeated = (await repeat.json()) as { endpoints: Array<{ endpoint: string; ok: boolean }> }
    expect(repeated.endpoints.map((e) => [e.endpoint, e.ok])).toEqual([[bad.url, false]])
    expect(await eventsOf(w, "WeightsPublished")).toHaveLength(1)
    const lower = await post(bridge, "/v1/weights", { version: 0, path: at(0) })
    expect(lower.status).toBe(400)
    expect(await errorOf(lower)).toMatch(/^version: 0 is not greater than the last published version 1/)
    const next = await post(bridge, "/v1/weights", { version: 2, path: at(2) })
    expect(next.status).toBe(200)
    expect((await eventsOf(w, "WeightsPublished")).map((e) => e.version)).toEqual(["1", "2"])
  })

  it("publishes weights through SGLang's route; 502 when no endpoint takes the version", async () => {
    const w = await world()
    await startRun(w)
    const sglang = await server()
    const bridge = await bridgeOf(w, await poolOf(w, [sglang], "sglang"))
    const at = checkpoint()
    const response = await post(bridge, "/v1/weights", { version: 1, path: at(1) })
    expect(response.status).toBe(200)
    const report = (await response.json()) as { endpoints: Array<{ endpoint: string; ok: boolean }> }
    expect(report.endpoints).toEqual([expect.objectContaining({ endpoint: sglang.url, ok: true })])
    const info = (await (await fetch(`${sglang.url.replace(/\/v1$/, "")}/model_info`)).json()) as Record<
      string,
      unknown
    >
    expect(info.weight_version).toBe("1")

    const w2 = await world()
    await append(w2, `${RUN}/started`, { type: "RunStarted", runId: RUN, kind: "rl", model: "policy" })
    const failing = await server({ weights: { version: "0", failUpdates: true } })
    const broken = await bridgeOf(w2, await poolOf(w2, [failing], "sglang"))
    const refused = await post(broken, "/v1/weights", { version: 1, path: at(1) })
    expect(refused.status).toBe(502)
    const body = (await refused.json()) as { error: string; endpoints: Array<{ ok: boolean; error: string }> }
    expect(body.error).toBe("no endpoint of policy took version 1")
    expect(body.endpoints).toEqual([
      expect.objectContaining({ ok: false, error: expect.stringContaining("update_weights_from_disk") }),
    ])
  })

  it("records each step's metrics once as TrainerStepReported", async () => {
    const w = await world()
    await startRun(w)
    const bridge = await bridgeOf(w, await poolOf(w, [await server()], "vllm"))
    const report = {
      step: 0,
      version: 1,
      metrics: { loss: 0.25, kl: 0.001 },
      ratioByLag: [{ lag: 0, tokens: 10, meanRatio: 1.01 }],
    }
    const first = await post(bridge, "/v1/metrics", report)
    expect(first.status).toBe(200)
    expect(await first.json()).toEqual({ recorded: true })
    const again = await post(bridge, "/v1/metrics", report)
    expect(await again.json()).toEqual({ recorded: false })
    expect(await eventsOf(w, "TrainerStepReported")).toEqual([
      { type: "TrainerStepReported", runId: RUN, ...report, version: "1" },
    ])
  })

  it("a bridge started again on the same log goes on: acknowledged steps and the last version come from the log", async () => {
    const w = await world()
    await startRun(w)
    const pool = await poolOf(w, [await server()], "vllm")
    for (const step of [0, 1, 2]) await publishBatch(w, step)
    const first = await bridgeOf(w, pool)
    await (await get(first, "/v1/batches/next?wait=0")).arrayBuffer()
    await (await get(first, "/v1/batches/next?ack=0&wait=0")).arrayBuffer()
    expect((await post(first, "/v1/weights", { version: 1, path: checkpoint()(1) })).status).toBe(200)
    await first.close()

    const second = await bridgeOf(w, pool)
    const status = (await (await get(second, "/v1/status")).json()) as Record<string, unknown>
    expect(status).toMatchObject({ published: 3, acknowledged: 1, next: 1, version: "1" })
    // The ack of step 0 again, as a trainer whose answer was lost in the crash repeats it: step 1.
    const repeated = await get(second, "/v1/batches/next?ack=0&wait=0")
    expect(repeated.headers.get("rollout-step")).toBe("1")
    await repeated.arrayBuffer()
    // The trainer, restarted from its version-2 checkpoint, acknowledges step 1 and gets step 2.
    const resumed = await get(second, "/v1/batches/next?ack=1&wait=0")
    expect(resumed.headers.get("rollout-step")).toBe("2")
    await resumed.arrayBuffer()
    expect((await post(second, "/v1/weights", { version: 1, path: "/x" })).status).toBe(200)
    expect((await post(second, "/v1/weights", { version: 0, path: "/x" })).status).toBe(400)
    expect((await eventsOf(w, "BatchConsumed")).map((e) => e.step)).toEqual([0, 1])
  })

  it("the simulated trainer (a test double) consumes N published batches in order, each acknowledged once, publishing a version per step", async () => {
    const w = await world()
    await startRun(w)
    const endpoint = await server()
    const bridge = await bridgeOf(w, await poolOf(w, [endpoint], "vllm"))
    const N = 6
    const hashes: Array<string> = []
    // Batches arrive while the trainer runs: two at once, then one every 80 ms; then the run ends.
    const publisher = (async () => {
      for (let step = 0; step < N; step++) {
        const bytes = await publishBatch(w, step)
        hashes.push((await Effect.runPromise(w.blobs.put(bytes))).sha256)
        if (step >= 1) await new Promise((resolve) => setTimeout(resolve, 80))
      }
      await finishRun(w)
    })()
    const result = await runSimulatedTrainer({
      url: bridge.http.url,
      token: TOKEN,
      stepMs: 20,
      checkpointPath: checkpoint(),
      waitSeconds: 2,
    })
    await publisher
    expect(result.finished).toBe(true)
    expect(result.steps.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5])
    expect(result.steps.map((s) => s.hash)).toEqual(hashes)
    expect(result.steps.every((s) => s.endpointsUpdated === 1 && s.endpoints === 1)).toBe(true)
    const consumed = await eventsOf(w, "BatchConsumed")
    expect(consumed.map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5])
    expect(new Set(consumed.map((e) => e.trainer))).toEqual(new Set([SIMULATED_TRAINER_NAME]))
    expect((await eventsOf(w, "WeightsPublished")).map((e) => e.version)).toEqual([
      "1",
      "2",
      "3",
      "4",
      "5",
      "6",
    ])
    const reports = await eventsOf(w, "TrainerStepReported")
    expect(reports.map((r) => [r.step, r.version, r.metrics.simulated_trainer])).toEqual(
      [0, 1, 2, 3, 4, 5].map((s) => [s, String(s + 1), 1]),
    )
    // The endpoint serves the last version the trainer published.
    const info = (await (await fetch(`${endpoint.url.replace(/\/v1$/, "")}/weight_info`)).json()) as Record<
      string,
      unknown
    >
    expect(info.weight_version).toBe("6")
  })
})
