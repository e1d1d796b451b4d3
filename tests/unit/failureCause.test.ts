/**
 * How a failed model call's cause is named (`failureCause`): from messages the pool actually
 * writes (a connection refused after ejection, a DNS failure, an HTTP status, a timeout, an unset
 * key variable), the most recent error code named wins, and — as properties over arbitrary codes
 * and messages — it never throws and always names something.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { errorCodes, failureCause, statusCause } from "../../src/events/failureCause.ts"

describe("failureCause", () => {
  it("names the causes of messages the pool writes", () => {
    expect(
      failureCause(
        "no_capacity",
        "model m1 unavailable after 1 attempt(s) (last endpoint http://127.0.0.1:35489/v1): [no_capacity] no endpoint could take the call within queueTimeoutMs (60000 ms): http://127.0.0.1:35489/v1 ejected (probe: Connection error.); last error: connection: Connection error.: fetch failed: connect ECONNREFUSED 127.0.0.1:35489 (ECONNREFUSED)",
      ),
    ).toBe("connection refused")
    expect(
      failureCause("connection", "Connection error.: fetch failed: getaddrinfo ENOTFOUND gpu-7 (ENOTFOUND)"),
    ).toBe("host not found (DNS)")
    expect(failureCause("http_401", "401 Incorrect API key provided")).toBe(
      "HTTP 401 unauthorized (API key refused)",
    )
    expect(failureCause("http_404", "404 The model `m1` does not exist.")).toBe("HTTP 404 not found")
    expect(
      failureCause("no_capacity", "… http://x/v1 ejected (http_503: busy); last error: http_503: busy"),
    ).toBe("HTTP 503 server error")
    expect(failureCause("timeout", "no answer within 180000 ms")).toBe("timeout")
    expect(
      failureCause("no_endpoint", "env var OPENAI_API_KEY (models.gpt.endpoints[0].apiKeyEnv) is not set"),
    ).toBe("no usable endpoint (env var OPENAI_API_KEY (models.gpt.endpoints[0].apiKeyEnv) is not set)")
    expect(failureCause("bad_response", "Unexpected token < in JSON")).toBe("bad_response")
  })

  it("takes the most recent error a message names", () => {
    expect(failureCause("connection", "first ECONNRESET, then connect ECONNREFUSED 10.0.0.1:8000")).toBe(
      "connection refused",
    )
    expect(failureCause("connection", "first ECONNREFUSED, later read ECONNRESET")).toBe("connection reset")
  })

  it("finds codes along causes and inside an AggregateError", () => {
    const inner = Object.assign(new Error("connect ECONNREFUSED ::1:8000"), { code: "ECONNREFUSED" })
    const aggregate = new AggregateError([inner], "connect failed")
    const outer = new TypeError("fetch failed", { cause: aggregate })
    expect(errorCodes(new Error("Connection error.", { cause: outer }))).toStrictEqual(["ECONNREFUSED"])
    // A cycle of causes ends.
    const a: Error & { cause?: unknown } = new Error("a")
    a.cause = a
    expect(errorCodes(a)).toStrictEqual([])
  })

  it("names HTTP statuses", () => {
    expect([401, 403, 404, 405, 429, 500, 503, 418].map(statusCause)).toStrictEqual([
      "HTTP 401 unauthorized (API key refused)",
      "HTTP 403 forbidden",
      "HTTP 404 not found",
      "HTTP 405 method not allowed",
      "HTTP 429 rate limited",
      "HTTP 500 server error",
      "HTTP 503 server error",
      "HTTP 418",
    ])
  })

  test.prop([fc.string(), fc.string()])("never throws and always names something", (code, message) => {
    const cause = failureCause(code, message)
    expect(typeof cause).toBe("string")
    expect(cause.length).toBeGreaterThan(0)
  })

  test.prop([fc.string(), fc.string()])("a refused connection named last is called one", (before, code) => {
    const message = `${before} connect ECONNREFUSED 127.0.0.1:1`
    expect(failureCause(code, message)).toBe("connection refused")
  })
})
