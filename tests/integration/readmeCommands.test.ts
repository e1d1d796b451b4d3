/**
 * The README's own examples, run. Every command of README.md's ```bash blocks runs, in README
 * order and block by block, as a user would type it: from a temp directory laid out like a
 * checkout (this repo's `bin/` and `data/`, a copy of `config/`), with the embedded log under it.
 * A command that no longer parses or exits non-zero fails this test, named by its README line.
 * The test changes addresses only: the local model server the README points at (127.0.0.1:8000,
 * in the commands and in the copied config) is the scripted test-double model server started here,
 * answering as the agent (its `researcher` script) and as the judge; `nats://127.0.0.1:4222` is a
 * real nats-server on a free port (the block's own when the block starts one, else one started
 * here); `/tmp/…` paths and the MCP gateway's port move into the temp directory. It gives the
 * README's placeholders (`<episodeId>`) values, and writes the input files the commands name, in
 * their benchmark's format, when absent. `npm …` commands run their package.json scripts (with
 * pre-/post- scripts) step by step; the few steps not run are in NOT_RUN, each with its reason.
 * Background commands (`… &`) run until their block ends. The command table's synopses are checked
 * against each command's `--help`. Commands added to the README later are picked up as they are.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as YAML from "yaml"
import { canaryKey, xorWithKey } from "../../src/actors/evaluator/datasets/canaryDecryption.ts"
import { messageText, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  scripts,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"
import { findNatsServer } from "../../src/runtime/natsServerProcess.ts"
import { startTestNatsServer, type TestNatsServer } from "../support/natsServer.ts"
import {
  type ReadmeBlock,
  type ReadmeCommand,
  readmeBlocks,
  shellCommands,
  tableRows,
} from "../support/readmeShell.ts"

const repo = path.resolve(".")
const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8")
const packageScripts: Readonly<Record<string, string>> =
  JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")).scripts ?? {}

/** The address of the model server the README's commands and config/*.yaml point at. */
const README_MODEL_SERVER = "127.0.0.1:8000"
/** The NATS URL the README's commands use. */
const README_NATS = "nats://127.0.0.1:4222"
/** A foreground command gets this long; the longest README command (npm start) takes ~15 s. */
const COMMAND_TIMEOUT_MS = 180_000

/** Commands (or npm script steps) this test does not run, and why. Keep it short and true. */
const NOT_RUN: ReadonlyArray<{
  readonly command: string
  readonly matches: (words: ReadonlyArray<string>) => boolean
  readonly why: string
}> = [
  {
    command: "npm install",
    matches: (words) => words[0] === "npm" && ["install", "i", "ci"].includes(words[1] ?? ""),
    why: "installs the dependencies from the registry into the checkout the suite already runs in (CI runs npm ci before npm test)",
  },
  {
    command: "vitest run (npm test's last step)",
    matches: (words) => words[0] === "vitest",
    why: "the test suite this test is part of: running it here would run this test inside itself",
  },
]

/** How a background command says it is ready for the commands after it. */
const READINESS: ReadonlyArray<{
  readonly what: string
  readonly matches: (words: ReadonlyArray<string>) => boolean
  readonly stream: "stdout" | "stderr"
  readonly pattern: RegExp
}> = [
  {
    what: "nats-server",
    matches: (words) => words[0] === "nats-server",
    stream: "stderr",
    pattern: /Server is ready/,
  },
  {
    what: "rollout worker",
    matches: (words) => rolloutArgs(words)?.[0] === "worker",
    stream: "stderr",
    pattern: /\bready: roles\b/,
  },
  {
    what: "rollout dock up",
    matches: (words) => rolloutArgs(words)?.slice(0, 2).join(" ") === "dock up",
    stream: "stdout",
    pattern: /\S/,
  },
]

/** The rollout global options that take a value (they come before the subcommand). */
const GLOBAL_VALUE_OPTIONS = new Set(["--log", "--nats", "--data-dir", "--config"])

