/**
 * The local-process sandbox: the program runs as an ordinary host process — NOT a security
 * boundary, and it says so (`isolation: "process"`, `warning`, and a per-aspect `report`).
 *
 * What it does, each only where the host has the tool (probed once at creation):
 * - `prlimit`: RLIMIT_DATA = memoryMb (an allocation past it fails; no OOM kill), RLIMIT_CPU =
 *   wall clock × cpus (a CPU-time ceiling, not a share), RLIMIT_CORE = 0, and RLIMIT_NPROC = pids
 *   when the process runs under a dedicated uid (the limit counts every process of that uid).
 * - `unshare -n` (as root) or `unshare -r -n` (unprivileged user namespaces): a private network
 *   namespace, so neither the host's loopback nor the outside is reachable. "loopback-only" brings
 *   the private `lo` up when `ip` exists.
 * - `setpriv`: when running as root, drop to uid/gid 65534 (nobody) with no capabilities and
 *   no_new_privs; otherwise just no_new_privs; and SIGKILL to the program if this process dies.
 * - always: a clean environment (PATH, HOME, TMPDIR, LANG plus the spec's env), a private scratch
 *   directory as cwd/HOME/TMPDIR (deleted afterwards), a new process group killed with SIGKILL on
 *   the wall clock, on `kill()`, on output overflow and when the main process exits.
 *
 * What it does not: the host filesystem stays visible (readable as that uid, writable where the
 * uid may write), `readOnlyRoot` and mount remapping are impossible, host processes are visible,
 * CPU is not shared out, and a descendant that calls setsid() leaves the process group.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cappedOutput, deferred } from "./output.ts"
import {
  type IsolationReport,
  type Sandbox,
  SandboxError,
  type SandboxExit,
  type SandboxHandle,
  type SandboxSpec,
} from "./sandbox.ts"

export interface LocalProcessSandboxOptions {
  /** When this process is root, run sandboxes as this uid/gid (default 65534/65534); null keeps root. */
  readonly runAs?: { readonly uid: number; readonly gid: number } | null
  /** Where scratch directories go (default: the OS temp directory). */
  readonly scratchRoot?: string
  /** Disable the network namespace even where available (for tests of the report). */
  readonly network?: "isolate-if-possible" | "host"
}

export interface LocalProcessSandbox extends Sandbox {
  readonly kind: "local-process"
  readonly isolation: "process"
  readonly warning: string
}

const defaultPath = "/usr/local/bin:/usr/bin:/bin"
const searchPath = `${process.env.PATH ?? defaultPath}:/usr/local/sbin:/usr/sbin:/sbin`

