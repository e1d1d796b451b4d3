/**
 * The `execute_code` MCP server: one tool, `execute_code {code, language?: "python", timeout_s?}`,
 * that runs the code with `python3 -u -` (the program arrives on stdin) in a fresh sandbox per call
 * and answers with the exit status, stdout and stderr as text — truncation, a timeout and an
 * out-of-memory kill are marked explicitly — plus the same as structured content. The sandbox is
 * the caller's choice (`selectSandbox` prefers Docker); with the local-process sandbox the server's
 * instructions, the tool's description and every result's `_meta` carry its warning.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import type { Sandbox, SandboxExit, SandboxLimits } from "../../../actors/tools/sandbox/sandbox.ts"

export interface ExecuteCodeServerOptions {
  readonly sandbox: Sandbox
  /** Limits of each call; `wallClockMs` is also the ceiling of `timeout_s`. */
  readonly limits: SandboxLimits
  /** The Docker image with python3 (default rollout-python:local); the local sandbox ignores it. */
  readonly image?: string
  /** The interpreter (default "python3"). */
  readonly python?: string
  /** Extra container labels per call (next to `rollout.tool=execute_code`). */
  readonly labels?: Readonly<Record<string, string>>
}

export const executeCodeToolName = "execute_code"
export const defaultPythonImage = "rollout-python:local"
/** The `_meta` key of every result: how the code ran (backend, isolation, warning, exit). */
export const sandboxMetaKey = "rollout/sandbox"

const isolationSentence = (sandbox: Sandbox): string =>
  sandbox.isolation === "container"
    ? "Each call runs in a fresh Docker container: no network, read-only root (only /tmp is writable), no capabilities, a non-root user, memory/CPU/process limits."
    : (sandbox.warning ?? "Each call runs as a local process.")

export const executeCodeInstructions = (sandbox: Sandbox, limits: SandboxLimits): string =>
  [
    "execute_code runs Python 3 code in a fresh sandbox per call (nothing persists between calls) and returns the exit status, stdout and stderr.",
    isolationSentence(sandbox),
    `Limits per call: ${limits.wallClockMs / 1000} s wall clock, ${limits.memoryMb} MB memory, ${limits.outputBytes} bytes of output (stdout and stderr together; the program is stopped past it).`,
    "Print what you need to see; only stdout and stderr come back.",
  ].join("\n")

const describeExit = (exit: SandboxExit, limits: SandboxLimits, timeoutMs: number): string[] => {
  const lines: string[] = []
  if (exit.code !== null) lines.push(`exit code: ${exit.code}`)
  else lines.push(`exit: killed by ${exit.signal ?? "a signal"}`)
  if (exit.timedOut) lines.push(`[timed out after ${timeoutMs / 1000} s: the program was killed]`)
  if (exit.oomKilled === true)
    lines.push(`[out of memory: the program was killed at the ${limits.memoryMb} MB limit]`)
  if (exit.outputTruncated) {
    lines.push(
      `[output truncated: stdout and stderr together exceeded ${limits.outputBytes} bytes; the rest was dropped and the program was stopped]`,
    )
  }
  return lines
}

const section = (name: string, text: string): string =>
  text === "" ? `${name}: (empty)` : `${name}:\n${text.endsWith("\n") ? text.slice(0, -1) : text}`

export const createExecuteCodeServer = (options: ExecuteCodeServerOptions): McpServer => {
  const { sandbox, limits } = options
  const server = new McpServer(
    { name: "rollout-execute-code", version: "0.1.0" },
    { instructions: executeCodeInstructions(sandbox, limits) },
  )
  const baseMeta = {
    backend: sandbox.kind,
    isolation: sandbox.isolation,
    ...(sandbox.warning === undefined ? {} : { warning: sandbox.warning }),
  }

  server.registerTool(
    executeCodeToolName,
    {
      title: "Execute code",
      description: `Run Python 3 code and get its stdout, stderr and exit code. ${isolationSentence(sandbox)} Default and maximum timeout: ${limits.wallClockMs / 1000} s.`,
      inputSchema: {
        code: z
          .string()
          .describe("The complete Python 3 program; it is read from stdin, so input() sees EOF."),
        language: z.enum(["python"]).optional().describe('Only "python" (the default).'),
        timeout_s: z
          .number()
          .positive()
          .optional()
          .describe(`Seconds before the program is killed (at most ${limits.wallClockMs / 1000}).`),
      },
      outputSchema: {
        exit_code: z.number().nullable(),
        signal: z.string().nullable(),
        stdout: z.string(),
        stderr: z.string(),
        timed_out: z.boolean(),
        output_truncated: z.boolean(),
        oom_killed: z.boolean(),
        backend: z.string(),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
      _meta: { [sandboxMetaKey]: baseMeta },
    },
    async ({ code, timeout_s }): Promise<CallToolResult> => {
      const timeoutMs = Math.min(
        limits.wallClockMs,
        timeout_s === undefined ? limits.wallClockMs : Math.max(1, Math.round(timeout_s * 1000)),
      )
      let handle: Awaited<ReturnType<Sandbox["start"]>>
      try {
        handle = await sandbox.start({
          image: options.image ?? defaultPythonImage,
          command: options.python ?? "python3",
          args: ["-u", "-"],
          limits: { ...limits, wallClockMs: timeoutMs },
          network: "none",
          readOnlyRoot: true,
          labels: { ...options.labels, "rollout.tool": executeCodeToolName },
        })
      } catch (error) {
        return {
          isError: true,
          content: [{ type: "text", text: `the sandbox could not start: ${(error as Error).message}` }],
          _meta: { [sandboxMetaKey]: baseMeta },
        }
      }
      const stdout: Buffer[] = []
      const stderr: Buffer[] = []
      handle.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
      handle.stderr.on("data", (chunk: Buffer) => stderr.push(chunk))
      handle.stdin.end(code)
      const exit = await handle.wait()
      const out = Buffer.concat(stdout).toString("utf8")
      const err = Buffer.concat(stderr).toString("utf8")
      const text = [
        ...describeExit(exit, limits, timeoutMs),
        section("stdout", out),
        section("stderr", err),
      ].join("\n")
      return {
        content: [{ type: "text", text }],
        structuredContent: {
          exit_code: exit.code,
          signal: exit.signal,
          stdout: out,
          stderr: err,
          timed_out: exit.timedOut,
          output_truncated: exit.outputTruncated,
          oom_killed: exit.oomKilled === true,
          backend: sandbox.kind,
        },
        _meta: {
          [sandboxMetaKey]: {
            ...baseMeta,
            sandboxId: handle.id,
            exitCode: exit.code,
            signal: exit.signal,
            timedOut: exit.timedOut,
            outputTruncated: exit.outputTruncated,
            oomKilled: exit.oomKilled === true,
          },
        },
      }
    },
  )
  return server
}
