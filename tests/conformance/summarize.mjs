// Reads the conformance suite's per-scenario results and the expected-failures list, prints one line
// per scenario and a summary, and exits 1 only when a scenario failed that is not an expected failure.
// A scenario fails when any of its checks is FAILURE or WARNING (the suite's own baseline rule).
// Usage: node summarize.mjs <results dir> <expected-failures.txt> <scenario list file>
// The last stdout line is `CONFORMANCE_SUMMARY <json>` for tools that read the outcome.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"

const [resultsDir, expectedFile, scenariosFile] = process.argv.slice(2)
if (resultsDir === undefined || expectedFile === undefined || scenariosFile === undefined) {
  process.stderr.write("usage: summarize.mjs <results dir> <expected-failures.txt> <scenario list file>\n")
  process.exit(2)
}

/** scenario -> reason */
const expected = new Map()
for (const raw of readFileSync(expectedFile, "utf8").split("\n")) {
  const line = raw.trim()
  if (line === "" || line.startsWith("#")) continue
  const match = /^(\S+)\s+(.+)$/.exec(line)
  if (match === null) {
    process.stderr.write(`expected-failures: a line needs a scenario and a reason: ${line}\n`)
    process.exit(2)
  }
  expected.set(match[1], match[2])
}

const scenarios = readFileSync(scenariosFile, "utf8")
  .split("\n")
  .map((s) => s.trim())
  .filter((s) => s !== "")

// Result directories are named `server-<scenario>-<ISO timestamp with - for : and .>`.
const dirs = existsSync(resultsDir) ? readdirSync(resultsDir) : []
const checksOf = (scenario) => {
  const dir = dirs.find(
    (d) => d.startsWith(`server-${scenario}-`) && /^\d{4}-/.test(d.slice(`server-${scenario}-`.length)),
  )
  if (dir === undefined) return undefined
  const file = path.join(resultsDir, dir, "checks.json")
  if (!existsSync(file)) return undefined
  return JSON.parse(readFileSync(file, "utf8"))
}

const rows = []
for (const scenario of scenarios) {
  const checks = checksOf(scenario)
  const counts = { SUCCESS: 0, FAILURE: 0, WARNING: 0 }
  const problems = []
  if (checks === undefined) problems.push("no results (the scenario did not run to the end)")
  else
    for (const check of checks) {
      if (check.status in counts) counts[check.status] += 1
      if (check.status === "FAILURE" || check.status === "WARNING")
        problems.push(`${check.status} ${check.id}: ${check.errorMessage ?? check.description}`)
    }
  const failed = problems.length > 0
  const isExpected = expected.has(scenario)
  const verdict = failed
    ? isExpected
      ? "expected-failure"
      : "FAILED"
    : isExpected
      ? "passed (stale)"
      : "passed"
  rows.push({ scenario, verdict, counts, problems })
}

const width = Math.max(...rows.map((r) => r.scenario.length))
for (const r of rows) {
  const checks = `${r.counts.SUCCESS} ok, ${r.counts.FAILURE} failed, ${r.counts.WARNING} warnings`
  process.stdout.write(`${r.verdict.padEnd(16)} ${r.scenario.padEnd(width)}  (${checks})\n`)
  if (r.verdict === "FAILED") for (const p of r.problems) process.stdout.write(`${" ".repeat(18)}${p}\n`)
  if (r.verdict === "expected-failure")
    process.stdout.write(`${" ".repeat(18)}reason: ${expected.get(r.scenario)}\n`)
}
const unknownEntries = [...expected.keys()].filter((s) => !scenarios.includes(s))

const summary = {
  scenarios: rows.length,
  passed: rows.filter((r) => r.verdict === "passed").map((r) => r.scenario),
  failed: rows.filter((r) => r.verdict === "FAILED").map((r) => r.scenario),
  expectedFailures: rows.filter((r) => r.verdict === "expected-failure").length,
  stale: rows.filter((r) => r.verdict === "passed (stale)").map((r) => r.scenario),
  unknownEntries,
  checks: {
    passed: rows.reduce((n, r) => n + r.counts.SUCCESS, 0),
    failed: rows.reduce((n, r) => n + r.counts.FAILURE, 0),
    warnings: rows.reduce((n, r) => n + r.counts.WARNING, 0),
  },
}
process.stdout.write(
  `\nConformance: ${summary.scenarios} scenarios: ${summary.passed.length} passed, ${summary.failed.length} failed ` +
    `unexpectedly, ${summary.expectedFailures} expected failures (do not apply), ${summary.stale.length} stale ` +
    `expected-failure entries; checks: ${summary.checks.passed} passed, ${summary.checks.failed} failed, ` +
    `${summary.checks.warnings} warnings\n`,
)
if (summary.stale.length > 0)
  process.stdout.write(
    `Stale entries (passing now; remove them from ${path.basename(expectedFile)}): ${summary.stale.join(", ")}\n`,
  )
if (unknownEntries.length > 0)
  process.stdout.write(`Unknown scenarios in ${path.basename(expectedFile)}: ${unknownEntries.join(", ")}\n`)
process.stdout.write(`CONFORMANCE_SUMMARY ${JSON.stringify(summary)}\n`)
process.exit(summary.failed.length > 0 ? 1 : 0)