/** The subcommand and its arguments of a `node bin/rollout.js …` command, or undefined for others. */
const rolloutArgs = (words: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
  if (words[0] !== "node" || !/(^|\/)bin\/rollout\.js$/.test(words[1] ?? "")) return undefined
  let i = 2
  while (i < words.length && words[i]!.startsWith("-"))
    i += GLOBAL_VALUE_OPTIONS.has(words[i]!) && !words[i]!.includes("=") ? 2 : 1
  return words.slice(i)
}

/** The value of `--flag v` or `--flag=v` among `args`. */
const flagValue = (args: ReadonlyArray<string>, flag: string): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1]
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1)
  }
  return undefined
}

// ---- The inputs the README's commands name -------------------------------------------------

/** The first questions of the bundled demo benchmark: the researcher script can answer them. */
const demoTasks: ReadonlyArray<{ id: string; question: string; answer: string }> = fs
  .readFileSync(path.join(repo, "data/demo/questions.jsonl"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .slice(0, 3)
  .map((line) => JSON.parse(line))

const csvCell = (value: string): string => (/[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value)
const csv = (rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  `${rows.map((row) => row.map(csvCell).join(",")).join("\n")}\n`

/** Files a command names that the test writes when absent, by the command's benchmark. */
const FIXTURES: ReadonlyArray<{ readonly benchmark: RegExp; readonly write: (file: string) => void }> = [
  {
    // xbench-DeepSearch's CSV: prompt and answer encrypted with the raw bytes of the row's canary.
    benchmark: /^xbench-deepsearch(-2505|-2510)?$/,
    write: (file) => {
      const canary = "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID readme-test"
      const key = canaryKey(canary, "raw")
      const encrypt = (text: string) =>
        Buffer.from(xorWithKey(Buffer.from(text, "utf8"), key)).toString("base64")
      fs.writeFileSync(
        file,
        csv([
          ["id", "prompt", "answer", "reference_steps", "canary"],
          ...demoTasks.map((t) => [t.id, encrypt(t.question), encrypt(t.answer), "", canary]),
        ]),
      )
    },
  },
  {
    // FRAMES: an unnamed index column, Prompt and Answer.
    benchmark: /^frames$/,
    write: (file) =>
      fs.writeFileSync(
        file,
        csv([["", "Prompt", "Answer"], ...demoTasks.map((t, i) => [String(i), t.question, t.answer])]),
      ),
  },
]

/** The benchmark files a rollout command reads: `eval --data`, `data inspect <benchmark> <path>`. */
const inputsOf = (args: ReadonlyArray<string>): ReadonlyArray<{ benchmark: string; file: string }> => {
  if (args[0] === "eval") {
    const benchmark = flagValue(args, "--bench")
    const file = flagValue(args, "--data")
    return benchmark === undefined || file === undefined ? [] : [{ benchmark, file }]
  }
  if (args[0] === "data" && args[1] === "inspect" && args[2] !== undefined && args[3] !== undefined)
    return [{ benchmark: args[2], file: args[3] }]
  return []
}

// ---- The scripted model server: the agent and the judge ------------------------------------

/**
 * The judge prompts of the benchmarks the README uses, read back: where the reference answer and
 * the response stand, and the verdict lines the benchmark's parser reads.
 */
const JUDGE_FORMATS: ReadonlyArray<{
  readonly truth: RegExp
  readonly response: RegExp
  readonly verdict: (correct: boolean) => string
}> = [
  {
    truth: /\[正确答案\]: (.*)/,
    response: /\[回答\]: (.*)/,
    verdict: (ok) => `最终答案: 见回答\n解释: 比较了两个答案。\n结论: ${ok ? "正确" : "错误"}`,
  },
  {
    truth: /Ground-truth answer: (.*)/,
    response: /Response: (.*)/,
    verdict: (ok) => `Explanation: compared the two.\nDecision: ${ok ? "TRUE" : "FALSE"}`,
  },
  {
    truth: /\[correct_answer\]: (.*)/,
    response: /\[response\]: (.*)/,
    verdict: (ok) =>
      `extracted_final_answer: as given\nreasoning: compared.\ncorrect: ${ok ? "yes" : "no"}\nconfidence: 100%`,
  },
  {
    truth: /Reference answer: (.*)/,
    response: /Agent's answer: (.*)/,
    verdict: (ok) => `reasoning: compared the two.\ncorrect: ${ok ? "yes" : "no"}`,
  },
  {
    truth: /(?:REFERENCE ANSWER|Gold target): (.*)/,
    response: /(?:STUDENT ANSWER|Predicted answer): (.*)/,
    verdict: (ok) => `GRADE: ${ok ? "CORRECT" : "INCORRECT"}`,
  },
]

const judged = { known: 0, unknown: 0 }

/**
 * Requests with tools are the agent's (the researcher script: it searches the bundled corpus and
 * answers from what it read); requests without are the judge's: correct when the response
 * contains the reference answer. A judge prompt of no known format is refused, so it shows.
 */
const researcher = scripts.researcher({ seed: 0 })
const agentAndJudge: Script = (request, context) => {
  if ((request.tools?.length ?? 0) > 0) return researcher(request, context)
  const prompt = request.messages.map(messageText).join("\n")
  for (const format of JUDGE_FORMATS) {
    const truth = format.truth.exec(prompt)?.[1]?.trim()
    const response = format.response.exec(prompt)?.[1]?.trim()
    if (truth === undefined || response === undefined) continue
    judged.known++
    return { content: format.verdict(response.toLowerCase().includes(truth.toLowerCase())) }
  }
  judged.unknown++
  return { error: { status: 400, message: "the README test's judge double does not know this judge prompt" } }
}

// ---- Processes -----------------------------------------------------------------------------

interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

const lastLines = (text: string, n = 30): string => text.trimEnd().split("\n").slice(-n).join("\n")

const describeOutcome = (what: string, o: Outcome): string =>
  `${what} ${o.signal === null ? `exited ${o.code}` : `was killed by ${o.signal}`}\n` +
  `--- stdout (last lines)\n${lastLines(o.stdout)}\n--- stderr (last lines)\n${lastLines(o.stderr)}`

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Environment of every command: ours, without ROLLOUT_* settings that would change what runs. */
const baseEnv = (dataDir: string): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !name.startsWith("ROLLOUT_")) env[name] = value
  return {
    ...env,
    NO_COLOR: "1",
    // npm scripts run in the repository (as npm runs them): their log goes to the temp checkout too.
    ROLLOUT_DATA_DIR: dataDir,
    PATH: `${path.join(repo, "node_modules", ".bin")}${path.delimiter}${env.PATH ?? ""}`,
  }
}

/** The executable of a command's first word (node is this Node; nats-server as the tests find it). */
const programOf = (word: string): string =>
  word === "node" ? process.execPath : word === "nats-server" ? findNatsServer() : word

interface Running {
  readonly child: ChildProcess
  readonly what: string
  readonly output: { stdout: string; stderr: string }
  readonly exited: Promise<Outcome>
}

/** Every process this test started, so none outlives it (a block that times out skips its own stops). */
const started: Running[] = []

const start = (words: ReadonlyArray<string>, cwd: string, env: Record<string, string>): Running => {
  const child = spawn(programOf(words[0]!), words.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
  const output = { stdout: "", stderr: "" }
  child.stdout!.on("data", (chunk: Buffer) => {
    output.stdout += chunk.toString("utf8")
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString("utf8")
  })
  const exited = new Promise<Outcome>((resolve) => {
    child.once("error", (error) =>
      resolve({ code: -1, signal: null, stdout: output.stdout, stderr: String(error) }),
    )
    child.once("close", (code, signal) => resolve({ code, signal, ...output }))
  })
  const running = { child, what: words.join(" "), output, exited }
  started.push(running)
  return running
}

/** Ends a process this test started: SIGTERM (workers drain, servers close), SIGKILL after 20 s. */
const stop = async (running: Running): Promise<void> => {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return
  running.child.kill("SIGTERM")
  const timer = setTimeout(() => running.child.kill("SIGKILL"), 20_000)
  await running.exited
  clearTimeout(timer)
}

const runToEnd = async (words: ReadonlyArray<string>, cwd: string, env: Record<string, string>) => {
  const running = start(words, cwd, env)
  const timer = setTimeout(() => running.child.kill("SIGKILL"), COMMAND_TIMEOUT_MS)
  const outcome = await running.exited
  clearTimeout(timer)
  return outcome
}

// ---- The run ---------------------------------------------------------------------------------

let root: string
let checkout: string
let model: ScriptedModelServer
let sharedNats: TestNatsServer | undefined
const notRunSeen = new Set<string>()
/** Every command run so far with its substituted words, for `…` ("as before"). */
const history: Array<ReadonlyArray<string>> = []

beforeAll(async () => {
  expect(
    fs.existsSync(path.join(repo, "dist/src/cli/main.js")),
    "run `npm run build` first (npm test does)",
  ).toBe(true)
  root = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-readme-"))
  checkout = path.join(root, "checkout")
  fs.mkdirSync(checkout)
  for (const dir of ["bin", "data"]) fs.symlinkSync(path.join(repo, dir), path.join(checkout, dir))
  // Weight version 0: the RL example trains the `policy` group (token-exact), which counts versions from 0.
  model = await startScriptedModelServer({ script: agentAndJudge, weights: { version: "0" } })
  const modelHost = new URL(model.url).host
  // The config as shipped, with the README's model server moved to the scripted one and the MCP
  // gateway on a free port (other tests may run a dock on the default one).
  fs.cpSync(path.join(repo, "config"), path.join(checkout, "config"), { recursive: true })
  for (const file of fs.readdirSync(path.join(checkout, "config"), { recursive: true, encoding: "utf8" })) {
    const full = path.join(checkout, "config", file)
    if (!file.endsWith(".yaml") || !fs.statSync(full).isFile()) continue
    fs.writeFileSync(full, fs.readFileSync(full, "utf8").replaceAll(README_MODEL_SERVER, modelHost))
  }
  const toolsFile = path.join(checkout, "config", "tools.yaml")
  const tools = YAML.parseDocument(fs.readFileSync(toolsFile, "utf8"))
  if (tools.hasIn(["gateway", "port"])) tools.setIn(["gateway", "port"], await freePort())
  fs.writeFileSync(toolsFile, tools.toString())
})

afterAll(async () => {
  for (const running of started.reverse()) await stop(running)
  await model?.stop()
  await sharedNats?.stop()
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true })
})

/** What a block needs before it runs: the NATS URL its `nats://127.0.0.1:4222` stands for. */
interface BlockSetting {
  readonly natsUrl: string | undefined
  /** The port for the block's own `nats-server`, when it starts one. */
  readonly ownNatsPort: number | undefined
}

const settingFor = async (block: ReadmeBlock): Promise<BlockSetting> => {
  const ownNats = block.commands.some((c) => c.words[0] === "nats-server")
  const usesNats = block.commands.some((c) => c.words.some((w) => w.includes(README_NATS)))
  if (ownNats) {
    const port = await freePort()
    return { natsUrl: `nats://127.0.0.1:${port}`, ownNatsPort: port }
  }
  if (!usesNats) return { natsUrl: undefined, ownNatsPort: undefined }
  sharedNats ??= await startTestNatsServer()
  return { natsUrl: sharedNats.url, ownNatsPort: undefined }
}

/** Address changes: the README's model server and NATS, and `/tmp/…` paths into the temp dir. */
const substitute = (word: string, setting: BlockSetting): string => {
  let out = word.replaceAll(README_MODEL_SERVER, new URL(model.url).host)
  if (out.includes(README_NATS)) out = out.replaceAll(README_NATS, setting.natsUrl!)
  if (out.startsWith("/tmp/")) out = path.join(root, out)
  return out
}

/** The most turns a README command forks at (`--fork-at N`), so the sample episode has them. */
const forkTurns = (): number => {
  const turns = [...readme.matchAll(/--fork-at\s+(\d+)/g)].map((m) => Number(m[1]))
  return Math.max(3, ...turns)
}

let sampleEpisode: Promise<string> | undefined
/**
 * An episode for `<episodeId>`: one of `rollout demo --actors` (the scripted model calls the echo
 * tool, then answers), long enough for the README's `--fork-at`.
 */
const episodeForReplay = (): Promise<string> => {
  sampleEpisode ??= runToEnd(
    [
      "node",
      "bin/rollout.js",
      "demo",
      "--actors",
      "--episodes",
      "1",
      "--turns",
      String(forkTurns()),
      "--json",
    ],
    checkout,
    baseEnv(path.join(checkout, ".rollout")),
  ).then((o) => {
    if (o.code !== 0)
      throw new Error(describeOutcome("making an episode for <episodeId>: rollout demo --actors", o))
    return JSON.parse(o.stdout).episodes[0].episode as string
  })
  return sampleEpisode
}

/** Values of the README's `<placeholders>`. */
const PLACEHOLDERS: Readonly<Record<string, () => Promise<string>>> = {
  "<episodeId>": episodeForReplay,
}

/** `…` stands for the arguments of the last command with the same words before it. */
const expandEllipsis = (words: ReadonlyArray<string>, where: string): ReadonlyArray<string> => {
  const at = words.indexOf("…")
  if (at < 0) return words
  const prefix = words.slice(0, at)
  const rest = words.slice(at + 1)
  const previous = [...history]
    .reverse()
    .find((h) => prefix.every((w, i) => h[i] === w) && h.length > prefix.length)
  if (previous === undefined)
    throw new Error(`${where}: "…" but no earlier command starts with ${prefix.join(" ")}`)
  // Options given after the "…" replace the earlier ones.
  const given = new Set(rest.filter((w) => w.startsWith("-")))
  const kept: string[] = []
  const earlier = previous.slice(prefix.length)
  for (let i = 0; i < earlier.length; i++) {
    if (given.has(earlier[i]!)) {
      if (earlier[i + 1] !== undefined && !earlier[i + 1]!.startsWith("-")) i++
      continue
    }
    kept.push(earlier[i]!)
  }
  return [...prefix, ...kept, ...rest]
}

/** The steps of `npm <script>`: its package.json script (pre-, main, post-), npm steps expanded. */
const npmSteps = (words: ReadonlyArray<string>, where: string): ReadonlyArray<ReadonlyArray<string>> => {
  let i = 1
  if (words[1] === "run" || words[1] === "run-script") {
    i = 2
    while (words[i]?.startsWith("-")) i++
  }
  const name = words[i]
  if (name === undefined) throw new Error(`${where}: npm with no script name`)
  const dashes = words.indexOf("--")
  const extra = dashes < 0 ? [] : words.slice(dashes + 1)
  const script = packageScripts[name]
  if (script === undefined) throw new Error(`${where}: package.json has no script "${name}"`)
  const stepsOf = (text: string, args: ReadonlyArray<string>) => {
    const commands = shellCommands(text)
    if (commands.some((c) => c.background || Object.keys(c.env).length > 0))
      throw new Error(`${where}: the script "${text}" uses shell syntax this test does not run`)
    return commands.map((c, n) => (n === commands.length - 1 ? [...c.words, ...args] : c.words))
  }
  const steps = [
    ...(packageScripts[`pre${name}`] === undefined ? [] : stepsOf(packageScripts[`pre${name}`]!, [])),
    ...stepsOf(script, extra),
    ...(packageScripts[`post${name}`] === undefined ? [] : stepsOf(packageScripts[`post${name}`]!, [])),
  ]
  return steps.flatMap((step) =>
    step[0] === "npm" && !NOT_RUN.some((n) => n.matches(step)) ? npmSteps(step, where) : [step],
  )
}

const notRun = (words: ReadonlyArray<string>): boolean => {
  const entry = NOT_RUN.find((n) => n.matches(words))
  if (entry !== undefined) notRunSeen.add(entry.command)
  return entry !== undefined
}

/**
 * A README command's words as they will run: "…" expanded, placeholders given values, addresses
 * substituted, a nats-server on its free port, the input files it names written.
 */
const prepare = async (command: ReadmeCommand, setting: BlockSetting, where: string) => {
  let words = [...expandEllipsis(command.words, where)]
  // Placeholders first, so their values are not mistaken for addresses.
  for (const [placeholder, value] of Object.entries(PLACEHOLDERS))
    if (words.some((w) => w.includes(placeholder))) {
      const v = await value()
      words = words.map((w) => w.replaceAll(placeholder, v))
    }
  const left = words.find((w) => /<[A-Za-z][\w.-]*>/.test(w))
  if (left !== undefined)
    throw new Error(`${where}: no value for the placeholder in "${left}": add it to PLACEHOLDERS`)
  words = words.map((w) => substitute(w, setting))
  if (words[0] === "nats-server") {
    // The README relies on the default port; the test's server takes a free one.
    const port = words.findIndex((w) => w === "-p" || w === "--port")
    if (port >= 0) words.splice(port, 2)
    words.push("-p", String(setting.ownNatsPort))
    const store = words.indexOf("-sd")
    if (store >= 0) fs.mkdirSync(path.resolve(checkout, words[store + 1]!), { recursive: true })
  }
  const args = rolloutArgs(words)
  for (const input of args === undefined ? [] : inputsOf(args)) {
    const file = path.resolve(checkout, input.file)
    expect(
      file.startsWith(`${root}${path.sep}`),
      `${where}: ${input.file} is outside the test's directory`,
    ).toBe(true)
    if (fs.existsSync(file)) continue
    const fixture = FIXTURES.find((f) => f.benchmark.test(input.benchmark))
    if (fixture === undefined)
      throw new Error(`${where}: no input file for benchmark ${input.benchmark}: add one to FIXTURES`)
    fixture.write(file)
  }
  return words
}

/** Starts a `… &` command and waits until it says it is ready (or fails if it ends or never does). */
const startInBackground = async (
  words: ReadonlyArray<string>,
  env: Record<string, string>,
  where: string,
): Promise<Running> => {
  const readiness = READINESS.find((r) => r.matches(words))
  if (readiness === undefined)
    throw new Error(`${where}: a background command with no readiness rule: add one to READINESS`)
  const running = start(words, checkout, env)
  const ready = await Promise.race([
    new Promise<true>((resolve) => {
      const poll = setInterval(() => {
        if (readiness.pattern.test(running.output[readiness.stream])) {
          clearInterval(poll)
          resolve(true)
        }
      }, 50)
      void running.exited.then(() => clearInterval(poll))
    }),
    running.exited,
    new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 60_000).unref()),
  ])
  if (ready === true) return running
  await stop(running)
  throw new Error(
    ready === "timeout"
      ? `${where}: not ready in 60 s (${readiness.what}: waiting for ${readiness.pattern} on ${readiness.stream})`
      : describeOutcome(`${where} (in the background)`, ready),
  )
}

