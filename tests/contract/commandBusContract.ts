/**
 * The one contract every `CommandBus` adapter passes (in-process and JetStream): delivery of every
 * command, dedupe by command id on send, redelivery on retry with a growing attempt count, work
 * shared between consumers of one kind, dead letters kept and listed, drain on stop, and a command
 * far over JetStream's 1 MB message limit delivered whole.
 */
import { Deferred, Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import type { Command } from "../../src/runtime/command.ts"
import type { CommandBusShape, Delivery } from "../../src/runtime/commandBus.ts"

export interface BusHarness {
  readonly open: (namespace: string) => Promise<{ bus: CommandBusShape; close: () => Promise<void> }>
  readonly cleanup: () => Promise<void>
}

let n = 0
const ns = (tag: string) => `b${process.pid % 1000}${tag}${n++}`

export const command = (i: number, kind = "probe"): Command => ({
  commandId: `c-${i}`,
  actorKind: kind,
  entityId: `e${i % 5}`,
  type: "RecordProbe",
  payload: { seq: i },
  issuedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "bus",
})

/**
 * About 3 MB of text that a lost or shifted byte would show: ASCII, two-, three- and four-byte
 * characters, and a counter every line.
 */
export const threeMegabytes = (): string => {
  const lines: string[] = []
  let bytes = 0
  for (let i = 0; bytes < 3_000_000; i++) {
    const line = `line ${i}: é ü 日本語 🙂 ${"x".repeat(i % 97)}\n`
    lines.push(line)
    bytes += Buffer.byteLength(line, "utf8")
  }
  return lines.join("")
}

const until = async (condition: () => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting")
    await new Promise((r) => setTimeout(r, 10))
  }
}

const options = (stop: Deferred.Deferred<void>, concurrency = 4) => ({
  concurrency,
  maxDeliver: 5,
  ackWaitMs: 5_000,
  drainTimeoutMs: 5_000,
  stop,
})

/** Runs a consumer in the background; returns its stop trigger and fiber. */
const start = (
  bus: CommandBusShape,
  kind: string,
  handle: (d: Delivery) => Effect.Effect<void>,
  concurrency = 4,
) => {
  const stop = Deferred.makeUnsafe<void>()
  const fiber = Effect.runFork(bus.consume(kind, options(stop, concurrency), handle))
  return {
    stop: () => Effect.runPromise(Effect.andThen(Deferred.succeed(stop, undefined), Fiber.join(fiber))),
  }
}

