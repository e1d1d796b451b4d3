/**
 * `rollout mcp-server execute_code`: the execute_code server on stdio, with the strongest sandbox
 * this host offers (Docker when an engine and the image are there, else the local-process fallback,
 * whose warning goes to stderr at start and into every result).
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { defaultSandboxLimits } from "../../../actors/tools/sandbox/sandbox.ts"
import { selectSandbox } from "../../../actors/tools/sandbox/select.ts"
import { createExecuteCodeServer, defaultPythonImage } from "./server.ts"

const positive = (value: unknown, field: string, fallback: number): number => {
  if (value === undefined) return fallback
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0)
    throw new Error(`execute_code options.${field} must be a positive number, got ${JSON.stringify(value)}`)
  return value
}

export const serveExecuteCodeStdio = async (json: unknown): Promise<void> => {
  const o = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>
  for (const key of Object.keys(o))
    if (!["image", "prefer", "owner", "memoryMb", "cpus", "pids", "timeoutMs", "outputBytes"].includes(key))
      throw new Error(`execute_code options: unknown key "${key}"`)
  const image = typeof o.image === "string" ? o.image : defaultPythonImage
  const prefer = o.prefer === "docker" || o.prefer === "local" ? o.prefer : "auto"
  const { sandbox, reason } = await selectSandbox({
    owner: typeof o.owner === "string" ? o.owner : "rollout/execute_code",
    image,
    prefer,
  })
  const limits = {
    memoryMb: positive(o.memoryMb, "memoryMb", defaultSandboxLimits.memoryMb),
    cpus: positive(o.cpus, "cpus", defaultSandboxLimits.cpus),
    pids: positive(o.pids, "pids", defaultSandboxLimits.pids),
    wallClockMs: positive(o.timeoutMs, "timeoutMs", defaultSandboxLimits.wallClockMs),
    outputBytes: positive(o.outputBytes, "outputBytes", 64 * 1024),
  }
  process.stderr.write(`execute_code: ${sandbox.kind} sandbox (${reason})\n`)
  if (sandbox.warning !== undefined) process.stderr.write(`${sandbox.warning}\n`)
  const server = createExecuteCodeServer({ sandbox, limits, image })
  await server.connect(new StdioServerTransport())
  process.stdin.once("close", () => {
    sandbox.close().catch(() => undefined)
  })
}
