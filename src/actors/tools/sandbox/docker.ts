/**
 * The Docker sandbox (dockerode): one fresh container per process, created with
 * `NetworkMode: "none"` (a private loopback only), a read-only root with a tmpfs /tmp, Memory =
 * MemorySwap (no swap), NanoCpus, PidsLimit, `no-new-privileges`, every capability dropped, the
 * image's non-root user (or 65534 when the image runs as root), logging off, and labels
 * `rollout.sandbox=1` and `rollout.owner=<namespace>/<pool>`. stdin/stdout/stderr are attached
 * before start without a TTY and demultiplexed with `docker.modem.demuxStream`. AutoRemove is off:
 * the adapter removes the container itself once it has read the exit state (OOM kill included).
 *
 * A container whose owning process died (kill -9) keeps running: `reconcileOrphans` removes every
 * container of an owner that the caller does not know as live; `listOwned` shows them.
 */
import * as os from "node:os"
import { Writable } from "node:stream"
import Dockerode from "dockerode"
import { cappedOutput, deferred } from "./output.ts"
import {
  type IsolationReport,
  ownerLabel,
  type Sandbox,
  SandboxError,
  type SandboxExit,
  type SandboxHandle,
  type SandboxSpec,
  sandboxLabel,
} from "./sandbox.ts"

export interface DockerSandboxOptions {
  /** `<namespace>/<pool>`: the `rollout.owner` label of every container this instance starts. */
  readonly owner: string
  /** Default: `new Dockerode()`, which follows DOCKER_HOST (or the default socket). */
  readonly docker?: Dockerode
  /** The image when a spec names none. */
  readonly defaultImage?: string
  /** Size of the tmpfs on /tmp (default 64 MB). */
  readonly tmpfsMb?: number
}

export interface OwnedSandbox {
  readonly id: string
  /** Docker's state: "created", "running", "exited", … */
  readonly state: string
  readonly createdAt: Date
  readonly labels: Readonly<Record<string, string>>
}

export interface DockerSandbox extends Sandbox {
  readonly kind: "docker"
  readonly isolation: "container"
  readonly docker: Dockerode
  readonly owner: string
  /** Every sandbox container carrying `rollout.owner=<owner>`, running or not. */
  readonly listOwned: (owner: string) => Promise<ReadonlyArray<OwnedSandbox>>
  /**
   * Force-removes every container of `owner` whose id is not in `knownLiveIds` (full ids, or
   * prefixes of at least 12 characters) and returns the removed ids. Containers this instance
   * started and still runs are never removed, even when missing from the set.
   */
  readonly reconcileOrphans: (
    knownLiveIds: ReadonlySet<string>,
    owner: string,
  ) => Promise<ReadonlyArray<string>>
}

export const dockerIsolationReport: IsolationReport = {
  network: {
    enforced: true,
    detail: 'NetworkMode "none": a private loopback only, for both "none" and "loopback-only"',
  },
  filesystem: { enforced: true, detail: "the image's filesystem only, plus the spec's mounts" },
  readOnlyRoot: { enforced: true, detail: "ReadonlyRootfs (unless readOnlyRoot: false); tmpfs on /tmp" },
  memory: { enforced: true, detail: "cgroup memory limit, no swap; the OOM killer ends the process" },
  cpu: { enforced: true, detail: "NanoCpus (CFS quota)" },
  pids: { enforced: true, detail: "PidsLimit (pids cgroup)" },
  user: {
    enforced: true,
    detail: "the image's non-root user (65534 when it runs as root), CapDrop ALL, no-new-privileges",
  },
  processes: { enforced: true, detail: "private PID namespace; killing the container kills every process" },
  wallClock: { enforced: true, detail: "SIGKILL to the container" },
  output: { enforced: true, detail: "stdout+stderr capped; the container is killed past the cap" },
}

const statusOf = (error: unknown): number | undefined =>
  typeof error === "object" && error !== null && "statusCode" in error
    ? (error as { statusCode?: number }).statusCode
    : undefined

const signalNames = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n, name]))