export const commandBusContract = (name: string, makeHarness: () => Promise<BusHarness>): void => {
  describe(`CommandBus contract: ${name}`, () => {
    const withBus = async (tag: string, body: (bus: CommandBusShape) => Promise<void>) => {
      const harness = await makeHarness()
      const opened = await harness.open(ns(tag))
      try {
        await body(opened.bus)
      } finally {
        await opened.close()
        await harness.cleanup()
      }
    }

    it("delivers every command once when acked, payload intact, and dedupes sends by id", () =>
      withBus("deliver", async (bus) => {
        const commands = Array.from({ length: 50 }, (_, i) => command(i))
        await Effect.runPromise(bus.send(commands))
        await Effect.runPromise(bus.send(commands.slice(0, 10)))
        const got: Command[] = []
        const c = start(bus, "probe", (d) =>
          Effect.andThen(
            Effect.sync(() => got.push(d.command as Command)),
            d.ack,
          ),
        )
        await until(() => got.length >= 50)
        await c.stop()
        expect(got.map((g) => g.commandId).sort()).toEqual(commands.map((x) => x.commandId).sort())
        expect(got.find((g) => g.commandId === "c-7")).toEqual(commands[7])
        const stats = await Effect.runPromise(bus.stats("probe"))
        expect(stats).toMatchObject({ actorKind: "probe", pending: 0, inFlight: 0 })
      }))

    it("a command with a 3 MB field is delivered whole", () =>
      withBus("large", async (bus) => {
        const question = threeMegabytes()
        const large: Command = {
          ...command(1),
          payload: { seq: 1, question, nested: [{ tokens: Array.from({ length: 50_000 }, (_, i) => i) }] },
        }
        await Effect.runPromise(bus.send([command(0), large, command(2)]))
        const got: Command[] = []
        const c = start(bus, "probe", (d) =>
          Effect.andThen(
            Effect.sync(() => got.push(d.command as Command)),
            d.ack,
          ),
        )
        await until(() => got.length >= 3)
        await c.stop()
        expect(got.find((g) => g.commandId === large.commandId)).toEqual(large)
        expect(got.map((g) => g.commandId).sort()).toEqual(["c-0", "c-1", "c-2"])
      }))

    it("redelivers a command asked to retry, counting attempts", () =>
      withBus("retry", async (bus) => {
        await Effect.runPromise(bus.send([command(1)]))
        const attempts: number[] = []
        const c = start(bus, "probe", (d) =>
          Effect.andThen(
            Effect.sync(() => attempts.push(d.attempt)),
            d.attempt < 3 ? d.retry(10) : d.ack,
          ),
        )
        await until(() => attempts.length >= 3)
        await c.stop()
        expect(attempts).toEqual([1, 2, 3])
      }))

    it("keeps commands of other kinds apart", () =>
      withBus("kinds", async (bus) => {
        await Effect.runPromise(bus.send([command(1, "alpha"), command(2, "beta"), command(3, "alpha")]))
        const alpha: string[] = []
        const c = start(bus, "alpha", (d) =>
          Effect.andThen(
            Effect.sync(() => alpha.push((d.command as Command).commandId)),
            d.ack,
          ),
        )
        await until(() => alpha.length >= 2)
        await c.stop()
        expect(alpha.sort()).toEqual(["c-1", "c-3"])
        expect((await Effect.runPromise(bus.stats("beta"))).pending).toBeLessThanOrEqual(1)
      }))

    it("shares one kind's queue between consumers", () =>
      withBus("share", async (bus) => {
        await Effect.runPromise(bus.send(Array.from({ length: 60 }, (_, i) => command(i))))
        const byConsumer = [0, 0]
        const handler = (k: 0 | 1) => (d: Delivery) =>
          Effect.andThen(
            Effect.sleep(5),
            Effect.andThen(
              Effect.sync(() => {
                byConsumer[k]!++
              }),
              d.ack,
            ),
          )
        const c0 = start(bus, "probe", handler(0), 1)
        const c1 = start(bus, "probe", handler(1), 1)
        await until(() => byConsumer[0]! + byConsumer[1]! >= 60)
        await Promise.all([c0.stop(), c1.stop()])
        expect(byConsumer[0]! + byConsumer[1]!).toBe(60)
        expect(byConsumer[0]).toBeGreaterThan(0)
        expect(byConsumer[1]).toBeGreaterThan(0)
      }))

    it("keeps dead letters and lists them by kind", () =>
      withBus("dlq", async (bus) => {
        const letter = {
          actorKind: "probe",
          commandId: "c-9",
          command: command(9),
          reason: "boom",
          kind: "failed" as const,
          attempts: 5,
          worker: "w1",
          at: "2026-01-01T00:00:00.000Z",
        }
        await Effect.runPromise(bus.deadLetter(letter))
        await Effect.runPromise(bus.deadLetter({ ...letter, actorKind: "other", commandId: "c-10" }))
        expect(await Effect.runPromise(bus.deadLetters("probe"))).toEqual([letter])
        expect(await Effect.runPromise(bus.deadLetters())).toHaveLength(2)
        expect((await Effect.runPromise(bus.stats("probe"))).deadLetters).toBe(1)
      }))

    it("drains on stop: in-flight commands finish, none is lost", () =>
      withBus("drain", async (bus) => {
        await Effect.runPromise(bus.send(Array.from({ length: 20 }, (_, i) => command(i))))
        const done: string[] = []
        let started = 0
        const c = start(
          bus,
          "probe",
          (d) =>
            Effect.gen(function* () {
              started++
              yield* Effect.sleep(100)
              done.push((d.command as Command).commandId)
              yield* d.ack
            }),
          4,
        )
        await until(() => started >= 4)
        await c.stop()
        // Everything started was finished and acked before consume returned.
        expect(done.length).toBeGreaterThanOrEqual(4)
        // The rest is still there for the next consumer.
        const rest: string[] = []
        const c2 = start(bus, "probe", (d) =>
          Effect.andThen(
            Effect.sync(() => rest.push((d.command as Command).commandId)),
            d.ack,
          ),
        )
        // At least once: a command handed back during the stop may come twice, but none may be lost.
        await until(() => new Set([...done, ...rest]).size >= 20)
        await c2.stop()
        expect(new Set([...done, ...rest]).size).toBe(20)
      }))
  })
}
