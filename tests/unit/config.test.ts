/**
 * Runtime configuration loading: defaults, the file < env < flag precedence, errors that name
 * file:line:column, path and reason (or the variable / flag), and fuzzing that the loader always
 * answers with a config or a ConfigError, never an exception, whatever the YAML or environment.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test as propTest } from "@fast-check/vitest"
import { Effect, Exit, Result, Schema } from "effect"
import { afterAll, afterEach, describe, expect, test } from "vitest"
import { stringify } from "yaml"
import {
  ConfigError,
  type ConfigOverrides,
  defaultConfig,
  loadConfig,
  loadSection,
  natsServers,
  RolloutConfig,
  resolveNatsToken,
} from "../../src/runtime/config.ts"

const tempDirs: Array<string> = []
const tempDir = (files: Record<string, string> = {}): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-config-"))
  tempDirs.push(dir)
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}
afterEach(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

type Env = Record<string, string | undefined>

const load = (dir: string, env: Env = {}, overrides: ConfigOverrides = {}) =>
  Effect.runSync(loadConfig({ dir, env, overrides }))

const loadError = (dir: string, env: Env = {}, overrides: ConfigOverrides = {}): ConfigError => {
  const result = Effect.runSync(Effect.result(loadConfig({ dir, env, overrides })))
  if (Result.isSuccess(result))
    throw new Error(`expected a ConfigError, got ${JSON.stringify(result.success)}`)
  expect(result.failure).toBeInstanceOf(ConfigError)
  return result.failure
}

describe("defaults", () => {
  test("a missing config dir means the defaults", () => {
    expect(load(path.join(os.tmpdir(), "rollout-config-does-not-exist"))).toEqual(defaultConfig)
  })

  test("an empty dir, an empty file and a file of comments mean the defaults", () => {
    expect(load(tempDir())).toEqual(defaultConfig)
    expect(load(tempDir({ "rollout.yaml": "" }))).toEqual(defaultConfig)
    expect(load(tempDir({ "rollout.yaml": "# nothing\nlog:\n  # backend: nats\n" }))).toEqual(defaultConfig)
  })

  test("the documented defaults", () => {
    expect(defaultConfig.log).toEqual({
      backend: "embedded",
      dataDir: ".rollout",
      namespace: "rollout",
      fsync: "interval",
      inlineLimitBytes: 262_144,
      nats: { url: "nats://127.0.0.1:4222", tokenEnv: "NATS_TOKEN", replicas: 1, duplicateWindowMs: 120_000 },
    })
    expect(defaultConfig.worker).toEqual({
      roles: ["probe"],
      concurrency: 16,
      ackWaitMs: 30_000,
      maxDeliver: 5,
      drainTimeoutMs: 10_000,
      conflictRetries: 8,
    })
    expect(defaultConfig.projections).toEqual({ checkpointEvery: 1000 })
  })

  test("the shipped config/rollout.yaml is exactly the defaults", () => {
    expect(load(path.resolve("config"), {})).toEqual(defaultConfig)
  })

  test("the compose config differs only where the cluster needs it", () => {
    const compose = load(path.resolve("config/compose"), {})
    expect(compose.log.nats.replicas).toBe(3)
    expect(compose.log.backend).toBe("nats")
    expect(compose.worker).toEqual(defaultConfig.worker)
  })
})

describe("sources and precedence", () => {
  test("the file sets values; unset keys keep their defaults", () => {
    const config = load(tempDir({ "rollout.yaml": "log:\n  backend: nats\n  nats:\n    replicas: 3\n" }))
    expect(config.log.backend).toBe("nats")
    expect(config.log.nats.replicas).toBe(3)
    expect(config.log.nats.url).toBe(defaultConfig.log.nats.url)
    expect(config.worker).toEqual(defaultConfig.worker)
  })

  test("other files holding rollout keys override rollout.yaml; other loaders' files are left alone", () => {
    const dir = tempDir({
      "rollout.yaml": "log:\n  namespace: base\n  dataDir: /data\n",
      "local.yml": "log:\n  namespace: local\n",
      "tools.yaml": "tools:\n  - name: search\n",
    })
    const config = load(dir)
    expect(config.log.namespace).toBe("local")
    expect(config.log.dataDir).toBe("/data")
  })

  test("env overrides the file", () => {
    const dir = tempDir({ "rollout.yaml": "log:\n  backend: embedded\n  namespace: file\n" })
    const config = load(dir, {
      ROLLOUT_LOG: "nats",
      ROLLOUT_NATS_URL: "nats://a:4222,nats://b:4222",
      ROLLOUT_DATA_DIR: "/var/rollout",
      ROLLOUT_NAMESPACE: "from-env",
      ROLLOUT_WORKER_ROLES: "probe, agent ,tools",
    })
    expect(config.log).toMatchObject({ backend: "nats", dataDir: "/var/rollout", namespace: "from-env" })
    expect(natsServers(config)).toEqual(["nats://a:4222", "nats://b:4222"])
    expect(config.worker.roles).toEqual(["probe", "agent", "tools"])
  })

  test("flags override env", () => {
    const config = load(
      tempDir({ "rollout.yaml": "log:\n  dataDir: file\n" }),
      { ROLLOUT_LOG: "embedded", ROLLOUT_NATS_URL: "nats://env:4222", ROLLOUT_DATA_DIR: "env" },
      { log: "nats", nats: "nats://flag:4222", dataDir: "flag", roles: ["agent"] },
    )
    expect(config.log.backend).toBe("nats")
    expect(config.log.nats.url).toBe("nats://flag:4222")
    expect(config.log.dataDir).toBe("flag")
    expect(config.worker.roles).toEqual(["agent"])
  })

  test("an empty env var counts as unset", () => {
    expect(load(tempDir(), { ROLLOUT_LOG: "", ROLLOUT_WORKER_ROLES: "" })).toEqual(defaultConfig)
  })

  test("the NATS token comes from the env var named by tokenEnv, never from the config", () => {
    expect(resolveNatsToken(defaultConfig, { NATS_TOKEN: "s3cret" })).toBe("s3cret")
    expect(resolveNatsToken(defaultConfig, {})).toBeUndefined()
    expect(resolveNatsToken(defaultConfig, { NATS_TOKEN: "" })).toBeUndefined()
    const config = load(tempDir({ "rollout.yaml": "log:\n  nats:\n    tokenEnv: MY_TOKEN\n" }))
    expect(resolveNatsToken(config, { MY_TOKEN: "t", NATS_TOKEN: "other" })).toBe("t")
  })

  test("loadSection decodes another module's file with its own schema", () => {
    const Tools = Schema.Struct({ tools: Schema.Array(Schema.Struct({ name: Schema.String })) })
    const dir = tempDir({ "tools.yaml": "tools:\n  - name: search\n  - nmae: fetch\n" })
    expect(Effect.runSync(loadSection(dir, "missing.yaml", Tools))).toBeUndefined()
    const error = Effect.runSync(Effect.flip(loadSection(dir, "tools.yaml", Tools)))
    expect(error).toMatchObject({ source: path.join(dir, "tools.yaml"), line: 3 })
    expect(error.path).toMatch(/^tools\[1\]\.(name|nmae)$/)
  })
})

describe("errors name the file, path, position and reason", () => {
  test("a wrong enum value", () => {
    const dir = tempDir({ "rollout.yaml": "# comment\nlog:\n  dataDir: x\n  backend:    natz\n" })
    const error = loadError(dir)
    const file = path.join(dir, "rollout.yaml")
    expect(error).toMatchObject({ source: file, path: "log.backend", line: 4, column: 15 })
    expect(error.reason).toBe('expected "embedded" | "nats", got "natz"')
    expect(error.message).toBe(`${file}:4:15 log.backend: expected "embedded" | "nats", got "natz"`)
  })

  test("a wrong type", () => {
    const error = loadError(tempDir({ "rollout.yaml": "worker:\n  concurrency: lots\n" }))
    expect(error).toMatchObject({ path: "worker.concurrency", line: 2, column: 16 })
    expect(error.reason).toContain('got "lots"')
  })

  test("a value out of range, and a bad list element", () => {
    expect(loadError(tempDir({ "rollout.yaml": "log:\n  nats:\n    replicas: 7\n" }))).toMatchObject({
      path: "log.nats.replicas",
      line: 3,
      column: 15,
    })
    const role = loadError(tempDir({ "rollout.yaml": "worker:\n  roles:\n    - probe\n    - Not.Valid\n" }))
    expect(role).toMatchObject({ path: "worker.roles[1]", line: 4, column: 7 })
  })

  test("an unknown key, with a suggestion", () => {
    const error = loadError(tempDir({ "rollout.yaml": "log:\n  bakend: nats\n" }))
    expect(error).toMatchObject({ path: "log.bakend", line: 2, column: 3 })
    expect(error.reason).toContain('unknown key "bakend"')
    expect(error.reason).toContain('did you mean "backend"?')
  })

  test("an unknown top-level key, even when it is empty", () => {
    expect(loadError(tempDir({ "rollout.yaml": "log: {}\nwrker:\n" }))).toMatchObject({
      path: "wrker",
      line: 2,
      column: 1,
    })
  })

  test("a file holding rollout keys may not hold other sections", () => {
    const dir = tempDir({ "extra.yaml": "worker:\n  concurrency: 2\nmodels: []\n" })
    expect(loadError(dir)).toMatchObject({ source: path.join(dir, "extra.yaml"), path: "models", line: 3 })
  })

  test("invalid YAML", () => {
    const dir = tempDir({ "rollout.yaml": "log:\n  backend: [nats\nworker: {}\n" })
    const error = loadError(dir)
    expect(error.source).toBe(path.join(dir, "rollout.yaml"))
    expect(error.line).toBeGreaterThanOrEqual(2)
    expect(error.column).toBeGreaterThanOrEqual(1)
    expect(error.reason).toMatch(/^invalid YAML: /)
  })

  test("duplicate keys are invalid YAML", () => {
    const error = loadError(tempDir({ "rollout.yaml": "log:\n  backend: nats\n  backend: embedded\n" }))
    expect(error).toMatchObject({ line: 3 })
    expect(error.reason).toMatch(/unique/)
  })

  test("YAML that parses but cannot become data is an error, not a crash", () => {
    expect(loadError(tempDir({ "rollout.yaml": "log: *nowhere\n" })).reason).toMatch(
      /^invalid YAML: .*alias/i,
    )
    // Each level refers to the previous one ten times: about 10^5 nodes from five lines (an alias bomb).
    const previous = { b: "a", c: "b", d: "c", e: "d" }
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for (const [name, prev] of Object.entries(previous))
      bomb.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`)
    expect(loadError(tempDir({ "rollout.yaml": `${bomb.join("\n")}\n` })).reason).toMatch(/^invalid YAML: /)
  })

  test("a __proto__ key is just an unknown key", () => {
    const error = loadError(tempDir({ "rollout.yaml": "__proto__:\n  log: {}\n" }))
    expect(error).toMatchObject({ path: "__proto__", line: 1, column: 1 })
    expect(({} as Record<string, unknown>).log).toBeUndefined()
  })

  test("a document that is not a mapping", () => {
    expect(loadError(tempDir({ "rollout.yaml": "- log\n" }))).toMatchObject({ path: "", line: 1, column: 1 })
  })

  test("a NATS URL with credentials is refused without echoing them", () => {
    const error = loadError(tempDir({ "rollout.yaml": "log:\n  nats:\n    url: nats://hunter2@h:4222\n" }))
    expect(error.path).toBe("log.nats.url")
    expect(error.message).not.toContain("hunter2")
  })

  test("env errors name the variable", () => {
    expect(loadError(tempDir(), { ROLLOUT_LOG: "natz" }).message).toBe(
      'env ROLLOUT_LOG log.backend: expected "embedded" | "nats", got "natz"',
    )
    expect(loadError(tempDir(), { ROLLOUT_NAMESPACE: "Has Spaces" })).toMatchObject({
      source: "env ROLLOUT_NAMESPACE",
      path: "log.namespace",
    })
    expect(loadError(tempDir(), { ROLLOUT_WORKER_ROLES: "probe,,agent" })).toMatchObject({
      source: "env ROLLOUT_WORKER_ROLES",
      path: "worker.roles[1]",
    })
    const url = loadError(tempDir(), { ROLLOUT_NATS_URL: "http://x" })
    expect(url).toMatchObject({ source: "env ROLLOUT_NATS_URL", path: "log.nats.url" })
    expect(url.line).toBeUndefined()
  })

  test("flag errors name the flag", () => {
    expect(loadError(tempDir(), {}, { log: "kafka" })).toMatchObject({ source: "--log", path: "log.backend" })
    expect(loadError(tempDir(), {}, { nats: "" })).toMatchObject({ source: "--nats", path: "log.nats.url" })
    expect(loadError(tempDir(), {}, { dataDir: "" })).toMatchObject({ source: "--data-dir" })
  })
})

describe("the loader never throws", () => {
  // One dir for every run: writing a file is cheap, creating hundreds of dirs is not.
  const fuzzDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-config-fuzz-"))
  afterAll(() => fs.rmSync(fuzzDir, { recursive: true, force: true }))

  const envNames = [
    "ROLLOUT_LOG",
    "ROLLOUT_NATS_URL",
    "ROLLOUT_DATA_DIR",
    "ROLLOUT_NAMESPACE",
    "ROLLOUT_WORKER_ROLES",
  ]

  const answers = (yamlText: string | undefined, env: Env, overrides: ConfigOverrides = {}): boolean => {
    const file = path.join(fuzzDir, "rollout.yaml")
    if (yamlText === undefined) fs.rmSync(file, { force: true })
    else fs.writeFileSync(file, yamlText)
    const exit = Effect.runSyncExit(Effect.result(loadConfig({ dir: fuzzDir, env, overrides })))
    if (!Exit.isSuccess(exit)) throw new Error(`the loader died: ${String(exit.cause)}`)
    const result = exit.value
    if (Result.isSuccess(result)) return Schema.is(RolloutConfig)(result.success)
    return result.failure instanceof ConfigError && typeof result.failure.message === "string"
  }

  const leaf = fc.oneof(
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom("nats", "embedded", "always", "probe", "nats://h:1", "Bad Name"),
    fc.array(fc.string(), { maxLength: 3 }),
  )
  const section = (keys: ReadonlyArray<string>) =>
    fc.oneof(leaf, fc.dictionary(fc.constantFrom(...keys, "typo"), leaf, { maxKeys: 4 }))
  // Close to real config files, so most runs get past the YAML parser into decoding.
  const nearConfig = fc.dictionary(
    fc.constantFrom("log", "worker", "projections", "lgo"),
    fc.oneof(
      section(Object.keys(defaultConfig.log)),
      fc.record({ nats: section(Object.keys(defaultConfig.log.nats)) }),
      section(Object.keys(defaultConfig.worker)),
      section(Object.keys(defaultConfig.projections)),
    ),
    { maxKeys: 4 },
  )
  const env = fc.record(
    Object.fromEntries(envNames.map((name) => [name, fc.option(fc.string(), { nil: undefined })])),
  ) as fc.Arbitrary<Env>
  const overrides: fc.Arbitrary<ConfigOverrides> = fc.record(
    {
      log: fc.string(),
      nats: fc.string(),
      dataDir: fc.string(),
      roles: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
    },
    { requiredKeys: [] },
  )

  propTest.prop([fc.string({ unit: "binary", maxLength: 200 }), env], { numRuns: 200 })(
    "arbitrary text as YAML, arbitrary env",
    (text, environment) => {
      expect(answers(text, environment)).toBe(true)
    },
  )

  propTest.prop([fc.stringMatching(/^[a-z: \-\n[\]{}"'#&*!|>.0-9]{0,80}$/), env], { numRuns: 200 })(
    "YAML-ish punctuation soup",
    (text, environment) => {
      expect(answers(text, environment)).toBe(true)
    },
  )

  propTest.prop([nearConfig, env, overrides], { numRuns: 300 })(
    "near-valid configs, arbitrary env and flags",
    (config, environment, flags) => {
      expect(answers(stringify(config), environment, flags)).toBe(true)
    },
  )

  propTest.prop([fc.option(fc.jsonValue(), { nil: undefined }), env], { numRuns: 100 })(
    "arbitrary JSON documents (JSON is YAML)",
    (value, environment) => {
      expect(answers(value === undefined ? undefined : JSON.stringify(value), environment)).toBe(true)
    },
  )
})
