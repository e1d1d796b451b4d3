/**
 * Tool-call parsing in every format: examples of what models really write (several calls per
 * turn, calls drafted inside thinking, broken JSON, `<code>` blocks, Python literals, DeepSeek
 * tokens) and properties: the parser never throws on any string, and every generated call comes
 * back unchanged from `parse(render(calls))` in every format, with text and thinking around it.
 */
import { fc, test } from "@fast-check/vitest"
import type { Json, JsonObject } from "effect/Schema"
import { describe, expect, it } from "vitest"
import {
  type AssistantReply,
  detectFormat,
  type FormatError,
  formatFeedback,
  type ParsedToolCall,
  parseAssistantMessage,
  parseLenientJson,
  renderAssistantMessage,
  renderToolCall,
  renderToolCalls,
  type TextToolCallFormat,
  TOOL_CALL_FORMATS,
  type ToolCallFormat,
} from "../../src/actors/agent/toolCalls.ts"

const TEXT_FORMATS: ReadonlyArray<TextToolCallFormat> = ["hermes", "minicpm", "deepseek"]

const parse = (format: ToolCallFormat, message: AssistantReply | string) =>
  parseAssistantMessage(format, message, "t1")
const namesAndArgs = (calls: ReadonlyArray<ParsedToolCall>) => calls.map((c) => [c.tool, c.arguments])
const reasons = (errors: ReadonlyArray<FormatError>) => errors.map((e) => e.reason).join(" | ")

describe("native tool calls", () => {
  it("keeps the server's ids, reads text arguments leniently, takes objects as they are, reports bad entries", () => {
    const decoded = { queries: ["capital of France"] }
    const turn = parse("openai", {
      content: "Looking it up.",
      reasoning: "The user wants the capital.",
      toolCalls: [
        { callId: "call_a", tool: "search", arguments: decoded },
        { callId: "call_b", tool: "fetch_url", arguments: "{'urls': ['https://x.org'],}" },
        { callId: "call_c", tool: "read_file", arguments: " " },
        { callId: "call_d", tool: "search", arguments: "[1, 2]" },
        { callId: "call_e", tool: " ", arguments: {} },
        { callId: "call_f", tool: "search", arguments: ["a"] },
        { callId: "call_g", tool: "search", arguments: "{'q': " },
      ],
    })
    expect(turn.content).toBe("Looking it up.")
    expect(turn.reasoning).toBe("The user wants the capital.")
    expect(turn.calls).toEqual([
      { callId: "call_a", tool: "search", arguments: decoded },
      { callId: "call_b", tool: "fetch_url", arguments: { urls: ["https://x.org"] } },
      { callId: "call_c", tool: "read_file", arguments: {} },
    ])
    // Decoded once, by the pool: the object is used as it is, not written out and read again.
    expect(turn.calls[0]!.arguments).toBe(decoded)
    // The words of the function-calling interface the model used, with the call as it came.
    expect(turn.errors).toEqual([
      {
        format: "openai",
        index: 3,
        reason: "function.arguments must be a JSON object, got an array",
        excerpt: "search([1, 2])",
      },
      { format: "openai", index: 4, reason: "function.name is missing or empty", excerpt: "({})" },
      {
        format: "openai",
        index: 5,
        reason: "function.arguments must be a JSON object, got an array",
        excerpt: 'search(["a"])',
      },
      {
        format: "openai",
        index: 6,
        reason: expect.stringMatching(/^function\.arguments is not valid JSON: /),
        excerpt: "search({'q': )",
      },
    ])
  })

  it("splits inline thinking after the server's reasoning, and reads calls in a text format too", () => {
    const turn = parse("hermes", {
      content: '<think>plan</think>Done.<tool_call>{"name": "fetch", "arguments": {"u": 1}}</tool_call>',
      reasoning: "first",
      toolCalls: [{ callId: "c1", tool: "search", arguments: { q: "x" } }],
    })
    expect(turn).toEqual({
      content: "Done.",
      reasoning: "first\n\nplan",
      calls: [
        { callId: "c1", tool: "search", arguments: { q: "x" } },
        { callId: "t1:1", tool: "fetch", arguments: { u: 1 } },
      ],
      errors: [],
    })
  })
})

