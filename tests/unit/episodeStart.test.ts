/**
 * An episode's start has one schema (`EpisodeStart`, derived from `EpisodeStarted`), and every
 * mapper goes through it: the evaluator's `RunEpisode` payload and back to the decider's start on
 * the worker, the start to the `EpisodeStarted` it records (fields in the schema's order, whatever
 * order the start came in), and a recorded `EpisodeStarted` back to its start for replay and fork.
 */
import { fc, test } from "@fast-check/vitest"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { describe, expect, it } from "vitest"
import { RunEpisode, runEpisodePayload, startOf } from "../../src/actors/agent/actor.ts"
import {
  decide,
  defaultPolicy,
  initial,
  recordedInput,
  type StartEpisode,
} from "../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { EpisodeStart, EpisodeStarted } from "../../src/events/schema.ts"

const text = fc.string({ maxLength: 12 })
const id = fc.string({ minLength: 1, maxLength: 12 })
const policy = fc.record({
  maxTurns: fc.integer({ min: 1, max: 500 }),
  toolCallFormat: fc.constantFrom(
    "openai" as const,
    "hermes" as const,
    "minicpm" as const,
    "deepseek" as const,
  ),
})
const start: fc.Arbitrary<StartEpisode> = fc
  .record(
    {
      episodeId: id,
      runId: id,
      taskId: text,
      sampleIndex: fc.nat({ max: 100 }),
      question: text,
      model: id,
      systemPrompt: text,
      policy: policy.map((p) => ({ ...defaultPolicy, ...p })),
    },
    { requiredKeys: ["episodeId", "taskId", "sampleIndex", "question", "model"] },
  )
  .map((fields) => ({ kind: "start" as const, ...fields }))
/** The same start with its keys in another order, as a caller may put it together. */
const reordered = (s: StartEpisode, seed: number): StartEpisode => {
  const entries = Object.entries(s)
  const rotated = [...entries.slice(seed % entries.length), ...entries.slice(0, seed % entries.length)]
  return Object.fromEntries(rotated) as unknown as StartEpisode
}

const startedOf = (s: StartEpisode) => {
  const decided = decide(initial, s, parseForEpisode)
  if (Result.isFailure(decided)) throw new Error(decided.failure.reason)
  return decided.success[0]!
}

describe("an episode's start, from one schema", () => {
  test.prop([start])("a start survives the RunEpisode command: payload, decode on the worker, start", (s) => {
    const command = Schema.decodeUnknownSync(RunEpisode)({ type: "RunEpisode", ...runEpisodePayload(s) })
    expect(startOf(s.episodeId, command)).toEqual(s)
  })

  test.prop([start, fc.nat()])(
    "the EpisodeStarted a start records has the schema's fields in the schema's order, and gives the start back",
    (s, seed) => {
      const event = startedOf(reordered(s, seed))
      const fields = Object.keys(EpisodeStarted.fields)
      expect(Object.keys(event)).toEqual(fields.filter((key) => key in event))
      expect(JSON.stringify(event)).toBe(JSON.stringify(startedOf(s)))
      expect(Schema.decodeUnknownSync(EpisodeStarted)(event)).toEqual(event)
      expect(recordedInput(event)).toEqual({ ...s, policy: s.policy ?? defaultPolicy })
    },
  )

  it("the start's fields are EpisodeStarted's but its type and turn limit; the command's but its type and entity", () => {
    expect(Object.keys(EpisodeStart.fields)).toEqual(
      Object.keys(EpisodeStarted.fields).filter((key) => key !== "type" && key !== "maxTurns"),
    )
    expect(Object.keys(RunEpisode.fields).sort()).toEqual(
      ["type", ...Object.keys(EpisodeStart.fields).filter((key) => key !== "episodeId")].sort(),
    )
  })

  it("keys a start does not declare are not recorded, and a command must name its model", () => {
    const s: StartEpisode = {
      kind: "start",
      episodeId: "e",
      taskId: "t",
      sampleIndex: 0,
      question: "q",
      model: "m",
    }
    const event = startedOf({ ...s, extra: "x" } as StartEpisode)
    expect(event).not.toHaveProperty("extra")
    expect(event).not.toHaveProperty("kind")
    const refused = Schema.decodeUnknownResult(RunEpisode)({
      type: "RunEpisode",
      ...runEpisodePayload(s),
      model: "",
    })
    expect(Result.isFailure(refused) && refused.failure.message).toContain("model")
  })
})
