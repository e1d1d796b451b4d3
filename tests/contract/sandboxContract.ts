/**
 * The one contract every `Sandbox` adapter passes (local process and Docker): stdin/stdout echo,
 * exit codes with stderr kept apart, the environment, the wall-clock kill, the output cap, the
 * memory limit, the network, the read-only root, the pids limit, `kill()`, and nothing left behind
 * after each test. Where an adapter cannot enforce a protection on this host, the test checks that
 * its isolation report says so honestly instead (and what the program can then do).
 * Programs are python3 (`python3 -c`): the host's for the local adapter, rollout-python:local for Docker.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type {
  Sandbox,
  SandboxExit,
  SandboxLimits,
  SandboxSpec,
} from "../../src/actors/tools/sandbox/sandbox.ts"

export interface SandboxHarness {
  readonly sandbox: Sandbox
  /** How python3 starts in this sandbox (Docker: the image too). */
  readonly python: Pick<SandboxSpec, "image" | "command">
  /** Sandboxes still there after a test (Docker: containers with the harness's owner label). */
  readonly leftovers: () => Promise<ReadonlyArray<string>>
  /** Sandbox pids are host pids (local): the test then checks forked children are gone too. */
  readonly hostPids: boolean
  readonly close: () => Promise<void>
}

export const testLimits: SandboxLimits = {
  memoryMb: 256,
  cpus: 1,
  pids: 64,
  wallClockMs: 30_000,
  outputBytes: 1024 * 1024,
}

export interface RunResult {
  readonly exit: SandboxExit
  readonly stdout: string
  readonly stderr: string
}

const collect = (stream: NodeJS.ReadableStream): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    stream.on("error", reject)
  })

export const runPython = async (
  harness: SandboxHarness,
  code: string,
  options: { readonly input?: string; readonly spec?: Partial<SandboxSpec> } = {},
): Promise<RunResult> => {
  const handle = await harness.sandbox.start({
    ...harness.python,
    args: ["-c", code],
    limits: testLimits,
    ...options.spec,
  })
  const stdout = collect(handle.stdout)
  const stderr = collect(handle.stderr)
  handle.stdin.end(options.input ?? "")
  const exit = await handle.wait()
  return { exit, stdout: await stdout, stderr: await stderr }
}

/** Running (a zombie waiting for its reaper counts as dead). */
const alive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

