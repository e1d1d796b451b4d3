/**
 * `config/rl.yaml` and its decoder (src/actors/sampler/rlConfig.ts): the shipped file decodes to
 * what it says, a minimal file gets the documented defaults, every kind of mistake is reported with
 * file:line:column and the config path, and no YAML text makes the decoder throw or die.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test as propTest } from "@fast-check/vitest"
import { Effect, Exit, Result } from "effect"
import { afterAll, describe, expect, test } from "vitest"
import { stringify } from "yaml"
import { defaultPolicy } from "../../src/actors/agent/episodeState.ts"
import { loadModelsConfig } from "../../src/actors/inference/modelsConfig.ts"
import { decodeRlYaml, loadRlConfig, type RlConfig, rlConfigFrom } from "../../src/actors/sampler/rlConfig.ts"
import { defaultStaleness } from "../../src/projections/batches/staleness.ts"
import { defaultRewardConfig } from "../../src/projections/rewards/rewardConfig.ts"
import { ConfigError } from "../../src/runtime/yamlFile.ts"

const minimal = "tasks:\n  bench: custom\n  data: tasks.jsonl\nmodel: agent\n"

const decodeError = (text: string): ConfigError => {
  const exit = Effect.runSyncExit(Effect.flip(decodeRlYaml("rl.yaml", text)))
  if (!Exit.isSuccess(exit)) throw new Error(`expected a ConfigError for:\n${text}`)
  return exit.value
}

describe("the shipped config/rl.yaml", () => {
  test("decodes, over the bundled demo data, with a model that models.yaml defines", async () => {
    const config = await Effect.runPromise(loadRlConfig(path.resolve("config/rl.yaml")))
    expect(config.tasks).toMatchObject({ bench: "custom", data: "data/demo/questions.jsonl" })
    expect(fs.existsSync(path.resolve(config.tasks.data))).toBe(true)
    const models = await Effect.runPromise(loadModelsConfig({ dir: path.resolve("config") }))
    expect(Object.keys(models.models)).toContain(config.model)
    expect(config.groupSize).toBe(8)
    expect(config.rewards).toEqual(defaultRewardConfig)
    expect(config.staleness).toEqual(defaultStaleness)
    expect(config.batch).toEqual({ groups: 4 })
    expect(config.scorer).toBe("gaia")
    expect(config.policy).toEqual({ ...defaultPolicy, maxTurns: 20 })
  })
})

describe("defaults", () => {
  test("tasks and model are all a file needs; the rest are the documented defaults", () => {
    const config = Effect.runSync(decodeRlYaml("rl.yaml", minimal))
    expect(config).toEqual({
      source: "rl.yaml",
      tasks: { bench: "custom", data: "tasks.jsonl", plaintext: false },
      model: "agent",
      groupSize: 8,
      epochs: 1,
      concurrency: 16,
      seed: 0,
      rewards: defaultRewardConfig,
      staleness: { maxLag: 4, policy: "drop" },
      batch: { groups: 4 },
      maxUnconsumedBatches: 2,
      policy: defaultPolicy,
    } satisfies RlConfig)
  })

  test("a reward profile gets its own defaults; policy keys override the evaluation's one by one", () => {
    const config = Effect.runSync(
      decodeRlYaml(
        "rl.yaml",
        `${minimal}rewards:\n  profile: dapo\nbatch:\n  tokens: 65536\npolicy:\n  maxTurns: 12\n  contextReset: none\n`,
      ),
    )
    expect(config.rewards).toEqual({
      profile: "dapo",
      epsilon: 1e-6,
      zeroVarianceTolerance: 0,
      overlongInStatistics: true,
    })
    expect(config.batch).toEqual({ tokens: 65536 })
    expect(config.policy).toEqual({ ...defaultPolicy, maxTurns: 12, contextReset: "none" })
  })

  test("in code, the same defaults and checks", () => {
    const built = rlConfigFrom({ tasks: { bench: "hle", data: "hle.parquet" }, model: "agent", groupSize: 4 })
    expect(Result.isSuccess(built) && built.success.groupSize).toBe(4)
    const refused = rlConfigFrom({ tasks: { bench: "hle", data: "x" }, model: "agent", groupSize: 1 })
    expect(Result.isFailure(refused) && refused.failure.path).toBe("groupSize")
  })
})

describe("errors name file:line:column and the path", () => {
  test("a wrong type", () => {
    const error = decodeError(`${minimal}concurrency: lots\n`)
    expect(error).toMatchObject({ source: "rl.yaml", path: "concurrency", line: 5, column: 14 })
    expect(error.message).toBe('rl.yaml:5:14 concurrency: expected number, got "lots"')
  })

  test("an unknown key, with the closest known one", () => {
    const error = decodeError(`${minimal}groupsize: 4\n`)
    expect(error).toMatchObject({ path: "groupsize", line: 5, column: 1 })
    expect(error.reason).toContain('did you mean "groupSize"?')
    const nested = decodeError(`${minimal}policy:\n  maxTurn: 3\n`)
    expect(nested).toMatchObject({ path: "policy.maxTurn", line: 6, column: 3 })
    expect(nested.reason).toContain('did you mean "maxTurns"?')
    const inRewards = decodeError(`${minimal}rewards:\n  profile: grpo\n  epsilonn: 0.1\n`)
    expect(inRewards).toMatchObject({ path: "rewards.epsilonn", line: 7, column: 3 })
    expect(inRewards.reason).toContain('did you mean "epsilon"?')
  })

  test("groupSize below 2 (advantages need a group to compare)", () => {
    const error = decodeError(`${minimal}groupSize: 1\n`)
    expect(error.message).toBe("rl.yaml:5:12 groupSize: expected a value greater than or equal to 2, got 1")
  })

  test("an unknown rewards profile, with the known ones", () => {
    const error = decodeError(`${minimal}rewards:\n  profile: ppo\n`)
    expect(error).toMatchObject({ path: "rewards", line: 6, column: 3 })
    expect(error.reason).toBe('unknown profile "ppo" (known profiles: agentcpm, grpo, dapo)')
  })

  test("the task set: an unknown benchmark, a bad mapping, a mapping on a named benchmark", () => {
    expect(decodeError("tasks:\n  bench: gaya\n  data: x.csv\nmodel: agent\n")).toMatchObject({
      path: "tasks.bench",
      line: 2,
      column: 10,
    })
    const badMap = decodeError("tasks:\n  bench: custom\n  data: x.csv\n  map: zzz\nmodel: agent\n")
    expect(badMap).toMatchObject({ path: "tasks.map", line: 4, column: 8 })
    expect(badMap.reason).toContain("question=<column>,answer=<column>")
    const mapOnGaia = decodeError(
      "tasks:\n  bench: gaia\n  data: x.csv\n  map: question=q,answer=a\nmodel: agent\n",
    )
    expect(mapOnGaia).toMatchObject({ path: "tasks", line: 2, column: 3 })
    expect(mapOnGaia.reason).toBe("map applies to the custom benchmark only, not gaia")
  })

  test("staleness, batch and scorer are checked by their own rules", () => {
    expect(decodeError(`${minimal}staleness:\n  maxLag: -1\n`)).toMatchObject({
      path: "staleness.maxLag",
      line: 6,
      column: 11,
    })
    expect(decodeError(`${minimal}batch:\n  groups: 2\n  tokens: 100\n`)).toMatchObject({
      path: "batch",
      line: 6,
      reason: "give groups or tokens, not both",
    })
    expect(decodeError(`${minimal}scorer: exact\n`)).toMatchObject({ path: "scorer", line: 5, column: 9 })
  })

  test("a missing required key, invalid YAML, a missing file", async () => {
    expect(decodeError("model: agent\n")).toMatchObject({ path: "tasks", reason: "missing key" })
    expect(decodeError("tasks: [\n")).toMatchObject({ source: "rl.yaml", line: expect.any(Number) })
    const absent = await Effect.runPromise(
      Effect.flip(loadRlConfig(path.join(os.tmpdir(), "no-such-rl.yaml"))),
    )
    expect(absent.message).toContain("no such file")
  })
})

describe("the decoder never throws", () => {
  const settles = (text: string): boolean => {
    const exit = Effect.runSyncExit(Effect.result(decodeRlYaml("rl.yaml", text)))
    if (!Exit.isSuccess(exit)) throw new Error(`the decoder died: ${String(exit.cause)}`)
    const result = exit.value
    if (Result.isSuccess(result)) return result.success.groupSize >= 2
    return result.failure instanceof ConfigError && result.failure.message.startsWith("rl.yaml")
  }

  propTest.prop([fc.string({ maxLength: 400 })])("on arbitrary text", (text) => {
    expect(settles(text)).toBe(true)
  })

  const leaf = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null))
  const key = fc.constantFrom(
    "tasks",
    "bench",
    "data",
    "map",
    "limit",
    "model",
    "groupSize",
    "rewards",
    "profile",
    "staleness",
    "batch",
    "groups",
    "tokens",
    "policy",
    "maxTurns",
    "__proto__",
    "x",
  )
  const tree = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: "small" },
      leaf,
      fc.array(tie("node"), { maxLength: 3 }),
      fc.dictionary(key, tie("node"), { maxKeys: 4 }),
    ),
  })).node
  propTest.prop([fc.dictionary(key, tree, { maxKeys: 6 })])("on arbitrary YAML documents", (data) => {
    expect(settles(stringify(data))).toBe(true)
  })

  // The fuzzing above must also reach the success path, or it proves little about it.
  const fuzzDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-rl-config-"))
  afterAll(() => fs.rmSync(fuzzDir, { recursive: true, force: true }))
  propTest.prop([fc.integer({ min: 2, max: 64 }), fc.constantFrom("agentcpm", "grpo", "dapo")])(
    "valid files written to disk decode to what they say",
    async (groupSize, profile) => {
      const file = path.join(fuzzDir, "rl.yaml")
      fs.writeFileSync(file, `${minimal}groupSize: ${groupSize}\nrewards:\n  profile: ${profile}\n`)
      const config = await Effect.runPromise(loadRlConfig(file))
      expect([config.groupSize, config.rewards.profile]).toEqual([groupSize, profile])
    },
  )
})
