/**
 * AgentDock's orphan clean-up: containers of a pool process that died (kill -9) keep running.
 * When a dock starts, every container of its owner whose process is gone is removed, and the log
 * says how many of them were recorded as started and never as ended (`ToolSandboxesReconciled`
 * records the removal).
 */
import * as os from "node:os"
import * as Effect from "effect/Effect"
import type { UndecodableEvent } from "../../events/codec.ts"
import type { EventLogShape, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { Envelope } from "../../events/schema.ts"
import { entitySubject } from "../../events/subjects.ts"
import type { LifecycleRecorder } from "./lifecycleRecorder.ts"

/** What a sandbox adapter offers for the clean-up (the Docker adapter has both). */
export interface OwnedSandboxes {
  readonly reconcileOrphans?: (live: ReadonlySet<string>, owner: string) => Promise<ReadonlyArray<string>>
  readonly listOwned?: (
    owner: string,
  ) => Promise<ReadonlyArray<{ readonly id: string; readonly labels: Readonly<Record<string, string>> }>>
}

export interface Unended {
  /** Container id → owner, of replicas recorded as started and never as ended. */
  readonly sandboxes: ReadonlyMap<string, string>
  /** Lifecycle entries that did not decode: the count above may miss what they held. */
  readonly undecodable: ReadonlyArray<UndecodableEvent>
}

const followSandboxes = (started: Map<string, string>, envelope: Envelope): Map<string, string> => {
  const e = envelope.event
  if (e.type === "ToolReplicaStarted" && e.sandboxId !== undefined) started.set(e.sandboxId, e.owner ?? "")
  if (e.type === "ToolReplicaExited" && e.sandboxId !== undefined) started.delete(e.sandboxId)
  if (e.type === "ToolSandboxesReconciled") for (const id of e.removed) started.delete(id)
  return started
}

/** Containers that a previous pool process started and never recorded as ended, by owner. */
export const unendedSandboxes = (
  log: EventLogShape,
  namespace: string,
): Effect.Effect<Unended, LogUnavailable> =>
  Effect.map(
    foldEvents(log, { filter: `${namespace}.ev.tool.>` }, new Map<string, string>(), followSandboxes),
    (folded) => ({ sandboxes: folded.state, undecodable: folded.undecodable }),
  )

/** Whether the process named by a container's labels still runs (on this host). */
export const ownerAlive = (labels: Readonly<Record<string, string>>, host = os.hostname()): boolean => {
  const pid = Number(labels["rollout.pid"])
  if (labels["rollout.host"] !== host || !Number.isInteger(pid)) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface OrphanCleanUp {
  readonly log: EventLogShape
  readonly sandbox: OwnedSandboxes
  /** The `rollout.owner` label of this dock's containers. */
  readonly owner: string
  readonly recorder: LifecycleRecorder
  /** Where the clean-up says what it did. */
  readonly say: (line: string) => void
}

/**
 * Removes the containers of `owner` whose process is gone, says how many (and how many the log
 * knew as never ended), and records the removal. Nothing to do when the sandbox cannot list them.
 */
export const removeOrphans = async ({ log, sandbox, owner, recorder, say }: OrphanCleanUp): Promise<void> => {
  if (sandbox.reconcileOrphans === undefined || sandbox.listOwned === undefined) return
  const unended = await Effect.runPromise(unendedSandboxes(log, log.namespace))
  if (unended.undecodable.length > 0)
    say(
      `${unended.undecodable.length} tool lifecycle entries of the log do not decode (first: ${unended.undecodable[0]!.message}); containers they started are not counted as recorded`,
    )
  const owned = await sandbox.listOwned(owner)
  const live = new Set(owned.filter((c) => ownerAlive(c.labels)).map((c) => c.id))
  const removed = await sandbox.reconcileOrphans(live, owner)
  if (removed.length === 0) return
  const ids = [...unended.sandboxes.keys()]
  // Docker answers full ids or short ones: a prefix either way is the same container.
  const known = removed.filter((id) => ids.some((u) => id.startsWith(u) || u.startsWith(id)))
  say(
    `removed ${removed.length} orphaned sandbox container(s) of ${owner} (${known.length} recorded in the log as never ended)`,
  )
  recorder.add(entitySubject(log.namespace, "tool", "sandboxes"), {
    type: "ToolSandboxesReconciled",
    owner,
    removed: [...removed],
  })
}
