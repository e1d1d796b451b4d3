/**
 * The benchmark registry: for each benchmark, the columns its file must have, which of them are
 * canary-encrypted and how, its default scorer, and how one row becomes a `Task`. Loading itself
 * (reading, decrypting, collecting issues) is `datasetLoader.ts`; this module only knows shapes.
 *
 * Benchmarks without an id column number their tasks by data row ("1", "2", …), which is stable
 * for a given file.
 */

import { isJudgeProfile, type JudgeProfile } from "../scoring/judgeTemplates.ts"
import type { ScorerName } from "../scoring/scorers.ts"
import type { CanaryKeyScheme } from "./canaryDecryption.ts"
import type { TableFormat } from "./tableFiles.ts"
import type { Cell, Task } from "./task.ts"

export const BENCHMARK_NAMES = [
  "gaia",
  "gaia-text",
  "hle",
  "browsecomp",
  "browsecomp-zh",
  "xbench-deepsearch",
  "xbench-deepsearch-2505",
  "xbench-deepsearch-2510",
  "frames",
  "webwalkerqa",
  "seal-0",
  "custom",
] as const
export type BenchmarkName = (typeof BENCHMARK_NAMES)[number]

export const isBenchmarkName = (name: string): name is BenchmarkName =>
  (BENCHMARK_NAMES as ReadonlyArray<string>).includes(name)

/** What one row became: a task, a row left out on purpose (counted by reason), or a bad row. */
export type RowOutcome =
  | { readonly _tag: "task"; readonly task: Task }
  | { readonly _tag: "skip"; readonly reason: string }
  | { readonly _tag: "error"; readonly reason: string }

export interface EncryptionSpec {
  readonly scheme: CanaryKeyScheme
  /** Columns holding base64 ciphertext. */
  readonly fields: ReadonlyArray<string>
  /** The column holding each row's canary string. */
  readonly canaryField: string
}

export interface BenchmarkSpec {
  readonly name: BenchmarkName
  readonly title: string
  /** The format(s) the benchmark is published in (any supported format is read). */
  readonly formats: ReadonlyArray<TableFormat>
  /** Columns the file must have. */
  readonly required: ReadonlyArray<string>
  readonly encryption?: EncryptionSpec
  readonly scorer: ScorerName
  /** True when a task-id list is needed to pick the subset (GAIA text-only). */
  readonly needsIdList?: boolean
  /** One row (encrypted fields already decrypted) → outcome; `row` is the 1-based data row. */
  readonly toTask: (values: { readonly [column: string]: Cell }, row: number) => RowOutcome
}

/**
 * How a custom file maps to tasks: `question` and `answer` (required) and `id`, `level`,
 * `category` (optional) name columns; any other key names a metadata entry and the column it comes
 * from. Columns not mentioned are kept in the metadata under their own names.
 */
export interface CustomMapping {
  readonly question: string
  readonly answer: string
  readonly id?: string
  readonly level?: string
  readonly category?: string
  readonly [metadataName: string]: string | undefined
}

/** A cell as text: strings as they are, numbers and booleans printed, null as "", others as JSON. */
export const cellText = (cell: Cell | undefined): string => {
  if (cell === undefined || cell === null) return ""
  if (typeof cell === "string") return cell
  if (typeof cell === "number" || typeof cell === "boolean") return String(cell)
  return JSON.stringify(cell)
}

/** The cell of a column, only when the row has that column (never an inherited property). */
export const ownCell = (values: { readonly [column: string]: Cell }, column: string): Cell | undefined =>
  Object.hasOwn(values, column) ? values[column] : undefined

