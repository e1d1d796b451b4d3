/** The tool-health read model as text: the table from plain data, troubled replicas listed, log text escaped. */
import { describe, expect, it } from "vitest"
import { toolHealthText } from "../../src/projections/toolHealth/render.ts"
import type { ServerStatus } from "../../src/projections/toolHealth/serverStatus.ts"

const server: ServerStatus = {
  server: "search",
  transport: "stdio",
  version: "v1",
  weights: { v1: 100 },
  replicas: [
    { replica: "search-1", version: "v1", state: "up", inFlight: 2, circuit: "closed", restarts: 0 },
    { replica: "search-2\u001b[31m", version: "v1", state: "up", inFlight: 1, circuit: "open", restarts: 1 },
    { replica: "search-3", version: "v1", state: "down", inFlight: 0, circuit: "closed", restarts: 3 },
  ],
  queued: 4,
  calls: 120,
  failed: 3,
  callsPerSecond: 12.25,
  p50Ms: 8,
  p99Ms: 41.5,
  restarts: 4,
  swaps: 1,
}

describe("toolHealthText", () => {
  it("renders one row per server and a line per replica that is down or has its circuit open", () => {
    const text = toolHealthText([server], "from the log at here")
    const lines = text.split("\n")
    expect(lines[0]).toBe("from the log at here")
    expect(text).toMatch(/search\s+v1\s+2\/3\s+3\s+4\s+120\s+3\s+12\.3\s+8\s+41\.5\s+4\s+1/)
    expect(text).toContain(": up, circuit open\n")
    expect(text).toContain("  search-3: down\n")
    expect(text).not.toContain("search-1:")
    // A replica name read from the log reaches the terminal escaped.
    expect(text).not.toContain("\u001b")
  })
})
