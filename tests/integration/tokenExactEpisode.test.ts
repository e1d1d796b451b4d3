/**
 * Token-exact sampling end to end over real HTTP: the episode shell on the embedded log, the
 * inference pool (official openai client) with a `tokens: exact` model group, and the scripted
 * server (a test double for vLLM) serving weight version 7, its chat template rendering prompts to
 * ids. A four-turn tool-using episode with thinking, a malformed call that earns feedback and an
 * answer: every turn records its prompt ids, sampled ids, aligned log-probs, temperature and
 * weight versions (the header's, or the spans of an update landing mid-answer), each prompt
 * extends the previous prompt and sampled ids exactly, long id lists sit in the blob store, and
 * replay verifies; streamed, the turns record the same. The same episode against a template that rewrites history as Qwen3's does
 * (past reasoning dropped after a new user message) records exactly one DriftDetected, at the
 * token where the first dropped reasoning began, goes on to its answer, and replay re-derives it.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { defaultPolicy } from "../../src/actors/agent/decider.ts"
import { parseForEpisode } from "../../src/actors/agent/index.ts"
import { poolModelPort } from "../../src/actors/agent/modelPort.ts"
import { verify } from "../../src/actors/agent/replay.ts"
import { runEpisode } from "../../src/actors/agent/shell.ts"
import { modelsConfigFrom } from "../../src/actors/inference/modelsConfig.ts"
import { makeInferencePool } from "../../src/actors/inference/pool.ts"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { readEvents } from "../../src/events/log/readEvents.ts"
import type { Envelope, EventOf } from "../../src/events/schema.ts"
import { SPECIAL } from "../../src/programs/scriptedModel/chatTemplate.ts"
import { assistantTurns, type Script } from "../../src/programs/scriptedModel/script.ts"
import {
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  startScriptedModelServer,
} from "../../src/programs/scriptedModel/server.ts"

/**
 * Thinks before every turn; calls `echo` (turn 2 with arguments that are not JSON, so the agent
 * answers with feedback as a user message); turn 3's answer straddles an update from 7 to 8; turn 4
 * answers.
 */
const script: Script = (request) => {
  const turn = assistantTurns(request) + 1
  const reasoning = `Turn ${turn}: I should use the echo tool to be sure of what I have found so far.`
  if (turn === 2) return { reasoning, toolCalls: [{ name: "echo", arguments: "not json (" }] }
  if (turn === 3)
    return {
      reasoning,
      toolCalls: [{ name: "echo", arguments: { text: "turn 3" } }],
      weightVersions: [{ version: "7", tokens: 5 }, { version: "8" }],
    }
  if (turn >= 4) return { reasoning, content: "<answer>42</answer>" }
  return { reasoning, toolCalls: [{ name: "echo", arguments: { text: `turn ${turn}` } }] }
}

let dir: string
const servers: ScriptedModelServer[] = []
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-exact-episode-"))
})
afterAll(async () => {
  for (const server of servers) await server.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

type Responded = EventOf<"ModelResponded">

/** Runs the episode against a fresh server; its events as the log reads them back, and its stored lines. */
const runAgainst = async (
  namespace: string,
  template: ScriptedModelServerOptions["chatTemplate"],
  stream = false,
) => {
  const server = await startScriptedModelServer({
    script,
    weights: { version: "7" },
    ...(template === undefined ? {} : { chatTemplate: template }),
  })
  servers.push(server)
  const config = Result.getOrThrow(
    modelsConfigFrom({
      agent: { endpoints: [{ url: server.url }], tokens: "exact", stream, retries: 1, backoffMs: 10 },
    }),
  )
  const read = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        // A small inline limit: every long id list goes to the blob store.
        const log = yield* makeEmbeddedLog({
          dataDir: dir,
          namespace,
          fsync: "never",
          inlineLimitBytes: 2048,
        })
        const pool = yield* makeInferencePool(config, { log, namespace })
        const state = yield* runEpisode(
          log,
          {
            model: poolModelPort(pool),
            tools: {
              call: ({ arguments: args }) =>
                Effect.succeed({ ok: true as const, content: args, truncated: false }),
            },
            toolSpecs: [{ name: "echo", description: "echo", parameters: { type: "object" } }],
            parse: parseForEpisode,
          },
          "ep-1",
          {
            kind: "start",
            episodeId: "ep-1",
            taskId: "t",
            sampleIndex: 0,
            question: "What is 6 times 7?",
            model: "agent",
            policy: defaultPolicy,
          },
        )
        expect(state.outcome).toBe("answered")
        expect(state.answer).toBe("42")
        return yield* readEvents(log, { filter: `${namespace}.ev.episode.ep-1` })
      }),
    ),
  )
  expect(read.undecodable).toEqual([])
  const envelopes: ReadonlyArray<Envelope> = read.state
  const responded = envelopes.map((e) => e.event).filter((e): e is Responded => e.type === "ModelResponded")
  const drifts = envelopes.map((e) => e.event).filter((e) => e.type === "DriftDetected")
  const lines = fs
    .readFileSync(path.join(dir, "log", namespace, "events.ndjson"), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { body: { blobs?: ReadonlyArray<ReadonlyArray<string>> } })
  return { server, envelopes, responded, drifts, lines }
}

