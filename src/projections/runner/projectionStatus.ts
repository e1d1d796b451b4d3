/**
 * What the projection commands need besides running: finding a projection by name
 * (`UnknownProjection` lists the known ones) and the checkpoint status of every registered
 * projection (`rollout projections list`), with how far behind the log each one is.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { EventLogShape } from "../../events/log/eventLog.ts"
import type { CheckpointStoreShape } from "../../runtime/checkpointStore.ts"
import type { AnyProjection, ProjectionRegistry } from "../projection.ts"
import type { ProjectionRunError } from "./projectionSession.ts"

/** A name that is not in the registry; the message lists the known ones. */
export class UnknownProjection extends Schema.TaggedError<UnknownProjection>()("UnknownProjection", {
  name: Schema.String,
  known: Schema.Array(Schema.String),
}) {
  override get message(): string {
    return `no projection named "${this.name}"; known projections: ${this.known.join(", ")}`
  }
}

export const findProjection = (
  registry: ProjectionRegistry,
  name: string,
): Effect.Effect<AnyProjection, UnknownProjection> => {
  const found = registry.get(name)
  return found === undefined
    ? Effect.fail(new UnknownProjection({ name, known: [...registry.names] }))
    : Effect.succeed(found)
}

/** What `rollout projections list` shows for one projection. */
export interface ProjectionStatus {
  readonly name: string
  readonly version: number
  readonly filter?: string
  /** `current`: a checkpoint of this version; otherwise the next run rebuilds from 0. */
  readonly checkpoint: "current" | "none" | "version changed" | "unreadable"
  /** One line for people: where the checkpoint stands, or why the next run rebuilds. */
  readonly detail: string
  readonly position?: number
  readonly savedAt?: string
  readonly undecodable?: number
  /** The log's last position minus the checkpoint's (an upper bound when the projection filters). */
  readonly behind?: number
}

/** The checkpoint status of every registered projection; with a log, how far behind each is. */
export const listProjections = (
  store: CheckpointStoreShape,
  registry: ProjectionRegistry,
  log?: EventLogShape,
): Effect.Effect<ReadonlyArray<ProjectionStatus>, ProjectionRunError> =>
  Effect.gen(function* () {
    const last = log === undefined ? undefined : (yield* log.stats).lastPosition
    const out: ProjectionStatus[] = []
    for (const p of registry.all) {
      const base = {
        name: p.name,
        version: p.version,
        ...(p.filter === undefined ? {} : { filter: p.filter }),
      }
      const loaded = yield* Effect.result(store.load(p.name))
      if (Result.isFailure(loaded)) {
        if (loaded.failure._tag === "CheckpointStoreUnavailable") return yield* Effect.fail(loaded.failure)
        out.push({
          ...base,
          checkpoint: "unreadable",
          detail: `${loaded.failure.message}; next run rebuilds`,
        })
        continue
      }
      const cp = loaded.success
      if (cp === undefined) {
        out.push({ ...base, checkpoint: "none", detail: "no checkpoint; next run folds from position 0" })
        continue
      }
      const facts = {
        position: cp.position,
        undecodable: cp.undecodable,
        ...(cp.savedAt === undefined ? {} : { savedAt: cp.savedAt }),
        ...(last === undefined ? {} : { behind: Math.max(0, last - cp.position) }),
      }
      if (cp.version !== p.version) {
        out.push({
          ...base,
          ...facts,
          checkpoint: "version changed",
          detail: `checkpoint is version ${cp.version}, projection is ${p.version}; next run rebuilds`,
        })
        continue
      }
      const behind = facts.behind === undefined ? "" : `, ${facts.behind} behind the log`
      const saved = cp.savedAt === undefined ? "" : `, saved ${cp.savedAt}`
      out.push({
        ...base,
        ...facts,
        checkpoint: "current",
        detail: `at position ${cp.position}${behind}${saved}`,
      })
    }
    return out
  })
