/**
 * Loading a benchmark file into tasks: read the table, check its columns, decrypt the encrypted
 * fields in memory, map each row to a `Task`, leave out duplicate ids and (with an id list) the
 * tasks not listed. Every bad row is an issue `file:row: reason` and loading goes on; only a file
 * that cannot be read at all, or lacks a required column, fails the load.
 */
import * as fs from "node:fs/promises"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  type BenchmarkName,
  type BenchmarkSpec,
  benchmarkSpec,
  type CustomMapping,
  cellText,
  ownCell,
} from "./benchmarks.ts"
import { canaryKey, decryptField } from "./canaryDecryption.ts"
import { DatasetUnreadable, readTable, type TableFormat } from "./tableFiles.ts"
import type { Cell, LoadIssue, LoadResult, Task } from "./task.ts"

export interface LoadOptions {
  /** A file of task ids (one per line, `#` comments; or a JSON array): only these tasks are kept. */
  readonly ids?: string
  /** The column mapping of a `custom` benchmark. */
  readonly mapping?: CustomMapping
  /** Read the file as this format instead of guessing from its name. */
  readonly format?: TableFormat
  /** The file is already decrypted (plaintext columns in an encrypted benchmark's shape). */
  readonly plaintext?: boolean
}

/** The task ids a list file names, each with its line; issues for repeated ids. */
export const readIdList = (
  path: string,
): Effect.Effect<
  { readonly ids: ReadonlyMap<string, number>; readonly issues: ReadonlyArray<LoadIssue> },
  DatasetUnreadable
> =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(path, "utf8"),
      catch: (error) =>
        new DatasetUnreadable({
          path,
          reason:
            (error as NodeJS.ErrnoException).code === "ENOENT"
              ? "no such file (the task-id list)"
              : `cannot read the task-id list: ${error instanceof Error ? error.message : String(error)}`,
        }),
    })
    const ids = new Map<string, number>()
    const issues: Array<LoadIssue> = []
    const add = (id: string, line: number) => {
      if (ids.has(id))
        issues.push({
          file: path,
          row: line,
          reason: `task id "${id}" is listed again (first on line ${ids.get(id)})`,
        })
      else ids.set(id, line)
    }
    if (text.trimStart().startsWith("[")) {
      let list: unknown
      try {
        list = JSON.parse(text)
      } catch (error) {
        return yield* new DatasetUnreadable({ path, reason: `not a JSON array of ids: ${String(error)}` })
      }
      if (!Array.isArray(list) || !list.every((id) => typeof id === "string" || typeof id === "number"))
        return yield* new DatasetUnreadable({ path, reason: "not a JSON array of id strings" })
      list.forEach((id, i) => {
        add(String(id).trim(), i + 1)
      })
    } else {
      text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.replace(/#.*$/, "").trim()
        if (line !== "") add(line, i + 1)
      })
    }
    return { ids, issues }
  })

/** Decrypts the row's encrypted fields in place of the ciphertext; the row, or why it failed. */
const decryptRow = (
  spec: BenchmarkSpec,
  values: { readonly [column: string]: Cell },
  keys: Map<string, Uint8Array>,
): Result.Result<{ readonly [column: string]: Cell }, string> => {
  const encryption = spec.encryption!
  const canary = cellText(ownCell(values, encryption.canaryField))
  if (canary.trim() === "") return Result.fail(`the canary (column "${encryption.canaryField}") is empty`)
  let key = keys.get(canary)
  if (key === undefined) {
    key = canaryKey(canary, encryption.scheme)
    keys.set(canary, key)
  }
  const out: Record<string, Cell> = {}
  for (const [name, value] of Object.entries(values))
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true })
  for (const field of encryption.fields) {
    const cell = ownCell(values, field)
    if (cell === undefined || cell === null || cell === "") continue
    const plain = decryptField(cellText(cell), key)
    if (Result.isFailure(plain))
      return Result.fail(
        `column "${field}": ${plain.failure}${
          plain.failure.startsWith("not base64")
            ? " (if the file is already decrypted, load it as plaintext)"
            : ""
        }`,
      )
    out[field] = plain.success
  }
  return Result.succeed(out)
}

