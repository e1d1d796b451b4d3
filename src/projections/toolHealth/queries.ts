/**
 * The tool-health read model's query: AgentDock's pools as the log tells them when no dock is
 * running to ask — the `toolHealth` fold of the whole log, its per-server status, and what the
 * read could not decode (the first entry too, so a reader can name it). Plain data, for the CLI
 * and a viewer alike.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { advance, initialFolded } from "../projection.ts"
import { summarizeUndecodable, type UndecodableSummary } from "../undecodable.ts"
import type { ServerStatus } from "./serverStatus.ts"
import { toolHealth, toolHealthStatus } from "./toolHealth.ts"

export interface ToolHealthFromLog {
  readonly servers: ReadonlyArray<ServerStatus>
  readonly undecodable: UndecodableSummary
  readonly firstUndecodable: UndecodableEvent | undefined
}

/** Folds the whole log into the pools' status, keeping what it could not decode. */
export const toolHealthOf = (log: EventLogShape): Effect.Effect<ToolHealthFromLog, LogUnavailable> =>
  Effect.map(Stream.runCollect(log.read()), (entries) => {
    const folded = advance(toolHealth, initialFolded(toolHealth), entries)
    return {
      servers: toolHealthStatus(folded.folded.state),
      undecodable: summarizeUndecodable(folded.undecodable),
      firstUndecodable: folded.undecodable[0],
    }
  })
