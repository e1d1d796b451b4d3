/**
 * Subject and stream naming. Events live on `<ns>.ev.<entityKind>.<entityId>`, commands on
 * `<ns>.cmd.<actorKind>.<entityId>`, dead letters on `<ns>.dlq.<actorKind>`. Entity ids are escaped
 * into one NATS token so any id (URLs, dataset ids with dots) is safe and reversible.
 */

/** Names of the JetStream streams (or embedded files) for one namespace. */
export interface Streams {
  readonly namespace: string
  readonly events: string
  readonly commands: string
  readonly deadLetters: string
}

const namespacePattern = /^[a-z][a-z0-9_-]{0,31}$/

export const streamsFor = (namespace: string): Streams => {
  if (!namespacePattern.test(namespace)) {
    throw new Error(
      `namespace "${namespace}" must match ${namespacePattern} (lower-case letters, digits, _ and -; at most 32)`,
    )
  }
  const upper = namespace.toUpperCase().replaceAll("-", "_")
  return {
    namespace,
    events: `${upper}_EVENTS`,
    commands: `${upper}_COMMANDS`,
    deadLetters: `${upper}_DLQ`,
  }
}

const safeToken = /^[A-Za-z0-9_-]+$/

/**
 * Escapes an id into a single subject token: characters outside `[A-Za-z0-9_-]` become `=XX` UTF-8
 * hex bytes (and `=` itself is escaped), so the mapping is injective and reversible.
 */
export const escapeToken = (id: string): string => {
  if (id.length === 0) throw new Error("an entity id must not be empty")
  if (safeToken.test(id)) return id
  let out = ""
  for (const ch of id) {
    if (/[A-Za-z0-9_-]/.test(ch)) out += ch
    else
      for (const byte of Buffer.from(ch, "utf8"))
        out += `=${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

export const unescapeToken = (token: string): string => {
  if (!token.includes("=")) return token
  const bytes: number[] = []
  for (let i = 0; i < token.length; i++) {
    const ch = token[i]!
    if (ch === "=") {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(ch.charCodeAt(0))
  }
  return Buffer.from(bytes).toString("utf8")
}

const kindPattern = /^[a-z][a-z0-9_-]*$/

const checkKind = (kind: string): string => {
  if (!kindPattern.test(kind)) throw new Error(`entity kind "${kind}" must match ${kindPattern}`)
  return kind
}

/** The subject of one entity's event stream (its single writer appends only here). */
export const entitySubject = (namespace: string, kind: string, id: string): string =>
  `${namespace}.ev.${checkKind(kind)}.${escapeToken(id)}`

/** A filter for every entity of a kind, or every event when `kind` is omitted. */
export const eventsFilter = (namespace: string, kind?: string): string =>
  kind === undefined ? `${namespace}.ev.>` : `${namespace}.ev.${checkKind(kind)}.*`

export const commandSubject = (namespace: string, actorKind: string, entityId: string): string =>
  `${namespace}.cmd.${checkKind(actorKind)}.${escapeToken(entityId)}`

export const commandsFilter = (namespace: string, actorKind: string): string =>
  `${namespace}.cmd.${checkKind(actorKind)}.*`

export const deadLetterSubject = (namespace: string, actorKind: string): string =>
  `${namespace}.dlq.${checkKind(actorKind)}`

/** Splits an event subject into its entity kind and (unescaped) id; undefined for other subjects. */
export const parseEntitySubject = (subject: string): { kind: string; id: string } | undefined => {
  const parts = subject.split(".")
  if (parts.length !== 4 || parts[1] !== "ev") return undefined
  return { kind: parts[2]!, id: unescapeToken(parts[3]!) }
}

/** True when `subject` matches a NATS filter with `*` and a trailing `>`. */
export const subjectMatches = (filter: string, subject: string): boolean => {
  const f = filter.split(".")
  const s = subject.split(".")
  for (let i = 0; i < f.length; i++) {
    const token = f[i]!
    if (token === ">") return s.length > i
    if (i >= s.length) return false
    if (token !== "*" && token !== s[i]) return false
  }
  return f.length === s.length
}

/** Projection names become checkpoint file names and NATS KV keys, so they keep to a safe alphabet. */
export const projectionNamePattern = /^[a-z][A-Za-z0-9_-]{0,63}$/
