/**
 * Weight updates over real loopback HTTP. The scripted test double's routes first: vLLM's native
 * sequence as a state machine (each request outside the sequence refused with 409 and a message, a
 * bad body with 400), a failed load leaving the engine paused with its weights in doubt, a chat
 * call held while paused and answered with the new version, SGLang's `update_weights_from_disk`.
 * Then the inference pool's `publishWeights` on a group of two such servers, through the official
 * openai client for the calls and a real embedded log for the events: both updated (vLLM and SGLang
 * routes), each result an event; one that fails its update (the load, or a version read back that
 * differs) is ejected with its error while the other serves the new version, no probe returns it
 * and a later update that succeeds does; calls in flight finish on the old version before the
 * pause, calls made during the update wait and succeed on the new one; refusals. Every test is
 * bounded to a few dozen requests; waits poll a condition against a deadline.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Result } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import {
  type Completion,
  type InferencePool,
  makeInferencePool,
  type PublishedWeights,
  type WeightPublishError,
} from "../../src/actors/inference/pool.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { EventLogShape } from "../../src/events/log/eventLog.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { DomainEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { acquire } from "../support/scoped.ts"

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const start = async (options: Partial<ScriptedModelServerOptions> = {}): Promise<ScriptedModelServer> => {
  const server = await startScriptedModelServer({ script: scripts.echo(), ...options })
  cleanups.push(() => server.stop())
  return server
}

/** A checkpoint directory: one `.safetensors` file unless `files` says otherwise. */
const checkpoint = (files: ReadonlyArray<string> = ["model.safetensors"]): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-weights-"))
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const name of files) fs.writeFileSync(path.join(dir, name), "weights")
  return dir
}

const rootOf = (server: ScriptedModelServer): string => server.url.replace(/\/v1$/, "")

