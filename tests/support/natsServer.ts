/**
 * A real `nats-server -js` for a test file: a free loopback port, a fresh temp store directory,
 * ready once JetStream answers. `stop` ends the server and removes the store; `restart` and
 * `kill9` keep both so durability can be checked. Without nats-server on PATH it fails with how
 * to install it (`npm test` installs it first through scripts/setup.sh).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startNatsServer } from "../../src/runtime/natsServerProcess.ts"

export interface TestNatsServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string
  readonly storeDir: string
  /** Stops the server (SIGTERM, then SIGKILL if it lingers) and removes the store directory. */
  readonly stop: () => Promise<void>
  /** Graceful stop and start again on the same port and store directory. */
  readonly restart: () => Promise<void>
  /** Kills the server with SIGKILL (a crash); `restart` brings it back with its data. */
  readonly kill9: () => Promise<void>
}

export const startTestNatsServer = async (
  options: { readonly token?: string } = {},
): Promise<TestNatsServer> => {
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-nats-"))
  try {
    const server = await startNatsServer({ storeDir, ...options })
    return {
      url: server.url,
      storeDir,
      stop: async () => {
        await server.stop()
        fs.rmSync(storeDir, { recursive: true, force: true })
      },
      restart: server.restart,
      kill9: server.kill9,
    }
  } catch (error) {
    fs.rmSync(storeDir, { recursive: true, force: true })
    throw error
  }
}
