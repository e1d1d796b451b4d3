/**
 * Benchmark files as tables: CSV, TSV, JSON (an array of objects), JSONL, xlsx (first sheet) and
 * parquet, each read into rows of named JSON cells. A row that cannot be read is an issue naming
 * its file and row; the file is read on. A file that cannot be read at all (missing, not the
 * format its name says) fails with `DatasetUnreadable`.
 *
 * Rows are numbered from 1 after the header (xlsx: sheet row − 1; JSON: array index + 1; JSONL:
 * the line number). Parquet files may use snappy compression or none (what the installed reader
 * supports without extra codecs).
 */
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import { parse as parseCsv } from "csv-parse/sync"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import ExcelJS from "exceljs"
import { parquetMetadata, parquetReadObjects } from "hyparquet"
import type { Cell, LoadIssue } from "./task.ts"

export class DatasetUnreadable extends Schema.TaggedError<DatasetUnreadable>()("DatasetUnreadable", {
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

export const TABLE_FORMATS = ["csv", "tsv", "json", "jsonl", "xlsx", "parquet"] as const
export type TableFormat = (typeof TABLE_FORMATS)[number]

export interface TableRow {
  readonly row: number
  readonly values: { readonly [column: string]: Cell }
}

export interface Table {
  readonly path: string
  readonly format: TableFormat
  readonly fields: ReadonlyArray<string>
  readonly rows: ReadonlyArray<TableRow>
  readonly issues: ReadonlyArray<LoadIssue>
}

/** The format a file name implies (`.ndjson` is JSONL), or undefined. */
export const formatOfPath = (path: string): TableFormat | undefined => {
  const ext = nodePath.extname(path).toLowerCase().slice(1)
  if (ext === "ndjson") return "jsonl"
  return (TABLE_FORMATS as ReadonlyArray<string>).includes(ext) ? (ext as TableFormat) : undefined
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

// defineProperty, not assignment: a `__proto__` column stays an ordinary key.
const setOwn = (target: Record<string, Cell>, key: string, value: Cell): void => {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

/** Any value a reader produces, as JSON data (binary as a short marker, never its bytes). */
export const toCell = (value: unknown): Cell => {
  if (value === null || value === undefined) return null
  if (typeof value === "string" || typeof value === "boolean") return value
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value)
  if (typeof value === "bigint")
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString()
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString()
  if (value instanceof Uint8Array) return `<binary ${value.length} bytes>`
  if (Array.isArray(value)) return value.map(toCell)
  if (typeof value === "object") {
    const out: Record<string, Cell> = {}
    for (const [key, child] of Object.entries(value)) setOwn(out, key, toCell(child))
    return out
  }
  return String(value)
}

/** Header names made unique: a repeated name gets `#2`, `#3`, … */
const uniqueNames = (names: ReadonlyArray<string>): Array<string> => {
  const seen = new Map<string, number>()
  return names.map((name) => {
    const count = (seen.get(name) ?? 0) + 1
    seen.set(name, count)
    return count === 1 ? name : `${name}#${count}`
  })
}

/** Text of a file: valid UTF-8 (a leading BOM dropped), or decoded with U+FFFD for the bad bytes. */
interface Text {
  readonly text: string
  readonly valid: boolean
}

const decodeText = (bytes: Buffer): Text => {
  let text: string
  let valid = true
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    text = new TextDecoder("utf-8").decode(bytes)
    valid = false
  }
  return { text, valid }
}

const REPLACEMENT = "\uFFFD"

const hasReplacement = (cell: Cell): boolean =>
  typeof cell === "string"
    ? cell.includes(REPLACEMENT)
    : Array.isArray(cell)
      ? cell.some(hasReplacement)
      : cell !== null && typeof cell === "object"
        ? Object.values(cell).some(hasReplacement)
        : false

/**
 * In a file that is not valid UTF-8, the rows where bad bytes were replaced are issues (and left
 * out) rather than text with U+FFFD in it.
 */
const dropMangledRows = (table: Table, source: Text): Table => {
  if (source.valid) return table
  const rows: Array<TableRow> = []
  const issues = [...table.issues]
  for (const row of table.rows) {
    if (Object.values(row.values).some(hasReplacement))
      issues.push({ file: table.path, row: row.row, reason: "contains bytes that are not valid UTF-8" })
    else rows.push(row)
  }
  return { ...table, rows, issues }
}

const delimited = (path: string, format: "csv" | "tsv", source: Text): Table => {
  const issues: Array<LoadIssue> = []
  const records = parseCsv(source.text, {
    delimiter: format === "tsv" ? "\t" : ",",
    bom: true,
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (error) => {
      const row = typeof error?.records === "number" ? Math.max(1, error.records) : 0
      const line = typeof error?.lines === "number" ? ` (line ${error.lines})` : ""
      issues.push({
        file: path,
        row,
        reason: `unreadable ${format.toUpperCase()} record${line}: ${error?.message}`,
      })
      return undefined
    },
  }) as unknown as ReadonlyArray<{ readonly info: { readonly records: number }; readonly record: string[] }>
  const [header, ...data] = records
  if (header === undefined) return { path, format, fields: [], rows: [], issues }
  const fields = uniqueNames(header.record)
  const rows: Array<TableRow> = []
  for (const { info, record } of data) {
    const row = info.records - 1
    if (record.length !== fields.length) {
      issues.push({ file: path, row, reason: `has ${record.length} columns, the header ${fields.length}` })
      continue
    }
    const values: Record<string, Cell> = {}
    fields.forEach((name, i) => {
      setOwn(values, name, record[i] ?? "")
    })
    rows.push({ row, values })
  }
  return { path, format, fields, rows, issues }
}

const objectRows = (
  path: string,
  format: "json" | "jsonl",
  items: ReadonlyArray<{ readonly row: number; readonly value: unknown }>,
  issues: Array<LoadIssue>,
): Table => {
  const fields: Array<string> = []
  const known = new Set<string>()
  const rows: Array<TableRow> = []
  for (const { row, value } of items) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      issues.push({
        file: path,
        row,
        reason: `is ${Array.isArray(value) ? "an array" : typeof value === "object" ? "null" : `a ${typeof value}`}, not an object`,
      })
      continue
    }
    const values = toCell(value) as Record<string, Cell>
    for (const key of Object.keys(values))
      if (!known.has(key)) {
        known.add(key)
        fields.push(key)
      }
    rows.push({ row, values })
  }
  return { path, format, fields, rows, issues }
}