/** Loads a benchmark file; see the module comment for what is an issue and what fails. */
export const loadBenchmark = (
  name: BenchmarkName,
  path: string,
  options: LoadOptions = {},
): Effect.Effect<LoadResult, DatasetUnreadable> =>
  Effect.gen(function* () {
    const spec = benchmarkSpec(name, options.mapping)
    if (spec.needsIdList === true && options.ids === undefined)
      return yield* new DatasetUnreadable({
        path,
        reason: `${name} needs a task-id list (--ids <file>, one GAIA task_id per line) to pick the subset`,
      })
    const idList = options.ids === undefined ? undefined : yield* readIdList(options.ids)
    const table = yield* readTable(path, options.format)
    const encrypted = spec.encryption !== undefined && options.plaintext !== true
    const required = [...spec.required, ...(encrypted ? [spec.encryption!.canaryField] : [])]
    const missing = required.filter((column) => !table.fields.includes(column))
    if (missing.length > 0 && table.fields.length > 0)
      return yield* new DatasetUnreadable({
        path,
        reason: `missing column(s) ${missing.map((c) => `"${c}"`).join(", ")} for ${name}; the file has: ${
          table.fields.length === 0 ? "(no columns)" : table.fields.map((c) => `"${c}"`).join(", ")
        }`,
      })

    const errors: Array<LoadIssue> = [...(idList?.issues ?? []), ...table.issues]
    if (table.rows.length === 0 && table.issues.length === 0)
      errors.push({ file: path, row: 0, reason: "no data rows" })
    const skipped: Record<string, number> = {}
    const skip = (reason: string) => {
      skipped[reason] = (skipped[reason] ?? 0) + 1
    }
    const tasks: Array<Task> = []
    const firstRow = new Map<string, number>()
    const keys = new Map<string, Uint8Array>()
    let decrypted = 0
    for (const { row, values } of table.rows) {
      let plain = values
      if (encrypted) {
        const result = decryptRow(spec, values, keys)
        if (Result.isFailure(result)) {
          errors.push({ file: path, row, reason: result.failure })
          continue
        }
        plain = result.success
        decrypted++
      }
      let outcome: ReturnType<BenchmarkSpec["toTask"]>
      try {
        outcome = spec.toTask(plain, row)
      } catch (error) {
        outcome = {
          _tag: "error",
          reason: `cannot be mapped: ${error instanceof Error ? error.message : String(error)}`,
        }
      }
      if (outcome._tag === "error") {
        errors.push({ file: path, row, reason: outcome.reason })
        continue
      }
      if (outcome._tag === "skip") {
        skip(outcome.reason)
        continue
      }
      const { task } = outcome
      const first = firstRow.get(task.taskId)
      if (first !== undefined) {
        errors.push({ file: path, row, reason: `duplicate task id "${task.taskId}" (first on row ${first})` })
        continue
      }
      firstRow.set(task.taskId, row)
      if (idList !== undefined && !idList.ids.has(task.taskId)) {
        skip("not in the id list")
        continue
      }
      tasks.push(task)
    }
    if (idList !== undefined)
      for (const [id, line] of idList.ids)
        if (!firstRow.has(id))
          errors.push({
            file: options.ids!,
            row: line,
            reason: `task id "${id}" is not among the tasks loaded from ${path}`,
          })
    return {
      benchmark: name,
      path,
      format: table.format,
      // Rows read plus the rows the reader could not use (one row may have several issues).
      rows: table.rows.length + new Set(table.issues.filter((i) => i.row > 0).map((i) => i.row)).size,
      tasks,
      fields: table.fields,
      decrypted,
      skipped,
      errors,
    }
  })