/**
 * Docker reports a process killed by signal N as exit code 128 + N; read it back as a signal
 * (a program that itself exits with such a code reads as that signal too).
 */
const decodeStatus = (status: number): { code: number | null; signal: string | null } => {
  const signal = status > 128 ? signalNames.get(status - 128) : undefined
  return signal === undefined ? { code: status, signal: null } : { code: null, signal }
}

export const createDockerSandbox = (options: DockerSandboxOptions): DockerSandbox => {
  const docker = options.docker ?? new Dockerode()
  const live = new Map<string, SandboxHandle>()
  /** Created but not yet handed out: reconcileOrphans must not take them for orphans. */
  const starting = new Set<string>()
  const imageUsers = new Map<string, Promise<string>>()

  const userOf = (image: string): Promise<string> => {
    const known = imageUsers.get(image)
    if (known) return known
    const lookup = docker
      .getImage(image)
      .inspect()
      .then(
        (info) => {
          const user = info.Config?.User ?? ""
          return user === "" || user === "root" || user === "0" || user.startsWith("0:")
            ? "65534:65534"
            : user
        },
        (error: unknown) => {
          imageUsers.delete(image)
          throw statusOf(error) === 404
            ? new SandboxError(
                `image ${image} not found on the Docker engine; build it with scripts/docker/build-images.sh`,
              )
            : new SandboxError(`cannot inspect image ${image}: ${(error as Error).message}`)
        },
      )
    imageUsers.set(image, lookup)
    return lookup
  }

  const forceRemove = async (id: string): Promise<boolean> => {
    try {
      await docker.getContainer(id).remove({ force: true, v: true })
      return true
    } catch {
      return false // already gone (404), or the engine refused: reconcileOrphans retries later
    }
  }

  const start = async (spec: SandboxSpec): Promise<SandboxHandle> => {
    const image = spec.image ?? options.defaultImage
    if (image === undefined) throw new SandboxError("no image: the spec names none and there is no default")
    const user = spec.user ?? (await userOf(image))
    const { limits } = spec
    const memoryBytes = Math.floor(limits.memoryMb * 1024 * 1024)
    const container = await docker
      .createContainer({
        Image: image,
        Entrypoint: [spec.command],
        Cmd: [...(spec.args ?? [])],
        Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(spec.cwd === undefined ? {} : { WorkingDir: spec.cwd }),
        User: user,
        Labels: { ...spec.labels, [sandboxLabel]: "1", [ownerLabel]: options.owner },
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        OpenStdin: true,
        StdinOnce: true,
        Tty: false,
        HostConfig: {
          NetworkMode: "none",
          ReadonlyRootfs: spec.readOnlyRoot ?? true,
          Tmpfs: { "/tmp": `rw,nosuid,nodev,noexec,size=${options.tmpfsMb ?? 64}m,mode=1777` },
          Memory: memoryBytes,
          MemorySwap: memoryBytes,
          NanoCpus: Math.round(limits.cpus * 1e9),
          PidsLimit: limits.pids,
          SecurityOpt: ["no-new-privileges"],
          CapDrop: ["ALL"],
          IpcMode: "private",
          AutoRemove: false,
          LogConfig: { Type: "none", Config: {} },
          Ulimits: [{ Name: "core", Soft: 0, Hard: 0 }],
          Mounts: (spec.mounts ?? []).map((m) => ({
            Type: "bind" as const,
            Source: m.hostPath,
            Target: m.containerPath,
            ReadOnly: m.readOnly,
          })),
        },
      })
      .catch((error: unknown) => {
        throw new SandboxError(`cannot create a container from ${image}: ${(error as Error).message}`)
      })
    const id = container.id
    starting.add(id)

    let timedOut = false
    let killed = false
    let exited = false
    const sendKill = async (): Promise<void> => {
      try {
        await container.kill({ signal: "SIGKILL" })
      } catch {
        // 404/409: already gone or not running.
      }
    }
    const output = cappedOutput(limits.outputBytes, () => void sendKill())

    let socket: NodeJS.ReadWriteStream
    try {
      socket = await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })
    } catch (error) {
      await forceRemove(id)
      starting.delete(id)
      throw new SandboxError(`cannot attach to container ${id}: ${(error as Error).message}`)
    }
    // Writes after the program stopped reading fail (EPIPE); the exit tells the story.
    socket.on("error", () => {})
    const attachEnded = new Promise<void>((resolve) => {
      socket.once("end", resolve)
      socket.once("close", resolve)
      socket.once("error", () => resolve())
    })
    docker.modem.demuxStream(
      socket,
      new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          output.writeStdout(chunk)
          callback()
        },
      }),
      new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          output.writeStderr(chunk)
          callback()
        },
      }),
    )
    const stdin = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (exited) return callback()
        socket.write(chunk, () => callback())
      },
      final: (callback) => {
        socket.end()
        callback()
      },
    })

    try {
      await container.start()
    } catch (error) {
      ;(socket as unknown as { destroy?: () => void }).destroy?.()
      output.end()
      await forceRemove(id)
      starting.delete(id)
      throw new SandboxError(`cannot start container ${id}: ${(error as Error).message}`)
    }
    const timer = setTimeout(() => {
      timedOut = true
      void sendKill()
    }, limits.wallClockMs)

    const done = deferred<SandboxExit>()
    const finish = async (): Promise<void> => {
      let status = -1
      try {
        const result = (await container.wait()) as { StatusCode?: number }
        status = result.StatusCode ?? -1
      } catch {}
      exited = true
      clearTimeout(timer)
      // The attach stream ends when the container stops; never wait on it forever.
      let grace: NodeJS.Timeout | undefined
      await Promise.race([attachEnded, new Promise((resolve) => (grace = setTimeout(resolve, 2_000)))])
      clearTimeout(grace)
      ;(socket as unknown as { destroy?: () => void }).destroy?.()
      output.end()
      let oomKilled = false
      try {
        oomKilled = (await container.inspect()).State.OOMKilled === true
      } catch {}
      await forceRemove(id)
      live.delete(id)
      done.resolve({
        ...decodeStatus(status),
        timedOut,
        killed: killed && !timedOut,
        outputTruncated: output.truncated(),
        oomKilled,
      })
    }
    void finish()

    const handle: SandboxHandle = {
      id,
      stdin,
      stdout: output.stdout,
      stderr: output.stderr,
      wait: () => done.promise,
      kill: async () => {
        if (exited) return
        killed = true
        await sendKill()
      },
    }
    live.set(id, handle)
    starting.delete(id)
    return handle
  }

  const listOwned = async (owner: string): Promise<ReadonlyArray<OwnedSandbox>> => {
    const containers = await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`${sandboxLabel}=1`, `${ownerLabel}=${owner}`] }),
    })
    return containers.map((c) => ({
      id: c.Id,
      state: c.State,
      createdAt: new Date(c.Created * 1000),
      labels: c.Labels,
    }))
  }

  const reconcileOrphans = async (
    knownLiveIds: ReadonlySet<string>,
    owner: string,
  ): Promise<ReadonlyArray<string>> => {
    const known = [...knownLiveIds]
    const isKnown = (id: string) =>
      live.has(id) ||
      starting.has(id) ||
      knownLiveIds.has(id) ||
      known.some((k) => k.length >= 12 && id.startsWith(k))
    const orphans = (await listOwned(owner)).filter((c) => !isKnown(c.id))
    const removed: string[] = []
    for (const orphan of orphans) {
      if (await forceRemove(orphan.id)) removed.push(orphan.id)
    }
    return removed
  }

  return {
    kind: "docker",
    isolation: "container",
    warning: undefined,
    report: dockerIsolationReport,
    docker,
    owner: options.owner,
    start,
    live: () => [...live.keys()],
    listOwned,
    reconcileOrphans,
    close: async () => {
      const handles = [...live.values()]
      await Promise.all(handles.map((h) => h.kill()))
      await Promise.all(handles.map((h) => h.wait()))
    },
  }
}