const findTool = (name: string): string | undefined => {
  for (const dir of searchPath.split(":")) {
    if (dir === "") continue
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

const works = (command: string, args: ReadonlyArray<string>): boolean => {
  const result = spawnSync(command, args, { stdio: "ignore", timeout: 5_000 })
  return result.status === 0
}

interface Tools {
  readonly prlimit: string | undefined
  readonly setpriv: string | undefined
  readonly ip: string | undefined
  /** The unshare arguments that give a private network namespace here, if any. */
  readonly unshareNet: ReadonlyArray<string> | undefined
  readonly netProbe: string
  readonly runAs: { readonly uid: number; readonly gid: number } | undefined
}

const probeTools = (options: LocalProcessSandboxOptions): Tools => {
  const isRoot = process.getuid?.() === 0
  const prlimit = findTool("prlimit")
  const setpriv = findTool("setpriv")
  const ip = findTool("ip")
  const unshare = findTool("unshare")
  let unshareNet: ReadonlyArray<string> | undefined
  let netProbe: string
  if (options.network === "host") {
    netProbe = "disabled by the adapter's options"
  } else if (unshare === undefined) {
    netProbe = "`unshare` (util-linux) is not installed"
  } else if (works(unshare, ["-n", "true"])) {
    unshareNet = [unshare, "-n"]
    netProbe = "unshare -n"
  } else if (works(unshare, ["-r", "-n", "true"])) {
    unshareNet = [unshare, "-r", "-n"]
    netProbe = "unshare -r -n (user namespace)"
  } else {
    netProbe = "neither `unshare -n` nor `unshare -r -n` is permitted for this user"
  }
  const wanted = options.runAs === undefined ? { uid: 65534, gid: 65534 } : options.runAs
  const runAs = isRoot && setpriv !== undefined && wanted !== null ? wanted : undefined
  return { prlimit, setpriv, ip, unshareNet, netProbe, runAs }
}

const reportFor = (tools: Tools): IsolationReport => {
  const uid = process.getuid?.() ?? -1
  const who = tools.runAs !== undefined ? `uid ${tools.runAs.uid}` : `uid ${uid}`
  return {
    network: tools.unshareNet
      ? {
          enforced: true,
          detail: `private network namespace (${tools.netProbe}): only its own loopback, ${
            tools.ip ? "brought up for loopback-only" : "down even for loopback-only (no `ip`)"
          }`,
        }
      : { enforced: false, detail: `NOT isolated: the host's network is reachable (${tools.netProbe})` },
    filesystem: {
      enforced: false,
      detail: `NOT isolated: the host filesystem is visible, readable as ${who} and writable where ${who} may write; only the scratch directory is private`,
    },
    readOnlyRoot: { enforced: false, detail: "NOT enforced: no mount namespace" },
    memory: tools.prlimit
      ? {
          enforced: true,
          detail:
            "RLIMIT_DATA per process: an allocation past memoryMb fails (no OOM kill); each child process has its own allowance",
        }
      : { enforced: false, detail: "NOT enforced: `prlimit` is not installed" },
    cpu: {
      enforced: false,
      detail: tools.prlimit
        ? "NOT shared out: only RLIMIT_CPU caps CPU time at wall clock × cpus"
        : "NOT enforced: `prlimit` is not installed",
    },
    pids:
      tools.prlimit && tools.runAs
        ? {
            enforced: true,
            detail: `RLIMIT_NPROC for uid ${tools.runAs.uid}, counted over every process of that uid on the host (all local sandboxes together)`,
          }
        : {
            enforced: false,
            detail: tools.prlimit
              ? "NOT enforced: RLIMIT_NPROC would count every process of the host user"
              : "NOT enforced: `prlimit` is not installed",
          },
    user: tools.runAs
      ? {
          enforced: true,
          detail: `runs as uid ${tools.runAs.uid} gid ${tools.runAs.gid}, no capabilities, no_new_privs (setpriv)`,
        }
      : uid === 0
        ? { enforced: false, detail: "NOT isolated: runs as root (setpriv missing or runAs: null)" }
        : {
            enforced: false,
            detail: `runs as the host user (uid ${uid})${tools.setpriv ? " with no_new_privs" : ""}`,
          },
    processes: {
      enforced: false,
      detail: `NOT isolated: host processes are visible; the sandbox is a process group, and a descendant that calls setsid() escapes kill()${
        tools.setpriv
          ? "; if this Node process dies, the program gets SIGKILL (pdeathsig) but its children do not"
          : "; if this Node process dies, the program keeps running"
      }`,
    },
    wallClock: { enforced: true, detail: "SIGKILL to the process group" },
    output: { enforced: true, detail: "stdout+stderr capped; the process group is killed past the cap" },
  }
}

const warningFor = (report: IsolationReport): string => {
  const weak = (Object.entries(report) as Array<[string, { enforced: boolean }]>)
    .filter(([, aspect]) => !aspect.enforced)
    .map(([name]) => name)
  return (
    "WARNING: LOCAL-PROCESS SANDBOX, NOT A SECURITY BOUNDARY. Code runs as a host process " +
    `(isolation: "process"); not isolated here: ${weak.join(", ")}. ` +
    (report.network.enforced ? "The network is cut (private namespace). " : "THE NETWORK IS REACHABLE. ") +
    "Use the Docker sandbox for untrusted code."
  )
}

const killGroup = (pid: number | undefined): void => {
  if (pid === undefined) return
  try {
    process.kill(-pid, "SIGKILL")
  } catch {}
}

export const createLocalProcessSandbox = async (
  options: LocalProcessSandboxOptions = {},
): Promise<LocalProcessSandbox> => {
  const tools = probeTools(options)
  const report = reportFor(tools)
  const warning = warningFor(report)
  const scratchRoot = options.scratchRoot ?? os.tmpdir()
  const live = new Map<
    string,
    { readonly kill: () => Promise<void>; readonly wait: () => Promise<unknown> }
  >()

  const commandLine = (spec: SandboxSpec): ReadonlyArray<string> => {
    const { limits } = spec
    const argv: string[] = []
    if (tools.prlimit) {
      const cpuSeconds = Math.max(1, Math.ceil((limits.wallClockMs / 1000) * Math.max(1, limits.cpus)) + 1)
      argv.push(
        tools.prlimit,
        `--data=${Math.floor(limits.memoryMb * 1024 * 1024)}`,
        `--cpu=${cpuSeconds}`,
        "--core=0",
      )
      if (tools.runAs) argv.push(`--nproc=${limits.pids}`)
      argv.push("--")
    }
    if (tools.unshareNet) {
      argv.push(...tools.unshareNet, "--")
      if (spec.network === "loopback-only" && tools.ip) {
        argv.push("/bin/sh", "-c", `"${tools.ip}" link set lo up && exec "$@"`, "rollout-sandbox")
      }
    }
    if (tools.setpriv) {
      argv.push(tools.setpriv)
      if (tools.runAs) {
        argv.push(`--reuid=${tools.runAs.uid}`, `--regid=${tools.runAs.gid}`, "--clear-groups")
      }
      // The program dies with this process (not its own children: they are the group's).
      argv.push("--no-new-privs", "--pdeathsig", "KILL", "--")
    }
    argv.push(spec.command, ...(spec.args ?? []))
    return argv
  }

  const start = async (spec: SandboxSpec): Promise<SandboxHandle> => {
    for (const mount of spec.mounts ?? []) {
      if (path.resolve(mount.hostPath) !== path.resolve(mount.containerPath)) {
        throw new SandboxError(
          `the local-process sandbox cannot remap ${mount.hostPath} to ${mount.containerPath} (no mount namespace); use the same path or the Docker sandbox`,
        )
      }
    }
    const id = `local-${randomUUID()}`
    const scratch = fs.mkdtempSync(path.join(scratchRoot, "rollout-sandbox-"))
    fs.chmodSync(scratch, 0o700)
    if (tools.runAs) fs.chownSync(scratch, tools.runAs.uid, tools.runAs.gid)
    const removeScratch = () => fs.rmSync(scratch, { recursive: true, force: true })

    const [file, ...args] = commandLine(spec)
    let child: ChildProcess
    try {
      child = spawn(file!, args, {
        cwd: spec.cwd ?? scratch,
        env: { PATH: defaultPath, HOME: scratch, TMPDIR: scratch, LANG: "C.UTF-8", ...spec.env },
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      })
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve)
        child.once("error", reject)
      })
    } catch (error) {
      removeScratch()
      throw new SandboxError(`could not start ${spec.command}: ${(error as Error).message}`)
    }
    const pid = child.pid

    let timedOut = false
    let killed = false
    let exited = false
    const output = cappedOutput(spec.limits.outputBytes, () => killGroup(pid))
    child.stdout!.on("data", output.writeStdout)
    child.stderr!.on("data", output.writeStderr)
    child.stdin!.on("error", () => {}) // EPIPE once the program stopped reading
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(pid)
    }, spec.limits.wallClockMs)

    const done = deferred<SandboxExit>()
    child.once("exit", (code, signal) => {
      exited = true
      clearTimeout(timer)
      // Whatever the program left behind in its group dies with it, as in a container.
      killGroup(pid)
      // stdio closes once every holder of the pipes is gone; one that left the group (setsid) may
      // hold them: stop waiting for it after a grace period.
      const grace = setTimeout(() => {
        child.stdout?.destroy()
        child.stderr?.destroy()
      }, 2_000)
      const finish = () => {
        clearTimeout(grace)
        output.end()
        removeScratch()
        live.delete(id)
        done.resolve({
          code,
          signal,
          timedOut,
          killed: killed && !timedOut,
          outputTruncated: output.truncated(),
        })
      }
      // "close" follows "exit" once the stdio pipes are closed.
      child.once("close", finish)
    })

    const handle: SandboxHandle = {
      id,
      stdin: child.stdin!,
      stdout: output.stdout,
      stderr: output.stderr,
      wait: () => done.promise,
      kill: async () => {
        if (exited) return
        killed = true
        killGroup(pid)
      },
    }
    live.set(id, handle)
    return handle
  }

  return {
    kind: "local-process",
    isolation: "process",
    warning,
    report,
    start,
    live: () => [...live.keys()],
    close: async () => {
      const handles = [...live.values()]
      await Promise.all(handles.map((h) => h.kill()))
      await Promise.all(handles.map((h) => h.wait()))
    },
  }
}
