/**
 * One replica of a pooled MCP server: an MCP client session over stdio (a child process),
 * streamable HTTP, or a Docker container's stdin/stdout (through the sandbox port). It knows its
 * tools, answers pings, and says when it ended (`ended`), so the pool can restart it.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable, Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import type { JSONRPCMessage, Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Result from "effect/Result"
import type { ReplicaDeps } from "./ports.ts"
import type { SandboxHandle } from "./sandbox/sandbox.ts"
import { resolveEnv, type ServerConfig } from "./toolsConfig.ts"

export interface Replica {
  readonly id: string
  readonly sandboxId?: string
  /** stdio: the server process's pid. */
  readonly pid?: number
  readonly client: Client
  readonly tools: ReadonlyArray<Tool>
  /** Resolves (never rejects) with why the session ended: the process exited, the socket closed… */
  readonly ended: Promise<string>
  /** Ends the session and whatever runs it (process, container). */
  readonly close: () => Promise<void>
}

/** The project's `node_modules/.bin`, so configs can name npm-installed servers by their command. */
const projectBin = (): string | undefined => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const bin = path.join(dir, "node_modules", ".bin")
    if (fs.existsSync(bin)) return bin
    dir = path.dirname(dir)
  }
  return undefined
}
const BIN = projectBin()

/** `rollout` itself (its own tool servers): this Node and this checkout's entry point. */
const rolloutEntry = (): string | undefined => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const entry = path.join(dir, "bin", "rollout.js")
    if (fs.existsSync(entry)) return entry
    dir = path.dirname(dir)
  }
  return undefined
}

/** A transport over a sandboxed process's stdin/stdout: newline-delimited JSON-RPC, like stdio. */
class StreamTransport implements Transport {
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: (message: JSONRPCMessage) => void
  private readonly buffer = new ReadBuffer()
  private closed = false

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly stop: () => Promise<void>,
  ) {}

  async start(): Promise<void> {
    this.input.on("data", (chunk: Buffer) => {
      this.buffer.append(chunk)
      for (;;) {
        let message: JSONRPCMessage | null
        try {
          message = this.buffer.readMessage()
        } catch (error) {
          this.onerror?.(error as Error)
          continue
        }
        if (message === null) break
        this.onmessage?.(message)
      }
    })
    this.input.on("end", () => this.finish())
    this.input.on("error", (error) => this.onerror?.(error))
    this.output.on("error", (error) => this.onerror?.(error))
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error("the sandbox's stdin is closed"))
        return
      }
      const ok = this.output.write(serializeMessage(message), (error) => (error ? reject(error) : undefined))
      if (ok) resolve()
      else this.output.once("drain", resolve)
    })
  }

  private finish(): void {
    if (this.closed) return
    this.closed = true
    this.onclose?.()
  }

  async close(): Promise<void> {
    this.output.end()
    await this.stop()
    this.finish()
  }
}

/** A replica lives until the pool stops it: the longest wall clock a timer can hold (~24.8 days). */
const FOREVER_MS = 2_147_483_647

/** Starts one replica and completes the MCP handshake; fails with a message naming the server. */
export const startReplica = async (server: ServerConfig, id: string, deps: ReplicaDeps): Promise<Replica> => {
  const where = `servers.${server.name}`
  const env = resolveEnv(server.env, deps.env, `${where}.env`)
  if (Result.isFailure(env)) throw new Error(env.failure)
  let transport: Transport
  let sandboxed: SandboxHandle | undefined
  let stdioTransport: StdioClientTransport | undefined
  const stderrTail: string[] = []
  const keepStderr = (chunk: Buffer | string) => {
    for (const line of chunk.toString().split("\n")) {
      if (line.trim() === "") continue
      stderrTail.push(line)
      if (stderrTail.length > 20) stderrTail.shift()
      deps.onStderr?.(id, line)
    }
  }
  switch (server.transport) {
    case "stdio": {
      const base = getDefaultEnvironment()
      const PATH = [BIN, env.success.PATH ?? base.PATH ?? process.env.PATH]
        .filter(Boolean)
        .join(path.delimiter)
      const self = server.command === "rollout" ? rolloutEntry() : undefined
      const stdio = new StdioClientTransport({
        command: self === undefined ? server.command! : process.execPath,
        args: self === undefined ? [...server.args] : [self, ...server.args],
        env: { ...base, ...env.success, PATH },
        stderr: "pipe",
      })
      stdio.stderr?.on("data", keepStderr)
      stdioTransport = stdio
      transport = stdio
      break
    }
    case "http": {
      const headers = resolveEnv(server.headers, deps.env, `${where}.headers`)
      if (Result.isFailure(headers)) throw new Error(headers.failure)
      transport = new StreamableHTTPClientTransport(new URL(server.url!), {
        requestInit: { headers: headers.success },
      })
      break
    }
    case "docker": {
      if (deps.sandbox === undefined) throw new Error(`${where}: transport docker needs a Docker engine`)
      sandboxed = await deps.sandbox.start({
        image: server.image!,
        command: server.command!,
        args: [...server.args],
        env: env.success,
        limits: {
          memoryMb: server.memoryMb,
          cpus: server.cpus,
          pids: server.pids,
          wallClockMs: FOREVER_MS,
          outputBytes: Number.MAX_SAFE_INTEGER,
        },
        network: "none",
        readOnlyRoot: true,
        mounts: server.mounts,
        // Who owns it: a later dock removes the containers of a dead owner (see startDock).
        labels: {
          "rollout.server": server.name,
          "rollout.version": server.version,
          "rollout.replica": id,
          "rollout.pid": String(process.pid),
          "rollout.host": os.hostname(),
        },
      })
      sandboxed.stderr.on("data", keepStderr)
      const handle = sandboxed
      transport = new StreamTransport(handle.stdout, handle.stdin, async () => {
        await handle.kill()
        await handle.wait()
      })
      break
    }
  }
  const client = new Client({ name: `rollout-dock/${id}`, version: "0.1.0" })
  let endReason: ((reason: string) => void) | undefined
  const ended = new Promise<string>((resolve) => {
    endReason = resolve
  })
  let closing = false
  client.onclose = () => {
    const tail = stderrTail.length === 0 ? "" : ` (stderr: ${stderrTail.slice(-3).join(" | ")})`
    endReason?.(closing ? "closed" : `session ended${tail}`)
  }
  try {
    await client.connect(transport)
    const tools: Tool[] = []
    let cursor: string | undefined
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor })
      tools.push(...page.tools)
      cursor = page.nextCursor
    } while (cursor !== undefined)
    return {
      id,
      ...(sandboxed === undefined ? {} : { sandboxId: sandboxed.id }),
      ...(stdioTransport?.pid == null ? {} : { pid: stdioTransport.pid }),
      client,
      tools,
      ended,
      close: async () => {
        closing = true
        await client.close().catch(() => undefined)
        endReason?.("closed")
      },
    }
  } catch (error) {
    closing = true
    await client.close().catch(() => undefined)
    if (sandboxed !== undefined) await sandboxed.kill().catch(() => undefined)
    const tail = stderrTail.length === 0 ? "" : `; stderr: ${stderrTail.slice(-5).join(" | ")}`
    throw new Error(`${where}: replica ${id} did not start: ${(error as Error).message}${tail}`)
  }
}