/** Runs a block's commands in order; its background commands are stopped when it ends. */
const runBlock = async (block: ReadmeBlock): Promise<void> => {
  const setting = await settingFor(block)
  const env = baseEnv(path.join(checkout, ".rollout"))
  const background: Running[] = []
  try {
    for (const command of block.commands) {
      const where = `README.md:${command.line}: \`${command.text}\``
      if (notRun(command.words)) continue
      const words = await prepare(command, setting, where)
      history.push(words)
      const commandEnv = { ...env, ...command.env }
      if (command.background) {
        background.push(await startInBackground(words, commandEnv, where))
        continue
      }
      const steps = words[0] === "npm" ? npmSteps(words, where) : [words]
      for (const step of steps) {
        if (notRun(step)) continue
        let run = step
        // A build here goes to a temp directory: other test files are executing dist/ meanwhile.
        if (run[0] === "tsc" && !run.includes("--noEmit"))
          run = [...run, "--outDir", path.join(root, "build")]
        // npm runs a package's scripts in the package's directory.
        const outcome = await runToEnd(run, words[0] === "npm" ? repo : checkout, commandEnv)
        const label = steps.length > 1 ? `${where}, step \`${run.join(" ")}\`` : where
        if (outcome.code !== 0) throw new Error(describeOutcome(label, outcome))
      }
    }
    for (const running of background)
      if (running.child.exitCode !== null)
        throw new Error(
          describeOutcome(`${running.what} (in the background) ended before its block`, await running.exited),
        )
  } finally {
    for (const running of background.reverse()) await stop(running)
  }
}