const jsonLines = (path: string, { text }: Text): Table => {
  const issues: Array<LoadIssue> = []
  const items: Array<{ row: number; value: unknown }> = []
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === "") return
    try {
      items.push({ row: index + 1, value: JSON.parse(line) })
    } catch (error) {
      issues.push({ file: path, row: index + 1, reason: `not JSON: ${errorText(error)}` })
    }
  })
  return objectRows(path, "jsonl", items, issues)
}

const jsonDocument = (path: string, source: Text): Table | DatasetUnreadable => {
  const { text } = source
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (error) {
    // Some `.json` files hold one object per line.
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "")
    if (lines.length > 1 && lines.every((l) => l.trimStart().startsWith("{"))) return jsonLines(path, source)
    return new DatasetUnreadable({ path, reason: `not JSON: ${errorText(error)}` })
  }
  if (!Array.isArray(document))
    return new DatasetUnreadable({
      path,
      reason: `expected a JSON array of row objects, found ${document === null ? "null" : typeof document}`,
    })
  return objectRows(
    path,
    "json",
    document.map((value, i) => ({ row: i + 1, value })),
    [],
  )
}

const xlsxCell = (value: ExcelJS.CellValue): Cell => {
  if (value === null || value === undefined) return null
  if (typeof value !== "object" || value instanceof Date) return toCell(value)
  if ("richText" in value) return value.richText.map((part) => part.text).join("")
  if ("hyperlink" in value) return toCell(value.text)
  if ("formula" in value || "sharedFormula" in value)
    return xlsxCell((value.result ?? null) as ExcelJS.CellValue)
  if ("error" in value) return null
  return toCell(value)
}