export const sandboxContract = (name: string, makeHarness: () => Promise<SandboxHarness>): void => {
  describe(`Sandbox contract: ${name}`, () => {
    let harness: SandboxHarness
    beforeAll(async () => {
      harness = await makeHarness()
    })
    afterAll(async () => {
      await harness?.close()
    })
    afterEach(async () => {
      expect(harness.sandbox.live()).toEqual([])
      expect(await harness.leftovers()).toEqual([])
    })

    it("echoes stdin to stdout", async () => {
      const input = `héllo sandbox\n${"0123456789abcdef".repeat(8192)}\nend\n`
      const result = await runPython(
        harness,
        "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())",
        { input },
      )
      expect(result.exit).toMatchObject({ code: 0, signal: null, timedOut: false, outputTruncated: false })
      expect(result.stdout).toBe(input)
    })

    it("reports the exit code and keeps stderr apart from stdout", async () => {
      const result = await runPython(
        harness,
        'import sys; print("out"); print("err", file=sys.stderr); sys.exit(3)',
      )
      expect(result.exit).toMatchObject({ code: 3, signal: null, timedOut: false, killed: false })
      expect(result.stdout).toBe("out\n")
      expect(result.stderr).toBe("err\n")
    })

    it("passes the environment", async () => {
      const result = await runPython(harness, 'import os; print(os.environ["ROLLOUT_SANDBOX_TEST"])', {
        spec: { env: { ROLLOUT_SANDBOX_TEST: "v=1 ü" } },
      })
      expect(result.exit.code).toBe(0)
      expect(result.stdout).toBe("v=1 ü\n")
    })

    it("gives every sandbox its own id", async () => {
      const spec = { ...harness.python, args: ["-c", "pass"], limits: testLimits }
      const [a, b] = await Promise.all([harness.sandbox.start(spec), harness.sandbox.start(spec)])
      a!.stdin.end()
      b!.stdin.end()
      expect(a!.id).not.toBe(b!.id)
      await Promise.all([a!.wait(), b!.wait()])
    })

    it("kills an infinite loop at the wall clock", async () => {
      const result = await runPython(harness, 'print("looping", flush=True)\nwhile True: pass', {
        spec: { limits: { ...testLimits, wallClockMs: 1_500 } },
      })
      expect(result.exit).toMatchObject({ code: null, signal: "SIGKILL", timedOut: true, killed: false })
      expect(result.stdout).toBe("looping\n")
    })

    it("caps the output, marks it truncated and stops the program", async () => {
      const result = await runPython(harness, 'import sys\nwhile True: sys.stdout.write("x" * 1000)', {
        spec: { limits: { ...testLimits, outputBytes: 10_000 } },
      })
      expect(result.exit).toMatchObject({ outputTruncated: true, timedOut: false, signal: "SIGKILL" })
      expect(result.stdout).toBe("x".repeat(10_000))
    })

    it("enforces the memory limit (or says it cannot)", async () => {
      const { memory } = harness.sandbox.report
      if (!memory.enforced) {
        expect(memory.detail).toMatch(/NOT/)
        return
      }
      const result = await runPython(harness, 'data = b"x" * (512 << 20)\nprint("allocated", len(data))', {
        spec: { limits: { ...testLimits, memoryMb: 64 } },
      })
      expect(result.stdout).not.toContain("allocated")
      expect(result.exit.code).not.toBe(0)
      if (harness.sandbox.kind === "docker") {
        expect(result.exit).toMatchObject({ oomKilled: true, signal: "SIGKILL" })
      } else {
        expect(result.stderr).toContain("MemoryError")
      }
    })

    describe("network", () => {
      let server: net.Server
      let port = 0
      beforeAll(async () => {
        server = net.createServer((socket) => socket.end("hello from the host\n"))
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
        port = (server.address() as net.AddressInfo).port
      })
      afterAll(async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()))
      })
      const probe = (host: string, p: number | string) =>
        [
          "import socket",
          "s = socket.socket(); s.settimeout(3)",
          "try:",
          `    s.connect((${JSON.stringify(host)}, ${p})); print("connected")`,
          "except OSError as e:",
          '    print("failed", e.errno)',
        ].join("\n")

      it("cannot reach the host's loopback nor an outside address (or the report says it can)", async () => {
        const hostLoopback = await runPython(harness, probe("127.0.0.1", port))
        const outside = await runPython(harness, probe("192.0.2.1", 80))
        expect(outside.stdout).toMatch(/^failed/)
        if (harness.sandbox.report.network.enforced) {
          expect(hostLoopback.stdout).toMatch(/^failed/)
        } else {
          // Honest reporting: the local adapter without a network namespace reaches the host.
          expect(hostLoopback.stdout).toBe("connected\n")
          expect(harness.sandbox.warning).toMatch(/NETWORK IS REACHABLE/)
        }
      })

      it("keeps a private loopback for loopback-only", async () => {
        const selfConnect = [
          "import socket",
          'srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)',
          "c = socket.socket(); c.settimeout(3)",
          "try:",
          '    c.connect(srv.getsockname()); print("connected")',
          "except OSError as e:",
          '    print("failed", e.errno)',
        ].join("\n")
        const result = await runPython(harness, selfConnect, { spec: { network: "loopback-only" } })
        if (harness.sandbox.report.network.detail.includes("down even for loopback-only")) {
          expect(result.stdout).toMatch(/^failed/)
        } else {
          expect(result.stdout).toBe("connected\n")
        }
      })
    })

    it("keeps the root filesystem read-only (or says it cannot)", async () => {
      const { readOnlyRoot } = harness.sandbox.report
      if (!readOnlyRoot.enforced) {
        expect(readOnlyRoot.detail).toMatch(/NOT/)
        expect(harness.sandbox.warning).toMatch(/readOnlyRoot/)
        return
      }
      // As uid 0 (still without capabilities) so that only the read-only mount can refuse the write.
      const write = [
        'open("/tmp/scratch", "w").write("ok")',
        "try:",
        '    open("/etc/rollout-probe", "w").write("x"); print("written")',
        "except OSError as e:",
        '    print("refused", e.errno)',
      ].join("\n")
      const readOnly = await runPython(harness, write, { spec: { user: "0:0" } })
      expect(readOnly.exit.code).toBe(0)
      expect(readOnly.stdout).toBe("refused 30\n") // EROFS
      const writable = await runPython(harness, write, { spec: { user: "0:0", readOnlyRoot: false } })
      expect(writable.stdout).toBe("written\n")
    })

    it("contains a fork bomb within the pids limit and leaves no process behind", async () => {
      const { pids } = harness.sandbox.report
      if (!pids.enforced) {
        expect(pids.detail).toMatch(/NOT/)
        return
      }
      const forkBomb = [
        "import os, sys, time",
        "children = []",
        "try:",
        "    for _ in range(500):",
        "        pid = os.fork()",
        "        if pid == 0:",
        "            time.sleep(120); os._exit(0)",
        "        children.append(pid)",
        "except OSError as e:",
        '    print("fork refused", e.errno)',
        'print(len(children)); print(" ".join(map(str, children)), flush=True)',
      ].join("\n")
      const result = await runPython(harness, forkBomb, { spec: { limits: { ...testLimits, pids: 16 } } })
      const [refused, count, pidList] = result.stdout.split("\n")
      expect(refused).toBe("fork refused 11") // EAGAIN
      expect(Number(count)).toBeLessThan(16)
      expect(result.exit).toMatchObject({ code: 0, timedOut: false })
      if (harness.hostPids) {
        const children = (pidList ?? "")
          .split(" ")
          .filter((p) => p !== "")
          .map(Number)
        expect(children.filter(alive)).toEqual([])
      }
    })

    it("kill() stops a running program", async () => {
      const handle = await harness.sandbox.start({
        ...harness.python,
        args: ["-c", 'import time\nprint("ready", flush=True)\ntime.sleep(120)'],
        limits: testLimits,
      })
      const stdout = collect(handle.stdout)
      const stderr = collect(handle.stderr)
      await new Promise<void>((resolve) => {
        handle.stdout.once("data", () => resolve())
      })
      await handle.kill()
      const exit = await handle.wait()
      expect(exit).toMatchObject({ code: null, signal: "SIGKILL", killed: true, timedOut: false })
      expect(await stdout).toBe("ready\n")
      await stderr
      await handle.kill() // harmless after the end
    })
  })
}
