/**
 * Runs the compiled `rollout` CLI as a user would (`node bin/rollout.js …` in a working
 * directory) and gives back its exit code, both outputs and how long it took — a failing exit is
 * a result to look at, not a thrown error. Tests bind their own working directory, data dir and
 * environment around it.
 */
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)
const cli = path.resolve("bin/rollout.js")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

export const runRollout = async (
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number },
): Promise<CliResult> => {
  const started = performance.now()
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      maxBuffer: 64 << 20,
      ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    })
    return { code: 0, stdout, stderr, ms: performance.now() - started }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, ms: performance.now() - started }
  }
}
