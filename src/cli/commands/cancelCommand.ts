/**
 * `rollout cancel <episodeId>`: ends an episode with the explicit outcome `cancelled`. A worker
 * still running it meets a conflict on its next append, finds it finished and stops.
 */
import * as Effect from "effect/Effect"
import { parseForEpisode } from "../../actors/agent/index.ts"
import { cancelEpisode } from "../../actors/agent/shell.ts"
import { configFrom, type GlobalOptions, printJson, withRuntime } from "../terminal/invocation.ts"

export const cancelCommand = (global: GlobalOptions, episodeId: string, options: { json?: boolean }) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    return yield* withRuntime(config, {}, (runtime) =>
      Effect.gen(function* () {
        const state = yield* cancelEpisode(runtime.log, episodeId, parseForEpisode)
        if (options.json === true) printJson({ episodeId, outcome: state.outcome, turns: state.turn })
        else process.stdout.write(`${episodeId}: ${state.outcome} after ${state.turn} turns\n`)
      }),
    )
  })
