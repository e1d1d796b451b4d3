/**
 * Golden logs: recorded episodes in `tests/golden/<version>/episodes.ndjson` (embedded-log lines,
 * named by the version that wrote them). Every build verifies each episode by re-driving the
 * decider over its recorded inputs, and checks that a tampered copy is caught at the right event.
 * `GOLDEN_WRITE=1 npx vitest run tests/golden` records the scenarios anew for the current version.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import { defaultPolicy } from "../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { toChat, verify } from "../../src/actors/agent/replay.ts"
import { type EpisodePorts, runEpisode, type ToolPort } from "../../src/actors/agent/shell.ts"
import type { Completion } from "../../src/events/chat.ts"
import { decodeEvent, UndecodableEvent } from "../../src/events/codec.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { Envelope, EpisodePolicy } from "../../src/events/schema.ts"
import { manualClock } from "../../src/runtime/clock.ts"

const version = JSON.parse(fs.readFileSync("package.json", "utf8")).version as string
const goldenDir = path.join("tests", "golden")

interface Scenario {
  readonly id: string
  readonly policy: EpisodePolicy
  readonly replies: ReadonlyArray<Omit<Completion, "endpoint" | "latencyMs" | "usage">>
  readonly tools: "echo" | "down"
  readonly outcome: string
}

const call = (tool: string, args: object, id: string) => ({ callId: id, tool, arguments: args as never })
const scenarios: ReadonlyArray<Scenario> = [
  {
    id: "answered-openai",
    policy: defaultPolicy,
    replies: [
      {
        finishReason: "tool_calls",
        content: "",
        toolCalls: [call("search", { q: "capital of France" }, "c1")],
      },
      {
        finishReason: "tool_calls",
        content: "",
        toolCalls: [call("fetch", { url: "https://example.org/paris" }, "c2")],
      },
      { finishReason: "stop", content: "<think>The page says Paris.</think><answer>Paris</answer>" },
    ],
    tools: "echo",
    outcome: "answered",
  },
  {
    id: "hermes-format-error",
    policy: { ...defaultPolicy, toolCallFormat: "hermes" },
    replies: [
      { finishReason: "stop", content: "<tool_call>{name: search, arguments: {'q': 'x'</tool_call>" },
      { finishReason: "stop", content: '<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>' },
      { finishReason: "stop", content: "<answer>x</answer>" },
    ],
    tools: "echo",
    outcome: "answered",
  },
  {
    id: "repetition",
    policy: defaultPolicy,
    replies: [{ finishReason: "stop", content: "Let me think again." }],
    tools: "echo",
    outcome: "repetition",
  },
  {
    id: "turns-limit",
    policy: { ...defaultPolicy, maxTurns: 3 },
    replies: [
      { finishReason: "tool_calls", content: "more", toolCalls: [call("search", { q: "more" }, "c")] },
    ],
    tools: "echo",
    outcome: "turns_limit",
  },
  {
    id: "tool-infrastructure",
    policy: defaultPolicy,
    replies: [{ finishReason: "tool_calls", content: "", toolCalls: [call("search", { q: "y" }, "c1")] }],
    tools: "down",
    outcome: "tool_infrastructure_error",
  },
]

const portsFor = (s: Scenario): EpisodePorts => {
  const tools: ToolPort = {
    call: ({ arguments: args }) =>
      Effect.succeed(
        s.tools === "echo"
          ? { ok: true as const, content: { echo: args } as never, truncated: false }
          : { ok: false as const, kind: "infrastructure" as const, message: "sandbox unreachable" },
      ),
  }
  return {
    model: {
      complete: (request) => {
        const turn = Number(request.requestId.split("/").at(-1))
        const reply = s.replies[Math.min(turn - 1, s.replies.length - 1)]!
        const toolCalls = reply.toolCalls?.map((c) => ({ ...c, callId: `${request.requestId}:${c.callId}` }))
        return Effect.succeed({
          ...reply,
          ...(toolCalls === undefined ? {} : { toolCalls }),
          endpoint: "golden",
          latencyMs: 1,
          usage: { promptTokens: 100 * turn, completionTokens: 10 },
        })
      },
    },
    tools,
    parse: parseForEpisode,
    clock: manualClock(Date.parse("2026-11-25T00:00:00.000Z")),
  }
}

const readEpisodes = async (file: string): Promise<Map<string, Envelope[]>> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-golden-"))
  try {
    fs.mkdirSync(path.join(dir, "log", "golden"), { recursive: true })
    fs.copyFileSync(file, path.join(dir, "log", "golden", "events.ndjson"))
    const entries = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(makeEmbeddedLog({ dataDir: dir, namespace: "golden", mode: "reader" }), (log) =>
          Stream.runCollect(log.read()),
        ),
      ),
    )
    const byEpisode = new Map<string, Envelope[]>()
    for (const entry of entries) {
      if (entry instanceof UndecodableEvent) throw new Error(entry.message)
      const envelope = Result.getOrThrow(decodeEvent(entry))
      const list = byEpisode.get(envelope.subject) ?? []
      list.push(envelope)
      byEpisode.set(envelope.subject, list)
    }
    return byEpisode
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs every scenario into a fresh embedded log under `dir`; returns the log file. */
const recordScenarios = async (dir: string): Promise<string> => {
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const log = yield* makeEmbeddedLog({ dataDir: dir, namespace: "golden", fsync: "never" })
        for (const s of scenarios) {
          yield* runEpisode(log, portsFor(s), s.id, {
            kind: "start",
            episodeId: s.id,
            taskId: s.id,
            sampleIndex: 0,
            question: `golden scenario ${s.id}`,
            model: "golden-model",
            policy: s.policy,
          })
        }
      }),
    ),
  )
  return path.join(dir, "log", "golden", "events.ndjson")
}

