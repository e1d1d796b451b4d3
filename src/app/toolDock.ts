/**
 * AgentDock as `rollout dock up` and `rollout dock call` start it: the pools of tools.yaml on the
 * runtime's log, with the Docker sandbox when one of their servers runs in Docker (it must be
 * there: pools have no silent fallback). The sandbox's containers carry the dock's owner label,
 * `<namespace>/dock`, so a later dock finds and removes what a crashed one left.
 */
import * as Effect from "effect/Effect"
import { startDock } from "../actors/tools/dock.ts"
import type { ToolsConfig } from "../actors/tools/toolsConfig.ts"
import type { EventLogShape } from "../events/log/eventLog.ts"

/** The Docker sandbox, when a server of `config` needs one. */
const sandboxFor = (config: ToolsConfig, owner: string) =>
  Effect.promise(async () => {
    if (
      !Object.values(config.servers).some((s) =>
        Object.values(s.versions).some((v) => v.transport === "docker"),
      )
    )
      return undefined
    // Loaded on demand: most docks run no server in Docker.
    const { createDockerSandbox } = await import("../actors/tools/sandbox/docker.ts")
    return createDockerSandbox({ owner })
  })

/**
 * Starts the pools of `config` (only `servers` when given; `sampleEveryMs` as `startDock` takes
 * it) and returns the dock with its sandbox, which the caller closes after the dock. A dock that
 * does not start fails with its error as it is.
 */
export const startToolDock = (
  log: EventLogShape,
  config: ToolsConfig,
  options: { readonly servers?: ReadonlyArray<string> | undefined; readonly sampleEveryMs?: number } = {},
) =>
  Effect.gen(function* () {
    const owner = `${log.namespace}/dock`
    const sandbox = yield* sandboxFor(config, owner)
    const dock = yield* Effect.tryPromise({
      try: () =>
        startDock({
          log,
          config,
          ...(options.servers === undefined ? {} : { servers: options.servers }),
          ...(options.sampleEveryMs === undefined ? {} : { sampleEveryMs: options.sampleEveryMs }),
          ...(sandbox === undefined ? {} : { sandbox, sandboxOwner: owner }),
        }),
      catch: (error) => error as Error,
    })
    return { dock, sandbox }
  })