const setOwn = (target: Record<string, Cell>, key: string, value: Cell): void => {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

interface Columns {
  readonly id?: string
  readonly question: string
  readonly answer: string
  readonly level?: string
  readonly category?: string
  /** Columns left out of the metadata (besides those above). */
  readonly drop?: ReadonlyArray<string>
  /** Metadata entries taken from a named column (renames), instead of "every other column". */
  readonly renames?: { readonly [metadataName: string]: string }
}

const fail = (reason: string): RowOutcome => ({ _tag: "error", reason })

/** The common mapping: required question and answer, optional id/level/category, the rest kept. */
const mapRow = (columns: Columns, values: { readonly [column: string]: Cell }, row: number): RowOutcome => {
  const question = cellText(ownCell(values, columns.question)).trim()
  if (question === "") return fail(`the question (column "${columns.question}") is empty`)
  const answer = cellText(ownCell(values, columns.answer)).trim()
  if (answer === "") return fail(`the answer (column "${columns.answer}") is empty`)
  let taskId = String(row)
  if (columns.id !== undefined && Object.hasOwn(values, columns.id)) {
    taskId = cellText(ownCell(values, columns.id)).trim()
    if (taskId === "") return fail(`the task id (column "${columns.id}") is empty`)
  }
  const used = new Set<string>([columns.question, columns.answer, ...(columns.drop ?? [])])
  if (columns.id !== undefined) used.add(columns.id)
  if (columns.level !== undefined) used.add(columns.level)
  if (columns.category !== undefined) used.add(columns.category)
  const metadata: Record<string, Cell> = {}
  for (const [name, column] of Object.entries(columns.renames ?? {})) {
    used.add(column)
    setOwn(metadata, name, ownCell(values, column) ?? null)
  }
  for (const [name, value] of Object.entries(values)) if (!used.has(name)) setOwn(metadata, name, value)
  const level = columns.level === undefined ? "" : cellText(ownCell(values, columns.level)).trim()
  const category = columns.category === undefined ? "" : cellText(ownCell(values, columns.category)).trim()
  return {
    _tag: "task",
    task: {
      taskId,
      question,
      answer,
      ...(level === "" ? {} : { level }),
      ...(category === "" ? {} : { category }),
      metadata,
    },
  }
}

const gaiaRow = (values: { readonly [column: string]: Cell }, row: number): RowOutcome => {
  if (cellText(ownCell(values, "Final answer")).trim() === "?")
    return fail('the ground truth is hidden ("?"): this is the test split; use the validation split')
  return mapRow({ id: "task_id", question: "Question", answer: "Final answer", level: "Level" }, values, row)
}

const GAIA = {
  formats: ["jsonl", "parquet"],
  required: ["task_id", "Question", "Level", "Final answer"],
  scorer: "gaia",
  toTask: gaiaRow,
} as const

const hasImage = (cell: Cell | undefined): boolean =>
  cell !== undefined &&
  cell !== null &&
  cell !== "" &&
  !(typeof cell === "object" && Object.keys(cell).length === 0)

const xbench = (name: BenchmarkName, title: string): BenchmarkSpec => ({
  name,
  title,
  formats: ["csv"],
  required: ["id", "prompt", "answer"],
  encryption: { scheme: "raw", fields: ["prompt", "answer", "reference_steps"], canaryField: "canary" },
  scorer: "xbench",
  toTask: (values, row) =>
    mapRow({ id: "id", question: "prompt", answer: "answer", drop: ["canary"] }, values, row),
})

const SPECS: ReadonlyArray<BenchmarkSpec> = [
  { name: "gaia", title: "GAIA (validation)", ...GAIA },
  { name: "gaia-text", title: "GAIA text-only subset (by a task-id list)", ...GAIA, needsIdList: true },
  {
    name: "hle",
    title: "Humanity's Last Exam (text-only: rows with an image are left out)",
    formats: ["parquet", "jsonl"],
    required: ["id", "question", "answer"],
    scorer: "hle",
    toTask: (values, row) =>
      hasImage(ownCell(values, "image"))
        ? { _tag: "skip", reason: "has an image" }
        : mapRow(
            { id: "id", question: "question", answer: "answer", category: "category", drop: ["canary"] },
            values,
            row,
          ),
  },
  {
    name: "browsecomp",
    title: "BrowseComp",
    formats: ["csv"],
    required: ["problem", "answer"],
    encryption: { scheme: "sha256", fields: ["problem", "answer"], canaryField: "canary" },
    scorer: "browsecomp",
    toTask: (values, row) =>
      mapRow(
        { question: "problem", answer: "answer", category: "problem_topic", drop: ["canary"] },
        values,
        row,
      ),
  },
  {
    name: "browsecomp-zh",
    title: "BrowseComp-ZH",
    formats: ["xlsx"],
    required: ["Question", "Answer"],
    encryption: { scheme: "sha256", fields: ["Topic", "Question", "Answer"], canaryField: "canary" },
    scorer: "browsecomp-zh",
    toTask: (values, row) =>
      mapRow({ question: "Question", answer: "Answer", category: "Topic", drop: ["canary"] }, values, row),
  },
  xbench("xbench-deepsearch", "xbench-DeepSearch"),
  xbench("xbench-deepsearch-2505", "xbench-DeepSearch 2505"),
  xbench("xbench-deepsearch-2510", "xbench-DeepSearch 2510"),
  {
    name: "frames",
    title: "FRAMES",
    formats: ["tsv"],
    required: ["Prompt", "Answer"],
    scorer: "frames",
    toTask: (values, row) => {
      // The published TSV starts with an unnamed index column.
      const id = ["", "Unnamed: 0", "index"].find((c) => cellText(ownCell(values, c)).trim() !== "")
      return mapRow(
        {
          ...(id === undefined ? {} : { id }),
          question: "Prompt",
          answer: "Answer",
          category: "reasoning_types",
        },
        values,
        row,
      )
    },
  },
  {
    name: "webwalkerqa",
    title: "WebWalkerQA",
    formats: ["json", "jsonl"],
    required: ["Question", "answer"],
    scorer: "webwalkerqa",
    toTask: (values, row) =>
      mapRow(
        { id: "id", question: "Question", answer: "answer", level: "difficulty_level", category: "type" },
        values,
        row,
      ),
  },
  {
    name: "seal-0",
    title: "Seal-0 (SealQA; answers are refreshed over time: pin a revision)",
    formats: ["parquet"],
    required: ["question", "answer"],
    scorer: "seal-0",
    toTask: (values, row) =>
      mapRow(
        { id: "id", question: "question", answer: "answer", category: "topic", drop: ["canary"] },
        values,
        row,
      ),
  },
]

/** A custom benchmark: any supported file, columns named by the mapping, scored by `scorer`. */
export const customBenchmark = (mapping: CustomMapping, scorer: ScorerName = "agentcpm"): BenchmarkSpec => {
  const renames: Record<string, string> = {}
  for (const [key, column] of Object.entries(mapping))
    if (!["question", "answer", "id", "level", "category"].includes(key) && column !== undefined)
      renames[key] = column
  const columns: Columns = {
    question: mapping.question,
    answer: mapping.answer,
    // Without a named id column, an "id" column is used when the file has one, else the row number.
    id: mapping.id ?? "id",
    ...(mapping.level === undefined ? {} : { level: mapping.level }),
    ...(mapping.category === undefined ? {} : { category: mapping.category }),
    renames,
  }
  return {
    name: "custom",
    title: "custom (JSONL, JSON or CSV with a field mapping)",
    formats: ["jsonl", "json", "csv"],
    // Every column the mapping names explicitly must exist (a typo is an error, not empty values).
    required: [
      ...new Set(
        [
          mapping.question,
          mapping.answer,
          mapping.id,
          mapping.level,
          mapping.category,
          ...Object.values(renames),
        ].filter((c): c is string => c !== undefined),
      ),
    ],
    scorer,
    toTask: (values, row) => mapRow(columns, values, row),
  }
}

export const DEFAULT_CUSTOM_MAPPING: CustomMapping = { question: "question", answer: "answer" }

/** The spec of a named benchmark (`custom` uses `mapping`, default id/question/answer). */
export const benchmarkSpec = (name: BenchmarkName, mapping?: CustomMapping): BenchmarkSpec =>
  name === "custom"
    ? customBenchmark(mapping ?? DEFAULT_CUSTOM_MAPPING)
    : SPECS.find((spec) => spec.name === name)!

/**
 * The judge profile for a benchmark or profile name (`xbench-deepsearch-2505` → `xbench`), or
 * undefined when that benchmark is not judged by an LLM (GAIA) or the name is unknown.
 */
export const judgeProfileFor = (name: string): JudgeProfile | undefined => {
  if (isJudgeProfile(name)) return name
  if (!isBenchmarkName(name)) return undefined
  const scorer = benchmarkSpec(name).scorer
  return isJudgeProfile(scorer) ? scorer : undefined
}

/**
 * Parses a mapping written as `question=problem,answer=gold,id=qid,source=origin`; the result, or
 * the reason it is not one.
 */
export const parseCustomMapping = (text: string): CustomMapping | string => {
  const entries: Record<string, string> = {}
  for (const part of text.split(",")) {
    if (part.trim() === "") continue
    const eq = part.indexOf("=")
    if (eq <= 0) return `"${part}" is not name=column`
    const key = part.slice(0, eq).trim()
    const column = part.slice(eq + 1).trim()
    if (key === "" || column === "") return `"${part}" is not name=column`
    if (key in entries) return `"${key}" is mapped twice`
    entries[key] = column
  }
  const question = entries.question ?? DEFAULT_CUSTOM_MAPPING.question
  const answer = entries.answer ?? DEFAULT_CUSTOM_MAPPING.answer
  return { ...entries, question, answer }
}
