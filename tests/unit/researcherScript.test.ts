/**
 * The `researcher` script of the scripted model server (a test double for a GPU server): question
 * analysis and query building, reading the servers' result formats, the answer heuristics on small
 * made-up pages, the two-hop bridge, determinism (the same request gives the same reply; first
 * turns of identical requests are told apart by the episode the request names, a retried turn and
 * any order or instance included — fuzzed with fast-check —, else by the body's `seed` or by arrival
 * order), and a whole episode against an in-memory stand-in for `search` and `fetch_url`. No demo
 * data is used here.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { rankCandidates } from "../../src/programs/scriptedModel/researcher/answers.ts"
import { questionOf, readConversation } from "../../src/programs/scriptedModel/researcher/conversation.ts"
import { analyzeQuestion, answerKindOf } from "../../src/programs/scriptedModel/researcher/question.ts"
import { researcherScript } from "../../src/programs/scriptedModel/researcher/researcherScript.ts"
import { sampleTagOfEpisode, seededUnit } from "../../src/programs/scriptedModel/researcher/samples.ts"
import { buildQuery, findBridge } from "../../src/programs/scriptedModel/researcher/searching.ts"
import {
  type Page,
  parsePage,
  parseSearchResults,
} from "../../src/programs/scriptedModel/researcher/toolResults.ts"
import { stem } from "../../src/programs/scriptedModel/researcher/words.ts"
import {
  type ChatMessage,
  type ChatRequest,
  episodeKeyOf,
  type Script,
  type ScriptedReply,
} from "../../src/programs/scriptedModel/script.ts"
import { parseScriptName, scripts } from "../../src/programs/scriptedModel/scripts.ts"

const TOOLS = [
  { type: "function", function: { name: "search", parameters: { type: "object" } } },
  { type: "function", function: { name: "fetch_url", parameters: { type: "object" } } },
]

const task = (question: string): ChatMessage => ({
  role: "user",
  content: `Your task is to answer the user's question: ${question}.`,
})

const requestOf = (
  messages: ReadonlyArray<ChatMessage>,
  extra: Record<string, unknown> = {},
): ChatRequest => ({
  model: "scripted",
  messages,
  tools: TOOLS,
  ...extra,
})

/** One turn, as the server hands it to the script: with the episode the request named, if any. */
const reply = async (script: Script, request: ChatRequest, episodeId?: string): Promise<ScriptedReply> =>
  script(request, {
    callIndex: 0,
    episodeKey: episodeKeyOf(request),
    ...(episodeId === undefined ? {} : { episodeId }),
  })

const page = (url: string, title: string, text: string): Page => ({ url, title, text })

/** A tiny made-up world in the servers' own output formats. */
const WORLD: ReadonlyArray<Page> = [
  page(
    "https://example.test/brackwater-bridge",
    "Brackwater Bridge",
    "Brackwater Bridge crosses the River Lenn at Ostby. It was designed by the engineer Ida Marlowe and " +
      "opened in 1903. The bridge is 240 metres long and has 7 arches; it was widened in 1961.",
  ),
  page(
    "https://example.test/ida-marlowe",
    "Ida Marlowe",
    "Ida Marlowe (1861–1930) was a civil engineer. She was born in the harbour town of Kessel, where her " +
      "father was a ferryman, and studied in the capital. She retired to Ostby in 1925.",
  ),
  page(
    "https://example.test/ostby",
    "Ostby",
    "Ostby is a market town on the River Lenn with about 4,100 inhabitants. Its town hall dates from 1788.",
  ),
]

const searchText = (query: string): string => {
  const words = new Set(query.toLowerCase().split(/\W+/).filter(Boolean))
  const scored = WORLD.map((p) => ({
    p,
    score: `${p.title} ${p.text}`
      .toLowerCase()
      .split(/\W+/)
      .filter((w) => words.has(w)).length,
  }))
    .filter((s) => s.score > 0)
    .sort((a, b) => b.score - a.score || a.p.url.localeCompare(b.p.url))
  const lines = [`## Search results for "${query}" (offline)`]
  scored.forEach(({ p }, i) => {
    lines.push(`${i + 1}. ${p.title}`, `   URL: ${p.url}`, `   ${p.text.slice(0, 80)}`)
  })
  return lines.join("\n")
}

