/**
 * `rollout demo` (what `npm start` runs): a complete k = 8 evaluation offline, on a fresh machine.
 * The bundled benchmark (`data/demo/questions.jsonl`, 20 questions about a small fictional town)
 * is answered from the bundled corpus through this repo's own `search` and `fetch_url` MCP servers
 * (offline mode) pooled by AgentDock, by the scripted model server — a TEST DOUBLE standing in for a
 * GPU server, which says so — running its `researcher` script: it searches, reads and picks an
 * answer from what it read, never from the answer key. Everything goes to the embedded log; the
 * report is the same as `rollout eval`'s, and the same command then points at a real endpoint.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import { modelUrlVariable } from "../../actors/inference/modelsConfig.ts"
import { scripts, startScriptedModelServer } from "../../programs/scriptedModel/server.ts"
import { configFrom, type GlobalOptions, integerFlag, UsageError } from "../terminal/invocation.ts"

/** This checkout's root (where `data/demo` is), found from this module's place. */
const packageRoot = (): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, "data", "demo", "questions.jsonl"))) return dir
    dir = path.dirname(dir)
  }
  return process.cwd()
}

/** The flags the demo runs `rollout eval` with. */
export interface DemoEvalFlags {
  readonly bench: string
  readonly data: string
  readonly model: string
  readonly k: string
  readonly concurrency: string
  readonly map: string
  readonly scorer: string
  readonly tools: string
  readonly run: string
  readonly json?: boolean
}

/**
 * `evaluate` is `rollout eval` itself, which the command tree hands over (a command never imports
 * another): the demo is that evaluation with the bundled data and the scripted model server.
 */
export const evalDemoCommand = (
  global: GlobalOptions,
  options: { k?: string; concurrency?: string; json?: boolean },
  evaluate: (global: GlobalOptions, flags: DemoEvalFlags) => Effect.Effect<unknown, unknown>,
) =>
  Effect.gen(function* () {
    const config = yield* configFrom(global)
    if (config.log.backend !== "embedded")
      return yield* Effect.fail(
        new UsageError("rollout demo runs on the embedded log; drop --nats / --log nats"),
      )
    const k = (yield* integerFlag("-k", options.k)) ?? 8
    const root = packageRoot()
    const data = path.join(root, "data", "demo", "questions.jsonl")
    const server = yield* Effect.acquireRelease(
      Effect.promise(() => startScriptedModelServer({ script: scripts.researcher({ seed: 0 }) })),
      (s) => Effect.promise(() => s.stop()),
    )
    if (options.json !== true)
      process.stderr.write(
        `model: the scripted model server at ${server.url} — a TEST DOUBLE for a GPU server (no weights): it\n` +
          "  searches the bundled corpus, reads pages and picks an answer from what it read, so it is often wrong.\n" +
          "tools: search and fetch_url (this repo's MCP servers, offline over data/demo/corpus.jsonl), pooled by AgentDock\n",
      )
    // The tool servers read the corpus relative to the working directory.
    if (path.resolve(process.cwd()) !== root) process.chdir(root)
    process.env[modelUrlVariable("agent")] = server.url
    yield* evaluate(global, {
      bench: "custom",
      data,
      model: "agent",
      k: String(k),
      concurrency: options.concurrency ?? "16",
      map: "question=question,answer=answer,id=id,level=level",
      scorer: "gaia",
      tools: "search,fetch_url",
      run: `demo-${new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "")}`,
      ...(options.json === true ? { json: true } : {}),
    })
    if (options.json !== true)
      process.stdout.write(
        "\nThe same evaluation against a real OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenAI):\n" +
          "  node bin/rollout.js eval --bench custom --data data/demo/questions.jsonl --map question=question,answer=answer,id=id,level=level \\\n" +
          "    --scorer gaia --model agent --base-url http://127.0.0.1:8000/v1 -k 8 --tools search,fetch_url\n" +
          "and on a real benchmark file, e.g. --bench xbench-deepsearch --data <your DeepSearch-2505.csv> (decrypted in memory).\n",
      )
  }).pipe(Effect.scoped)
