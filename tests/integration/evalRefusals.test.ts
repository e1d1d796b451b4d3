import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { liveAgentPorts } from "../../src/app/actors.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { runRollout } from "../support/cli.ts"

let cwd: string
let server: ScriptedModelServer

const rollout = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runRollout(["--data-dir", "data", ...args], { cwd, env: { ...process.env, NO_COLOR: "1", ...env } })

const logStats = async () => {
  const r = await rollout(["log", "stats", "--json"])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

/** A config directory holding these files; models.yaml points the model `agent` at the server. */
const configDir = (name: string, files: Readonly<Record<string, string>>): string => {
  const dir = path.join(cwd, name)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(
    path.join(dir, "models.yaml"),
    `models:\n  agent:\n    endpoints:\n      - url: ${server.url}\n`,
  )
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text)
  return dir
}

const evalArgs = (config: string, extra: ReadonlyArray<string> = []) => [
  "--config",
  config,
  "eval",
  "--bench",
  "custom",
  "--data",
  "bench.jsonl",
  "--scorer",
  "gaia",
  "--model",
  "agent",
  "-k",
  "1",
  ...extra,
]

/** tools.yaml's reference to a variable that is never set. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: ${NAME} is the tools.yaml syntax for a variable
const UNSET_REFERENCE = "${ROLLOUT_TEST_UNSET_VAR}"

/** A stdio server entry; the command is never started when a check refuses first. */
const searchServer = (extra: string) =>
  `servers:\n  search:\n    command: rollout\n    args: [mcp-server, search]\n${extra}`

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-eval-refusals-"))
  fs.writeFileSync(
    path.join(cwd, "bench.jsonl"),
    [
      '{"id": "q1", "question": "What is two plus two?", "answer": "4"}',
      '{"id": "q2", "question": "", "answer": "Paris"}',
      "not json",
      '{"id": "q4", "question": "What is three plus three?", "answer": "6"}',
    ].join("\n"),
  )
  fs.writeFileSync(
    path.join(cwd, "good.jsonl"),
    '{"id": "q1", "question": "What is two plus two?", "answer": "4"}\n',
  )
  server = await startScriptedModelServer({ script: () => ({ content: "<answer>4</answer>" }) })
  // Something in the log, so "unchanged" speaks of entries and positions, not of an empty folder.
  const seeded = await rollout(["probe", "--count", "3"])
  expect(seeded.code, seeded.stderr).toBe(0)
})

afterAll(async () => {
  await server.stop()
  fs.rmSync(cwd, { recursive: true, force: true })
})