const fetchText = (url: string): string => {
  const p = WORLD.find((d) => d.url === url)
  if (p === undefined) return `Error (tool) calling fetch_url: fetch_url failed for ${url}: not found`
  return `URL: ${p.url}\nTitle: ${p.title}\nPage 1 of 1 (${p.text.length} characters in all)\n\n${p.text}`
}

/** Runs one episode the way the agent does: native tool calls, results as tool messages. */
const runEpisode = async (
  script: Script,
  question: string,
  extra: Record<string, unknown> = {},
  episodeId?: string,
) => {
  const messages: ChatMessage[] = [task(question)]
  for (let turn = 0; turn < 12; turn++) {
    const r = await reply(script, requestOf(messages, extra), episodeId)
    const calls = (r.toolCalls ?? []).map((c, i) => ({
      id: c.id ?? `call_${turn}_${i}`,
      type: "function",
      function: {
        name: c.name,
        arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
      },
    }))
    messages.push({
      role: "assistant",
      content: r.content ?? "",
      ...(calls.length > 0 ? { tool_calls: calls } : {}),
    })
    if (calls.length === 0) return { messages, content: r.content ?? "" }
    for (const call of calls) {
      const args = JSON.parse(call.function.arguments) as { query?: string; url?: string }
      const text = call.function.name === "search" ? searchText(args.query ?? "") : fetchText(args.url ?? "")
      messages.push({ role: "tool", tool_call_id: call.id, content: text })
    }
  }
  throw new Error("the episode did not end")
}

const answerOf = (content: string): string | undefined =>
  /<\/think>[\s\S]*<answer>([\s\S]*?)<\/answer>/.exec(content)?.[1]?.trim()

describe("the question", () => {
  it("reads the kind of answer from the opening wh-phrase", () => {
    expect(answerKindOf("In what year was the bridge opened?")).toBe("year")
    expect(answerKindOf("When did the ferry start?")).toBe("year")
    expect(answerKindOf("How many arches does the bridge have?")).toBe("number")
    expect(answerKindOf("How long, in metres, is the bridge?")).toBe("number")
    expect(answerKindOf("What is the maximum depth of the lake?")).toBe("number")
    expect(answerKindOf("In which town was the engineer born?")).toBe("place")
    expect(answerKindOf("Where was she born?")).toBe("place")
    expect(answerKindOf("Who designed the bridge?")).toBe("name")
    expect(answerKindOf("Which engineer designed the bridge?")).toBe("name")
    // "when" later in the question does not make it a date question.
    expect(answerKindOf("How many people were saved when the ship sank?")).toBe("number")
  })

  it("splits content words into asked, core, role and entity terms", () => {
    const a = analyzeQuestion(
      "How long, in metres, is the bridge that the engineer Ida Marlowe designed in 1903?",
    )
    expect(a.kind).toBe("number")
    expect([...a.askTerms]).toEqual(expect.arrayContaining(["long", "metre"]))
    expect(a.words).toEqual(["bridge", "engineer", "Ida", "Marlowe", "designed", "1903"])
    expect([...a.roleTerms].sort()).toEqual(["bridge", "design", "engineer"])
    expect([...a.entityTerms].sort()).toEqual(["ida", "marlowe"])
    expect(a.units).toEqual(["metres"])
    expect([...a.numbers]).toEqual(["1903"])
  })

  it("unwraps the agent's task prompt", () => {
    expect(questionOf("Your task is to answer the user's question: Who built it?.")).toBe("Who built it?")
    expect(questionOf("Who built it?")).toBe("Who built it?")
  })

  it("stems plurals and past tenses so the question and the page meet", () => {
    expect(stem("designed")).toBe(stem("design"))
    expect(stem("metres")).toBe("metre")
    expect(stem("Marlowe's")).toBe("marlowe")
    expect(stem("bodies")).toBe("body")
  })
})

