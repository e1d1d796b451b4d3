// Test-only: a pool process with Docker replicas that a test kills with SIGKILL. Runs the built
// code (dist/). argv: <dataDir> <namespace> <owner> <node_modules dir>
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import { startDock } from "../../dist/src/actors/tools/dock.js"
import { createDockerSandbox } from "../../dist/src/actors/tools/sandbox/docker.js"
import { toolsConfigFrom } from "../../dist/src/actors/tools/toolsConfig.js"
import { makeEmbeddedLog } from "../../dist/src/events/log/embeddedLog.js"

const [dataDir, namespace, owner, modules] = process.argv.slice(2)
const config = toolsConfigFrom({
  servers: {
    memory: {
      transport: "docker",
      image: "rollout-node:local",
      command: "node",
      args: ["/opt/mcp/node_modules/@modelcontextprotocol/server-memory/dist/index.js"],
      env: { MEMORY_FILE_PATH: "/tmp/memory.jsonl" },
      mounts: [{ hostPath: modules, containerPath: "/opt/mcp/node_modules", readOnly: true }],
      replicas: 2,
      memoryMb: 256,
    },
  },
})
if (Result.isFailure(config)) throw new Error(config.failure.message)
const scope = await Effect.runPromise(Scope.make())
const log = await Effect.runPromise(
  Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace, fsync: "always" })),
)
const sandbox = createDockerSandbox({ owner })
const dock = await startDock({ log, config: config.success, sandbox, sandboxOwner: owner, sampleEveryMs: 0 })
const ids = dock.status()[0].replicas.map((r) => r.sandboxId)
// Give the recorder a moment to write the ToolReplicaStarted events before saying so.
await new Promise((r) => setTimeout(r, 300))
process.stdout.write(`UP ${ids.join(",")}\n`)
setInterval(() => undefined, 1 << 30)
