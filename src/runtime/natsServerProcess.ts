/**
 * Runs a private `nats-server -js` as a child process: on a free loopback port, with a given store
 * directory, ready only once JetStream answers. Integration tests and benchmarks use it to get a
 * real server without Docker; `restart` keeps the port and the store so durability can be checked.
 * It only ever signals the process it started, by its pid.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"

export interface NatsServerOptions {
  /** The JetStream store directory (`-sd`); it must exist and outlive restarts. */
  readonly storeDir: string
  /** The client port; default: a free loopback port picked at start (kept across restarts). */
  readonly port?: number
  /** Require this token from clients (`--auth`). Never printed. */
  readonly token?: string
  /** How long to wait for the server to answer JetStream requests; default 15 s. */
  readonly readyTimeoutMs?: number
  /** The executable; default `$NATS_SERVER_BIN` or `nats-server` from `PATH`. */
  readonly binary?: string
}

export interface NatsServerProcess {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  readonly storeDir: string
  /** The pid of the running server, or undefined while it is stopped. */
  readonly pid: () => number | undefined
  /** SIGTERM, wait for the exit; SIGKILL if it does not exit in time. */
  readonly stop: () => Promise<void>
  /** Stops gracefully (if running) and starts again on the same port and store directory. */
  readonly restart: () => Promise<void>
  /** SIGKILL, as a crash would, and waits for the exit; `restart` brings it back. */
  readonly kill9: () => Promise<void>
}

const INSTALL_HINT =
  "nats-server is not installed or not on PATH: install it (`apt-get install -y nats-server`; `npm test` does so through scripts/setup.sh) " +
  "or set NATS_SERVER_BIN to its path"

/** Finds the server executable, failing with what to install when there is none. */
export const findNatsServer = (binary?: string): string => {
  const wanted = binary ?? process.env.NATS_SERVER_BIN
  if (wanted !== undefined && wanted.length > 0) {
    if (isExecutable(wanted)) return wanted
    throw new Error(`${wanted} is not an executable file; ${INSTALL_HINT}`)
  }
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir.length === 0) continue
    const candidate = path.join(dir, "nats-server")
    if (isExecutable(candidate)) return candidate
  }
  throw new Error(INSTALL_HINT)
}

const isExecutable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** Asks the kernel for a free loopback port. Another process could take it before the server binds; start retries. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))))
    })
  })

const LOG_LINES = 40

/** One spawned server process: its exit, and the last lines it logged (to explain a failed start). */
class Running {
  readonly child: ChildProcess
  readonly exited: Promise<void>
  readonly log: string[] = []
  /** undefined while running; the exit code (null when killed by a signal or never spawned). */
  exitCode: number | null | undefined = undefined

  constructor(binary: string, port: number, options: NatsServerOptions) {
    const args = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", options.storeDir]
    if (options.token !== undefined) args.push("--auth", options.token)
    this.child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] })
    // The server logs to stderr; keep reading it so a full pipe can never block the server.
    this.child.stderr?.setEncoding("utf8")
    this.child.stderr?.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line.length > 0) this.log.push(line)
      if (this.log.length > LOG_LINES) this.log.splice(0, this.log.length - LOG_LINES)
    })
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code) => {
        this.exitCode = code
        resolve()
      })
      this.child.once("error", (error) => {
        this.log.push(`spawn failed: ${error.message}`)
        this.exitCode = null
        resolve()
      })
    })
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls with a real client until the server accepts a connection and JetStream answers. */
const waitReady = async (running: Running, url: string, token: string | undefined, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  let lastError = "not tried"
  while (Date.now() < deadline) {
    if (running.exitCode !== undefined) {
      throw new Error(
        `nats-server exited (code ${running.exitCode}) before it was ready:\n${running.log.join("\n")}`,
      )
    }
    try {
      const nc = await connect({
        servers: url,
        reconnect: false,
        timeout: 1_000,
        ...(token === undefined ? {} : { token }),
      })
      try {
        await jetstreamManager(nc, { timeout: 1_000 })
        return
      } finally {
        await nc.close()
      }
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error)
    }
    await sleep(20)
  }
  throw new Error(
    `nats-server at ${url} not ready after ${timeoutMs} ms (${lastError}):\n${running.log.join("\n")}`,
  )
}

const terminate = async (running: Running, graceMs: number): Promise<void> => {
  if (running.exitCode !== undefined) return
  running.child.kill("SIGTERM")
  const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), graceMs).unref())
  if ((await Promise.race([running.exited.then(() => "exited" as const), timer])) === "timeout") {
    running.child.kill("SIGKILL")
    await running.exited
  }
}

/** Starts the server and resolves once it serves JetStream. */
export const startNatsServer = async (options: NatsServerOptions): Promise<NatsServerProcess> => {
  const binary = findNatsServer(options.binary)
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000
  if (!fs.statSync(options.storeDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`store directory ${options.storeDir} does not exist`)
  }

  const launch = async (port: number): Promise<Running> => {
    const running = new Running(binary, port, options)
    const url = `nats://127.0.0.1:${port}`
    try {
      await waitReady(running, url, options.token, readyTimeoutMs)
      return running
    } catch (error) {
      await terminate(running, 2_000)
      throw error
    }
  }

  let port = options.port
  let running: Running | undefined
  for (let attempt = 1; running === undefined; attempt++) {
    const candidate = port ?? (await freePort())
    try {
      running = await launch(candidate)
      port = candidate
    } catch (error) {
      // A picked port can be taken between the probe and the bind; try another one, a few times.
      const raced = options.port === undefined && /address already in use/i.test(String(error))
      if (!raced || attempt >= 5) throw error
    }
  }
  const fixedPort = port as number
  const url = `nats://127.0.0.1:${fixedPort}`
  let current: Running | undefined = running

  return {
    url,
    port: fixedPort,
    storeDir: options.storeDir,
    pid: () => (current !== undefined && current.exitCode === undefined ? current.child.pid : undefined),
    stop: async () => {
      if (current !== undefined) await terminate(current, 10_000)
      current = undefined
    },
    restart: async () => {
      if (current !== undefined) await terminate(current, 10_000)
      current = undefined
      current = await launch(fixedPort)
    },
    kill9: async () => {
      if (current === undefined || current.exitCode !== undefined) return
      current.child.kill("SIGKILL")
      await current.exited
    },
  }
}
