/**
 * The tool-health read model as text: one table row per server (version, replicas up, calls in
 * flight and queued, calls, failures, rate, latency percentiles, restarts, swaps), then a line
 * for every replica that is not up or whose circuit is open. Text from the log is escaped.
 */
import { table, terminalText } from "../terminalText.ts"
import type { ServerStatus } from "./serverStatus.ts"

const figure = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1))

/** The status table under a first line saying where it comes from. */
export const toolHealthText = (servers: ReadonlyArray<ServerStatus>, source: string): string => {
  const rows = table(
    [
      "server",
      "version",
      "replicas up",
      "in flight",
      "queued",
      "calls",
      "failed",
      "calls/s",
      "p50 ms",
      "p99 ms",
      "restarts",
      "swaps",
    ],
    servers.map((s) => [
      s.server,
      s.version,
      `${s.replicas.filter((r) => r.state === "up").length}/${s.replicas.length}`,
      s.replicas.reduce((sum, r) => sum + r.inFlight, 0),
      s.queued,
      s.calls,
      s.failed,
      figure(s.callsPerSecond),
      figure(s.p50Ms),
      figure(s.p99Ms),
      s.restarts,
      s.swaps,
    ]),
  )
  const troubled = servers.flatMap((s) =>
    s.replicas
      .filter((r) => r.state !== "up" || r.circuit === "open")
      .map(
        (r) => `  ${terminalText(r.replica)}: ${r.state}${r.circuit === "open" ? ", circuit open" : ""}\n`,
      ),
  )
  return `${source}\n\n${rows}\n${troubled.join("")}`
}
