/**
 * The flags that say how to read a benchmark file, shared by `rollout data inspect` and
 * `rollout eval`: the benchmark's name, `--map` (custom only) and `--format`, each refused with a
 * usage error that says what is accepted.
 */
import * as Effect from "effect/Effect"
import {
  BENCHMARK_NAMES,
  type BenchmarkName,
  type CustomMapping,
  isBenchmarkName,
  parseCustomMapping,
} from "../../actors/evaluator/datasets/benchmarks.ts"
import { TABLE_FORMATS, type TableFormat } from "../../actors/evaluator/datasets/tableFiles.ts"
import { UsageError } from "./invocation.ts"

export interface BenchmarkFlags {
  readonly benchmark: BenchmarkName
  readonly mapping: CustomMapping | undefined
  readonly format: TableFormat | undefined
}

export const benchmarkFlags = (
  benchmark: string,
  options: { readonly map?: string; readonly format?: string },
): Effect.Effect<BenchmarkFlags, UsageError> =>
  Effect.gen(function* () {
    if (!isBenchmarkName(benchmark))
      return yield* Effect.fail(
        new UsageError(`unknown benchmark "${benchmark}"; known benchmarks: ${BENCHMARK_NAMES.join(", ")}`),
      )
    let mapping: CustomMapping | undefined
    if (options.map !== undefined) {
      if (benchmark !== "custom")
        return yield* Effect.fail(
          new UsageError(`--map applies to the custom benchmark only, not ${benchmark}`),
        )
      const parsed = parseCustomMapping(options.map)
      if (typeof parsed === "string")
        return yield* Effect.fail(
          new UsageError(`--map ${parsed}; write it as question=<column>,answer=<column>[,id=<column>,…]`),
        )
      mapping = parsed
    }
    const format = options.format
    if (format !== undefined && !(TABLE_FORMATS as ReadonlyArray<string>).includes(format))
      return yield* Effect.fail(
        new UsageError(`--format must be one of ${TABLE_FORMATS.join(", ")}, got "${format}"`),
      )
    return { benchmark, mapping, format: format as TableFormat | undefined }
  })