describe("hermes <tool_call>", () => {
  it("reads several calls after the last </think> and ignores drafts inside thinking", () => {
    const text = [
      '<think>Maybe <tool_call>{"name": "draft", "arguments": {}}</tool_call> first.</think>',
      "I will search twice.",
      '<tool_call>\n{"name": "search", "arguments": {"queries": ["a"]}}\n</tool_call>',
      '<tool_call>\n{"name": "search", "arguments": {"queries": ["b"]}}\n</tool_call>',
    ].join("\n")
    const turn = parse("hermes", text)
    expect(turn.reasoning).toContain("draft")
    expect(turn.content).toBe("I will search twice.")
    expect(turn.calls).toEqual([
      { callId: "t1:0", tool: "search", arguments: { queries: ["a"] } },
      { callId: "t1:1", tool: "search", arguments: { queries: ["b"] } },
    ])
    expect(turn.errors).toEqual([])
  })

  it("ignores calls inside thinking that was never closed", () => {
    const turn = parse("hermes", 'Sure. <think>let me <tool_call>{"name": "x", "arguments": {}}</tool_call>')
    expect(turn.calls).toEqual([])
    expect(turn.content).toBe("Sure.")
  })

  it.each([
    [
      "missing closing braces",
      '{"name": "search", "arguments": {"queries": ["a", "b"]',
      { queries: ["a", "b"] },
    ],
    ["trailing commas", '{"name": "search", "arguments": {"queries": ["a",],},}', { queries: ["a"] }],
    ["single quotes", "{'name': 'search', 'arguments': {'q': 'it\\'s'}}", { q: "it's" }],
    ["unquoted keys", "{name: 'search', arguments: {q: 'x', limit: 5}}", { q: "x", limit: 5 }],
    ["a code fence", '```json\n{"name": "search", "arguments": {"q": "x"}}\n```', { q: "x" }],
    ["arguments as a JSON string", '{"name": "search", "arguments": "{\\"q\\": \\"x\\"}"}', { q: "x" }],
    ["an extra closing brace", '{"name": "search", "arguments": {"q": "x"}}}', { q: "x" }],
    ["a missing bracket before a brace", '{"name": "search", "arguments": {"q": ["x"}}', { q: ["x"] }],
    [
      "Python literals and comments",
      '{"name": "search", // why\n "arguments": {"a": True, "b": None}}',
      { a: true, b: null },
    ],
    [
      "raw newlines and inner quotes",
      '{"name": "search", "arguments": {"code": "print("hi")\nx = 1"}}',
      { code: 'print("hi")\nx = 1' },
    ],
    [
      "regex escapes kept as written",
      '{"name": "search", "arguments": {"re": "\\d+\\s"}}',
      { re: "\\d+\\s" },
    ],
    ["parameters instead of arguments", '{"name": "search", "parameters": {"q": "x"}}', { q: "x" }],
    [
      "a function wrapper",
      '{"type": "function", "function": {"name": "search", "arguments": {"q": "x"}}}',
      { q: "x" },
    ],
  ])("recovers %s", (_label, json, args) => {
    const turn = parse("hermes", `<tool_call>\n${json}\n</tool_call>`)
    expect(reasons(turn.errors)).toBe("")
    expect(namesAndArgs(turn.calls)).toEqual([["search", args]])
  })

  it("reads a call whose </tool_call> is missing, up to the next block or the end", () => {
    const turn = parse(
      "hermes",
      '<tool_call>{"name": "a", "arguments": {}}\n<tool_call>{"name": "b", "arguments": {"x": 1}',
    )
    expect(namesAndArgs(turn.calls)).toEqual([
      ["a", {}],
      ["b", { x: 1 }],
    ])
  })

  it("injects a <code> block as arguments.code, inside or after the JSON", () => {
    const code = 'import math\nprint(math.sqrt(2), "</tool_call>")'
    const inside = parse(
      "hermes",
      `<tool_call>\n{"name": "PythonInterpreter", "arguments": {}}\n<code>\n${code}\n</code>\n</tool_call>`,
    )
    expect(namesAndArgs(inside.calls)).toEqual([["PythonInterpreter", { code }]])
    const fenced = parse(
      "hermes",
      '<tool_call>{"name": "execute_code", "arguments": {"timeout": 30}}<code>```python\nprint(1)\n```</code></tool_call> done',
    )
    expect(namesAndArgs(fenced.calls)).toEqual([["execute_code", { timeout: 30, code: "print(1)" }]])
    expect(fenced.content).toBe("done")
  })

  it("reports what is wrong, one error per failed call, and keeps the good calls", () => {
    const turn = parse(
      "hermes",
      [
        '<tool_call>{"name": "ok", "arguments": {}}</tool_call>',
        "<tool_call></tool_call>",
        '<tool_call>{"arguments": {"q": 1}}</tool_call>',
        '<tool_call>{"name": "s", "arguments": [1]}</tool_call>',
        '<tool_call>{"name": "s", "arguments": {"q": }}</tool_call>',
        '<tool_call>{"name": "s"} {"name": "t"}</tool_call>',
        "<tool_call><code>print(1)</code></tool_call>",
        '<tool_call>{"name": "last", "arguments": {"q": "x"}}</tool_call>',
      ].join("\n"),
    )
    expect(turn.calls.map((c) => c.callId)).toEqual(["t1:0", "t1:7"])
    expect(turn.errors.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6])
    expect(turn.errors.map((e) => e.reason)).toEqual([
      "the <tool_call> is empty",
      'the tool call has no "name" string (got nothing)',
      '"arguments" must be a JSON object, got an array',
      'the JSON inside <tool_call> could not be read: unexpected character "}" where a value was expected',
      'the JSON inside <tool_call> could not be read: unexpected text after the JSON value: "{\\"name\\": \\"t\\"}"',
      'the <tool_call> has a <code> block but no JSON {"name": …, "arguments": {…}} saying which tool runs it',
    ])
    expect(turn.errors.every((e) => e.excerpt.length <= 200 && e.format === "hermes")).toBe(true)
  })
})

