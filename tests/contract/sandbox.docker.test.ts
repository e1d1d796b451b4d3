/**
 * The Sandbox contract on the Docker adapter (rollout-python:local), plus what only Docker does:
 * the images' non-root user, a real MCP stdio server run by rollout-node:local from a read-only
 * mount, and orphan reconciliation after the owning process is killed with SIGKILL. Skips with the
 * reason when no engine or image is there (fails instead under ROLLOUT_REQUIRE_DOCKER=1, as in CI).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { afterAll, describe, expect, it } from "vitest"
import { createDockerSandbox, type DockerSandbox } from "../../src/actors/tools/sandbox/docker.ts"
import { dockerForTests, nodeImage, pythonImage, testOwner } from "../support/docker.ts"
import { runPython, type SandboxHarness, sandboxContract, testLimits } from "./sandboxContract.ts"

const docker = await dockerForTests("sandbox.docker.test.ts", [pythonImage, nodeImage])

const dockerHarness = (owner: string): SandboxHarness => {
  const sandbox = createDockerSandbox({ owner, defaultImage: pythonImage })
  return {
    sandbox,
    python: { image: pythonImage, command: "python3" },
    leftovers: async () => (await sandbox.listOwned(owner)).map((c) => c.id),
    hostPids: false,
    close: () => sandbox.close(),
  }
}

describe.skipIf(!docker.ok)(`Docker sandbox${docker.ok ? "" : ` (SKIPPED: ${docker.reason})`}`, () => {
  sandboxContract("docker", async () => dockerHarness(testOwner("contract")))

  describe("Docker only", () => {
    const owner = testOwner("only")
    const harness = dockerHarness(owner)
    const sandbox = harness.sandbox as DockerSandbox
    const started: ChildProcess[] = []
    afterAll(async () => {
      for (const child of started) if (child.exitCode === null) child.kill("SIGKILL")
      await sandbox.reconcileOrphans(new Set(), owner)
      await harness.close()
    })

    it("runs as the image's non-root user with no capabilities and no network interfaces but lo", async () => {
      const result = await runPython(
        harness,
        [
          "import os",
          "print(os.getuid(), os.getgid())",
          'caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]',
          "print(caps)",
          'print(sorted(os.listdir("/sys/class/net")))',
        ].join("\n"),
      )
      expect(result.stdout).toBe("10001 10001\n0000000000000000\n['lo']\n")
    })

    it("runs a real MCP stdio server on rollout-node:local from a read-only mount", async () => {
      // @modelcontextprotocol/server-memory and its dependencies, straight from node_modules.
      const modules = path.resolve("node_modules")
      const entry = "@modelcontextprotocol/server-memory/dist/index.js"
      expect(fs.existsSync(path.join(modules, entry))).toBe(true)
      const handle = await sandbox.start({
        image: nodeImage,
        command: "node",
        args: [`/opt/mcp/node_modules/${entry}`],
        env: { MEMORY_FILE_PATH: "/tmp/memory.jsonl" },
        limits: { ...testLimits, wallClockMs: 30_000 },
        mounts: [{ hostPath: modules, containerPath: "/opt/mcp/node_modules", readOnly: true }],
      })
      const lines = readline.createInterface({ input: handle.stdout })[Symbol.asyncIterator]()
      const stderr: Buffer[] = []
      handle.stderr.on("data", (chunk: Buffer) => stderr.push(chunk))
      const request = async (id: number, method: string, params: object) => {
        handle.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`)
        const line = await lines.next()
        if (line.done) throw new Error(`server ended: ${Buffer.concat(stderr).toString()}`)
        return JSON.parse(line.value) as { id: number; result: Record<string, unknown> }
      }
      const init = await request(1, "initialize", {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "sandbox-test", version: "0" },
      })
      expect(init.result.serverInfo).toMatchObject({ name: expect.any(String) })
      handle.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`)
      const tools = await request(2, "tools/list", {})
      expect((tools.result.tools as Array<{ name: string }>).map((t) => t.name)).toContain("create_entities")
      handle.stdin.end()
      const exit = await handle.wait()
      expect(exit).toMatchObject({ timedOut: false, outputTruncated: false })
    })

    it("a new owner's reconcileOrphans removes the container of an owner killed with SIGKILL", async () => {
      const adapter = path.resolve("dist/src/actors/tools/sandbox/docker.js")
      if (!fs.existsSync(adapter)) throw new Error(`${adapter} is missing: run \`npm run build\` first`)
      const script = `
        import { createDockerSandbox } from ${JSON.stringify(adapter)}
        const sandbox = createDockerSandbox({ owner: ${JSON.stringify(owner)} })
        const handle = await sandbox.start({
          image: ${JSON.stringify(pythonImage)}, command: "python3", args: ["-c", "import time; time.sleep(600)"],
          limits: { memoryMb: 64, cpus: 0.5, pids: 8, wallClockMs: 600000, outputBytes: 1000 },
        })
        console.log(handle.id)
        setInterval(() => {}, 60000)
      `
      const owning = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "pipe"],
      })
      started.push(owning)
      let stderr = ""
      owning.stderr!.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
      })
      const orphanId = await new Promise<string>((resolve, reject) => {
        owning.stdout!.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()))
        owning.once("exit", (code) => reject(new Error(`owning process exited (${code}): ${stderr}`)))
      })
      // A second owner process still alive (its id is known live) and this instance's own sandbox.
      const other = createDockerSandbox({ owner })
      const spec = {
        image: pythonImage,
        command: "python3",
        args: ["-c", "import sys; sys.stdin.read()"],
        limits: testLimits,
      }
      const otherLive = await other.start(spec)
      const ownLive = await sandbox.start(spec)

      owning.kill("SIGKILL")
      await new Promise((resolve) => owning.once("exit", resolve))
      const before = await sandbox.listOwned(owner)
      expect(before.find((c) => c.id === orphanId)).toMatchObject({ state: "running" })

      const removed = await sandbox.reconcileOrphans(new Set([otherLive.id.slice(0, 12)]), owner)
      expect(removed).toEqual([orphanId])
      const after = (await sandbox.listOwned(owner)).map((c) => c.id).sort()
      expect(after).toEqual([otherLive.id, ownLive.id].sort())

      otherLive.stdin.end()
      ownLive.stdin.end()
      expect(await otherLive.wait()).toMatchObject({ code: 0 })
      expect(await ownLive.wait()).toMatchObject({ code: 0 })
      expect(await sandbox.listOwned(owner)).toEqual([])
    })
  })
})
