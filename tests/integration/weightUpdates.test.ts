/**
 * Weight updates over real loopback HTTP. The scripted test double's routes first: vLLM's native
 * sequence as a state machine (each request outside the sequence refused with 409 and a message, a
 * bad body with 400), a failed load leaving the engine paused with its weights in doubt, a chat
 * call held while paused and answered with the new version, SGLang's `update_weights_from_disk`.
 * Every test is bounded to a few dozen requests; waits poll a condition against a deadline.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"

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