const xlsx = async (path: string, bytes: Buffer): Promise<Table | DatasetUnreadable> => {
  const workbook = new ExcelJS.Workbook()
  try {
    await workbook.xlsx.load(bytes as unknown as ArrayBuffer)
  } catch (error) {
    return new DatasetUnreadable({ path, reason: `not an xlsx workbook: ${errorText(error)}` })
  }
  const sheet = workbook.worksheets[0]
  if (sheet === undefined) return new DatasetUnreadable({ path, reason: "the workbook has no sheet" })
  const headerRow = sheet.getRow(1)
  const width = headerRow.cellCount
  const header: Array<string> = []
  for (let c = 1; c <= width; c++) {
    const name = xlsxCell(headerRow.getCell(c).value)
    header.push(name === null ? "" : typeof name === "string" ? name.trim() : JSON.stringify(name))
  }
  while (header.length > 0 && header[header.length - 1] === "") header.pop()
  const fields = uniqueNames(header)
  const rows: Array<TableRow> = []
  const issues: Array<LoadIssue> = []
  sheet.eachRow({ includeEmpty: false }, (sheetRow, rowNumber) => {
    if (rowNumber === 1) return
    const values: Record<string, Cell> = {}
    let filled = 0
    fields.forEach((name, i) => {
      const cell = xlsxCell(sheetRow.getCell(i + 1).value)
      if (cell !== null && cell !== "") filled++
      setOwn(values, name, cell ?? "")
    })
    const beyond = sheetRow.cellCount > fields.length
    if (filled === 0 && !beyond) return
    if (beyond) {
      for (let c = fields.length + 1; c <= sheetRow.cellCount; c++)
        if (xlsxCell(sheetRow.getCell(c).value) !== null) {
          issues.push({
            file: path,
            row: rowNumber - 1,
            reason: `has a value in column ${c}, beyond the header`,
          })
          return
        }
      if (filled === 0) return
    }
    rows.push({ row: rowNumber - 1, values })
  })
  return { path, format: "xlsx", fields, rows, issues }
}

const parquet = async (path: string, bytes: Buffer): Promise<Table | DatasetUnreadable> => {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  try {
    const metadata = parquetMetadata(file)
    const root = metadata.schema[0]
    const fields: Array<string> = []
    // Top-level columns: walk the flattened schema tree, taking the root's direct children.
    let index = 1
    for (let child = 0; child < (root?.num_children ?? 0); child++) {
      const element = metadata.schema[index]
      if (element === undefined) break
      fields.push(element.name)
      index = skipSubtree(metadata.schema, index)
    }
    const objects = await parquetReadObjects({ file, metadata })
    const rows = objects.map((object, i) => ({ row: i + 1, values: toCell(object) as Record<string, Cell> }))
    return { path, format: "parquet", fields, rows, issues: [] }
  } catch (error) {
    return new DatasetUnreadable({ path, reason: `not a readable parquet file: ${errorText(error)}` })
  }
}

/** The index just after the schema element at `index` and all its descendants. */
const skipSubtree = (schema: ReadonlyArray<{ readonly num_children?: number }>, index: number): number => {
  let next = index + 1
  for (let c = 0; c < (schema[index]?.num_children ?? 0); c++) next = skipSubtree(schema, next)
  return next
}

/** Reads a benchmark file as a table; the format comes from `format` or the file name. */
export const readTable = (path: string, format?: TableFormat): Effect.Effect<Table, DatasetUnreadable> =>
  Effect.gen(function* () {
    const chosen = format ?? formatOfPath(path)
    if (chosen === undefined)
      return yield* new DatasetUnreadable({
        path,
        reason: `cannot tell the format from the file name; name one of ${TABLE_FORMATS.join(", ")}`,
      })
    const bytes = yield* Effect.tryPromise({
      try: () => fs.readFile(path),
      catch: (error) =>
        new DatasetUnreadable({
          path,
          reason:
            (error as NodeJS.ErrnoException).code === "ENOENT"
              ? "no such file"
              : `cannot read: ${errorText(error)}`,
        }),
    })
    const table: Table | DatasetUnreadable = yield* Effect.tryPromise({
      try: async () => {
        switch (chosen) {
          case "csv":
          case "tsv": {
            const source = decodeText(bytes)
            return dropMangledRows(delimited(path, chosen, source), source)
          }
          case "jsonl": {
            const source = decodeText(bytes)
            return dropMangledRows(jsonLines(path, source), source)
          }
          case "json": {
            const source = decodeText(bytes)
            const table = jsonDocument(path, source)
            return table instanceof DatasetUnreadable ? table : dropMangledRows(table, source)
          }
          case "xlsx":
            return xlsx(path, bytes)
          case "parquet":
            return parquet(path, bytes)
        }
      },
      catch: (error) =>
        new DatasetUnreadable({ path, reason: `cannot read as ${chosen}: ${errorText(error)}` }),
    })
    if (table instanceof DatasetUnreadable) return yield* table
    return table
  })
