/**
 * The sandbox port: start one process from a spec, talk to it over stdin/stdout/stderr, and learn
 * how it ended. Two adapters implement it: `docker.ts` (a container per process: no network,
 * read-only root, memory/CPU/pids limits, no capabilities) and `localProcess.ts` (a host process
 * with rlimits and, where the host allows, a private network namespace — much weaker, and it says
 * so in `warning`). Both enforce the wall clock and the output cap themselves, and both leave
 * nothing behind once `wait()` has resolved.
 */
import type { Readable, Writable } from "node:stream"

export interface SandboxLimits {
  /** Memory the process (tree) may use; Docker: the cgroup limit (no swap); local: RLIMIT_DATA. */
  readonly memoryMb: number
  /** CPU share; Docker: NanoCpus; local: only a CPU-time ceiling (wall clock × cpus). */
  readonly cpus: number
  /** Processes/threads; Docker: PidsLimit; local: RLIMIT_NPROC (per user, see the local adapter). */
  readonly pids: number
  /** Killed (SIGKILL) this long after start; the exit then says `timedOut`. */
  readonly wallClockMs: number
  /** stdout + stderr together; output beyond is dropped, the process is killed, the exit says so. */
  readonly outputBytes: number
}

export interface SandboxMount {
  readonly hostPath: string
  readonly containerPath: string
  readonly readOnly: boolean
}

export type SandboxNetwork = "none" | "loopback-only"

export interface SandboxSpec {
  /** Docker: the image (the adapter's default image when absent); ignored by the local adapter. */
  readonly image?: string
  /** The program; looked up on the sandbox's PATH. */
  readonly command: string
  readonly args?: ReadonlyArray<string>
  /** The whole environment the program sees on top of the image's (local: on top of a minimal PATH/HOME). */
  readonly env?: Readonly<Record<string, string>>
  /** Docker: the image's working directory when absent; local: a fresh scratch directory. */
  readonly cwd?: string
  /** stdin is always a pipe; end it (`stdin.end()`) when the program reads to EOF. */
  readonly stdin?: "pipe"
  readonly limits: SandboxLimits
  /** Default "none". Docker gives both a private loopback only; see each adapter. */
  readonly network?: SandboxNetwork
  /** Default true (Docker; the local adapter cannot enforce it and reports so). */
  readonly readOnlyRoot?: boolean
  readonly mounts?: ReadonlyArray<SandboxMount>
  /** Docker: container labels, next to `rollout.sandbox=1` and `rollout.owner=<owner>`. */
  readonly labels?: Readonly<Record<string, string>>
  /** Docker: `user[:group]`; default: the image's user, or 65534 (nobody) when the image runs as root. */
  readonly user?: string
}

export interface SandboxExit {
  /** The exit code, or null when the process died of a signal. */
  readonly code: number | null
  /** The signal that ended the process (e.g. "SIGKILL"), or null. */
  readonly signal: string | null
  /** The wall clock ran out and the sandbox killed the process. */
  readonly timedOut: boolean
  /** `kill()` was called before the process ended by itself. */
  readonly killed: boolean
  /** Output went past `limits.outputBytes`: the rest was dropped and the process killed. */
  readonly outputTruncated: boolean
  /** Docker: the kernel's OOM killer ended the process (absent where the adapter cannot tell). */
  readonly oomKilled?: boolean
}

export interface SandboxHandle {
  /** Docker: the container id; local: `local-<uuid>`. */
  readonly id: string
  readonly stdin: Writable
  /** Demultiplexed (no TTY); ends once the process and its output are done. */
  readonly stdout: Readable
  readonly stderr: Readable
  /**
   * Resolves once the process has ended, its output is flushed into `stdout`/`stderr` and the
   * sandbox is cleaned up (container removed, process group killed, scratch directory deleted).
   * Output is buffered up to `outputBytes` whether or not it is read, so waiting never deadlocks.
   */
  readonly wait: () => Promise<SandboxExit>
  /** SIGKILL now; harmless after the end. Resolves when the kill was delivered, not when ended. */
  readonly kill: () => Promise<void>
}

/** Whether one protection is in force with this adapter on this host, and how (or why not). */
export interface IsolationAspect {
  readonly enforced: boolean
  readonly detail: string
}

export interface IsolationReport {
  readonly network: IsolationAspect
  readonly filesystem: IsolationAspect
  readonly readOnlyRoot: IsolationAspect
  readonly memory: IsolationAspect
  readonly cpu: IsolationAspect
  readonly pids: IsolationAspect
  readonly user: IsolationAspect
  readonly processes: IsolationAspect
  readonly wallClock: IsolationAspect
  readonly output: IsolationAspect
}

export interface Sandbox {
  readonly kind: "docker" | "local-process"
  /** "container" for Docker; "process" for the local adapter, which is not a security boundary. */
  readonly isolation: "container" | "process"
  /** Set when the isolation is weak; meant to be shown to whoever relies on the sandbox. */
  readonly warning: string | undefined
  readonly report: IsolationReport
  readonly start: (spec: SandboxSpec) => Promise<SandboxHandle>
  /** Ids of the sandboxes this instance started whose `wait()` has not resolved yet. */
  readonly live: () => ReadonlyArray<string>
  /** Kills and cleans up every sandbox this instance started that is still running. */
  readonly close: () => Promise<void>
}

export class SandboxError extends Error {
  override readonly name = "SandboxError"
}

export const defaultSandboxLimits: SandboxLimits = {
  memoryMb: 512,
  cpus: 1,
  pids: 64,
  wallClockMs: 30_000,
  outputBytes: 1024 * 1024,
}

/** The label every sandbox container carries, and the one naming its owner (`<namespace>/<pool>`). */
export const sandboxLabel = "rollout.sandbox"
export const ownerLabel = "rollout.owner"
