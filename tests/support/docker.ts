/**
 * Whether a Docker engine and the locally built sandbox images are usable by tests. Docker tests
 * skip with the reason when they are not — unless ROLLOUT_REQUIRE_DOCKER=1 (set by .ci/run once it
 * has started a private engine and built the images), where a missing engine fails the file
 * instead. The engine is the one in DOCKER_HOST, else the default socket; start a private one with
 * `eval "$(scripts/docker/dockerd.sh)"` and build the images with scripts/docker/build-images.sh.
 */
import * as fs from "node:fs"
import Dockerode from "dockerode"

export const pythonImage = "rollout-python:local"
export const nodeImage = "rollout-node:local"

export type DockerForTests =
  | { readonly ok: true; readonly docker: Dockerode }
  | { readonly ok: false; readonly reason: string }

const withTimeout = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)
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

/** Pings the engine and checks the images; never throws. */
export const probeDocker = async (images: ReadonlyArray<string>): Promise<DockerForTests> => {
  const host = process.env.DOCKER_HOST
  if (host === undefined || host === "") {
    if (!fs.existsSync("/var/run/docker.sock")) {
      return { ok: false, reason: "no DOCKER_HOST and no /var/run/docker.sock" }
    }
  } else if (host.startsWith("unix://") && !fs.existsSync(host.slice("unix://".length))) {
    return { ok: false, reason: `DOCKER_HOST=${host}: no such socket` }
  }
  const where = host ?? "unix:///var/run/docker.sock"
  try {
    const docker = new Dockerode()
    await withTimeout(docker.ping(), 5_000, `Docker engine at ${where}`)
    for (const image of images) {
      try {
        await withTimeout(docker.getImage(image).inspect(), 5_000, `image ${image}`)
      } catch {
        return {
          ok: false,
          reason: `image ${image} missing on ${where} (run scripts/docker/build-images.sh)`,
        }
      }
    }
    return { ok: true, docker }
  } catch (error) {
    return { ok: false, reason: `Docker engine at ${where} unreachable: ${(error as Error).message}` }
  }
}

/**
 * The probe for a test file: fails loudly when CI requires Docker and it is not there, otherwise
 * prints why the Docker tests of this file are skipped.
 */
export const dockerForTests = async (
  file: string,
  images: ReadonlyArray<string>,
): Promise<DockerForTests> => {
  const found = await probeDocker(images)
  if (!found.ok) {
    if (process.env.ROLLOUT_REQUIRE_DOCKER === "1") {
      throw new Error(`ROLLOUT_REQUIRE_DOCKER=1 but ${found.reason}`)
    }
    console.warn(`[${file}] Docker tests SKIPPED: ${found.reason}`)
  }
  return found
}

/** A unique owner label value per test run, so parallel files never reconcile each other's containers. */
export const testOwner = (tag: string): string =>
  `test-${process.pid}-${Date.now().toString(36)}/${tag}-${Math.random().toString(36).slice(2, 8)}`
