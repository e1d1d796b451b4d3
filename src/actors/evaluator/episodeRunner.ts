/**
 * Where an evaluation's episodes run. `runHere` drives each one through the episode shell in this
 * process: one `rollout eval` is a complete agent on its own. `runOnWorkers` sends each episode as
 * a `RunEpisode` command to the agent work queue instead, so every `rollout worker --roles agent`
 * process on the same NATS takes a share, and learns each episode's end from the log: a tail of
 * episode events that starts before the first command, plus a read of the episode's own stream for
 * one that had ended already. A command a worker dead-letters ends that sample with its reason.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { decodeEvent, UndecodableEvent } from "../../events/codec.ts"
import { type EventLogShape, type LogEntry, LogUnavailable } from "../../events/log/eventLog.ts"
import { foldEvents } from "../../events/log/readEvents.ts"
import type { Envelope, EpisodeOutcome } from "../../events/schema.ts"
import { entitySubject, eventsFilter } from "../../events/subjects.ts"
import { type Clock, systemClock } from "../../runtime/clock.ts"
import type { Command } from "../../runtime/command.ts"
import type { CommandBusShape } from "../../runtime/commandBus.ts"
import { runEpisodePayload } from "../agent/actor.ts"
import type { StartEpisode } from "../agent/decider.ts"
import type { EpisodePorts } from "../agent/ports.ts"
import { type EpisodeError, EpisodeStuck, runEpisode } from "../agent/shell.ts"

/** How an episode ended: what scoring needs. */
export interface EpisodeEnding {
  readonly outcome: EpisodeOutcome
  readonly answer: string | undefined
}

export interface EpisodeRunner {
  /** Where the episodes run, for messages. */
  readonly where: string
  /**
   * Runs, resumes, or only reports the episode `start` describes, once it has ended. Reads and
   * appends go through `log` (the caller may watch them there).
   */
  readonly run: (log: EventLogShape, start: StartEpisode) => Effect.Effect<EpisodeEnding, EpisodeError>
}

/** Episodes run in this process through the episode shell, with these ports. */
export const runHere = (ports: EpisodePorts): EpisodeRunner => ({
  where: "this process",
  run: (log, start) =>
    Effect.flatMap(runEpisode(log, ports, start.episodeId, start), (state) =>
      state.outcome === undefined
        ? Effect.die(new Error(`episode ${start.episodeId} returned without an ending`))
        : Effect.succeed({ outcome: state.outcome, answer: state.answer }),
    ),
})

export interface WorkersOptions {
  readonly bus: CommandBusShape
  /**
   * Tells this invocation's commands from an earlier one's: a resumed run sends its unfinished
   * episodes again, and the queue drops a command id it has seen recently.
   */
  readonly invocation: string
  /** How often the dead-letter stream is looked at; default 2 s. */
  readonly deadLetterPollMs?: number
  /** Stamps the commands; default the system clock. */
  readonly clock?: Clock
}

/** The episode and ending an event records, when it is an `EpisodeFinished`. */
const endingOf = ({ event }: Envelope): { episodeId: string; ending: EpisodeEnding } | undefined =>
  event.type === "EpisodeFinished"
    ? { episodeId: event.episodeId, ending: { outcome: event.outcome, answer: event.answer } }
    : undefined

/**
 * The same of a tail's entry (a tail is no read that ends, so it is decoded here). An entry of an
 * episode that does not decode is no ending: the episode's own stream is read once it ends, through
 * the caller's log, which names what it could not decode.
 */
const endingAt = (entry: LogEntry): { episodeId: string; ending: EpisodeEnding } | undefined => {
  if (entry instanceof UndecodableEvent || entry.type !== "EpisodeFinished") return undefined
  const decoded = decodeEvent(entry)
  return Result.isFailure(decoded) ? undefined : endingOf(decoded.success)
}

/**
 * Episodes run by `rollout worker --roles agent` processes: started here in the current scope (the
 * tail of episode endings and the dead-letter watch stop with it). Needs a bus that other processes
 * consume, i.e. NATS; on the embedded log nothing else would take the commands.
 */
