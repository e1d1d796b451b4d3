/**
 * Ready-made scripts for the scripted model server (a test double for a GPU server): an echo, an
 * agent that calls one tool for N turns and then answers, a lookup table, a per-episode sequence,
 * a wrapper that injects HTTP failures, and a researcher that answers questions only through the
 * `search` and `fetch_url` tools (researcher/). `parseScriptName` maps a short name such as
 * `echo-tool:search:5` to one of them, so a command line can start the server without code.
 */
import { researcherScript } from "./researcher/researcherScript.ts"
import {
  assistantTurns,
  type ChatRequest,
  lastInput,
  messageText,
  type Script,
  type ScriptedReply,
} from "./script.ts"

export interface EchoToolOptions {
  /** The tool to call on every turn. */
  readonly tool: string
  /** How many tool-calling turns before the answer. */
  readonly turns: number
  /** The final message; default `<answer>done</answer>`. */
  readonly answer?: string
}

export interface TableRule {
  /** A string matches the whole text exactly; a RegExp is tested against it. */
  readonly match: string | RegExp
  readonly reply: ScriptedReply
}

export interface ScriptTable {
  /** Tried in order against the last user or tool message's text; the first match wins. */
  readonly rules: ReadonlyArray<TableRule>
  readonly default: ScriptedReply
}

export interface SequenceOptions {
  /** After the last reply: answer 500 (`"error"`, the default, so a too-short script is loud) or repeat it. */
  readonly whenExhausted?: "error" | "repeat-last"
}

export interface FailingOptions {
  /** Fail calls whose 1-based server call number is a multiple of `every`. */
  readonly every: number
  readonly status: number
  readonly message?: string
}

