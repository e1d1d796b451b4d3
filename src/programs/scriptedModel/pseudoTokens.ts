/**
 * The scripted model server's pseudo-tokenizer: a deterministic stand-in for a real tokenizer so
 * that usage counts, token ids and log-probs agree with each other on every run. A token is a run
 * of leading whitespace plus up to four non-space characters (so dense text costs about
 * characters/4 tokens, like BPE on English), or trailing whitespace; tokens concatenate back to the
 * text exactly. Ids and log-probs are hashes, not model outputs.
 */
import type { ChatRequest } from "./script.ts"
import { messageText } from "./script.ts"

/** Qwen3's vocabulary size: every id is below it, so downstream code sees plausible ids. */
export const VOCABULARY_SIZE = 151_936

const MAX_TOKEN_CODE_POINTS = 4

const isSpace = (c: number): boolean =>
  c <= 32 ||
  c === 0x85 ||
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff

/** Calls `onToken(start, end)` for each token; a surrogate pair is never split. */
const scan = (text: string, onToken: (start: number, end: number) => void): void => {
  const n = text.length
  let i = 0
  while (i < n) {
    let j = i
    while (j < n && isSpace(text.charCodeAt(j))) j++
    let codePoints = 0
    while (j < n && codePoints < MAX_TOKEN_CODE_POINTS && !isSpace(text.charCodeAt(j))) {
      j += isHighSurrogate(text.charCodeAt(j)) && j + 1 < n ? 2 : 1
      codePoints++
    }
    onToken(i, j)
    i = j
  }
}

export const tokenize = (text: string): Array<string> => {
  const tokens: Array<string> = []
  scan(text, (start, end) => tokens.push(text.slice(start, end)))
  return tokens
}

export const countTokens = (text: string): number => {
  let count = 0
  scan(text, () => count++)
  return count
}

// FNV-1a: fast, dependency-free, and stable across Node versions (unlike any engine hash).
const fnv1a = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The same text always gets the same id, as with a real vocabulary. */
export const tokenId = (token: string): number => fnv1a(token) % VOCABULARY_SIZE

/** A log-prob in (-5, 0] that depends on the token and its position in the completion. */
export const tokenLogprob = (token: string, position: number): number =>
  -(fnv1a(`${position}\u0000${token}`) % 5000) / 1000

/**
 * What the tokenizer sees of a prompt, in order: the tool catalog (as JSON), then per message its
 * role, its text and the JSON of its tool calls. A real server would render a chat template; a
 * fixed, documented rendering is all a test double needs for stable counts.
 */
const promptParts = (request: ChatRequest): Array<string> => {
  const parts: Array<string> = []
  if (request.tools !== undefined && request.tools.length > 0) parts.push(JSON.stringify(request.tools))
  for (const message of request.messages) {
    parts.push(message.role, messageText(message))
    if (message.tool_calls !== undefined) {
      for (const call of message.tool_calls) parts.push(JSON.stringify(call.function ?? {}))
    }
  }
  return parts
}

export const promptTokenCount = (request: ChatRequest): number => {
  let count = 0
  for (const part of promptParts(request)) count += countTokens(part)
  return count
}

/** Always `promptTokenCount(request)` ids long. */
export const promptTokenIds = (request: ChatRequest): Array<number> => {
  const ids: Array<number> = []
  for (const part of promptParts(request))
    scan(part, (start, end) => ids.push(tokenId(part.slice(start, end))))
  return ids
}