let parsed: ReadonlyArray<ReadmeBlock> = []
let parseError: unknown
try {
  parsed = readmeBlocks(readme)
} catch (error) {
  parseError = error
}

describe("README.md's commands", () => {
  it("every ```bash block parses into commands", () => {
    expect(parseError).toBeUndefined()
    expect(parsed.length).toBeGreaterThan(0)
  })

  for (const block of parsed)
    it(
      `README.md:${block.line}: ${block.commands[0]?.text ?? "(empty block)"}`,
      () => runBlock(block),
      600_000,
    )

  it("the judge model of config/models.yaml answered every judged sample", async () => {
    const judgedCommands = parsed.flatMap((b) => b.commands).filter((c) => c.words.includes("--judge-model"))
    if (judgedCommands.length === 0) return
    expect(judged.unknown, "judge prompts the double could not read").toBe(0)
    expect(judged.known).toBeGreaterThan(0)
    // Every log the README's commands wrote runs to: the embedded one, and NATS when a block used it.
    const logs = [[], ...(sharedNats === undefined ? [] : [["--nats", sharedNats.url]])]
    for (const log of logs) {
      const scores = await runToEnd(
        ["node", "bin/rollout.js", ...log, "scores", "--json"],
        checkout,
        baseEnv(path.join(checkout, ".rollout")),
      )
      expect(scores.code, scores.stderr).toBe(0)
      const runs: ReadonlyArray<{ runId: string; judgeFailed: number }> = JSON.parse(scores.stdout).runs
      expect(runs.length).toBeGreaterThan(0)
      for (const run of runs) expect(run.judgeFailed, `${run.runId} ${log.join(" ")}`).toBe(0)
    }
  })

  it("NOT_RUN lists only commands the README has", () => {
    expect([...notRunSeen].sort()).toEqual(NOT_RUN.map((n) => n.command).sort())
  })
})