const requireInteger = (name: string, value: number, min: number): void => {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`)
  }
}

const requireStatus = (status: number): void => {
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    throw new RangeError(`an error status must be an integer in 400..599, got ${status}`)
  }
}

const inputText = (request: ChatRequest): string => {
  const input = lastInput(request)
  return input === undefined ? "" : messageText(input)
}

/** Answers with the text of the last user or tool message. */
const echo = (): Script => (request) => ({ content: inputText(request) })

/**
 * Calls `tool` with `{ text: "turn N" }` (N = 1 for the first turn) while the conversation has
 * fewer than `turns` assistant messages, then answers. Stateless: the turn is read from the request,
 * so concurrent episodes and retried requests need no bookkeeping.
 */
const echoTool = (options: EchoToolOptions): Script => {
  requireInteger("turns", options.turns, 0)
  const answer = options.answer ?? "<answer>done</answer>"
  return (request) => {
    const done = assistantTurns(request)
    if (done >= options.turns) return { content: answer }
    return { toolCalls: [{ name: options.tool, arguments: { text: `turn ${done + 1}` } }] }
  }
}

const fromTable = (table: ScriptTable): Script => {
  // A global or sticky RegExp keeps `lastIndex` between tests: strip those flags once.
  const rules = table.rules.map((rule) => ({
    test:
      typeof rule.match === "string"
        ? (text: string) => text === rule.match
        : (
            (pattern: RegExp) => (text: string) =>
              pattern.test(text)
          )(new RegExp(rule.match.source, rule.match.flags.replace(/[gy]/g, ""))),
    reply: rule.reply,
  }))
  return (request) => {
    const text = inputText(request)
    return rules.find((rule) => rule.test(text))?.reply ?? table.default
  }
}

/**
 * The nth request of an episode gets `replies[n]`. Episodes are told apart by the episode id the
 * request names (`x-rollout-episode`), else by `episodeKey` (the hash of the first user message), so
 * concurrent episodes each walk their own sequence — samples of one task too when they name their
 * episodes; requests with neither share one. The position is counted per script instance: a request
 * that a wrapping `failing` script rejects does not advance it, so a retry gets the reply it was due.
 */
const sequence = (replies: ReadonlyArray<ScriptedReply>, options: SequenceOptions = {}): Script => {
  if (replies.length === 0) throw new RangeError("a sequence needs at least one reply")
  const next = new Map<string, number>()
  return (_request, context) => {
    const key = context.episodeId ?? context.episodeKey ?? ""
    const index = next.get(key) ?? 0
    next.set(key, index + 1)
    const reply = replies[index]
    if (reply !== undefined) return reply
    if (options.whenExhausted === "repeat-last") return replies[replies.length - 1]!
    return {
      error: {
        status: 500,
        message:
          `scripted sequence exhausted: episode ${key || "(no user message)"} asked for reply ` +
          `${index + 1} of ${replies.length}`,
        code: "script_exhausted",
      },
    }
  }
}

/** Wraps `script`: every `every`-th call of the server fails with `status`, the others pass through. */
const failing = (options: FailingOptions, script: Script): Script => {
  requireInteger("every", options.every, 1)
  requireStatus(options.status)
  return (request, context) =>
    (context.callIndex + 1) % options.every === 0
      ? {
          error: {
            status: options.status,
            message: options.message ?? `scripted failure: call ${context.callIndex + 1} fails by design`,
          },
        }
      : script(request, context)
}

export const scripts = { echo, echoTool, fromTable, sequence, failing, researcher: researcherScript } as const

export type ParsedScriptName =
  | { readonly ok: true; readonly script: Script; readonly description: string }
  | { readonly ok: false; readonly message: string }

/** The names `parseScriptName` accepts, for a command's `--help`. */
export const SCRIPT_NAME_HELP =
  "echo | echo-tool[:<tool>[:<turns>]] (default echo-tool:echo:3) | researcher[:<seed>[:<maxSearches>]] " +
  "(default researcher:0:3) | failing:<every>:<status>:<script name>"

const parseInteger = (text: string | undefined): number | undefined =>
  text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined

/**
 * Parses a script name such as `echo`, `echo-tool:search:5` or `failing:10:429:echo-tool:search:5`.
 * Returns what was wrong instead of throwing, so a CLI can report it as a usage error.
 */
export const parseScriptName = (name: string): ParsedScriptName => {
  const [kind, ...rest] = name.trim().split(":")
  const invalid = (why: string): ParsedScriptName => ({
    ok: false,
    message: `invalid script name "${name}": ${why}; expected ${SCRIPT_NAME_HELP}`,
  })
  switch (kind) {
    case "echo":
      if (rest.length > 0) return invalid("echo takes no arguments")
      return { ok: true, script: echo(), description: "echo: answers with the last user or tool message" }
    case "echo-tool": {
      if (rest.length > 2) return invalid("echo-tool takes at most a tool and a number of turns")
      const tool = rest[0] ?? "echo"
      const turns = rest[1] === undefined ? 3 : parseInteger(rest[1])
      if (tool.length === 0) return invalid("the tool name is empty")
      if (turns === undefined) return invalid(`turns must be a non-negative integer, got "${rest[1]}"`)
      return {
        ok: true,
        script: echoTool({ tool, turns }),
        description: `echo-tool: calls ${tool} for ${turns} turns, then answers <answer>done</answer>`,
      }
    }
    case "researcher": {
      if (rest.length > 2) return invalid("researcher takes at most a seed and a number of searches")
      const seed = rest[0] === undefined ? 0 : parseInteger(rest[0])
      const maxSearches = rest[1] === undefined ? 3 : parseInteger(rest[1])
      if (seed === undefined) return invalid(`seed must be a non-negative integer, got "${rest[0]}"`)
      if (maxSearches === undefined || maxSearches < 1)
        return invalid(`maxSearches must be an integer >= 1, got "${rest[1]}"`)
      return {
        ok: true,
        script: researcherScript({ seed, maxSearches }),
        description:
          `researcher: answers from search and fetch_url results only (seed ${seed}, ` +
          `at most ${maxSearches} searches per episode)`,
      }
    }
    case "failing": {
      const every = parseInteger(rest[0])
      const status = parseInteger(rest[1])
      if (every === undefined || every < 1) return invalid("every must be an integer >= 1")
      if (status === undefined || status < 400 || status > 599) return invalid("status must be in 400..599")
      const inner = parseScriptName(rest.slice(2).join(":"))
      if (!inner.ok) return inner
      return {
        ok: true,
        script: failing({ every, status }, inner.script),
        description: `failing: every ${every}th call answers ${status}; otherwise ${inner.description}`,
      }
    }
    default:
      return invalid(`unknown script "${kind ?? ""}"`)
  }
}
