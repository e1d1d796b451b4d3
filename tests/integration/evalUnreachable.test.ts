import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { messageText, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { type CliResult, runRollout } from "../support/cli.ts"

let cwd: string

const rollout = (
  args: ReadonlyArray<string>,
  options: { dataDir?: string; env?: Record<string, string> } = {},
): Promise<CliResult> =>
  runRollout(["--data-dir", options.dataDir ?? "data", ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: "1", ROLLOUT_TOOLS: "builtin", ...options.env },
    timeoutMs: 120_000,
  })

const rows = [
  { id: "q1", question: "What is two plus two?", answer: "4" },
  { id: "q2", question: "What is the capital of France?", answer: "Paris" },
]

const evalArgs = (model: string, baseUrl: string | undefined, extra: ReadonlyArray<string> = []) => [
  "eval",
  "--bench",
  "custom",
  "--data",
  "bench.jsonl",
  "--scorer",
  "gaia",
  "--model",
  model,
  ...(baseUrl === undefined ? [] : ["--base-url", baseUrl]),
  "-k",
  "1",
  ...extra,
]

/** A loopback port nothing listens on: bound once by the OS, then released. */
const closedPort = async (): Promise<number> => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Writes a config directory whose models.yaml holds `yaml`, and returns its path. */
const configDir = (name: string, yaml: string): string => {
  const dir = path.join(cwd, name)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "models.yaml"), yaml)
  return dir
}

let hanging: net.Server
let hangingPort: number
let html: http.Server
let htmlPort: number
let guarded: ScriptedModelServer
const sockets = new Set<net.Socket>()

beforeAll(async () => {
  expect(
    fs.existsSync(path.resolve("dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-eval-unreachable-"))
  fs.writeFileSync(path.join(cwd, "bench.jsonl"), `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`)
  // Accepts connections and never answers: a hung server, or a firewall that lets SYNs through.
  hanging = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve))
  hangingPort = (hanging.address() as net.AddressInfo).port
  // A web server that is not an OpenAI-compatible one.
  html = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" })
    res.end("<html><body>It works!</body></html>")
  })
  await new Promise<void>((resolve) => html.listen(0, "127.0.0.1", resolve))
  htmlPort = (html.address() as net.AddressInfo).port
  guarded = await startScriptedModelServer({
    script: () => ({ content: "<answer>4</answer>" }),
    token: "right-key",
  })
})

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise<void>((resolve) => hanging.close(() => resolve()))
  await new Promise<void>((resolve) => html.close(() => resolve()))
  await guarded.stop()
  fs.rmSync(cwd, { recursive: true, force: true })
})

