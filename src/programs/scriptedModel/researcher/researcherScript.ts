/**
 * The `researcher` script of the scripted model server (a TEST DOUBLE for a GPU server): a small,
 * explainable deep-research "model" that knows nothing but the conversation. It must find answers
 * through the agent's tools, like a real agent, so an evaluation on it is honest — its accuracy
 * comes from its search, reading and extraction heuristics, never from the answer key.
 *
 * Each turn it reads the whole conversation (the task, its own earlier tool calls and their
 * results) and decides one step:
 *   1. no search yet → `search` with the question's content words (stop words dropped; sometimes
 *      a seeded subset or only the names — a paraphrase);
 *   2. after a search → `fetch_url` on one of the top 3 results (seeded, weighted to the top, so a
 *      sample sometimes reads the wrong page);
 *   3. after reading → answer when some sentence supports a candidate well; else read the next
 *      result when the page looked unrelated, or — for a two-hop question — search again for the
 *      bridge entity the page introduced (a name next to a role word of the question, e.g. "the
 *      architect Osric Penhallow") with the question words the pages did not cover;
 *   4. the answer is `<answer>…</answer>`: the candidate span of the expected kind (a year for
 *      "when / what year", a number for "how many / how long / …", a name after a place
 *      preposition for "in which town", else a capitalized name) whose sentence covers the
 *      question best — read with its page's title, borrowing half the question words of a sentence
 *      on another page that shares a name with it (the chain of a two-hop question), what a
 *      follow-up looked up counting double — sits closest to a question word and fits the asked
 *      unit; with a seeded chance of taking the runner-up instead when the two are close.
 * Every reply starts with `<think>…</think>` saying what it does and why. Tool results are read
 * from the conversation only (the text, or the structured content AgentDock appends as JSON).
 *
 * Determinism: every choice is a hash of (seed, episode key, sample tag, what is chosen), and every
 * later turn is a pure function of the request. The k samples of one task send byte-identical first
 * request bodies (the sample index is not in the conversation), so the first turn — and only it —
 * tells them apart the way sampling would, by the first of:
 *   - a request body `seed` (OpenAI's field): tag `s<seed>`;
 *   - the episode the request names in its `x-rollout-episode` header (the inference pool sends
 *     it): an evaluator's episode id `<run>/<task>/<sample>` gives tag `n<sample>`, so sample k of
 *     a task takes the same trajectory in every run, and any other id gives a tag hashed from it;
 *   - without either, the fallback: the arrival order of first requests per episode key in this
 *     script instance (the 1st gets n0, the 2nd n1, …). A first turn asked again (a retry after a
 *     crash) then counts as a new sample, and two server instances hand the tags out in their own
 *     orders: only the header makes a retried turn and a run split across servers repeatable.
 * Sample k gets n<k> by its episode id where arrival order gave n<k> to the k-th arrival, so an
 * evaluation's set of k trajectories per task (and its Avg@k) is the same either way. The tag is
 * written into the tool call ids (`call_<tag>_t<turn>`), which the conversation carries back, so the
 * rest of the episode follows from the request alone.
 *
 * The parts, each in its module: `conversation.ts` reads the request (with `toolResults.ts` for
 * what the tools gave back), `question.ts` the question (with `words.ts` for tokens and stems),
 * `decide.ts` chooses the step through `searching.ts`, `reading.ts` and `answers.ts`, and
 * `samples.ts` tells the samples apart and draws the seeded numbers.
 */
import {
  type ChatRequest,
  episodeKeyOf,
  messageText,
  type Script,
  type ScriptContext,
  type ScriptedReply,
} from "../script.ts"
import { isSummarizerCall, readConversation, toolNamed, toolNames } from "./conversation.ts"
import { decide } from "./decide.ts"
import { type Arrivals, sampleTagOf, seededUnit } from "./samples.ts"

export interface ResearcherOptions {
  /** Mixed into every seeded choice (default 0): another seed, other trajectories. */
  readonly seed?: number
  /** Searches per episode, follow-ups included (default 3). Reads are capped at twice this. */
  readonly maxSearches?: number
}

/** What one script instance replies with: its options and the arrival counts it keeps. */
interface ResearcherState {
  readonly seed: number
  readonly maxSearches: number
  readonly arrivals: Arrivals
}

/** The `researcher` script: see the module comment. */
export const researcherScript = (options: ResearcherOptions = {}): Script => {
  const seed = options.seed ?? 0
  const maxSearches = options.maxSearches ?? 3
  if (!Number.isInteger(maxSearches) || maxSearches < 1)
    throw new RangeError(`maxSearches must be an integer >= 1, got ${maxSearches}`)
  const state: ResearcherState = { seed, maxSearches, arrivals: new Map() }
  return (request, context) => reply(state, request, context)
}

/** Text quoted from pages cannot open or close a tag of the reply. */
const plain = (text: string): string => text.replace(/</g, "‹").replace(/>/g, "›")

/** An auxiliary call (context summary, page refinement): answered extractively, with its last input. */
const summarize = (request: ChatRequest): ScriptedReply => {
  const input = [...request.messages].reverse().find((m) => m.role === "user")
  return { content: `## Evidence\n${(input === undefined ? "" : messageText(input)).slice(0, 8000)}` }
}

/** One turn: the next step of the research as a tool call (its id carrying the sample tag) or the answer. */
const reply = (state: ResearcherState, request: ChatRequest, context: ScriptContext): ScriptedReply => {
  if (isSummarizerCall(request)) return summarize(request)
  const conversation = readConversation(request)
  const names = toolNames(request)
  const search = toolNamed(names, "search")
  const fetchUrl = toolNamed(names, "fetch_url")
  if (search === undefined || fetchUrl === undefined || conversation.question === "") {
    return {
      content:
        "<think>I need a question and the search and fetch_url tools to research it, and I do not have " +
        "them.</think>\n<answer>unknown</answer>",
    }
  }
  const key = context.episodeKey ?? episodeKeyOf(request) ?? ""
  const tag =
    conversation.sampleTag ?? sampleTagOf(state.arrivals, request, key, conversation.turns, context.episodeId)
  const draw = (label: string) => seededUnit(state.seed, key, tag, label)
  const turn = conversation.turns + 1
  const decision = decide(conversation, draw, { maxSearches: state.maxSearches })
  const think = `<think>${plain(decision.think)}</think>`
  const id = `call_${tag}_t${turn}`
  switch (decision.kind) {
    case "search":
      return { content: think, toolCalls: [{ id, name: search, arguments: { query: decision.query } }] }
    case "read":
      return {
        content: think,
        toolCalls: [
          {
            id,
            name: fetchUrl,
            arguments: { url: decision.url, purpose: `To answer: ${conversation.question}` },
          },
        ],
      }
    case "answer":
      return { content: `${think}\n<answer>${plain(decision.answer)}</answer>` }
  }
}
