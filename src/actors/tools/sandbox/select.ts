/**
 * Picks the strongest sandbox this host offers: Docker when an engine answers and the image is
 * there, else the local-process adapter — whose `warning` the caller must pass on (the
 * `execute_code` server puts it in its instructions and in every result's metadata).
 */
import Dockerode from "dockerode"
import { createDockerSandbox, type DockerSandbox } from "./docker.ts"
import {
  createLocalProcessSandbox,
  type LocalProcessSandbox,
  type LocalProcessSandboxOptions,
} from "./localProcess.ts"

export interface SelectSandboxOptions {
  /** `<namespace>/<pool>` for the Docker containers' owner label. */
  readonly owner: string
  /** The image the Docker sandbox needs (and its default image). */
  readonly image: string
  readonly docker?: Dockerode
  /** How long to wait for the engine's ping (default 3 s). */
  readonly pingTimeoutMs?: number
  readonly local?: LocalProcessSandboxOptions
  /** "local" skips Docker; "docker" fails instead of falling back. Default "auto". */
  readonly prefer?: "auto" | "docker" | "local"
}

export interface SelectedSandbox {
  readonly sandbox: DockerSandbox | LocalProcessSandbox
  /** Why this one: e.g. "Docker engine unreachable: …" when it fell back to the local process. */
  readonly reason: string
}

const within = <A>(promise: Promise<A>, ms: number): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })

/** Why Docker cannot be used with `image`, or undefined when it can. */
export const dockerUnavailable = async (
  docker: Dockerode,
  image: string,
  timeoutMs = 3_000,
): Promise<string | undefined> => {
  try {
    await within(docker.ping(), timeoutMs)
  } catch (error) {
    return `Docker engine unreachable: ${(error as Error).message}`
  }
  try {
    await within(docker.getImage(image).inspect(), timeoutMs)
  } catch {
    return `image ${image} missing on the Docker engine (scripts/docker/build-images.sh builds it)`
  }
  return undefined
}

export const selectSandbox = async (options: SelectSandboxOptions): Promise<SelectedSandbox> => {
  const prefer = options.prefer ?? "auto"
  if (prefer !== "local") {
    let docker: Dockerode | undefined
    let why: string | undefined
    try {
      docker = options.docker ?? new Dockerode()
      why = await dockerUnavailable(docker, options.image, options.pingTimeoutMs)
    } catch (error) {
      why = `Docker client: ${(error as Error).message}`
    }
    if (docker !== undefined && why === undefined) {
      return {
        sandbox: createDockerSandbox({ owner: options.owner, docker, defaultImage: options.image }),
        reason: `Docker engine answers and ${options.image} is present`,
      }
    }
    if (prefer === "docker") throw new Error(why)
    return {
      sandbox: await createLocalProcessSandbox(options.local),
      reason: `${why}; using the local process`,
    }
  }
  return { sandbox: await createLocalProcessSandbox(options.local), reason: "local process requested" }
}
