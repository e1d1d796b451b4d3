/**
 * The `execute_code` MCP server through a real MCP `Client` over `InMemoryTransport`, on both
 * backends: the local-process sandbox (always) and Docker with rollout-python:local (skipped with
 * the reason when no engine or image is there; required in CI). Also: `selectSandbox` falls back to
 * the local process, loudly, when the engine does not answer.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import Dockerode from "dockerode"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createDockerSandbox } from "../../src/actors/tools/sandbox/docker.ts"
import { createLocalProcessSandbox } from "../../src/actors/tools/sandbox/localProcess.ts"
import type { Sandbox, SandboxLimits } from "../../src/actors/tools/sandbox/sandbox.ts"
import { selectSandbox } from "../../src/actors/tools/sandbox/select.ts"
import {
  createExecuteCodeServer,
  executeCodeToolName,
  sandboxMetaKey,
} from "../../src/programs/toolServers/executeCode/server.ts"
import { dockerForTests, pythonImage, testOwner } from "../support/docker.ts"

const limits: SandboxLimits = { memoryMb: 128, cpus: 1, pids: 32, wallClockMs: 20_000, outputBytes: 20_000 }

const docker = await dockerForTests("executeCode.test.ts", [pythonImage])

interface Connected {
  readonly client: Client
  readonly close: () => Promise<void>
}

const connect = async (sandbox: Sandbox): Promise<Connected> => {
  const server = createExecuteCodeServer({ sandbox, limits, image: pythonImage })
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair()
  await server.connect(serverTransport)
  const client = new Client({ name: "execute-code-test", version: "0.0.0" })
  await client.connect(clientTransport)
  return {
    client,
    close: async () => {
      await client.close()
      await server.close()
    },
  }
}

const textOf = (result: CallToolResult): string =>
  result.content.map((c) => (c.type === "text" ? c.text : `[${c.type}]`)).join("\n")

const executeCodeSuite = (name: string, makeSandbox: () => Promise<Sandbox>): void => {
  describe(`execute_code over MCP: ${name}`, () => {
    let sandbox: Sandbox
    let connected: Connected
    const call = async (args: Record<string, unknown>) =>
      (await connected.client.callTool({ name: executeCodeToolName, arguments: args })) as CallToolResult

    beforeAll(async () => {
      sandbox = await makeSandbox()
      connected = await connect(sandbox)
    })
    afterAll(async () => {
      await connected?.close()
      await sandbox?.close()
    })

    it("lists the tool and states its isolation in the instructions", async () => {
      const { tools } = await connected.client.listTools()
      const tool = tools.find((t) => t.name === executeCodeToolName)
      expect(tool?.inputSchema.required).toEqual(["code"])
      expect(Object.keys(tool?.inputSchema.properties ?? {}).sort()).toEqual([
        "code",
        "language",
        "timeout_s",
      ])
      const instructions = connected.client.getInstructions() ?? ""
      if (sandbox.isolation === "process") {
        expect(instructions).toContain("NOT A SECURITY BOUNDARY")
        expect(tool?.description).toContain("NOT A SECURITY BOUNDARY")
      } else {
        expect(instructions).toContain("fresh Docker container")
      }
    })

    it("runs code and returns stdout, stderr and the exit code", async () => {
      const result = await call({
        code: 'import sys\nprint("hello", 6 * 7)\nprint("careful", file=sys.stderr)',
      })
      expect(result.isError).toBeFalsy()
      expect(textOf(result)).toBe("exit code: 0\nstdout:\nhello 42\nstderr:\ncareful")
      expect(result.structuredContent).toMatchObject({
        exit_code: 0,
        stdout: "hello 42\n",
        stderr: "careful\n",
        timed_out: false,
        output_truncated: false,
        backend: sandbox.kind,
      })
      const meta = result._meta?.[sandboxMetaKey] as Record<string, unknown>
      expect(meta).toMatchObject({ backend: sandbox.kind, isolation: sandbox.isolation, exitCode: 0 })
      if (sandbox.isolation === "process") expect(meta.warning).toMatch(/NOT A SECURITY BOUNDARY/)
      else expect(meta.warning).toBeUndefined()
    })

    it("reports a failing program with its traceback", async () => {
      const result = await call({ code: 'raise ValueError("boom")', language: "python" })
      const text = textOf(result)
      expect(text).toMatch(/^exit code: 1\nstdout: \(empty\)\nstderr:\n/)
      expect(text).toContain("ValueError: boom")
    })

    it("kills a program at timeout_s and says so", async () => {
      const result = await call({ code: 'print("started", flush=True)\nwhile True: pass', timeout_s: 1 })
      const text = textOf(result)
      expect(text).toContain("exit: killed by SIGKILL")
      expect(text).toContain("[timed out after 1 s: the program was killed]")
      expect(text).toContain("stdout:\nstarted")
      expect(result.structuredContent).toMatchObject({ timed_out: true, exit_code: null })
    })

    it("marks truncated output explicitly", async () => {
      const result = await call({ code: 'while True: print("y" * 99)' })
      const text = textOf(result)
      expect(text).toContain("[output truncated: stdout and stderr together exceeded 20000 bytes")
      expect((result.structuredContent as { stdout: string }).stdout.length).toBe(20_000)
    })

    it("runs each call in a fresh sandbox", async () => {
      const first = await call({ code: 'open("state.txt", "w").write("one")\nprint("written")' })
      expect(textOf(first)).toContain("stdout:\nwritten")
      const second = await call({ code: 'import os\nprint(os.path.exists("state.txt"))' })
      expect(textOf(second)).toContain("stdout:\nFalse")
      expect(sandbox.live()).toEqual([])
    })

    it("rejects another language", async () => {
      const result = await call({ code: "console.log(1)", language: "javascript" })
      expect(result.isError).toBe(true)
    })
  })
}

executeCodeSuite("local process", () => createLocalProcessSandbox())

describe.skipIf(!docker.ok)(`Docker backend${docker.ok ? "" : ` (SKIPPED: ${docker.reason})`}`, () => {
  const owner = testOwner("execute-code")
  executeCodeSuite("docker", async () => createDockerSandbox({ owner, defaultImage: pythonImage }))

  it("marks an out-of-memory kill and leaves no container behind", async () => {
    const sandbox = createDockerSandbox({ owner, defaultImage: pythonImage })
    const connected = await connect(sandbox)
    try {
      const result = (await connected.client.callTool({
        name: executeCodeToolName,
        arguments: { code: 'data = b"x" * (1 << 30)\nprint(len(data))' },
      })) as CallToolResult
      expect(textOf(result)).toContain("[out of memory: the program was killed at the 128 MB limit]")
      expect(await sandbox.listOwned(owner)).toEqual([])
    } finally {
      await connected.close()
      await sandbox.close()
    }
  })

  it("selectSandbox picks Docker when the engine answers and the image is there", async () => {
    const selected = await selectSandbox({ owner, image: pythonImage })
    expect(selected.sandbox.kind).toBe("docker")
    expect(selected.sandbox.warning).toBeUndefined()
  })
})

describe("selectSandbox", () => {
  it("falls back to the local process, with the reason and the warning, when Docker does not answer", async () => {
    const selected = await selectSandbox({
      owner: testOwner("select"),
      image: pythonImage,
      docker: new Dockerode({ socketPath: "/nonexistent/docker.sock" }),
    })
    expect(selected.sandbox.kind).toBe("local-process")
    expect(selected.reason).toMatch(/Docker engine unreachable/)
    expect(selected.sandbox.warning).toMatch(/NOT A SECURITY BOUNDARY/)
  })
})
