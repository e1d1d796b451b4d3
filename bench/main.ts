/**
 * The benchmark runner: `npm run bench -- <name> [flags]` builds and runs `dist/bench/main.js`,
 * which hands the remaining flags (such as `--json`) to the named benchmark. Without a known name
 * it lists the benchmarks and exits with 2.
 */
import { agentBenchmark } from "./agent.ts"
import type { Benchmark } from "./benchmark.ts"
import { evalBenchmark } from "./eval.ts"
import { logBenchmark } from "./log.ts"
import { mergeBenchmark } from "./merge.ts"
import { rlBenchmark } from "./rl.ts"
import { toolsBenchmark } from "./tools.ts"

const benchmarks: ReadonlyArray<Benchmark> = [
  logBenchmark,
  agentBenchmark,
  toolsBenchmark,
  evalBenchmark,
  mergeBenchmark,
  rlBenchmark,
]

const usage = (): string =>
  [
    "usage: npm run bench -- <benchmark> [flags]",
    "",
    "benchmarks:",
    ...benchmarks.map((b) => `  ${b.name.padEnd(10)} ${b.summary}`),
    "",
    "common flags: --json (print one JSON object on stdout instead of a table)",
  ].join("\n")

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...rest] = argv
  const benchmark = benchmarks.find((b) => b.name === name)
  if (benchmark === undefined) {
    if (name !== undefined && name !== "--help" && name !== "-h")
      process.stderr.write(`unknown benchmark "${name}"\n\n`)
    process.stderr.write(`${usage()}\n`)
    return 2
  }
  return benchmark.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(
      `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    )
    process.exitCode = 1
  },
)