describe("rollout eval refuses before writing", () => {
  it("a tools.yaml type error, an unknown key, an unset variable in a server's env and an unknown --tools server", async () => {
    const cases = [
      {
        dir: configDir("type-error", { "tools.yaml": searchServer('    replicas: "two"\n') }),
        extra: [],
        line: /type-error\/tools\.yaml:5:15 servers\.search\.replicas: expected number, got "two"/,
      },
      {
        dir: configDir("unknown-key", { "tools.yaml": searchServer("    replicaz: 2\n") }),
        extra: [],
        line: /unknown-key\/tools\.yaml:5:5 servers\.search\.replicaz: unknown key "replicaz" \(did you mean "replicas"\?/,
      },
      {
        dir: configDir("unset-var", {
          "tools.yaml": searchServer(`    env: { SERPER_API_KEY: "${UNSET_REFERENCE}" }\n`),
        }),
        extra: [],
        line: /unset-var\/tools\.yaml: servers\.search\.env\.SERPER_API_KEY needs the environment variable ROLLOUT_TEST_UNSET_VAR, which is not set/,
      },
      {
        dir: configDir("unknown-server", { "tools.yaml": searchServer("") }),
        extra: ["--tools", "serch"],
        line: /unknown-server\/tools\.yaml servers: unknown server "serch" \(it defines search\)/,
      },
    ]
    for (const c of cases) {
      const before = await logStats()
      const r = await rollout([...evalArgs(c.dir, c.extra), "--data", "good.jsonl"])
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
      expect(r.stderr).toMatch(c.line)
      expect(await logStats()).toStrictEqual(before)
    }
    // The scripted server was never asked for a completion.
    expect(server.requests.filter((q) => q.path === "/v1/chat/completions")).toHaveLength(0)
  })

  it("an unset apiKeyEnv, naming the variable", async () => {
    const dir = configDir("unset-key", {})
    fs.writeFileSync(
      path.join(dir, "models.yaml"),
      `models:\n  agent:\n    endpoints:\n      - url: ${server.url}\n        apiKeyEnv: ROLLOUT_TEST_UNSET_KEY\n`,
    )
    const before = await logStats()
    const r = await rollout([...evalArgs(dir), "--data", "good.jsonl"], { ROLLOUT_TOOLS: "builtin" })
    expect(r.code).toBe(1)
    expect(r.stderr.trim()).toBe(
      `rollout: cannot use the agent model "agent": ${server.url}: env var ROLLOUT_TEST_UNSET_KEY is not set — models.agent.endpoints[0].apiKeyEnv names it: export the API key in it`,
    )
    expect(await logStats()).toStrictEqual(before)
  })

  it("a data file with bad rows: listed and refused (exit 3) unless --skip-bad-rows, which the run records", async () => {
    const dir = configDir("rows", {})
    const before = await logStats()
    const refused = await rollout(evalArgs(dir, ["--run", "rows"]), { ROLLOUT_TOOLS: "builtin" })
    expect(refused.code).toBe(3)
    const lines = refused.stderr.trim().split("\n")
    expect(lines[0]).toBe("rollout: bench.jsonl: 2 bad row(s), so nothing was run:")
    expect(lines.slice(1, 3).sort()).toStrictEqual(
      [
        `  bench.jsonl:2: the question (column "question") is empty`,
        expect.stringMatching(/^ {2}bench\.jsonl:3: not JSON/),
      ].sort(),
    )
    expect(lines[3]).toBe(
      "rollout: fix them, or pass --skip-bad-rows to evaluate the 2 good task(s) without them (the run records which rows it left out)",
    )
    expect(refused.stdout).toBe("")
    expect(await logStats()).toStrictEqual(before)

    const skipped = await rollout(evalArgs(dir, ["--run", "rows", "--skip-bad-rows"]), {
      ROLLOUT_TOOLS: "builtin",
    })
    expect(skipped.code, skipped.stderr).toBe(0)
    expect(skipped.stderr).toContain("rollout: 2 bad row(s) left out of bench.jsonl (--skip-bad-rows):")
    const line =
      "data: 2 bad row(s) of the data file left out (--skip-bad-rows): bench.jsonl:2, bench.jsonl:3"
    expect(skipped.stdout).toContain(line)
    expect(skipped.stdout).toContain("· k = 1 · 2 tasks · completed")
    const tail = await rollout(["log", "tail", "--filter", "rollout.ev.run.rows", "--json"])
    const started = JSON.parse(tail.stdout).events.find((e: { type: string }) => e.type === "RunStarted")
    expect(started.payload.config.skippedBadRows).toStrictEqual({
      count: 2,
      rows: ["bench.jsonl:2", "bench.jsonl:3"],
    })
    expect(JSON.stringify(started.payload)).not.toContain("Paris")
    const markdown = fs.readFileSync(path.join(cwd, "data", "runs", "rows", "report.md"), "utf8")
    expect(markdown).toContain(
      "Data: 2 bad row(s) of the data file left out (--skip-bad-rows): bench.jsonl:2, bench.jsonl:3.",
    )
    const scores = await rollout(["scores", "--run", "rows"])
    expect(scores.stdout).toContain(line)
    const json = await rollout(["scores", "--run", "rows", "--json"])
    expect(JSON.parse(json.stdout).skippedBadRows).toStrictEqual({
      count: 2,
      rows: ["bench.jsonl:2", "bench.jsonl:3"],
    })
  })
})

describe("the agent's live ports", () => {
  const withLog = async <A>(
    body: (log: Parameters<typeof liveAgentPorts>[0]["log"]) => Effect.Effect<A, unknown, Scope.Scope>,
  ) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-live-ports-"))
    const scope = Effect.runSync(Scope.make())
    try {
      const log = await Effect.runPromise(
        Scope.provide(scope)(makeEmbeddedLog({ dataDir: dir, namespace: "ev", fsync: "never" })),
      )
      const exit = await Effect.runPromiseExit(Effect.scoped(body(log)))
      // Events the pool queued are flushed when its scope closes: read the count after.
      const stats = await Effect.runPromise(log.stats)
      return { exit, events: stats.events }
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  it("check tools.yaml before the inference pool writes its first event", async () => {
    const bad = configDir("ports-bad", {
      "tools.yaml": searchServer(`    env: { SERPER_API_KEY: "${UNSET_REFERENCE}" }\n`),
    })
    const refused = await withLog((log) => liveAgentPorts({ log, configDir: bad }))
    expect(Exit.isFailure(refused.exit)).toBe(true)
    expect(String(refused.exit)).toContain("ROLLOUT_TEST_UNSET_VAR")
    expect(refused.events).toBe(0)
    // The same ports with a config that passes: the pool records its endpoint joining.
    const good = configDir("ports-good", {})
    const started = await withLog((log) => Effect.asVoid(liveAgentPorts({ log, configDir: good })))
    expect(Exit.isSuccess(started.exit)).toBe(true)
    expect(started.events).toBeGreaterThan(0)
  })
})