describe("query building", () => {
  const a = analyzeQuestion("Which engineer designed the Brackwater Bridge over the River Lenn?")

  it("drops stop words and question words, keeping content words in order", () => {
    const { query, variant } = buildQuery(a, () => 0)
    expect(variant).toBe("full")
    expect(query).toBe("engineer designed Brackwater Bridge River Lenn")
  })

  it("sometimes (seeded) uses a subset that keeps every name", () => {
    const { query, variant } = buildQuery(a, (label) => (label === "query-variant" ? 0.6 : 0))
    expect(variant).toBe("subset")
    expect(query).toBe("Brackwater Bridge River Lenn")
    const names = buildQuery(a, (label) => (label === "query-variant" ? 0.9 : 0))
    expect(names).toEqual({ query: "engineer Brackwater Bridge River Lenn", variant: "names" })
  })

  it("gives the same query for the same draws", () => {
    const draw = (label: string) => seededUnit(1, "key", "n0", label)
    expect(buildQuery(a, draw)).toEqual(buildQuery(a, draw))
  })
})

describe("tool results", () => {
  it("reads search hits and fetched pages in the servers' formats", () => {
    const hits = parseSearchResults(searchText("Ida Marlowe engineer"))
    expect(hits[0]).toMatchObject({ rank: 1, title: "Ida Marlowe", url: "https://example.test/ida-marlowe" })
    expect(hits.every((h) => h.snippet.length > 0)).toBe(true)
    const p = parsePage(
      `${fetchText("https://example.test/ostby")}\n\n[This was page 1 of 2; call fetch_url with page 2 for more.]`,
    )
    expect(p.title).toBe("Ostby")
    expect(p.text.startsWith("Ostby is a market town")).toBe(true)
    expect(p.text).not.toContain("This was page")
    // A refined (summarized) result has no header: its text is kept whole.
    expect(parsePage("## Evidence\nSome text.", "https://x.test/").text).toBe("## Evidence\nSome text.")
  })

  it("prefers the structured content AgentDock appends to the text as one JSON line", () => {
    const url = "https://example.test/ostby"
    const text = fetchText(url)
    const structured = {
      url,
      finalUrl: url,
      title: "Ostby",
      page: 1,
      pages: 1,
      totalChars: 97,
      content: "Ostby {x}.",
    }
    const p = parsePage(`${text}\n${JSON.stringify(structured)}`)
    expect(p).toEqual({ url, title: "Ostby", text: "Ostby {x}." })
    const hits = parseSearchResults(
      `${searchText("Ostby")}\n${JSON.stringify({
        searches: [{ query: "Ostby", results: [{ title: "Ostby", url, snippet: "A town." }] }],
      })}`,
    )
    expect(hits).toEqual([{ rank: 1, title: "Ostby", url, snippet: "A town." }])
    // A brace inside a page is text, not structured content.
    expect(parsePage("URL: https://x.test/\nTitle: X\n\nA set\n{1, 2}.").text).toBe("A set\n{1, 2}.")
  })

  it("reads its own conversation: steps, results, failures and the sample tag", () => {
    const conversation = readConversation(
      requestOf([
        task("Who designed Brackwater Bridge?"),
        {
          role: "assistant",
          content: "<think>…</think>",
          tool_calls: [
            {
              id: "call_n3_t1",
              type: "function",
              function: { name: "search", arguments: '{"query":"Brackwater"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_n3_t1", content: searchText("Brackwater") },
        {
          role: "assistant",
          content: "",
          tool_calls: [
            {
              id: "call_n3_t2",
              type: "function",
              function: { name: "fetch_url", arguments: '{"url":"https://example.test/nope"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_n3_t2", content: fetchText("https://example.test/nope") },
      ]),
    )
    expect(conversation.question).toBe("Who designed Brackwater Bridge?")
    expect(conversation.sampleTag).toBe("n3")
    expect(conversation.turns).toBe(2)
    expect(conversation.steps).toHaveLength(2)
    expect(conversation.steps[0]).toMatchObject({ kind: "search", query: "Brackwater" })
    expect(conversation.steps[1]).toEqual({ kind: "read", url: "https://example.test/nope", page: undefined })
  })
})

describe("answer heuristics", () => {
  const bridge = WORLD[0]!
  const engineer = WORLD[1]!
  const ostby = WORLD[2]!
  const top = (question: string, pages: ReadonlyArray<Page>) =>
    rankCandidates(analyzeQuestion(question), pages)[0]

  it("takes the year in the sentence that matches the question", () => {
    expect(top("In what year was Brackwater Bridge opened?", [bridge])?.answer).toBe("1903")
    expect(top("In what year was Brackwater Bridge widened?", [bridge])?.answer).toBe("1961")
  })

  it("takes the number next to the counted word, not one in another unit", () => {
    const arches = rankCandidates(analyzeQuestion("How many arches does Brackwater Bridge have?"), [bridge])
    expect(arches[0]?.answer).toBe("7")
    // 240 is followed by a unit the question does not ask for.
    expect(arches.find((c) => c.answer === "240")?.mismatch).toBeGreaterThan(0)
    expect(top("How long, in metres, is Brackwater Bridge?", [bridge])?.answer).toBe("240")
  })

  it("writes numbers as digits without thousands separators", () => {
    expect(top("How many inhabitants does Ostby have?", [ostby])?.answer).toBe("4100")
  })

  it("takes the name right after the role word the question uses", () => {
    const ranked = rankCandidates(analyzeQuestion("Which engineer designed Brackwater Bridge?"), [bridge])
    expect(ranked[0]?.answer).toBe("Ida Marlowe")
    // Names the question uses are never the answer; a name used as a modifier is no candidate.
    expect(ranked.map((c) => c.answer)).not.toContain("Brackwater Bridge")
  })

  it("wants a place after a place preposition, or the page's subject for 'the town'", () => {
    expect(top("In which town was Ida Marlowe born?", [engineer])?.answer).toBe("Kessel")
    const town = page(
      "https://example.test/kessel",
      "Kessel",
      "The engineer Ida Marlowe was born in the town.",
    )
    expect(top("In which town was Ida Marlowe born?", [town])?.answer).toBe("Kessel")
  })

  it("follows a chain across pages: a shared name lends its sentence's question words", () => {
    const question = "In which town was the engineer who designed Brackwater Bridge born?"
    const a = analyzeQuestion(question)
    expect(findBridge(a, [bridge])).toMatchObject({ name: "Ida Marlowe", direct: true })
    const ranked = rankCandidates(a, [bridge, engineer])
    expect(ranked[0]?.answer).toBe("Kessel")
  })
})

describe("the researcher script", () => {
  it("searches first with a native tool call and a <think> saying why", async () => {
    const r = await reply(researcherScript(), requestOf([task("Which engineer designed Brackwater Bridge?")]))
    expect(r.toolCalls).toHaveLength(1)
    expect(r.toolCalls?.[0]).toMatchObject({ name: "search", id: "call_n0_t1" })
    expect(r.toolCalls?.[0]?.arguments).toHaveProperty("query")
    expect(r.content).toMatch(/^<think>The question asks for a name\. .*<\/think>$/s)
  })

  it("answers a one-hop question from the page it reads", async () => {
    const { messages, content } = await runEpisode(
      researcherScript(),
      "Which engineer designed Brackwater Bridge?",
    )
    expect(answerOf(content)).toBe("Ida Marlowe")
    const tools = messages.flatMap((m) => (m.tool_calls ?? []).map((c) => c.function?.name))
    expect(tools.slice(0, 2)).toEqual(["search", "fetch_url"])
  })

  it("searches again for the bridge entity of a two-hop question", async () => {
    const { messages, content } = await runEpisode(
      researcherScript(),
      "In which town was the engineer who designed Brackwater Bridge born?",
    )
    const queries = messages.flatMap((m) =>
      (m.tool_calls ?? [])
        .filter((c) => c.function?.name === "search")
        .map((c) => (JSON.parse(c.function?.arguments ?? "{}") as { query: string }).query),
    )
    expect(queries.some((q) => q.startsWith("Ida Marlowe"))).toBe(true)
    expect(answerOf(content)).toBe("Kessel")
  })

  it("is deterministic: the same request gets the same reply, from any instance with the same seed", async () => {
    const { messages } = await runEpisode(
      researcherScript({ seed: 5 }),
      "How many arches does Brackwater Bridge have?",
    )
    // Every later turn of the conversation, asked again of a fresh instance, gets the same reply.
    for (let i = 2; i <= messages.length; i++) {
      const prefix = messages.slice(0, i)
      if (prefix[prefix.length - 1]?.role === "assistant") continue
      const a = await reply(researcherScript({ seed: 5 }), requestOf(prefix))
      const b = await reply(researcherScript({ seed: 5 }), requestOf(prefix))
      expect(a).toEqual(b)
      expect(a).toEqual(await reply(researcherScript({ seed: 5 }), requestOf(prefix)))
    }
  })

  it("without an episode id, tells identical first requests apart by arrival order, or by the body's seed", async () => {
    const first = requestOf([task("How many arches does Brackwater Bridge have?")])
    const script = researcherScript()
    const ids = []
    for (let i = 0; i < 3; i++) ids.push((await reply(script, first)).toolCalls?.[0]?.id)
    // The documented fallback: the same first turn asked again (a retry) is taken for a new sample.
    expect(ids).toEqual(["call_n0_t1", "call_n1_t1", "call_n2_t1"])
    // Another instance hands out the same tags in the same order: the set of samples is the same.
    expect((await reply(researcherScript(), first)).toolCalls?.[0]?.id).toBe("call_n0_t1")
    const seeded = requestOf(first.messages, { seed: 7 })
    expect(await reply(script, seeded)).toEqual(await reply(researcherScript(), seeded))
    expect((await reply(script, seeded)).toolCalls?.[0]?.id).toBe("call_s7_t1")
  })

  const TWO_HOP = "In which town was the engineer who designed Brackwater Bridge born?"
  const EPISODES = ["run-a/q1/0", "run-a/q1/1", "run-a/q1/2", "run-a/q1/5", "run-a/q1/1~fork1", "hand named"]

  test.prop([
    fc.array(fc.option(fc.constantFrom(...EPISODES), { nil: undefined }), { minLength: 1, maxLength: 24 }),
  ])(
    "answers a first turn by the episode it names: retried, in any order, on any instance, among unnamed ones",
    async (asks) => {
      const first = requestOf([task(TWO_HOP)])
      const script = researcherScript({ seed: 3 })
      for (const episodeId of asks) {
        const got = await reply(script, first, episodeId)
        // Unnamed requests advance the arrival order; named ones neither read nor move it.
        if (episodeId !== undefined)
          expect(got).toEqual(await reply(researcherScript({ seed: 3 }), first, episodeId))
      }
    },
  )

  it("gives sample k of a task the trajectory the k-th arrival took without an id, in any run", async () => {
    const unnamed = researcherScript({ seed: 1 })
    const named = researcherScript({ seed: 1 })
    for (let k = 0; k < 4; k++) {
      const byArrival = await runEpisode(unnamed, TWO_HOP)
      // Asked in reverse sample order, and from two runs: the sample index decides, not the run.
      const byId = await runEpisode(named, TWO_HOP, {}, `run-b/q1/${3 - k}`)
      const again = await runEpisode(named, TWO_HOP, {}, `run-c/q1/${k}`)
      expect(again).toEqual(byArrival)
      expect(byId.messages[1]?.tool_calls?.[0]?.id).toBe(`call_n${3 - k}_t1`)
    }
  })

  it("tags an episode by the evaluator's sample index, else by a hash of its id", () => {
    expect(sampleTagOfEpisode("run-a/q1/3")).toBe("n3")
    expect(sampleTagOfEpisode("another-run/q1/3")).toBe("n3")
    expect(sampleTagOfEpisode("run-a/q1/03")).toBe("n3")
    expect(sampleTagOfEpisode("run-a/q1/3~fork2")).toMatch(/^e[0-9a-f]{16}$/)
    expect(sampleTagOfEpisode("q1-3")).not.toBe(sampleTagOfEpisode("q1-4"))
  })

  test.prop([fc.string({ unit: "binary", minLength: 1 })])(
    "gives every episode id a tag the tool call ids carry back",
    (episodeId) => {
      const tag = sampleTagOfEpisode(episodeId)
      expect(tag).toMatch(/^[A-Za-z0-9]+$/)
      const id = `call_${tag}_t1`
      const conversation = readConversation(
        requestOf([
          task(TWO_HOP),
          {
            role: "assistant",
            content: "",
            tool_calls: [{ id, type: "function", function: { name: "search", arguments: '{"query":"q"}' } }],
          },
          { role: "tool", tool_call_id: id, content: searchText("Brackwater") },
        ]),
      )
      expect(conversation.sampleTag).toBe(tag)
    },
  )

  it("takes the body's seed over the episode id, and the episode's tag for a turn another model began", async () => {
    const first = requestOf([task(TWO_HOP)], { seed: 7 })
    expect((await reply(researcherScript(), first, "run-a/q1/2")).toolCalls?.[0]?.id).toBe("call_s7_t1")
    const foreign = requestOf([
      task(TWO_HOP),
      {
        role: "assistant",
        content: "",
        tool_calls: [
          {
            id: "abc",
            type: "function",
            function: { name: "search", arguments: '{"query":"Brackwater Bridge"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "abc", content: searchText("Brackwater Bridge") },
    ])
    expect((await reply(researcherScript(), foreign)).toolCalls?.[0]?.id).toBe("call_x_t2")
    expect((await reply(researcherScript(), foreign, "run-a/q1/2")).toolCalls?.[0]?.id).toBe("call_n2_t2")
  })

  it("varies across samples and seeds in queries, reads or answers", async () => {
    const question = "In which town was the engineer who designed Brackwater Bridge born?"
    const trajectories = new Set<string>()
    for (const seed of [0, 1, 2]) {
      const script = researcherScript({ seed })
      for (let k = 0; k < 8; k++) {
        const { messages } = await runEpisode(script, question)
        trajectories.add(
          JSON.stringify(
            messages.filter((m) => m.role === "assistant").map((m) => m.tool_calls?.[0]?.function),
          ),
        )
      }
    }
    expect(trajectories.size).toBeGreaterThan(1)
  })

  it("answers at once when the agent says to, and without its tools says it cannot", async () => {
    const messages: ChatMessage[] = [
      task("Which engineer designed Brackwater Bridge?"),
      {
        role: "assistant",
        content: "",
        tool_calls: [
          {
            id: "call_n0_t1",
            type: "function",
            function: { name: "search", arguments: '{"query":"Brackwater"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "call_n0_t1", content: searchText("Brackwater") },
      {
        role: "user",
        content:
          "You have reached the maximum number of turns. Give your final answer now, inside <answer></answer>.",
      },
    ]
    const r = await reply(researcherScript(), requestOf(messages))
    expect(r.toolCalls).toBeUndefined()
    expect(r.content).toMatch(/<answer>.*<\/answer>$/)
    const noTools = await reply(researcherScript(), { model: "m", messages: [task("Who designed it?")] })
    expect(noTools.content).toContain("<answer>unknown</answer>")
  })

  it("answers a summarizer's request extractively instead of researching", async () => {
    const r = await reply(researcherScript(), {
      model: "summarizer",
      messages: [
        { role: "system", content: "You extract what a research agent needs from a page of a tool result." },
        { role: "user", content: "Purpose: x\n\nPage 1 of 1:\n\nThe bridge has 7 arches." },
      ],
    })
    expect(r.content).toContain("The bridge has 7 arches.")
    expect(r.toolCalls).toBeUndefined()
  })

  it("reads nothing but the conversation", () => {
    const dir = path.resolve("src/programs/scriptedModel/researcher")
    const files = fs.readdirSync(dir).filter((name) => name.endsWith(".ts"))
    expect(files).toContain("researcherScript.ts")
    for (const name of files) {
      const source = fs.readFileSync(path.join(dir, name), "utf8")
      expect(source, name).not.toMatch(/from "node:fs|from "fs|readFile|data\/demo/)
    }
  })

  it("is registered as a script and by name", () => {
    expect(scripts.researcher).toBe(researcherScript)
    const parsed = parseScriptName("researcher:7:2")
    expect(parsed.ok).toBe(true)
    expect(parseScriptName("researcher").ok).toBe(true)
    expect(parseScriptName("researcher:x").ok).toBe(false)
    expect(parseScriptName("researcher:1:0").ok).toBe(false)
    expect(parseScriptName("researcher:1:2:3").ok).toBe(false)
    expect(() => researcherScript({ maxSearches: 0 })).toThrow(RangeError)
  })
})
