/**
 * Why a model endpoint could not be used, named the way an operator acts on it: "connection
 * refused" (nothing listens there), "host not found (DNS)", "timeout", "HTTP 401 unauthorized (API
 * key refused)", "HTTP 404 not found", … Used by the endpoint probe before a run (from the error the
 * client threw) and by the scoreboard to count a run's infrastructure failures (from the code and
 * message a `ModelCallFailed` recorded). It reads what an event records, so it sits with the
 * events, below both of its readers; pure (no client import), as all of events/ outside log/ is.
 */

/** Node's and undici's error codes an operator can act on, most specific first. */
const ERRNO_CAUSES: ReadonlyArray<readonly [string, string]> = [
  ["ECONNREFUSED", "connection refused"],
  ["ENOTFOUND", "host not found (DNS)"],
  ["EAI_AGAIN", "DNS lookup failed (temporary)"],
  ["EAI_NODATA", "host not found (DNS)"],
  ["EHOSTUNREACH", "host unreachable"],
  ["ENETUNREACH", "network unreachable"],
  ["ECONNRESET", "connection reset"],
  ["EPIPE", "connection reset"],
  ["UND_ERR_SOCKET", "connection closed by the server"],
  ["UND_ERR_CONNECT_TIMEOUT", "timeout (connecting)"],
  ["UND_ERR_HEADERS_TIMEOUT", "timeout (no answer)"],
  ["ETIMEDOUT", "timeout"],
  ["DEPTH_ZERO_SELF_SIGNED_CERT", "TLS: self-signed certificate"],
  ["SELF_SIGNED_CERT_IN_CHAIN", "TLS: self-signed certificate"],
  ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "TLS: certificate not trusted"],
  ["CERT_HAS_EXPIRED", "TLS: certificate expired"],
  ["ERR_TLS_CERT_ALTNAME_INVALID", "TLS: certificate for another host name"],
  ["ERR_SSL_WRONG_VERSION_NUMBER", "TLS: the server does not speak TLS (http:// instead of https://?)"],
  ["EPROTO", "TLS or protocol error"],
]

/** The cause of an HTTP status answered by an endpoint. */
export const statusCause = (status: number): string => {
  if (status === 401) return "HTTP 401 unauthorized (API key refused)"
  if (status === 403) return "HTTP 403 forbidden"
  if (status === 404) return "HTTP 404 not found"
  if (status === 405) return "HTTP 405 method not allowed"
  if (status === 429) return "HTTP 429 rate limited"
  if (status >= 500) return `HTTP ${status} server error`
  return `HTTP ${status}`
}

/** The operator's name for an error code (`ECONNREFUSED`, …), when it is one we know. */
export const errnoCause = (code: string): string | undefined =>
  ERRNO_CAUSES.find(([known]) => known === code)?.[1]

/** Every error code along an error's causes (and an `AggregateError`'s members), outermost first. */
export const errorCodes = (error: unknown): ReadonlyArray<string> => {
  const codes: Array<string> = []
  const seen = new Set<unknown>()
  const visit = (current: unknown, depth: number) => {
    if (depth > 6 || typeof current !== "object" || current === null || seen.has(current)) return
    seen.add(current)
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && code !== "") codes.push(code)
    const members = (current as { errors?: unknown }).errors
    if (Array.isArray(members)) for (const member of members) visit(member, depth + 1)
    visit((current as { cause?: unknown }).cause, depth + 1)
  }
  visit(error, 0)
  return codes
}

/**
 * The cause of a failed model call from its recorded code and message (see `ModelUnavailable`):
 * an error code named in the message wins (a `no_capacity` after ejection says "last error: …
 * ECONNREFUSED"), then the HTTP status, then a timeout, else the code itself.
 */
export const failureCause = (code: string, message: string): string => {
  // The last code named is the most recent error (the message lists the ejection's before it).
  let best: { at: number; cause: string } | undefined
  for (const [known, cause] of ERRNO_CAUSES) {
    const at = message.lastIndexOf(known)
    if (at >= 0 && (best === undefined || at > best.at)) best = { at, cause }
  }
  if (best !== undefined) return best.cause
  const status = /^http_(\d{3})$/.exec(code)?.[1] ?? /last error: http_(\d{3})/.exec(message)?.[1]
  if (status !== undefined) return statusCause(Number(status))
  if (code === "timeout" || /last error: timeout\b/.test(message)) return "timeout"
  if (code === "no_endpoint") return `no usable endpoint (${message})`
  if (code === "no_capacity") return "no endpoint free within the queue timeout"
  if (code === "connection") return "connection failed"
  return code === "" ? "unknown failure" : code
}