describe("minicpm <|tool_call_start|>", () => {
  it("reads a list of Python calls with every kind of literal", () => {
    const text =
      "I will look.\n<|tool_call_start|>[search(queries=['a', \"b\\n\"], limit=10, exact=True, lang=None), " +
      'fetch_url(urls=("https://x.org",), purpose="""line 1\nline \'2\'""", opts={"k": [1.5, -2e3, 0x1F, 1_000], 3: False}, s={1, 2})' +
      "]<|tool_call_end|>"
    const turn = parse("minicpm", text)
    expect(reasons(turn.errors)).toBe("")
    expect(turn.content).toBe("I will look.")
    expect(namesAndArgs(turn.calls)).toEqual([
      ["search", { queries: ["a", "b\n"], limit: 10, exact: true, lang: null }],
      [
        "fetch_url",
        {
          urls: ["https://x.org"],
          purpose: "line 1\nline '2'",
          opts: { k: [1.5, -2000, 31, 1000], "3": false },
          s: [1, 2],
        },
      ],
    ])
  })

  it("reads MiniCPM3's fenced one-call-per-line form with dashed names and thought tags", () => {
    const text =
      '<|thought_start|>\nSearch first.\n<|thought_end|>\n<|tool_call_start|>\n```python\nsearch-actors(limit=20, search="Amazon")\nfetch(url=r"C:\\dir")\n```\n<|tool_call_end|>\n'
    const turn = parse("minicpm", text)
    expect(turn.reasoning).toBe("Search first.")
    expect(namesAndArgs(turn.calls)).toEqual([
      ["search-actors", { limit: 20, search: "Amazon" }],
      ["fetch", { url: "C:\\dir" }],
    ])
  })

  it("reads keys that are not identifiers through **{...} and JSON call objects", () => {
    const turn = parse(
      "minicpm",
      '<|tool_call_start|>[f(a=1, **{"b c": 2, "class": 3})]<|tool_call_end|><|tool_call_start|>[{"name": "g", "arguments": {"x": 1}}]<|tool_call_end|>',
    )
    expect(namesAndArgs(turn.calls)).toEqual([
      ["f", { a: 1, "b c": 2, class: 3 }],
      ["g", { x: 1 }],
    ])
  })

  it("reports positional arguments and non-literal values per call, and stops at a syntax error", () => {
    const turn = parse(
      "minicpm",
      "<|tool_call_start|>[f(1, q='x'), g(x=foo.bar(1)), h(a=1), k(a='open]<|tool_call_end|>",
    )
    expect(turn.calls.map((c) => [c.callId, c.tool])).toEqual([["t1:2", "h"]])
    expect(turn.errors.map((e) => e.index)).toEqual([0, 1, 3])
    expect(turn.errors[0]!.reason).toContain("argument 1 has no name: pass every argument as name=value")
    expect(turn.errors[1]!.reason).toContain('"foo.bar(1)" is not a literal value')
    expect(turn.errors[2]!.reason).toContain("a string is not closed")
  })
})