describe("rollout eval refuses an endpoint that does not answer, before writing anything", () => {
  it("a closed port: exit 1 within 15 s, one line naming the URL and 'connection refused', log untouched", async () => {
    // A log with something in it, so "unchanged" is a statement about entries, not an empty dir.
    const seed = await rollout(["probe", "--count", "2"], { dataDir: "closed" })
    expect(seed.code, seed.stderr).toBe(0)
    const before = await rollout(["log", "stats", "--json"], { dataDir: "closed" })
    const url = `http://127.0.0.1:${await closedPort()}/v1`
    const r = await rollout(evalArgs("m1", url), { dataDir: "closed" })
    expect(r.code).toBe(1)
    expect(r.ms).toBeLessThan(15_000)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(url)
    expect(lines[0]).toContain("connection refused (ECONNREFUSED)")
    expect(lines[0]).toMatch(/^rollout: cannot use the agent model "m1": /)
    expect(r.stdout).toBe("")
    const after = await rollout(["log", "stats", "--json"], { dataDir: "closed" })
    expect(JSON.parse(after.stdout)).toStrictEqual(JSON.parse(before.stdout))
    expect(fs.existsSync(path.join(cwd, "closed", "runs"))).toBe(false)
  })

  it("names each other cause apart", async () => {
    const cases: ReadonlyArray<{
      url: string
      expected: ReadonlyArray<string>
      env?: Record<string, string>
    }> = [
      {
        url: "http://no-such-host.invalid/v1",
        expected: ["host not found (DNS) (ENOTFOUND)", "check the host name"],
      },
      { url: `http://127.0.0.1:${hangingPort}/v1`, expected: ["timeout", "no answer within 5000 ms"] },
      {
        url: guarded.url,
        expected: ["HTTP 401 unauthorized (API key refused)", "no apiKeyEnv is configured"],
      },
      {
        url: guarded.url.replace(/\/v1$/, ""),
        expected: ["HTTP 404 not found", "it usually ends in /v1"],
      },
      {
        url: `http://127.0.0.1:${htmlPort}/v1`,
        expected: ["not an OpenAI-compatible server", "It works!"],
      },
      // Port 9 is on fetch's blocked list: refused before any connection, under a generic wrapper.
      {
        url: "http://127.0.0.1:9/v1",
        expected: ["cannot connect: bad port", "serve the model on another port"],
      },
    ]
    const results = await Promise.all(cases.map((c) => rollout(evalArgs("m1", c.url), { dataDir: "causes" })))
    results.forEach((r, i) => {
      const c = cases[i]!
      expect(r.code, r.stderr).toBe(1)
      const line = r.stderr.trim()
      expect(line.split("\n")).toHaveLength(1)
      expect(line).toContain(c.url)
      for (const piece of c.expected) expect(line).toContain(piece)
    })
    // The hung server costs the probe's timeout, no more.
    expect(results[1]!.ms).toBeLessThan(15_000)
    expect(fs.existsSync(path.join(cwd, "causes"))).toBe(false)
  })

  it("names the key variable: unset, and set to a key the server refuses", async () => {
    const dir = configDir(
      "keyed",
      `models:\n  m2:\n    endpoints:\n      - url: ${guarded.url}\n        apiKeyEnv: ROLLOUT_TEST_KEY\n`,
    )
    const unset = await rollout(["--config", dir, ...evalArgs("m2", undefined)], { dataDir: "keyed-data" })
    expect(unset.code).toBe(1)
    expect(unset.stderr.trim()).toBe(
      `rollout: cannot use the agent model "m2": ${guarded.url}: env var ROLLOUT_TEST_KEY is not set — models.m2.endpoints[0].apiKeyEnv names it: export the API key in it`,
    )
    const wrong = await rollout(["--config", dir, ...evalArgs("m2", undefined)], {
      dataDir: "keyed-data",
      env: { ROLLOUT_TEST_KEY: "wrong-key" },
    })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain(
      "HTTP 401 unauthorized (API key refused) — the key in ROLLOUT_TEST_KEY was refused",
    )
    expect(wrong.stderr).not.toContain("wrong-key")
    expect(fs.existsSync(path.join(cwd, "keyed-data"))).toBe(false)
    // With the right key the probe passes and the run goes ahead.
    const right = await rollout(["--config", dir, ...evalArgs("m2", undefined, ["--run", "keyed"])], {
      dataDir: "keyed-data",
      env: { ROLLOUT_TEST_KEY: "right-key" },
    })
    expect(right.code, right.stderr).toBe(0)
    expect(right.stdout).toContain("run keyed: custom · model m2 · scorer gaia · k = 1 · 2 tasks · completed")
  })

  it("probes the judge as well, and names it as the judge", async () => {
    const url = `http://127.0.0.1:${await closedPort()}/v1`
    const agent = await startScriptedModelServer({ script: () => ({ content: "<answer>4</answer>" }) })
    try {
      const r = await rollout(
        [
          ...evalArgs("m1", agent.url, ["--scorer", "hle"]),
          "--judge-model",
          "judge",
          "--judge-base-url",
          url,
        ],
        { dataDir: "judge" },
      )
      expect(r.code).toBe(1)
      expect(r.stderr.trim()).toBe(
        `rollout: cannot use the judge model "judge": ${url}: connection refused (ECONNREFUSED) — nothing listens there: is the server running, on that host and port?`,
      )
      // The agent's server was only asked for its model list.
      expect(agent.requests.map((q) => `${q.method} ${q.path}`)).toStrictEqual(["GET /v1/models"])
      expect(fs.existsSync(path.join(cwd, "judge"))).toBe(false)
    } finally {
      await agent.stop()
    }
  })
})