describe("README.md's command table", () => {
  const helps = new Map<string, Promise<string>>()
  const help = (words: ReadonlyArray<string>): Promise<string> => {
    const key = words.join(" ")
    if (!helps.has(key))
      helps.set(
        key,
        runToEnd(["node", "bin/rollout.js", ...words, "--help"], repo, baseEnv(path.join(root, "help"))).then(
          (o) => {
            if (o.code !== 0) throw new Error(describeOutcome(`rollout ${key} --help`, o))
            return o.stdout
          },
        ),
      )
    return helps.get(key)!
  }
  /** The subcommand names a help text lists under "Commands:". */
  const subcommands = (text: string): ReadonlySet<string> => {
    const section = text.split(/^Commands:$/m)[1] ?? ""
    return new Set([...section.matchAll(/^ {2}([\w-]+)/gm)].map((m) => m[1]!))
  }
  /** The flags a help text lists under "Options:". */
  const options = (text: string): ReadonlySet<string> => {
    const section = (text.split(/^Options:$/m)[1] ?? "").split(/^Commands:$/m)[0]!
    return new Set([...section.matchAll(/(?<![\w-])(--?[A-Za-z][\w-]*)/g)].map((m) => m[1]!))
  }

  it("names only commands and flags the CLI has", async () => {
    const rows = tableRows(readme, "command")
    expect(rows.length).toBeGreaterThan(0)
    const top = await help([])
    const globalFlags = options(top)
    for (const row of rows) {
      const synopsis = row.cells[0]!.replace(/^`|`$/g, "")
      const words = synopsis.split(/\s+/)
      expect(words[0], `README.md:${row.line}: a synopsis starts with rollout`).toBe("rollout")
      const command: string[] = []
      let names = subcommands(top)
      while (words[command.length + 1] !== undefined && names.has(words[command.length + 1]!)) {
        command.push(words[command.length + 1]!)
        names = subcommands(await help(command))
      }
      expect(command.length, `README.md:${row.line}: "${synopsis}" names no rollout command`).toBeGreaterThan(
        0,
      )
      const known = new Set([...globalFlags, ...options(await help(command))])
      const named = [...row.cells.join(" ").matchAll(/(?<![\w-])(--?[A-Za-z][\w-]*)/g)].map((m) => m[1]!)
      for (const flag of named)
        expect(known.has(flag), `README.md:${row.line}: rollout ${command.join(" ")} has no ${flag}`).toBe(
          true,
        )
    }
  }, 120_000)
})
