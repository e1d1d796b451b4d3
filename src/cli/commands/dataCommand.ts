/**
 * `rollout data inspect <benchmark> <path>`: loads a benchmark file the way an evaluation would
 * (decrypting in memory, never printing questions or answers) and reports what it found: rows,
 * tasks, columns, decrypted rows, rows left out and why, and every bad row as `file:row: reason`.
 * Exit code 3 when some rows are bad (the rest loaded).
 */
import * as Effect from "effect/Effect"
import { loadBenchmark } from "../../actors/evaluator/datasets/datasetLoader.ts"
import { formatIssue, type Task } from "../../actors/evaluator/datasets/task.ts"
import { benchmarkFlags } from "../terminal/benchmarkFlags.ts"
import { type GlobalOptions, printJson } from "../terminal/invocation.ts"

export interface DataInspectOptions {
  readonly ids?: string
  readonly map?: string
  readonly format?: string
  readonly plaintext?: boolean
  readonly json?: boolean
}

/** Text errors shown before "… and N more". */
const SHOWN_ERRORS = 20

const countBy = (
  tasks: ReadonlyArray<Task>,
  key: (t: Task) => string | undefined,
): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const t of tasks) {
    const k = key(t)
    if (k !== undefined) counts[k] = (counts[k] ?? 0) + 1
  }
  return counts
}

const counted = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([k, n]) => `${k}: ${n}`)
    .join(", ")

export const dataInspectCommand = (
  _global: GlobalOptions,
  benchmarkArg: string,
  path: string,
  options: DataInspectOptions,
) =>
  Effect.gen(function* () {
    const { benchmark, mapping, format } = yield* benchmarkFlags(benchmarkArg, options)
    const result = yield* loadBenchmark(benchmark, path, {
      ...(options.ids === undefined ? {} : { ids: options.ids }),
      ...(mapping === undefined ? {} : { mapping }),
      ...(format === undefined ? {} : { format }),
      ...(options.plaintext === true ? { plaintext: true } : {}),
    })
    const errors = result.errors.map(formatIssue)
    const levels = countBy(result.tasks, (t) => t.level)
    const categories = countBy(result.tasks, (t) => t.category)
    if (options.json === true)
      printJson({
        benchmark: result.benchmark,
        path: result.path,
        format: result.format,
        rows: result.rows,
        tasks: result.tasks.length,
        fields: result.fields,
        decrypted: result.decrypted,
        skipped: result.skipped,
        levels,
        categories,
        errors,
      })
    else {
      const skippedTotal = Object.values(result.skipped).reduce((a, b) => a + b, 0)
      const lines = [
        `${result.benchmark}: ${result.path} (${result.format})`,
        `  rows ${result.rows}, tasks ${result.tasks.length}, decrypted ${result.decrypted}, skipped ${skippedTotal}${
          skippedTotal > 0 ? ` (${counted(result.skipped)})` : ""
        }, bad rows ${errors.length}`,
        `  fields: ${result.fields.join(", ")}`,
        ...(Object.keys(levels).length > 0 ? [`  levels: ${counted(levels)}`] : []),
        ...(Object.keys(categories).length > 0 ? [`  categories: ${counted(categories)}`] : []),
        ...(errors.length > 0
          ? ["  bad rows:", ...errors.slice(0, SHOWN_ERRORS).map((e) => `    ${e}`)]
          : []),
        ...(errors.length > SHOWN_ERRORS
          ? [`    … and ${errors.length - SHOWN_ERRORS} more (--json lists all)`]
          : []),
      ]
      process.stdout.write(`${lines.join("\n")}\n`)
    }
    if (errors.length > 0) process.exitCode = 3
  })
