/**
 * The one shape every benchmark row becomes, and what loading a benchmark file reports. A `Task`
 * holds plaintext (decrypted in memory); `metadata` keeps every other column of the row as JSON
 * data, so nothing in the file is lost. A bad row is a `LoadIssue` (`file:row: reason`) and
 * loading goes on.
 */

/** A JSON value: what a cell of any supported file becomes. */
export type Cell = string | number | boolean | null | ReadonlyArray<Cell> | { readonly [key: string]: Cell }

export interface Task {
  readonly taskId: string
  readonly question: string
  /** The ground truth, as the benchmark states it. */
  readonly answer: string
  readonly level?: string
  readonly category?: string
  /** The row's other columns by their names in the file (encrypted ones decrypted). */
  readonly metadata: { readonly [key: string]: Cell }
}

/**
 * One problem found while loading: the file, the row and the reason. `row` is the 1-based data
 * row (the header is not counted; in JSONL it is the line number); 0 means the file as a whole.
 */
export interface LoadIssue {
  readonly file: string
  readonly row: number
  readonly reason: string
}

/** `file:row: reason` (or `file: reason` for the file as a whole). */
export const formatIssue = (issue: LoadIssue): string =>
  issue.row > 0 ? `${issue.file}:${issue.row}: ${issue.reason}` : `${issue.file}: ${issue.reason}`

export interface LoadResult {
  readonly benchmark: string
  readonly path: string
  readonly format: string
  /** Data rows read from the file (every row, whether it became a task, was skipped or was bad). */
  readonly rows: number
  readonly tasks: ReadonlyArray<Task>
  /** Column names as found in the file, in file order. */
  readonly fields: ReadonlyArray<string>
  /** Rows whose encrypted fields were decrypted (0 for plaintext benchmarks). */
  readonly decrypted: number
  /** Rows left out on purpose, counted by reason (an HLE row with an image, an id not in the list). */
  readonly skipped: { readonly [reason: string]: number }
  readonly errors: ReadonlyArray<LoadIssue>
}
