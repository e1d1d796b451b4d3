/**
 * The scripted model server's pseudo-tokenizer: a deterministic stand-in for a real tokenizer so
 * that usage counts, token ids and log-probs agree with each other on every run. A token is a run
 * of leading whitespace plus up to four non-space characters (so dense text costs about
 * characters/4 tokens, like BPE on English), or trailing whitespace; tokens concatenate back to the
 * text exactly. Ids and log-probs are hashes, not model outputs; `chatTemplate.ts` renders chats to
 * them, and a `Vocabulary` reads ids back.
 */
/** Qwen3's vocabulary size: every id is below it, so downstream code sees plausible ids. */
export const VOCABULARY_SIZE = 151_936

/** Ids from here up are the chat template's special tokens (as in Qwen3); text never hashes to them. */
export const FIRST_SPECIAL_ID = 151_643

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

/** The same text always gets the same id, as with a real vocabulary; never a special token's. */
export const tokenId = (token: string): number => fnv1a(token) % FIRST_SPECIAL_ID

/** A log-prob in (-5, 0] that depends on the token and its position in the completion. */
export const tokenLogprob = (token: string, position: number): number =>
  -(fnv1a(`${position}\u0000${token}`) % 5000) / 1000

/**
 * Which text each id stood for, as far as this server has seen: ids are hashes, so a token-id
 * prompt (`/v1/completions`) can only be read back through the texts the server itself tokenized.
 * An id two texts share is ambiguous and refused when read, never guessed. Bounded: past `limit`
 * ids nothing more is learned (reading those fails the same clear way).
 */
export class Vocabulary {
  private readonly texts = new Map<number, string>()
  private readonly clashes = new Map<number, Set<string>>()

  constructor(private readonly limit = 1 << 20) {}

  learn(text: string, id: number): void {
    const known = this.texts.get(id)
    if (known === undefined) {
      if (this.texts.size < this.limit) this.texts.set(id, text)
    } else if (known !== text) {
      const clash = this.clashes.get(id) ?? new Set([known])
      clash.add(text)
      this.clashes.set(id, clash)
    }
  }

  /** The text of an id, or why it cannot be told. */
  text(id: number): string | { readonly problem: string } {
    const clash = this.clashes.get(id)
    if (clash !== undefined)
      return {
        problem: `token id ${id} stands for more than one text here (${[...clash].map((t) => JSON.stringify(t)).join(", ")})`,
      }
    return this.texts.get(id) ?? { problem: `token id ${id} is not one this server has produced` }
  }
}
