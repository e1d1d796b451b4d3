/**
 * The `x-rollout-episode` request header: every model call an agent makes names the episode it
 * belongs to, so a server can tell the episodes (and the samples of one task) apart by what the
 * request carries rather than by when it arrived. Real servers ignore it; the scripted test double
 * keys its per-episode choices by it, so a turn asked again after a crash gets the answer it got
 * the first time, on any server instance.
 *
 * Why a header and not the body's OpenAI `user` field: `user` names an end user to whoever reads
 * it — OpenAI buckets prompt caching and abuse monitoring by it (and has replaced it with
 * `safety_identifier` and `prompt_cache_key`), LiteLLM-style gateways track spend and budgets per
 * `user` — so one value per episode would split the prefix cache that the samples of a task share
 * and create thousands of fake end users; an `extraBody` may also set `user` for one of those
 * purposes. An unknown header is ignored by vLLM, SGLang and OpenAI and changes nothing the model
 * sees. An episode id is not a secret (it names a run, a task and a sample), so a server or proxy
 * that logs headers learns nothing it should not.
 */

/** The header's name, lower case as Node reports it. */
export const EPISODE_HEADER = "x-rollout-episode"

const encoder = new TextEncoder()

/** Visible ASCII except `%`: sent as is, so ordinary ids stay readable in a server's logs. */
const isPlain = (char: string): boolean => {
  const code = char.charCodeAt(0)
  return char.length === 1 && code >= 0x21 && code <= 0x7e && char !== "%"
}

/**
 * The header value of an episode id: the id itself, with every other character (space, control,
 * `%`, non-ASCII) percent-encoded as its UTF-8 bytes, because HTTP header values must be visible
 * ASCII while episode ids are any non-empty string (they carry dataset task ids).
 */
export const episodeHeaderValue = (episodeId: string): string => {
  let value = ""
  for (const char of episodeId) {
    if (isPlain(char)) value += char
    else
      for (const byte of encoder.encode(char)) value += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return value
}

export type ParsedEpisodeHeader =
  | { readonly ok: true; readonly episodeId: string | undefined }
  | { readonly ok: false; readonly message: string }

const shown = (value: string): string => JSON.stringify(value.length > 80 ? `${value.slice(0, 79)}…` : value)

/**
 * The episode id a request names: undefined when it sent no header; refused when it sent it twice,
 * empty, or with a `%` sequence that is not percent-encoded UTF-8.
 */
export const parseEpisodeHeader = (values: ReadonlyArray<string> | undefined): ParsedEpisodeHeader => {
  if (values === undefined || values.length === 0) return { ok: true, episodeId: undefined }
  if (values.length > 1)
    return {
      ok: false,
      message: `the ${EPISODE_HEADER} header was sent ${values.length} times; send it once`,
    }
  const value = values[0]!.trim()
  if (value === "")
    return { ok: false, message: `the ${EPISODE_HEADER} header is empty; omit it or name the episode` }
  try {
    return { ok: true, episodeId: decodeURIComponent(value) }
  } catch {
    return {
      ok: false,
      message: `the ${EPISODE_HEADER} header ${shown(value)} is not percent-encoded UTF-8 (a "%" must start a valid %XX sequence)`,
    }
  }
}