describe("a token-exact episode over HTTP", () => {
  it("records every turn's ids, log-probs, temperature and versions; each prompt extends the last turn's prompt and sampled ids", async () => {
    const { server, envelopes, responded, drifts, lines } = await runAgainst("exact", undefined)
    expect(responded.map((r) => r.turn)).toEqual([1, 2, 3, 4])
    expect(
      envelopes.some((e) => e.event.type === "TurnAssessed" && e.event.flags.includes("FORMAT_ERROR")),
    ).toBe(true)
    for (const r of responded) {
      expect(r.promptTokenIds!.length).toBe(r.usage.promptTokens)
      expect(r.tokenIds!.length).toBe(r.usage.completionTokens)
      expect(r.logprobs).toHaveLength(r.tokenIds!.length)
      expect(r.temperature).toBe(1)
      // Every turn thought first: its first sampled token opens the thinking.
      expect(r.tokenIds![0]).toBe(SPECIAL.thinkStart.id)
    }
    for (let t = 1; t < responded.length; t++) {
      const before = responded[t - 1]!
      const reached = [...before.promptTokenIds!, ...before.tokenIds!]
      expect(responded[t]!.promptTokenIds!.slice(0, reached.length)).toEqual(reached)
    }
    expect(drifts).toEqual([])
    // The version header over a whole answer, or the spans of an update landing mid-answer.
    expect(responded.map((r) => r.weightVersions)).toEqual(
      responded.map((r) =>
        r.turn === 3
          ? [
              { version: "7", start: 0, end: 5 },
              { version: "8", start: 5, end: r.tokenIds!.length },
            ]
          : [{ version: "7", start: 0, end: r.tokenIds!.length }],
      ),
    )
    // Each turn went back with its reasoning, so the template rendered it as sampled.
    const last = server.requests.filter((r) => r.path === "/v1/chat/completions").at(-1)!.body!
    const assistants = last.messages.filter((m) => m.role === "assistant")
    expect(assistants.map((m) => m.reasoning_content)).toEqual(
      [1, 2, 3].map(
        (turn) => `Turn ${turn}: I should use the echo tool to be sure of what I have found so far.`,
      ),
    )
    expect(last).toMatchObject({ return_token_ids: true, logprobs: true, top_logprobs: 0, temperature: 1 })
    // Long id lists are in the blob store, by hash; they read back whole (above) and replay verifies.
    const lastTurn = envelopes.find((e) => e.event.type === "ModelResponded" && e.event.turn === 4)!
    expect(lines[lastTurn.position - 1]!.body.blobs).toContainEqual(["promptTokenIds"])
    expect(verify(envelopes, parseForEpisode)).toMatchObject({ ok: true })
  })

  it("streamed, the same turns record the same ids, log-probs and versions", async () => {
    const tokensOf = (r: Responded) => [
      r.promptTokenIds,
      r.tokenIds,
      r.logprobs,
      r.temperature,
      r.weightVersions,
    ]
    const plain = await runAgainst("plain", undefined)
    const streamed = await runAgainst("streamed", undefined, true)
    expect(streamed.responded.map(tokensOf)).toEqual(plain.responded.map(tokensOf))
    expect(streamed.drifts).toEqual([])
    const asked = streamed.server.requests.filter((r) => r.path === "/v1/chat/completions")
    expect(asked.map((r) => r.body?.stream)).toEqual([true, true, true, true])
  })

  it("a template that rewrites history yields exactly one DriftDetected, at the token where it rewrote, and the episode goes on", async () => {
    const { envelopes, responded, drifts } = await runAgainst("drift", "drop-past-reasoning")
    expect(responded.map((r) => r.turn)).toEqual([1, 2, 3, 4])
    const [first, second, third] = responded
    // Turn 3 follows the feedback (a user message): turns 1 and 2 lost their reasoning there,
    // so the prompt differs where turn 1's sampled ids began (its <think>).
    expect(drifts).toEqual([
      {
        type: "DriftDetected",
        episodeId: "ep-1",
        turn: 3,
        previousTurn: 2,
        index: first!.promptTokenIds!.length,
        expectedTokens: second!.promptTokenIds!.length + second!.tokenIds!.length,
        promptTokens: third!.promptTokenIds!.length,
        kind: "fork",
      },
    ])
    const at = envelopes.findIndex((e) => e.event.type === "DriftDetected")
    expect(envelopes[at - 1]!.event).toMatchObject({ type: "ModelResponded", turn: 3 })
    // Turn 4 extends turn 3 again: the rewrite happened once.
    const reached = [...third!.promptTokenIds!, ...third!.tokenIds!]
    expect(responded[3]!.promptTokenIds!.slice(0, reached.length)).toEqual(reached)
    // Replay re-derives the drift from the recorded ids.
    expect(verify(envelopes, parseForEpisode)).toMatchObject({ ok: true })
    const tampered = envelopes.filter((e) => e.event.type !== "DriftDetected")
    expect(verify(tampered, parseForEpisode)).toMatchObject({ ok: false })
  })
})
