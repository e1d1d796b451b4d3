/**
 * What a benchmark starts and must stop again: temp directories, servers, scoped Effect resources.
 * Released newest first, once, on success, on error and on Ctrl-C.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

export type Cleanup = () => Promise<void>

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

export class Resources {
  private readonly cleanups: Cleanup[] = []
  private running: Promise<void> | undefined

  add(cleanup: Cleanup): void {
    this.cleanups.push(cleanup)
  }

  tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    this.add(async () => fs.rmSync(dir, { recursive: true, force: true }))
    return dir
  }

  async scoped<A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> {
    const scope = await run(Scope.make())
    this.add(() => run(Scope.close(scope, Exit.void)))
    return run(Scope.provide(scope)(effect))
  }

  /** Runs every cleanup once, newest first, even if one fails. */
  release(): Promise<void> {
    this.running ??= (async () => {
      for (const cleanup of this.cleanups.reverse()) {
        await cleanup().catch((error: unknown) => process.stderr.write(`cleanup failed: ${String(error)}\n`))
      }
    })()
    return this.running
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc; undefined where unreadable. */
export const processCpuSeconds = (pid: number | undefined): number | undefined => {
  if (pid === undefined) return undefined
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** CPU used by this process and by `serverPid` while `work` runs, in seconds. */
export const measureCpu = async <A>(
  serverPid: number | undefined,
  work: () => Promise<A>,
): Promise<{ readonly result: A; readonly clientCpu: number; readonly serverCpu: number | undefined }> => {
  const server0 = processCpuSeconds(serverPid)
  const client0 = process.cpuUsage()
  const result = await work()
  const client = process.cpuUsage(client0)
  const server1 = processCpuSeconds(serverPid)
  return {
    result,
    clientCpu: (client.user + client.system) / 1e6,
    serverCpu: server0 === undefined || server1 === undefined ? undefined : server1 - server0,
  }
}