export const runOnWorkers = (
  log: EventLogShape,
  options: WorkersOptions,
): Effect.Effect<EpisodeRunner, LogUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const { bus } = options
    const clock = options.clock ?? systemClock
    const waiting = new Map<string, Deferred.Deferred<EpisodeEnding, EpisodeError>>()
    /** This invocation's command ids → their episodes, for dead letters. */
    const sent = new Map<string, string>()

    // Endings of episodes nobody waits for (other runs', or ours before `run` asked) are let go:
    // `run` registers before it reads the episode's stream, so it finds those there.
    const settle = (episodeId: string, ending: EpisodeEnding) => {
      const deferred = waiting.get(episodeId)
      if (deferred !== undefined) Deferred.doneUnsafe(deferred, Exit.succeed(ending))
    }
    const failAll = (error: EpisodeError) => {
      for (const deferred of waiting.values()) Deferred.doneUnsafe(deferred, Exit.fail(error))
    }

    // Every ending after this point arrives through the tail; anything earlier is in the episode's
    // own stream, which `run` reads first.
    const from = (yield* log.stats).lastPosition + 1
    yield* log.tail({ filter: eventsFilter(log.namespace, "episode"), from }).pipe(
      Stream.runForEachArray((entries) =>
        Effect.sync(() => {
          for (const entry of entries) {
            const found = endingAt(entry)
            if (found !== undefined) settle(found.episodeId, found.ending)
          }
        }),
      ),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit) && !Exit.hasInterrupts(exit))
            failAll(
              new LogUnavailable({
                backend: log.backend,
                operation: "tail",
                reason: `the watch on episode endings stopped; samples in flight cannot be scored (${exit.cause})`,
              }),
            )
        }),
      ),
      Effect.forkScoped,
    )

    // Dead letters: a worker gave up on a command of ours (a broken episode stream, say).
    const watchDeadLetters = Effect.gen(function* () {
      if (sent.size === 0) return
      const letters = yield* Effect.orElseSucceed(bus.deadLetters("agent"), () => [])
      for (const letter of letters) {
        const episodeId = sent.get(letter.commandId)
        const deferred = episodeId === undefined ? undefined : waiting.get(episodeId)
        if (deferred !== undefined)
          Deferred.doneUnsafe(
            deferred,
            Exit.fail(new EpisodeStuck(`a worker gave up on episode ${episodeId}: ${letter.reason}`)),
          )
      }
    })
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Effect.sleep(options.deadLetterPollMs ?? 2_000), watchDeadLetters)),
    )

    const commandIdOf = (episodeId: string) => `${episodeId}/run/${options.invocation}`

    const run = (runLog: EventLogShape, start: StartEpisode): Effect.Effect<EpisodeEnding, EpisodeError> =>
      Effect.gen(function* () {
        const { episodeId } = start
        const subject = entitySubject(runLog.namespace, "episode", episodeId)
        const deferred = yield* Deferred.make<EpisodeEnding, EpisodeError>()
        waiting.set(episodeId, deferred)
        // Ended before this invocation, or by another process: report it as it is.
        const before = yield* foldEvents(
          runLog,
          { filter: subject },
          undefined as EpisodeEnding | undefined,
          (found, envelope) => found ?? endingOf(envelope)?.ending,
        )
        if (before.state !== undefined) return before.state
        sent.set(commandIdOf(episodeId), episodeId)
        const command: Command = {
          commandId: commandIdOf(episodeId),
          actorKind: "agent",
          entityId: episodeId,
          type: "RunEpisode",
          payload: { ...runEpisodePayload(start) },
          issuedAt: clock.iso(),
          correlationId: start.runId ?? episodeId,
        }
        yield* bus
          .send([command])
          .pipe(
            Effect.mapError(
              (e) =>
                new LogUnavailable({ backend: log.backend, operation: "send RunEpisode", reason: e.message }),
            ),
          )
        const ending = yield* Deferred.await(deferred)
        // Read the episode through the caller's log, which may be watching (the live scoreboard).
        yield* Stream.runDrain(runLog.read({ filter: subject }))
        return ending
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            waiting.delete(start.episodeId)
            sent.delete(commandIdOf(start.episodeId))
          }),
        ),
      )

    return { where: `rollout worker --roles agent processes (${log.backend})`, run }
  })