const writeGolden = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-golden-write-"))
  try {
    const file = await recordScenarios(dir)
    fs.mkdirSync(path.join(goldenDir, `v${version}`), { recursive: true })
    fs.copyFileSync(file, path.join(goldenDir, `v${version}`, "episodes.ndjson"))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const goldenFiles = () =>
  fs
    .readdirSync(goldenDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => path.join(goldenDir, d.name, "episodes.ndjson"))
    .filter((f) => fs.existsSync(f))

describe("golden episode logs", () => {
  it("every recorded episode verifies by re-driving its decisions", async () => {
    if (process.env.GOLDEN_WRITE === "1") await writeGolden()
    const files = goldenFiles()
    expect(files.length, "no golden logs: run GOLDEN_WRITE=1 npx vitest run tests/golden").toBeGreaterThan(0)
    for (const file of files) {
      const episodes = await readEpisodes(file)
      expect(episodes.size).toBe(scenarios.length)
      for (const s of scenarios) {
        const envelopes = [...episodes.entries()].find(([subject]) => subject.endsWith(`.${s.id}`))?.[1]
        expect(envelopes, `${file}: episode ${s.id}`).toBeDefined()
        const result = verify(envelopes!, parseForEpisode)
        expect(result.ok ? result : JSON.stringify(result), `${file}: ${s.id}`).toMatchObject({ ok: true })
        const finished = envelopes!.at(-1)!.event
        expect(finished).toMatchObject({ type: "EpisodeFinished", outcome: s.outcome })
        expect(toChat(envelopes!)[0]).toEqual({
          role: "user",
          content: `Your task is to answer the user's question: golden scenario ${s.id}.`,
        })
      }
    }
  })

  it("recording the scenarios again writes this version's golden log byte for byte", async () => {
    const golden = path.join(goldenDir, `v${version}`, "episodes.ndjson")
    expect(fs.existsSync(golden), `no golden log for v${version}`).toBe(true)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-golden-again-"))
    try {
      // A tool's latency is measured, so it is the one field that differs between recordings.
      const lines = (file: string) =>
        fs
          .readFileSync(file, "utf8")
          .split("\n")
          .filter((line) => line.length > 0)
          .map((line) => line.replace(/("type":"ToolCallCompleted",.*"latencyMs":)[0-9.e-]+/, "$1<measured>"))
      const again = lines(await recordScenarios(dir))
      expect(again).toEqual(lines(golden))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a tampered recording is caught at the event that no longer follows", async () => {
    const [file] = goldenFiles()
    const episodes = await readEpisodes(file!)
    const envelopes = [...episodes.entries()].find(([s]) => s.endsWith(".answered-openai"))![1]
    const at = envelopes.findIndex((e) => e.event.type === "EpisodeFinished")
    const tampered = envelopes.map((e, i) =>
      i === at && e.event.type === "EpisodeFinished" ? { ...e, event: { ...e.event, answer: "Lyon" } } : e,
    )
    const result = verify(tampered, parseForEpisode)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.divergence.position).toBe(envelopes[at]!.position)
      expect(result.divergence.redriven).toMatchObject({ answer: "Paris" })
    }
  })
})