describe("rollout eval reports samples that ended on infrastructure failures", () => {
  /** Fails every chat completion of the questions in `failing` with HTTP 503; answers the rest. */
  const failingScript =
    (failing: ReadonlyArray<string>): Script =>
    (request) => {
      const question = messageText(request.messages.find((m) => m.role === "user") ?? { role: "user" })
      if (failing.some((q) => question.includes(q)))
        return { error: { status: 503, message: "the GPU fell off the bus" } }
      return { content: `<answer>${question.includes("two plus two") ? "4" : "Paris"}</answer>` }
    }

  /** No retries and a short queue: the failing calls end at once instead of riding out an outage. */
  const impatient = (url: string) =>
    configDir(
      `impatient-${url.replace(/\D/g, "")}`,
      `models:\n  m3:\n    endpoints:\n      - url: ${url}\n    retries: 0\n    queueTimeoutMs: 500\n    ejectAfterFailures: 100\n`,
    )

  it("no sample reached the model: run failed with the reason counted, exit 4, and scores says so", async () => {
    const server = await startScriptedModelServer({ script: failingScript(["two plus two", "capital"]) })
    try {
      const dir = impatient(server.url)
      const r = await rollout(["--config", dir, ...evalArgs("m3", undefined, ["--run", "down"])], {
        dataDir: "infra",
      })
      expect(r.code, r.stderr).toBe(4)
      const reason = `model: HTTP 503 server error at ${server.url}`
      expect(r.stderr).toContain("failures 2 (2 infrastructure)")
      expect(r.stderr.trim().split("\n").at(-1)).toBe(
        `rollout: no sample reached model m3 (2 tried): ${reason} ×2`,
      )
      expect(r.stdout).toContain("run down: custom · model m3 · scorer gaia · k = 1 · 2 tasks · failed")
      expect(r.stdout).toContain(`infrastructure failures: 2 of 2 samples: ${reason} ×2`)

      const markdown = fs.readFileSync(path.join(cwd, "infra", "runs", "down", "report.md"), "utf8")
      expect(markdown).toContain("## Infrastructure failures")
      expect(markdown).toContain(`| ${reason} | 2 |`)
      const csv = fs.readFileSync(path.join(cwd, "infra", "runs", "down", "samples.csv"), "utf8").split("\n")
      expect(csv[0]).toMatch(/,failure$/)
      expect(csv[1]).toMatch(new RegExp(`,model_error,.*,${reason.replaceAll(".", "\\.")}$`))

      const board = await rollout(["scores"], { dataDir: "infra" })
      expect(board.stdout).toContain("failed (2 infra failures)")
      const report = await rollout(["scores", "--run", "down", "--json"], { dataDir: "infra" })
      expect(JSON.parse(report.stdout)).toMatchObject({
        status: "failed",
        reason: `no sample reached model m3 (2 tried): ${reason} ×2`,
        infrastructure: { samples: 2, reasons: { [reason]: 2 } },
      })
    } finally {
      await server.stop()
    }
  })

  it("some samples did: completed, exit 0, the failures counted apart", async () => {
    const server = await startScriptedModelServer({ script: failingScript(["capital"]) })
    try {
      const dir = impatient(server.url)
      const r = await rollout(
        ["--config", dir, ...evalArgs("m3", undefined, ["--run", "partly", "--json"])],
        {
          dataDir: "infra",
        },
      )
      expect(r.code, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout)
      const reason = `model: HTTP 503 server error at ${server.url}`
      expect(out).toMatchObject({
        status: "completed",
        reachedModel: 1,
        infrastructureNow: { [reason]: 1 },
        infrastructure: { samples: 1, reasons: { [reason]: 1 } },
        metrics: { correct: 1, runs: 2 },
      })
      const board = await rollout(["scores", "--json"], { dataDir: "infra" })
      expect(JSON.parse(board.stdout).runs).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ runId: "partly", status: "completed", infrastructureFailures: 1 }),
        ]),
      )
    } finally {
      await server.stop()
    }
  })
})
