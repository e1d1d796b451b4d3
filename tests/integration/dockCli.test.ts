/**
 * `rollout dock` end to end, as a user runs it: `dock up` in its own process over a tools.yaml
 * with server-everything (two versions), then `dock status`, `dock call` and `dock swap` against
 * it through its token-protected admin surface, an MCP client through its gateway, SIGTERM, and
 * `dock status` again read from the log.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { afterEach, describe, expect, it } from "vitest"

const cli = path.resolve("bin/rollout.js")
const run = promisify(execFile)
const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

const waitForLine = (child: ChildProcess, pattern: RegExp, ms = 30_000) =>
  new Promise<string>((resolve, reject) => {
    let out = ""
    let err = ""
    const timer = setTimeout(
      () => reject(new Error(`no "${pattern}" from dock up in ${ms} ms; stderr: ${err}`)),
      ms,
    )
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const m = pattern.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve(m[0])
      }
    })
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`dock up exited ${code}: ${err}`))
    })
  })

describe("rollout dock", () => {
  it("up, status, call, swap, the gateway, and status from the log after SIGTERM", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-dock-cli-"))
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const configDir = path.join(dir, "config")
    fs.mkdirSync(configDir)
    fs.writeFileSync(
      path.join(configDir, "tools.yaml"),
      [
        "servers:",
        "  everything:",
        "    command: mcp-server-everything",
        "    args: [stdio]",
        "    replicas: 2",
        "    idempotent: [echo]",
        "    versions:",
        "      v2: { replicas: 1 }",
        "gateway:",
        "  port: 0",
      ].join("\n"),
    )
    const env = { ...process.env, ROLLOUT_DOCK_TOKEN: "test-token-0123456789" }
    const globals = ["--config", configDir, "--data-dir", path.join(dir, "data")]
    const up = spawn(process.execPath, [cli, ...globals, "dock", "up"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    })
    cleanup.push(() => {
      if (up.exitCode === null) up.kill("SIGKILL")
    })
    const url = (await waitForLine(up, /http:\/\/127\.0\.0\.1:\d+\/mcp/)).trim()

    const status = JSON.parse(
      (await run(process.execPath, [cli, ...globals, "dock", "status", "--json"], { env })).stdout,
    )
    expect(status.running).toBe(true)
    expect(status.servers[0]).toMatchObject({ server: "everything", version: "v1" })
    expect(status.servers[0].replicas).toHaveLength(2)

    const called = await run(
      process.execPath,
      [cli, ...globals, "dock", "call", "everything.echo", "--args", '{"message": "from the cli"}'],
      { env },
    )
    expect(called.stdout).toContain("Echo: from the cli")
    const summed = JSON.parse(
      (
        await run(
          process.execPath,
          [cli, ...globals, "dock", "call", "everything__get-sum", "--args", '{"a": "2", "b": 40}', "--json"],
          { env },
        )
      ).stdout,
    )
    expect(summed).toMatchObject({ tool: "everything__get-sum", outcome: "ok" })
    expect(summed.coerced).toEqual([{ path: "/a", from: "2", to: 2 }])

    const client = new Client({ name: "dock-cli-test", version: "1" })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: "Bearer test-token-0123456789" } },
      }),
    )
    const listed = await client.listTools()
    expect(listed.tools.map((t) => t.name)).toContain("everything__echo")
    const viaGateway = await client.callTool({ name: "everything__echo", arguments: { message: "via mcp" } })
    expect(JSON.stringify(viaGateway.content)).toContain("Echo: via mcp")
    const oldForm = await client.callTool({ name: "everything.echo", arguments: { message: "old form" } })
    expect(JSON.stringify(oldForm.content)).toContain("Echo: old form")
    await client.close()
    const refused = await fetch(url, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    })
    expect(refused.status).toBe(401)

    const swapped = JSON.parse(
      (
        await run(process.execPath, [cli, ...globals, "dock", "swap", "everything", "--to", "v2", "--json"], {
          env,
        })
      ).stdout,
    )
    expect(swapped).toMatchObject({ server: "everything", from: "v1", to: "v2" })

    up.kill("SIGTERM")
    await new Promise((resolve) => up.once("exit", resolve))
    expect(up.exitCode).toBe(0)

    const fromLog = JSON.parse(
      (await run(process.execPath, [cli, ...globals, "dock", "status", "--json"], { env })).stdout,
    )
    expect(fromLog.running).toBe(false)
    expect(fromLog.servers[0]).toMatchObject({ server: "everything", version: "v2", swaps: 1 })
    expect(fromLog.servers[0].calls).toBeGreaterThanOrEqual(2)

    // No dock running: a one-off pool of the server the name starts with, which says what it coerced.
    const oneOff = await run(
      process.execPath,
      [cli, ...globals, "dock", "call", "everything__get-sum", "--args", '{"a": 1, "b": "2"}'],
      { env },
    )
    expect(oneOff.stdout).toContain("3")
    expect(oneOff.stderr).toMatch(/\[ok; .*; read arguments\.b "2" as 2\]/)
  }, 90_000)
})