describe("deepseek V3.1 tokens", () => {
  it("reads a tool-calls section with several calls", () => {
    const text =
      'Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{"queries": ["x"]}<｜tool▁call▁end｜>' +
      "<｜tool▁call▁begin｜>fetch_url<｜tool▁sep｜>{'urls': ['https://x.org'],}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    const turn = parse("deepseek", `reasoning here</think>${text}`)
    expect(turn.reasoning).toBe("reasoning here")
    expect(turn.content).toBe("Let me check.")
    expect(namesAndArgs(turn.calls)).toEqual([
      ["search", { queries: ["x"] }],
      ["fetch_url", { urls: ["https://x.org"] }],
    ])
  })

  it("reads the V3 form and output cut before the end tokens", () => {
    const v3 =
      '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"location": "Seoul"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
    expect(namesAndArgs(parse("deepseek", v3).calls)).toEqual([["get_weather", { location: "Seoul" }]])
    const cut = '<｜tool▁call▁begin｜>search<｜tool▁sep｜>{"q": "x"'
    expect(namesAndArgs(parse("deepseek", cut).calls)).toEqual([["search", { q: "x" }]])
  })

  it("reports a missing separator and non-object arguments", () => {
    const turn = parse(
      "deepseek",
      '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search {"q": 1}<｜tool▁call▁end｜><｜tool▁call▁begin｜>s<｜tool▁sep｜>"x"<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    )
    expect(turn.calls).toEqual([])
    expect(turn.errors.map((e) => e.reason)).toEqual([
      "missing <｜tool▁sep｜> between the tool name and its JSON arguments",
      "the arguments of s must be a JSON object, got a string",
    ])
  })
})

describe("detection, feedback and lenient JSON", () => {
  it("detects the markup after the reasoning, earliest first", () => {
    expect(detectFormat("<think><tool_call></think>plain")).toBeUndefined()
    expect(detectFormat('x <tool_call>{"name":"a"}</tool_call>')).toBe("hermes")
    expect(detectFormat("<|tool_call_start|>[f()]<|tool_call_end|> <tool_call>")).toBe("minicpm")
    expect(detectFormat("<｜tool▁call▁begin｜>f<｜tool▁sep｜>{}")).toBe("deepseek")
  })

  it("explains each error and shows the expected shape in the model's format", () => {
    const turn = parse("hermes", '<tool_call>{"name": "s", "arguments": [1]}</tool_call>')
    const feedback = formatFeedback(turn.errors)
    expect(feedback).toContain('tool call 1: "arguments" must be a JSON object, got an array')
    expect(feedback).toContain(
      '<tool_call>\n{"name":"tool_name","arguments":{"argument":"value","count":3}}\n</tool_call>',
    )
    expect(formatFeedback([])).toBe("")
    for (const format of TOOL_CALL_FORMATS) {
      expect(formatFeedback([{ format, index: 0, reason: "r", excerpt: "e" }])).toContain("tool call 1: r")
    }
  })

  it("refuses hostile nesting instead of overflowing the stack", () => {
    const deep = "[".repeat(100_000)
    expect(parseLenientJson(deep).ok).toBe(false)
    for (const format of TEXT_FORMATS) {
      const text = renderToolCalls(format, [{ callId: "x", tool: "f", arguments: {} }]).replace(
        "{}",
        `{"a": ${deep}}`,
      )
      expect(() => parse(format, text)).not.toThrow()
      expect(() => parse(format, `<|tool_call_start|>[f(a=${"(".repeat(100_000)})]`)).not.toThrow()
    }
  })

  it("keeps __proto__ as a plain key", () => {
    const parsed = parseLenientJson("{'__proto__': {'polluted': 1}, a: 1,}")
    expect(parsed.ok && Object.hasOwn(parsed.value as object, "__proto__")).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

// --- properties ---------------------------------------------------------------------------

// Every token of every format, plus the punctuation their payloads are made of.
const MARKUP_FRAGMENTS = [
  ..."<tool_call> </tool_call> <code> </code> <think> </think> <|thought_start|> <|thought_end|>".split(" "),
  ..."<|tool_call_start|> <|tool_call_end|> <｜tool▁calls▁begin｜> <｜tool▁calls▁end｜>".split(" "),
  ..."<｜tool▁call▁begin｜> <｜tool▁call▁end｜> <｜tool▁sep｜>".split(" "),
  ...'{ } [ ] ( ) " \' """ \\ \\u \\x : , = ** f( a= True None - 0x 1e9 ``` // /*'.split(" "),
  '{"name": "f", "arguments": ',
  "```json\n",
  "\n",
]

const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc
    .array(fc.oneof(fc.constantFrom(...MARKUP_FRAGMENTS), fc.string({ maxLength: 4 })), { maxLength: 40 })
    .map((parts) => parts.join("")),
)

const anyFormat = fc.constantFrom(...TOOL_CALL_FORMATS)

describe("properties", () => {
  test.prop([anyFormat, anyText], { numRuns: 2000 })(
    "the parser never throws on any string",
    (format, text) => {
      const turn = parse(format, text)
      for (const error of turn.errors) expect(error.excerpt.length).toBeLessThanOrEqual(200)
      for (const call of turn.calls)
        expect(Object.prototype.toString.call(call.arguments)).toBe("[object Object]")
      detectFormat(text)
      formatFeedback(turn.errors)
    },
  )

  const nativeCall = fc.record({
    callId: fc.string({ maxLength: 8 }),
    tool: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(" ", "search")),
    arguments: fc.oneof(fc.jsonValue({ maxDepth: 3 }), anyText) as fc.Arbitrary<Json>,
  })
  test.prop([anyFormat, fc.array(nativeCall, { maxLength: 4 }), anyText])(
    "the parser never throws on any native tool calls: each is a call with object arguments, or an error",
    (format, toolCalls, content) => {
      const turn = parse(format, { content, toolCalls })
      for (const call of turn.calls)
        expect(Object.prototype.toString.call(call.arguments)).toBe("[object Object]")
      // In the openai format the text holds no calls: every native call is run or reported.
      if (format === "openai") expect(turn.calls.length + turn.errors.length).toBe(toolCalls.length)
    },
  )

  test.prop([fc.array(nativeCall, { maxLength: 4 })], { numRuns: 500 })(
    "native arguments decoded once read exactly as their JSON text would: same calls, same feedback",
    (toolCalls) => {
      const once = parse("openai", { content: "", toolCalls })
      const asText = parse("openai", {
        content: "",
        toolCalls: toolCalls.map((c) => ({
          ...c,
          arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments),
        })),
      })
      expect(once.errors).toEqual(asText.errors)
      expect(once.calls.map((c) => [c.callId, c.tool, asJson(c.arguments)])).toEqual(
        asText.calls.map((c) => [c.callId, c.tool, c.arguments]),
      )
    },
  )

  test.prop([anyText])("lenient JSON never throws on any string", (text) => {
    parseLenientJson(text)
  })

  test.prop([fc.jsonValue()])("lenient JSON reads what JSON.stringify writes", (value) => {
    expect(parseLenientJson(JSON.stringify(value))).toEqual({
      ok: true,
      value: JSON.parse(JSON.stringify(value)),
    })
  })

  const toolName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_.-]{0,15}$/)
  const identifier = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,10}$/)
  const key = fc.oneof(identifier, fc.string({ maxLength: 8 }), fc.string({ unit: "binary", maxLength: 8 }))
  const args = fc
    .dictionary(key, fc.jsonValue({ maxDepth: 3, stringUnit: "binary" }), { maxKeys: 5 })
    .map((d) => d as unknown as JsonObject)
  const calls = fc.array(fc.record({ tool: toolName, arguments: args }), { minLength: 1, maxLength: 4 })
  // Surrounding text may be anything except the start of markup.
  const prose = fc.string({ unit: "binary", maxLength: 30 }).map((s) => s.replace(/[<｜]/g, ""))
  /** What the arguments mean as JSON (the generators may produce -0 or null-prototype objects). */
  const asJson = (value: JsonObject): Json => JSON.parse(JSON.stringify(value)) as Json

  test.prop([anyFormat, calls, prose, prose, fc.option(prose, { nil: undefined })], { numRuns: 400 })(
    "parse(render(calls)) gives back the same names and arguments, in every format",
    (format, generated, before, after, reasoning) => {
      const withIds: ParsedToolCall[] = generated.map((c, i) => ({ callId: `id-${i}`, ...c }))
      const rendered = renderAssistantMessage(format, {
        content: before,
        calls: withIds,
        ...(reasoning === undefined ? {} : { reasoning }),
      })
      const message: AssistantReply =
        format === "openai" ? rendered : { content: `${rendered.content}${after}` }
      const turn = parse(format, message)
      expect(reasons(turn.errors)).toBe("")
      expect(turn.calls.map((c) => [c.tool, asJson(c.arguments)])).toEqual(
        withIds.map((c) => [c.tool, asJson(c.arguments)]),
      )
      expect(turn.calls.map((c) => c.callId)).toEqual(
        format === "openai" ? withIds.map((c) => c.callId) : withIds.map((_, i) => `t1:${i}`),
      )
      if (reasoning !== undefined && reasoning.trim().length > 0)
        expect(turn.reasoning).toBe(reasoning.trim())
      expect(turn.content.startsWith(before.trim())).toBe(true)
    },
  )

  test.prop([fc.constantFrom(...TEXT_FORMATS), toolName, args])(
    "renderToolCall is renderToolCalls of one call",
    (format, name, generated) => {
      const call = { callId: "c", tool: name, arguments: generated }
      expect(renderToolCall(format, call)).toBe(renderToolCalls(format, [call]))
      expect(namesAndArgs(parse(format, renderToolCall(format, call)).calls)).toEqual([
        [name, asJson(generated)],
      ])
    },
  )
})
