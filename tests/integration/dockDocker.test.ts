/**
 * AgentDock's Docker backend against a real dockerd (CI starts a private one and builds the images
 * locally): a pool whose replicas are containers running server-memory from a read-only mount; the
 * pool's process killed with SIGKILL leaves its containers running; the next dock on the same log
 * removes them on start (recorded as ToolSandboxesReconciled) and serves calls from fresh ones; and
 * nothing is left behind after it closes.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startDock } from "../../src/actors/tools/dock.ts"
import { createDockerSandbox } from "../../src/actors/tools/sandbox/docker.ts"
import { toolsConfigFrom } from "../../src/actors/tools/toolsConfig.ts"
import { decodeEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { type DockerForTests, dockerForTests, nodeImage, testOwner } from "../support/docker.ts"

let docker: DockerForTests = { ok: false, reason: "not probed" }
beforeAll(async () => {
  docker = await dockerForTests("dockDocker.test.ts", [nodeImage])
})

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

describe("AgentDock on Docker", () => {
  it("reconciles the containers of a pool process killed with SIGKILL, then serves from fresh ones", async (ctx) => {
    if (!docker.ok) ctx.skip()
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-dock-docker-"))
    dirs.push(dataDir)
    const owner = testOwner("dock")
    const modules = path.resolve("node_modules")
    const child = spawn(
      process.execPath,
      ["tests/support/dockerDockMain.mjs", dataDir, "dockdocker", owner, modules],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    )
    let stderr = ""
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString()
    })
    const lines = readline.createInterface({ input: child.stdout })
    const up = await new Promise<string>((resolve, reject) => {
      lines.on("line", (line) => line.startsWith("UP ") && resolve(line.slice(3)))
      child.once("exit", (code) => reject(new Error(`pool process exited ${code}: ${stderr}`)))
    })
    const orphans = up.split(",")
    expect(orphans).toHaveLength(2)
    child.kill("SIGKILL")
    await new Promise((resolve) => child.once("exit", resolve))

    const sandbox = createDockerSandbox({ owner })
    const before = await sandbox.listOwned(owner)
    expect(before.map((c) => c.id).sort()).toEqual([...orphans].sort())

    const scope = Effect.runSync(Scope.make())
    const log = await Effect.runPromise(
      Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace: "dockdocker", fsync: "never" })),
    )
    const config = toolsConfigFrom({
      servers: {
        memory: {
          transport: "docker",
          image: nodeImage,
          command: "node",
          args: ["/opt/mcp/node_modules/@modelcontextprotocol/server-memory/dist/index.js"],
          env: { MEMORY_FILE_PATH: "/tmp/memory.jsonl" },
          mounts: [{ hostPath: modules, containerPath: "/opt/mcp/node_modules", readOnly: true }],
          replicas: 1,
          memoryMb: 256,
        },
      },
    })
    if (Result.isFailure(config)) throw new Error(config.failure.message)
    const dock = await startDock({
      log,
      config: config.success,
      sandbox,
      sandboxOwner: owner,
      sampleEveryMs: 0,
    })
    try {
      const owned = (await sandbox.listOwned(owner)).map((c) => c.id)
      for (const id of orphans) expect(owned).not.toContain(id)
      expect(owned).toHaveLength(1)
      const created = await dock.call("memory.create_entities", {
        entities: [{ name: "Lake Orrin", entityType: "lake", observations: ["north shore: Harrowmere"] }],
      })
      expect(created.outcome).toBe("ok")
      const graph = await dock.call("memory.read_graph", {})
      expect(JSON.stringify(graph.content)).toContain("Harrowmere")
      expect(dock.status()[0]!.transport).toBe("docker")
    } finally {
      await dock.close()
      await sandbox.close()
    }
    const events = [...(await Effect.runPromise(Stream.runCollect(log.read())))].map(
      (e) => Result.getOrThrow(decodeEvent(e as never)).event,
    )
    const reconciled = events.find((e) => e.type === "ToolSandboxesReconciled")
    expect(reconciled).toMatchObject({ owner })
    expect([...(reconciled as { readonly removed: ReadonlyArray<string> }).removed].sort()).toEqual(
      [...orphans].sort(),
    )
    expect(events.filter((e) => e.type === "ToolReplicaStarted" && e.sandboxId !== undefined).length).toBe(3)
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(await sandbox.listOwned(owner)).toEqual([])
  }, 120_000)
})
