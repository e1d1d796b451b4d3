/**
 * The Sandbox contract on the local-process adapter (the host's python3), and its honesty: the
 * warning and the isolation report say what is not isolated, and with the network namespace off
 * the program does reach the host.
 */
import * as net from "node:net"
import { describe, expect, it } from "vitest"
import { createLocalProcessSandbox } from "../../src/actors/tools/sandbox/localProcess.ts"
import { runPython, type SandboxHarness, sandboxContract } from "./sandboxContract.ts"

const localHarness = async (options: Parameters<typeof createLocalProcessSandbox>[0] = {}) => {
  const sandbox = await createLocalProcessSandbox(options)
  const harness: SandboxHarness = {
    sandbox,
    python: { command: "python3" },
    leftovers: async () => sandbox.live(),
    hostPids: true,
    close: () => sandbox.close(),
  }
  return harness
}

sandboxContract("local process", () => localHarness())

describe("local-process sandbox: honest about its isolation", () => {
  it("says loudly that it is a process, not a security boundary", async () => {
    const sandbox = await createLocalProcessSandbox()
    expect(sandbox.kind).toBe("local-process")
    expect(sandbox.isolation).toBe("process")
    expect(sandbox.warning).toMatch(/NOT A SECURITY BOUNDARY/)
    expect(sandbox.report.filesystem.enforced).toBe(false)
    expect(sandbox.report.processes.enforced).toBe(false)
    expect(sandbox.report.readOnlyRoot.enforced).toBe(false)
    expect(sandbox.warning).toContain("filesystem")
  })

  it("reports a reachable network when the namespace is off, and the program does reach the host", async () => {
    const harness = await localHarness({ network: "host" })
    const server = net.createServer((socket) => socket.end("hi\n"))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const port = (server.address() as net.AddressInfo).port
      expect(harness.sandbox.report.network.enforced).toBe(false)
      expect(harness.sandbox.warning).toMatch(/THE NETWORK IS REACHABLE/)
      const result = await runPython(
        harness,
        `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), 3)\nprint(s.recv(10).decode(), end="")`,
      )
      expect(result.stdout).toBe("hi\n")
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await harness.close()
    }
  })

  it("refuses a mount it cannot remap", async () => {
    const sandbox = await createLocalProcessSandbox()
    await expect(
      sandbox.start({
        command: "python3",
        limits: { memoryMb: 64, cpus: 1, pids: 8, wallClockMs: 5_000, outputBytes: 1_000 },
        mounts: [{ hostPath: "/usr", containerPath: "/opt/elsewhere", readOnly: true }],
      }),
    ).rejects.toThrow(/cannot remap/)
    expect(sandbox.live()).toEqual([])
  })

  it("runs the program in a private scratch directory that is removed afterwards", async () => {
    const harness = await localHarness()
    const result = await runPython(harness, 'import os; print(os.getcwd()); open("f", "w").write("x")')
    const cwd = result.stdout.trim()
    expect(cwd).toMatch(/rollout-sandbox-/)
    const fs = await import("node:fs")
    expect(fs.existsSync(cwd)).toBe(false)
    await harness.close()
  })
})