/** One request to a server's root: its status and JSON body. */
const call = async (
  server: ScriptedModelServer,
  method: "GET" | "POST",
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> => {
  const response = await fetch(`${rootOf(server)}${route}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const messageOf = (body: Record<string, unknown>): string =>
  String((body.error as { message?: unknown } | undefined)?.message ?? body.message)

/** A chat completion straight to the server: the version header it was answered with. */
const chat = async (server: ScriptedModelServer): Promise<string | null> => {
  const response = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "scripted", messages: [{ role: "user", content: "hi" }] }),
  })
  expect(response.status).toBe(200)
  await response.json()
  return response.headers.get("x-policy-version")
}

const vllmSequence = async (server: ScriptedModelServer, dir: string, version: string) => {
  expect((await call(server, "POST", "/pause?mode=keep")).status).toBe(200)
  expect((await call(server, "POST", "/start_weight_update", {})).status).toBe(200)
  expect((await call(server, "POST", "/update_weights", { update_info: { path: dir } })).status).toBe(200)
  expect((await call(server, "POST", "/finish_weight_update", { weight_version: version })).status).toBe(200)
  expect((await call(server, "POST", "/resume")).status).toBe(200)
}

describe("the scripted server's vLLM weight routes", () => {
  it("serves its version in /weight_info and on every chat answer; the sequence changes it", async () => {
    const server = await start({ weights: { version: "1" } })
    expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "1" })
    expect(await chat(server)).toBe("1")
    await vllmSequence(server, checkpoint(), "2")
    expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "2" })
    expect(await chat(server)).toBe("2")
    // Without a version there is none to show.
    const bare = await start()
    expect((await call(bare, "GET", "/weight_info")).body).toEqual({ weight_version: null })
    expect(await chat(bare)).toBeNull()
  })

  it("refuses each request outside the sequence with 409 and says what comes first; a bad body with 400", async () => {
    const server = await start({ weights: { version: "1" } })
    const dir = checkpoint()
    const refused = async (route: string, status: number, words: string, body?: unknown) => {
      const answer = await call(server, "POST", route, body)
      expect(answer.status).toBe(status)
      expect(messageOf(answer.body)).toContain(words)
    }
    await refused("/start_weight_update", 409, "POST /pause")
    await refused("/update_weights", 409, "/start_weight_update first", { update_info: { path: dir } })
    await refused("/pause?mode=abort", 400, "mode=keep")
    await refused("/init_weight_transfer_engine", 400, "init_info", {})
    await refused("/init_weight_transfer_engine", 400, "init_info", { init_info: [1] })
    expect((await call(server, "POST", "/init_weight_transfer_engine", { init_info: {} })).status).toBe(200)
    expect((await call(server, "POST", "/pause?mode=wait")).status).toBe(200)
    expect((await call(server, "GET", "/is_paused")).body).toEqual({ is_paused: true })
    await refused("/finish_weight_update", 409, "/start_weight_update first", { weight_version: "2" })
    expect((await call(server, "POST", "/start_weight_update")).status).toBe(200)
    await refused("/start_weight_update", 409, "already in progress")
    await refused("/resume", 409, "/finish_weight_update first")
    await refused("/finish_weight_update", 409, "POST /update_weights", { weight_version: "2" })
    await refused("/update_weights", 400, "update_info", {})
    await refused("/update_weights", 400, "JSON", "not json")
    expect((await call(server, "POST", "/update_weights", { update_info: { path: dir } })).status).toBe(200)
    await refused("/finish_weight_update", 400, "string", { weight_version: 2 })
    expect((await call(server, "POST", "/finish_weight_update", { weight_version: "2" })).status).toBe(200)
    expect((await call(server, "POST", "/resume")).status).toBe(200)
    expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "2" })
  })

  it("a load that fails leaves the engine paused on its old version until a new update succeeds", async () => {
    const server = await start({ weights: { version: "1" } })
    await call(server, "POST", "/pause?mode=keep")
    await call(server, "POST", "/start_weight_update")
    for (const dir of [checkpoint(["config.json"]), "/nonexistent/rollout-weights", "relative/dir"]) {
      const failed = await call(server, "POST", "/update_weights", { update_info: { path: dir } })
      expect(failed.status).toBe(500)
      expect(messageOf(failed.body)).toContain("loading weights failed")
      expect((await call(server, "GET", "/is_paused")).body).toEqual({ is_paused: true })
      expect((await call(server, "POST", "/start_weight_update")).status).toBe(200)
    }
    expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "1" })
    // A file named directly loads too.
    const file = path.join(checkpoint(), "model.safetensors")
    expect((await call(server, "POST", "/update_weights", { update_info: { path: file } })).status).toBe(200)
    await call(server, "POST", "/finish_weight_update", { weight_version: "2" })
    await call(server, "POST", "/resume")
    expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "2" })
  })

  it("a chat call sent while paused is held, then answered with the version served at resume", async () => {
    const server = await start({ weights: { version: "1" } })
    await call(server, "POST", "/pause?mode=keep")
    const answered = chat(server)
    let done = false
    void answered.then(() => {
      done = true
    })
    const deadline = Date.now() + 5_000
    while (server.requests.filter((r) => r.path === "/v1/chat/completions").length === 0) {
      if (Date.now() > deadline) throw new Error("the chat call never arrived")
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await call(server, "POST", "/start_weight_update")
    await call(server, "POST", "/update_weights", { update_info: { path: checkpoint() } })
    await call(server, "POST", "/finish_weight_update", { weight_version: "2" })
    expect(done).toBe(false)
    await call(server, "POST", "/resume")
    expect(await answered).toBe("2")
  })

  it("scripted failures: at a named step, at the load, or a version that never changes", async () => {
    const dir = checkpoint()
    const atFinish = await start({ weights: { version: "1", failUpdates: "finish_weight_update" } })
    await call(atFinish, "POST", "/pause")
    await call(atFinish, "POST", "/start_weight_update")
    await call(atFinish, "POST", "/update_weights", { update_info: { path: dir } })
    const failed = await call(atFinish, "POST", "/finish_weight_update", { weight_version: "2" })
    expect(failed.status).toBe(500)
    expect(messageOf(failed.body)).toContain("scripted failure at finish_weight_update")

    const atLoad = await start({ weights: { version: "1", failUpdates: true } })
    await call(atLoad, "POST", "/pause")
    await call(atLoad, "POST", "/start_weight_update")
    const load = await call(atLoad, "POST", "/update_weights", { update_info: { path: dir } })
    expect(load.status).toBe(500)
    expect(messageOf(load.body)).toContain("scripted failure")

    const stuck = await start({ weights: { version: "1", failUpdates: "version" } })
    await vllmSequence(stuck, dir, "2")
    expect((await call(stuck, "GET", "/weight_info")).body).toEqual({ weight_version: "1" })
  })
})

describe("the scripted server's SGLang weight route", () => {
  it("update_weights_from_disk loads a checkpoint and serves its version; a bad one keeps the old", async () => {
    const server = await start({ weights: { version: "1" } })
    const request = { weight_version: "2", abort_all_requests: false, flush_cache: true }
    const loaded = await call(server, "POST", "/update_weights_from_disk", {
      model_path: checkpoint(),
      ...request,
    })
    expect(loaded).toEqual({
      status: 200,
      body: { success: true, message: "Succeeded to update model weights.", num_paused_requests: 0 },
    })
    expect((await call(server, "GET", "/model_info")).body).toMatchObject({ weight_version: "2" })
    expect((await call(server, "GET", "/get_model_info")).body).toMatchObject({ weight_version: "2" })
    expect(await chat(server)).toBe("2")

    const bad = await call(server, "POST", "/update_weights_from_disk", {
      model_path: checkpoint([]),
      ...request,
      weight_version: "3",
    })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatchObject({ success: false })
    expect(String(bad.body.message)).toContain("no .safetensors file")
    expect((await call(server, "GET", "/model_info")).body).toMatchObject({ weight_version: "2" })
    expect((await call(server, "POST", "/update_weights_from_disk", {})).body).toMatchObject({
      success: false,
      message: "model_path is required",
    })

    const failing = await start({ weights: { version: "1", failUpdates: true } })
    const failed = await call(failing, "POST", "/update_weights_from_disk", {
      model_path: checkpoint(),
      ...request,
    })
    expect(failed.status).toBe(400)
    expect(String(failed.body.message)).toContain("scripted failure")
    expect((await call(failing, "GET", "/model_info")).body).toMatchObject({ weight_version: "1" })
  })
})

// ---------------------------------------------------------------------------------------------
// The pool

const waitFor = async (what: string, condition: () => boolean | Promise<boolean>, ms = 15_000) => {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const tempLog = async (): Promise<EventLogShape> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-weights-log-"))
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const { value, close } = await acquire(makeEmbeddedLog({ dataDir, namespace: "weights", fsync: "never" }))
  cleanups.push(close)
  return value
}

const poolOver = async (
  servers: ReadonlyArray<ScriptedModelServer>,
  weightUpdates: "vllm" | "sglang" | "none",
  log?: EventLogShape,
): Promise<InferencePool> => {
  const config = Result.getOrThrow(
    modelsConfigFrom({
      agent: { endpoints: servers.map((s) => ({ url: s.url })), weightUpdates, backoffMs: 5 },
    }),
  )
  const { value, close } = await acquire(makeInferencePool(config, log === undefined ? {} : { log }))
  cleanups.push(close)
  return value
}

let requests = 0
const ask = (pool: InferencePool): Promise<Completion> =>
  Effect.runPromise(
    pool.complete({
      model: "agent",
      requestId: `w${requests++}`,
      messages: [{ role: "user", content: "hi" }],
    }),
  )

const publish = (pool: InferencePool, weights: PublishedWeights, model = "agent") =>
  Effect.runPromise(pool.publishWeights(model, weights))

const refusal = (
  pool: InferencePool,
  weights: PublishedWeights,
  model = "agent",
): Promise<WeightPublishError> => Effect.runPromise(Effect.flip(pool.publishWeights(model, weights)))

/** The pool's events for `agent`, once `count` of them are there. */
const eventsOf = async (log: EventLogShape, count: number): Promise<Array<DomainEvent>> => {
  const read = async () => {
    const { state, undecodable } = await Effect.runPromise(
      readEvents(log, { filter: entitySubject(log.namespace, "inference", "agent") }),
    )
    expect(undecodable).toEqual([])
    return state.map((envelope) => envelope.event)
  }
  await waitFor(`${count} pool events`, async () => (await read()).length >= count)
  return read()
}

const weightEvents = (events: ReadonlyArray<DomainEvent>) =>
  events
    .filter((e) => e.type !== "EndpointJoined")
    .map((e) => {
      if (e.type !== "EndpointWeightsUpdated") return e
      expect(e.ms).toBeGreaterThanOrEqual(0)
      const { ms: _ms, ...rest } = e
      return rest
    })

/** The versions announced for the whole model, in order. */
const announced = (
  events: ReadonlyArray<{ readonly type: string; readonly endpoint?: string; readonly version?: string }>,
) => events.flatMap((e) => (e.type === "WeightsPublished" && e.endpoint === undefined ? [e.version] : []))

/**
 * The events about the endpoint at `url`, in log order (one endpoint's order is fixed; how two
 * endpoints' events interleave depends on which update ends first).
 */
const about = <E extends { readonly type: string }>(events: ReadonlyArray<E>, url: string) =>
  events.filter((e) => "endpoint" in e && e.endpoint === url)

const statsOf = async (pool: InferencePool, url: string) =>
  (await Effect.runPromise(pool.stats)).endpoints.find((e) => e.endpoint === url)

describe("publishing weights to a group (vLLM routes)", () => {
  it("updates both endpoints: each reports the version, each result an event, calls serve it", async () => {
    const log = await tempLog()
    const a = await start({ weights: { version: "1" } })
    const b = await start({ weights: { version: "1" } })
    const pool = await poolOver([a, b], "vllm", log)
    expect((await ask(pool)).policyVersion).toBe("1")
    const report = await publish(pool, { version: "2", path: checkpoint(), checksum: "sha256:abc" })
    expect(report).toMatchObject({
      model: "agent",
      version: "2",
      endpoints: [
        { endpoint: a.url, ok: true },
        { endpoint: b.url, ok: true },
      ],
    })
    for (const server of [a, b]) {
      // The server's own sequence, in order, once.
      expect(
        server.requests.filter((r) => !r.path.startsWith("/v1/")).map((r) => `${r.method} ${r.path}`),
      ).toEqual([
        "GET /is_paused",
        "POST /pause",
        "POST /init_weight_transfer_engine",
        "POST /start_weight_update",
        "POST /update_weights",
        "POST /finish_weight_update",
        "GET /weight_info",
        "POST /resume",
      ])
      expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "2" })
      expect((await call(server, "GET", "/is_paused")).body).toEqual({ is_paused: false })
    }
    const events = weightEvents(await eventsOf(log, 6))
    expect(events).toContainEqual({
      type: "WeightsPublished",
      model: "agent",
      version: "1",
      endpoint: expect.any(String),
    })
    expect(announced(events)).toEqual(["2"])
    for (const s of [a, b])
      expect(about(events, s.url).filter((e) => e.type !== "WeightsPublished")).toEqual([
        {
          type: "EndpointWeightsUpdated",
          model: "agent",
          endpoint: s.url,
          version: "2",
          ok: true,
          checksum: "sha256:abc",
        },
      ])
    const stats = await Effect.runPromise(pool.stats)
    expect(stats.publishedVersions).toEqual({ agent: "2" })
    expect(stats.endpoints.map((e) => [e.endpoint, e.policyVersion, e.healthy])).toEqual([
      [a.url, "2", true],
      [b.url, "2", true],
    ])
    const after = await Promise.all([ask(pool), ask(pool), ask(pool), ask(pool)])
    expect(after.map((c) => c.policyVersion)).toEqual(["2", "2", "2", "2"])
    // The same version again updates nothing.
    expect((await publish(pool, { version: "2", path: checkpoint() })).endpoints).toEqual([])
    expect(a.requests.filter((r) => r.path === "/pause")).toHaveLength(1)
    // The next version: the transfer engine was initialised once, by the first update.
    await publish(pool, { version: "3", path: checkpoint() })
    expect(a.requests.filter((r) => r.path === "/pause")).toHaveLength(2)
    expect(a.requests.filter((r) => r.path === "/init_weight_transfer_engine")).toHaveLength(1)
  })

  for (const [failUpdates, error] of [
    [true, "update_weights: HTTP 500: loading weights failed: scripted failure: the load stopped part-way"],
    ["version", "weight_info: the server reports version 1 after the update to 2"],
  ] as const)
    it(`an endpoint whose update fails (${failUpdates === true ? "its load" : "its version read back"}) is ejected; the other serves the version`, async () => {
      const log = await tempLog()
      const good = await start({ weights: { version: "1" } })
      const bad = await start({ weights: { version: "1", failUpdates } })
      const pool = await poolOver([good, bad], "vllm", log)
      const dir = checkpoint()
      const report = await publish(pool, { version: "2", path: dir })
      expect(report.endpoints).toEqual([
        { endpoint: good.url, ok: true, ms: expect.any(Number) },
        { endpoint: bad.url, ok: false, error, ms: expect.any(Number) },
      ])
      const events = weightEvents(await eventsOf(log, 6))
      expect(announced(events)).toEqual(["2"])
      expect(about(events, good.url)).toEqual([
        { type: "EndpointWeightsUpdated", model: "agent", endpoint: good.url, version: "2", ok: true },
      ])
      expect(about(events, bad.url)).toEqual([
        { type: "EndpointWeightsUpdated", model: "agent", endpoint: bad.url, version: "2", ok: false, error },
        {
          type: "EndpointEjected",
          model: "agent",
          endpoint: bad.url,
          reason: `weight update to 2 failed: ${error}`,
          failures: 1,
        },
      ])
      // The failed server was never resumed: a partial load must not serve anyone.
      expect((await call(bad, "GET", "/is_paused")).body).toEqual({ is_paused: true })
      expect(await statsOf(pool, bad.url)).toMatchObject({ healthy: false, failedUpdate: "2" })
      expect((await statsOf(pool, bad.url))!.policyVersion).toBeUndefined()
      expect(await statsOf(pool, good.url)).toMatchObject({ healthy: true, policyVersion: "2" })
      const calls = await Promise.all(Array.from({ length: 6 }, () => ask(pool)))
      expect(calls.map((c) => [c.endpoint, c.policyVersion])).toEqual(calls.map(() => [good.url, "2"]))
      // Its GET /models answers say nothing of its weights: no probe returns it.
      await Effect.runPromise(pool.probeNow("agent"))
      expect((await statsOf(pool, bad.url))!.healthy).toBe(false)

      // Restarted on its port with sound weights, the next publish updates it and returns it.
      const port = bad.port
      await bad.stop()
      const fixed = await start({ port, weights: { version: "1" } })
      const next = await publish(pool, { version: "3", path: dir })
      expect(next.endpoints.map((e) => [e.endpoint, e.ok])).toEqual([
        [good.url, true],
        [fixed.url, true],
      ])
      const later = weightEvents(await eventsOf(log, 10))
      expect(announced(later)).toEqual(["2", "3"])
      expect(about(later, fixed.url).slice(2)).toEqual([
        { type: "EndpointWeightsUpdated", model: "agent", endpoint: fixed.url, version: "3", ok: true },
        { type: "EndpointReturned", model: "agent", endpoint: fixed.url },
      ])
      const spread = await Promise.all(Array.from({ length: 6 }, () => ask(pool)))
      expect(new Set(spread.map((c) => c.endpoint))).toEqual(new Set([good.url, fixed.url]))
      expect(new Set(spread.map((c) => c.policyVersion))).toEqual(new Set(["3"]))
    })

  // A bridge killed mid-update leaves its server paused: every request held until someone resumes it.
  for (const [left, steps, recovered] of [
    ["paused", ["/pause?mode=keep"], "the server was found paused"],
    [
      "paused with an update open",
      ["/pause?mode=keep", "/start_weight_update"],
      "the server was found paused with a weight update still open",
    ],
    [
      "with weights loaded but the update not finished",
      ["/pause?mode=keep", "/start_weight_update", "/update_weights"],
      "the server was found paused with a weight update still open",
    ],
  ] as const)
    it(`a server an earlier update left ${left} is updated, resumed and says so`, async () => {
      const log = await tempLog()
      const server = await start({ weights: { version: "1" } })
      const pool = await poolOver([server], "vllm", log)
      const dir = checkpoint()
      // The earlier updater's requests, then its death: nothing more is sent.
      for (const step of steps) {
        const answer = await call(
          server,
          "POST",
          step,
          step === "/update_weights" ? { update_info: { path: dir } } : {},
        )
        expect(answer.status, step).toBe(200)
      }
      expect((await call(server, "GET", "/is_paused")).body).toEqual({ is_paused: true })
      const report = await publish(pool, { version: "2", path: dir })
      expect(report.endpoints).toEqual([
        {
          endpoint: server.url,
          ok: true,
          ms: expect.any(Number),
          recovered: expect.stringContaining(recovered),
        },
      ])
      expect((await call(server, "GET", "/is_paused")).body).toEqual({ is_paused: false })
      expect((await call(server, "GET", "/weight_info")).body).toEqual({ weight_version: "2" })
      const events = weightEvents(await eventsOf(log, 3))
      expect(about(events, server.url).filter((e) => e.type === "EndpointWeightsUpdated")).toEqual([
        {
          type: "EndpointWeightsUpdated",
          model: "agent",
          endpoint: server.url,
          version: "2",
          ok: true,
          recovered: expect.stringContaining(recovered),
        },
      ])
      expect(await statsOf(pool, server.url)).toMatchObject({ healthy: true, policyVersion: "2" })
      expect((await ask(pool)).policyVersion).toBe("2")
    })

  it("calls in flight finish on the old version before the pause; calls made during the update wait and succeed on the new one", async () => {
    let open: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    cleanups.push(() => open())
    const heldScript = async () => {
      await gate
      return { content: "ok" }
    }
    const a = await start({ script: heldScript, weights: { version: "1", loadMs: 150 } })
    const b = await start({ script: heldScript, weights: { version: "1", loadMs: 150 } })
    const pool = await poolOver([a, b], "vllm")
    const inFlight = [ask(pool), ask(pool)]
    await waitFor("both calls in flight", () => a.requests.length + b.requests.length === 2)
    const published = publish(pool, { version: "2", path: checkpoint() })
    // Both endpoints are paused in the pool at once: new calls wait, no /pause reaches a server
    // while it has a call of ours in flight.
    await waitFor("both endpoints paused", async () => {
      const stats = await Effect.runPromise(pool.stats)
      return stats.endpoints.every((e) => e.updatingTo === "2")
    })
    const during = Array.from({ length: 6 }, () => ask(pool))
    await waitFor("the calls made during the update to wait", async () => {
      return (await Effect.runPromise(pool.stats)).waiting.agent === 6
    })
    expect([...a.requests, ...b.requests].filter((r) => r.path === "/pause")).toEqual([])
    open()
    expect((await Promise.all(inFlight)).map((c) => c.policyVersion)).toEqual(["1", "1"])
    const report = await published
    expect(report.endpoints.map((e) => e.ok)).toEqual([true, true])
    const answers = await Promise.all(during)
    expect(answers.map((c) => c.policyVersion)).toEqual(answers.map(() => "2"))
    // No chat request reached a server between its pause and its resume.
    for (const server of [a, b]) {
      const order = server.requests.map((r) => r.path)
      const paused = order.indexOf("/pause")
      const resumed = order.indexOf("/resume")
      expect(order.slice(paused, resumed).filter((p) => p === "/v1/chat/completions")).toEqual([])
    }
  })

  it("refuses an unknown model, a group without weight updates, and weights without a version or path", async () => {
    const server = await start()
    const pool = await poolOver([server], "vllm")
    const dir = checkpoint()
    expect(await refusal(pool, { version: "2", path: dir }, "nobody")).toMatchObject({
      code: "unknown_model",
    })
    expect(await refusal(pool, { version: "", path: dir })).toMatchObject({ code: "invalid_weights" })
    expect(await refusal(pool, { version: "2", path: " " })).toMatchObject({ code: "invalid_weights" })
    const plain = await poolOver([server], "none")
    const none = await refusal(plain, { version: "2", path: dir })
    expect(none).toMatchObject({ code: "no_weight_updates" })
    expect(none.message).toContain("models.agent.weightUpdates is none")
    expect(server.requests.filter((r) => !r.path.startsWith("/v1/"))).toEqual([])
  })
})

describe("publishing weights to a group (SGLang route)", () => {
  it("updates both endpoints; one that fails its load is ejected with the server's message", async () => {
    const log = await tempLog()
    const good = await start({ weights: { version: "1" } })
    const bad = await start({ weights: { version: "1", failUpdates: true } })
    const pool = await poolOver([good, bad], "sglang", log)
    const report = await publish(pool, { version: "2", path: checkpoint() })
    const error =
      "update_weights_from_disk: HTTP 400: Failed to update weights: scripted failure: the load stopped part-way"
    expect(report.endpoints).toEqual([
      { endpoint: good.url, ok: true, ms: expect.any(Number) },
      { endpoint: bad.url, ok: false, error, ms: expect.any(Number) },
    ])
    expect(
      good.requests.filter((r) => !r.path.startsWith("/v1/")).map((r) => `${r.method} ${r.path}`),
    ).toEqual(["POST /update_weights_from_disk", "GET /model_info"])
    expect((await call(good, "GET", "/model_info")).body).toMatchObject({ weight_version: "2" })
    expect((await call(bad, "GET", "/model_info")).body).toMatchObject({ weight_version: "1" })
    const events = weightEvents(await eventsOf(log, 6))
    expect(announced(events)).toEqual(["2"])
    expect(about(events, good.url)).toEqual([
      { type: "EndpointWeightsUpdated", model: "agent", endpoint: good.url, version: "2", ok: true },
    ])
    expect(about(events, bad.url)).toEqual([
      { type: "EndpointWeightsUpdated", model: "agent", endpoint: bad.url, version: "2", ok: false, error },
      {
        type: "EndpointEjected",
        model: "agent",
        endpoint: bad.url,
        reason: `weight update to 2 failed: ${error}`,
        failures: 1,
      },
    ])
    const calls = await Promise.all(Array.from({ length: 4 }, () => ask(pool)))
    expect(calls.map((c) => [c.endpoint, c.policyVersion])).toEqual(calls.map(() => [good.url, "2"]))
  })
})
