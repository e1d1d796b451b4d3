/**
 * Every benchmark loader against its format, with synthetic files in a temp dir: GAIA (JSONL and
 * parquet, and the text-only subset by an id list), HLE (image rows left out and counted),
 * BrowseComp (CSV, SHA-256 canary), BrowseComp-ZH (xlsx), xbench (CSV, raw canary), FRAMES (TSV),
 * WebWalkerQA (JSON, JSONL), Seal-0 (parquet) and custom files with a mapping. Encrypted rows are
 * written with an encryption written here, so decryption is checked by a round trip. Bad rows are
 * reported as `file:row: reason` and loading goes on; loaders never throw on arbitrary bytes.
 *
 * Parquet files are written by a minimal writer below (one row group, PLAIN encoding, no
 * compression, optional UTF-8 and required INT64 columns): the installed parquet library only reads.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fc, test } from "@fast-check/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import ExcelJS from "exceljs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  BENCHMARK_NAMES,
  type BenchmarkName,
  parseCustomMapping,
} from "../../../src/actors/evaluator/datasets/benchmarks.ts"
import { type LoadOptions, loadBenchmark } from "../../../src/actors/evaluator/datasets/datasetLoader.ts"
import { readTable } from "../../../src/actors/evaluator/datasets/tableFiles.ts"
import { formatIssue, type LoadResult } from "../../../src/actors/evaluator/datasets/task.ts"

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-evaluator-"))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const file = (name: string, content: string | Uint8Array): string => {
  const p = path.join(dir, name)
  fs.writeFileSync(p, content)
  return p
}

const load = (name: BenchmarkName, p: string, options: LoadOptions = {}): Promise<LoadResult> =>
  Effect.runPromise(loadBenchmark(name, p, options))

const loadFailure = async (name: BenchmarkName, p: string, options: LoadOptions = {}): Promise<string> => {
  const exit = await Effect.runPromiseExit(loadBenchmark(name, p, options))
  if (Exit.isSuccess(exit)) throw new Error("expected the load to fail")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason?._tag !== "Fail") throw new Error("expected a typed failure, not a defect")
  return reason.error.message
}

const errorsOf = (result: LoadResult) => result.errors.map(formatIssue)

// ---------------------------------------------------------------------------------------------
// Encryption as the benchmarks publish it: base64(UTF-8 bytes XOR key repeated).

const encrypt = (plaintext: string, key: Buffer): string => {
  const data = Buffer.from(plaintext, "utf8")
  return Buffer.from(data.map((byte, i) => byte ^ key[i % key.length]!)).toString("base64")
}
const sha256Key = (canary: string) => createHash("sha256").update(canary).digest()
const rawKey = (canary: string) => Buffer.from(canary, "utf8")

const csvField = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value)
const csv = (rows: ReadonlyArray<ReadonlyArray<string>>) =>
  `${rows.map((r) => r.map(csvField).join(",")).join("\n")}\n`
const jsonl = (rows: ReadonlyArray<unknown>) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`

// ---------------------------------------------------------------------------------------------
// A minimal parquet writer (Thrift compact protocol for the metadata).

type ParquetColumn =
  | { readonly name: string; readonly type: "string"; readonly values: ReadonlyArray<string | null> }
  | { readonly name: string; readonly type: "int64"; readonly values: ReadonlyArray<bigint> }

class CompactWriter {
  readonly bytes: Array<number> = []
  private lastField: Array<number> = [0]
  varint(value: bigint): void {
    let v = value
    do {
      let byte = Number(v & 0x7fn)
      v >>= 7n
      if (v !== 0n) byte |= 0x80
      this.bytes.push(byte)
    } while (v !== 0n)
  }
  zigzag(value: number | bigint): void {
    const v = BigInt(value)
    this.varint(v >= 0n ? v << 1n : (-v << 1n) - 1n)
  }
  private field(id: number, type: number): void {
    const delta = id - this.lastField[this.lastField.length - 1]!
    if (delta > 0 && delta <= 15) this.bytes.push((delta << 4) | type)
    else {
      this.bytes.push(type)
      this.zigzag(id)
    }
    this.lastField[this.lastField.length - 1] = id
  }
  i32(id: number, value: number): void {
    this.field(id, 5)
    this.zigzag(value)
  }
  i64(id: number, value: number | bigint): void {
    this.field(id, 6)
    this.zigzag(value)
  }
  binary(id: number, value: string): void {
    this.field(id, 8)
    this.rawBinary(value)
  }
  rawBinary(value: string): void {
    const data = Buffer.from(value, "utf8")
    this.varint(BigInt(data.length))
    this.bytes.push(...data)
  }
  structBody(body: () => void): void {
    this.lastField.push(0)
    body()
    this.bytes.push(0)
    this.lastField.pop()
  }
  struct(id: number, body: () => void): void {
    this.field(id, 12)
    this.structBody(body)
  }
  listHeader(id: number, elementType: number, size: number): void {
    this.field(id, 9)
    if (size < 15) this.bytes.push((size << 4) | elementType)
    else {
      this.bytes.push(0xf0 | elementType)
      this.varint(BigInt(size))
    }
  }
}

const le32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return [...b]
}

const columnPage = (column: ParquetColumn): Array<number> => {
  const data: Array<number> = []
  if (column.type === "string") {
    // Definition levels (max 1, bit width 1) as RLE runs of one value each, length-prefixed.
    const levels: Array<number> = []
    for (const v of column.values) levels.push(0x02, v === null ? 0 : 1)
    data.push(...le32(levels.length), ...levels)
    for (const v of column.values) {
      if (v === null) continue
      const bytes = Buffer.from(v, "utf8")
      data.push(...le32(bytes.length), ...bytes)
    }
  } else {
    for (const v of column.values) {
      const b = Buffer.alloc(8)
      b.writeBigInt64LE(v)
      data.push(...b)
    }
  }
  const header = new CompactWriter()
  header.structBody(() => {
    header.i32(1, 0) // DATA_PAGE
    header.i32(2, data.length)
    header.i32(3, data.length)
    header.struct(5, () => {
      header.i32(1, column.values.length)
      header.i32(2, 0) // PLAIN
      header.i32(3, 3) // RLE
      header.i32(4, 3) // RLE
    })
  })
  // The struct writer added a stop byte for the outer struct, which a page header needs too.
  return [...header.bytes, ...data]
}

const writeParquet = (columns: ReadonlyArray<ParquetColumn>): Uint8Array => {
  const rows = columns[0]?.values.length ?? 0
  const out: Array<number> = [...Buffer.from("PAR1")]
  const chunks: Array<{ column: ParquetColumn; offset: number; size: number }> = []
  for (const column of columns) {
    const page = columnPage(column)
    chunks.push({ column, offset: out.length, size: page.length })
    out.push(...page)
  }
  const meta = new CompactWriter()
  meta.structBody(() => {
    meta.i32(1, 1)
    meta.listHeader(2, 12, columns.length + 1)
    meta.structBody(() => {
      meta.binary(4, "schema")
      meta.i32(5, columns.length)
    })
    for (const column of columns)
      meta.structBody(() => {
        meta.i32(1, column.type === "string" ? 6 : 2) // BYTE_ARRAY | INT64
        meta.i32(3, column.type === "string" ? 1 : 0) // OPTIONAL | REQUIRED
        meta.binary(4, column.name)
        if (column.type === "string") meta.i32(6, 0) // UTF8
      })
    meta.i64(3, rows)
    meta.listHeader(4, 12, 1)
    meta.structBody(() => {
      meta.listHeader(1, 12, chunks.length)
      for (const chunk of chunks)
        meta.structBody(() => {
          meta.i64(2, chunk.offset)
          meta.struct(3, () => {
            meta.i32(1, chunk.column.type === "string" ? 6 : 2)
            meta.listHeader(2, 5, 2)
            meta.zigzag(0)
            meta.zigzag(3)
            meta.listHeader(3, 8, 1)
            meta.rawBinary(chunk.column.name)
            meta.i32(4, 0) // UNCOMPRESSED
            meta.i64(5, rows)
            meta.i64(6, chunk.size)
            meta.i64(7, chunk.size)
            meta.i64(9, chunk.offset)
          })
        })
      meta.i64(
        2,
        chunks.reduce((a, c) => a + c.size, 0),
      )
      meta.i64(3, rows)
    })
  })
  out.push(...meta.bytes, ...le32(meta.bytes.length), ...Buffer.from("PAR1"))
  return new Uint8Array(out)
}

describe("the test's parquet writer", () => {
  it("writes files the parquet reader reads back", async () => {
    const p = file(
      "roundtrip.parquet",
      writeParquet([
        { name: "s", type: "string", values: ["a", null, "中文"] },
        { name: "n", type: "int64", values: [1n, 2n, 9007199254740993n] },
      ]),
    )
    const table = await Effect.runPromise(readTable(p))
    expect(table.fields).toEqual(["s", "n"])
    expect(table.rows.map((r) => r.values)).toEqual([
      { s: "a", n: 1 },
      { s: null, n: 2 },
      { s: "中文", n: "9007199254740993" },
    ])
  })
})

// ---------------------------------------------------------------------------------------------

const GAIA_ROWS = [
  { task_id: "t-1", Question: "How many?", Level: 1, "Final answer": "17", file_name: "" },
  { task_id: "t-2", Question: "Which city?", Level: 2, "Final answer": "Paris", file_name: "map.png" },
  { task_id: "t-3", Question: "List them.", Level: 3, "Final answer": "a, b", file_name: "" },
]

describe("GAIA", () => {
  it("loads metadata.jsonl into tasks with levels and the attachment in the metadata", async () => {
    const result = await load("gaia", file("metadata.jsonl", jsonl(GAIA_ROWS)))
    expect(result).toMatchObject({ benchmark: "gaia", format: "jsonl", rows: 3, decrypted: 0, errors: [] })
    expect(result.fields).toEqual(["task_id", "Question", "Level", "Final answer", "file_name"])
    expect(result.tasks[1]).toEqual({
      taskId: "t-2",
      question: "Which city?",
      answer: "Paris",
      level: "2",
      metadata: { file_name: "map.png" },
    })
  })

  it("loads the parquet form", async () => {
    const p = file(
      "validation.parquet",
      writeParquet([
        { name: "task_id", type: "string", values: GAIA_ROWS.map((r) => r.task_id) },
        { name: "Question", type: "string", values: GAIA_ROWS.map((r) => r.Question) },
        { name: "Level", type: "int64", values: GAIA_ROWS.map((r) => BigInt(r.Level)) },
        { name: "Final answer", type: "string", values: GAIA_ROWS.map((r) => r["Final answer"]) },
        { name: "file_name", type: "string", values: [null, "map.png", null] },
      ]),
    )
    const result = await load("gaia", p)
    expect(result.errors).toEqual([])
    expect(result.tasks.map((t) => [t.taskId, t.level, t.answer])).toEqual([
      ["t-1", "1", "17"],
      ["t-2", "2", "Paris"],
      ["t-3", "3", "a, b"],
    ])
  })

  it("picks the text-only subset by an id list, counting the rest and naming listed ids it lacks", async () => {
    const data = file("gaia-text.jsonl", jsonl(GAIA_ROWS))
    const ids = file("text-ids.txt", "# text-only tasks\nt-1\n\nt-3  # a list answer\nt-9\n")
    const result = await load("gaia-text", data, { ids })
    expect(result.tasks.map((t) => t.taskId)).toEqual(["t-1", "t-3"])
    expect(result.skipped).toEqual({ "not in the id list": 1 })
    expect(errorsOf(result)).toEqual([`${ids}:5: task id "t-9" is not among the tasks loaded from ${data}`])
    const json = await load("gaia-text", data, { ids: file("ids.json", '["t-2"]') })
    expect(json.tasks.map((t) => t.taskId)).toEqual(["t-2"])
    expect(await loadFailure("gaia-text", data)).toMatch(/gaia-text needs a task-id list/)
  })

  it("reports test-split rows, empty answers, duplicate ids and bad JSON lines, and loads the rest", async () => {
    const p = file(
      "bad.jsonl",
      [
        JSON.stringify(GAIA_ROWS[0]),
        "{not json",
        JSON.stringify({ ...GAIA_ROWS[1], "Final answer": "?" }),
        JSON.stringify({ ...GAIA_ROWS[2], "Final answer": "  " }),
        JSON.stringify(GAIA_ROWS[0]),
        "",
        "[1, 2]",
        JSON.stringify(GAIA_ROWS[2]),
      ].join("\n"),
    )
    const result = await load("gaia", p)
    expect(result.tasks.map((t) => t.taskId)).toEqual(["t-1", "t-3"])
    expect(result.rows).toBe(7)
    expect(errorsOf(result)).toEqual([
      expect.stringMatching(new RegExp(`^${p}:2: not JSON: `)),
      `${p}:7: is an array, not an object`,
      `${p}:3: the ground truth is hidden ("?"): this is the test split; use the validation split`,
      `${p}:4: the answer (column "Final answer") is empty`,
      `${p}:5: duplicate task id "t-1" (first on row 1)`,
    ])
  })

  it("fails clearly on a file without the benchmark's columns, or no file at all", async () => {
    const p = file("wrong.jsonl", jsonl([{ question: "q", answer: "a" }]))
    expect(await loadFailure("gaia", p)).toBe(
      `${p}: missing column(s) "task_id", "Question", "Level", "Final answer" for gaia; the file has: "question", "answer"`,
    )
    expect(await loadFailure("gaia", path.join(dir, "absent.jsonl"))).toMatch(/absent\.jsonl: no such file/)
    expect(await loadFailure("gaia", file("data.txt", "x"))).toMatch(
      /cannot tell the format from the file name/,
    )
  })
})

describe("HLE", () => {
  it("keeps text-only rows and counts the rows with an image", async () => {
    const rows = [
      { id: "h1", question: "Q1", image: "", answer: "A1", answer_type: "exactMatch", category: "Math" },
      {
        id: "h2",
        question: "Q2",
        image: "data:image/png;base64,iVBOR",
        answer: "A2",
        answer_type: "exactMatch",
        category: "Physics",
      },
      {
        id: "h3",
        question: "Q3",
        image: null,
        answer: "A3",
        answer_type: "multipleChoice",
        category: "Other",
      },
    ]
    const result = await load("hle", file("hle.jsonl", jsonl(rows)))
    expect(result.tasks.map((t) => t.taskId)).toEqual(["h1", "h3"])
    expect(result.skipped).toEqual({ "has an image": 1 })
    expect(result.tasks[0]).toMatchObject({
      category: "Math",
      metadata: { answer_type: "exactMatch", image: "" },
    })

    const parquet = await load(
      "hle",
      file(
        "hle.parquet",
        writeParquet([
          { name: "id", type: "string", values: ["h1", "h2"] },
          { name: "question", type: "string", values: ["Q1", "Q2"] },
          { name: "image", type: "string", values: ["", "data:image/jpeg;base64,/9j/"] },
          { name: "answer", type: "string", values: ["A1", "A2"] },
          { name: "category", type: "string", values: ["Math", "Biology"] },
        ]),
      ),
    )
    expect(parquet).toMatchObject({ rows: 2, skipped: { "has an image": 1 }, errors: [] })
    expect(parquet.tasks.map((t) => t.taskId)).toEqual(["h1"])
  })
})

describe("BrowseComp (CSV, key = SHA-256 of the canary)", () => {
  const canary = "BrowseComp canary GUID 0000-test"
  const key = sha256Key(canary)

  it("decrypts problem and answer in memory and keeps the topic as the category", async () => {
    const p = file(
      "browse_comp_test_set.csv",
      csv([
        ["problem", "answer", "problem_topic", "canary"],
        [
          encrypt('Which paper, published between 2018 and 2023, has "quotes", commas?', key),
          encrypt("The Paper", key),
          "Science",
          canary,
        ],
        [encrypt("A second, multi-line\nquestion", key), encrypt("42", key), "Sports", canary],
      ]),
    )
    const result = await load("browsecomp", p)
    expect(result).toMatchObject({ rows: 2, decrypted: 2, errors: [] })
    expect(result.tasks).toEqual([
      {
        taskId: "1",
        question: 'Which paper, published between 2018 and 2023, has "quotes", commas?',
        answer: "The Paper",
        category: "Science",
        metadata: {},
      },
      {
        taskId: "2",
        question: "A second, multi-line\nquestion",
        answer: "42",
        category: "Sports",
        metadata: {},
      },
    ])
    expect(fs.readFileSync(p, "utf8")).not.toContain("The Paper")
  })

  it("reports rows that are not base64, decrypt to invalid UTF-8, lack a canary or have too many columns", async () => {
    const p = file(
      "browsecomp-bad.csv",
      csv([
        ["problem", "answer", "problem_topic", "canary"],
        [encrypt("good question", key), encrypt("good", key), "Art", canary],
        ["plain text?", encrypt("x", key), "Art", canary],
        [
          encrypt("这是一段足够长的中文问题文本，用错误的金丝雀解密必然失败。", key),
          encrypt("答", key),
          "Art",
          "another canary",
        ],
        [encrypt("q", key), encrypt("a", key), "Art", ""],
        [encrypt("q", key), encrypt("a", key), "Art", canary, "extra"],
      ]),
    )
    const result = await load("browsecomp", p)
    expect(result.tasks.map((t) => t.question)).toEqual(["good question"])
    expect(result.decrypted).toBe(1)
    expect(errorsOf(result)).toEqual([
      `${p}:5: has 5 columns, the header 4`,
      `${p}:2: column "problem": not base64 (unexpected character) (if the file is already decrypted, load it as plaintext)`,
      `${p}:3: column "problem": decrypts to bytes that are not valid UTF-8 (wrong canary or not encrypted)`,
      `${p}:4: the canary (column "canary") is empty`,
    ])
  })

  it("reads an already decrypted file as plaintext", async () => {
    const p = file(
      "browsecomp-plain.csv",
      csv([
        ["problem", "answer"],
        ["q?", "a"],
      ]),
    )
    expect((await load("browsecomp", p, { plaintext: true })).tasks).toEqual([
      { taskId: "1", question: "q?", answer: "a", metadata: {} },
    ])
    expect(await loadFailure("browsecomp", p)).toMatch(/missing column\(s\) "canary"/)
  })
})

describe("BrowseComp-ZH (xlsx, key = SHA-256 of the canary)", () => {
  it("decrypts topic, question and answer from the first sheet", async () => {
    const key = sha256Key("BrowseComp-ZH")
    const workbook = new ExcelJS.Workbook()
    const sheet = workbook.addWorksheet("Sheet1")
    sheet.addRow(["Topic", "Question", "Answer", "canary"])
    sheet.addRow([
      encrypt("体育", key),
      encrypt("某足球俱乐部最近一次升级提前几轮确定？", key),
      encrypt("1轮", key),
      "BrowseComp-ZH",
    ])
    sheet.addRow([encrypt("影视", key), encrypt("第二个问题？", key), encrypt("张三", key), "BrowseComp-ZH"])
    sheet.addRow([])
    sheet.addRow([encrypt("音乐", key), "", encrypt("无", key), "BrowseComp-ZH"])
    const p = path.join(dir, "browsecomp-zh.xlsx")
    await workbook.xlsx.writeFile(p)
    const result = await load("browsecomp-zh", p)
    expect(result).toMatchObject({ format: "xlsx", rows: 3, decrypted: 3 })
    expect(result.fields).toEqual(["Topic", "Question", "Answer", "canary"])
    expect(result.tasks).toEqual([
      {
        taskId: "1",
        question: "某足球俱乐部最近一次升级提前几轮确定？",
        answer: "1轮",
        category: "体育",
        metadata: {},
      },
      { taskId: "2", question: "第二个问题？", answer: "张三", category: "影视", metadata: {} },
    ])
    expect(errorsOf(result)).toEqual([`${p}:4: the question (column "Question") is empty`])
  })
})

describe("xbench-DeepSearch (CSV, key = the raw canary bytes)", () => {
  it.each(["xbench-deepsearch", "xbench-deepsearch-2505", "xbench-deepsearch-2510"] as const)(
    "%s decrypts prompt, answer and reference steps",
    async (name) => {
      const canary = "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID xbench-test"
      const key = rawKey(canary)
      const p = file(
        `${name}.csv`,
        csv([
          ["id", "prompt", "answer", "reference_steps", "canary"],
          [
            "1",
            encrypt("2024年哪支球队夺冠？", key),
            encrypt("湖人", key),
            encrypt("1. 搜索\n2. 确认", key),
            canary,
          ],
          ["101", encrypt("第二题", key), encrypt("42", key), "", canary],
        ]),
      )
      const result = await load(name, p)
      expect(result).toMatchObject({ benchmark: name, rows: 2, decrypted: 2, errors: [] })
      expect(result.tasks).toEqual([
        {
          taskId: "1",
          question: "2024年哪支球队夺冠？",
          answer: "湖人",
          metadata: { reference_steps: "1. 搜索\n2. 确认" },
        },
        { taskId: "101", question: "第二题", answer: "42", metadata: { reference_steps: "" } },
      ])
    },
  )

  it("does not decrypt with the SHA-256 scheme (the wrong key fails the UTF-8 check)", async () => {
    const canary = "xbench canary"
    const p = file(
      "xbench-sha.csv",
      csv([
        ["id", "prompt", "answer", "reference_steps", "canary"],
        [
          "1",
          encrypt("一个足够长的中文问题，用错误的方案解密会得到无效的字节。", sha256Key(canary)),
          encrypt("答", sha256Key(canary)),
          "",
          canary,
        ],
      ]),
    )
    const result = await load("xbench-deepsearch", p)
    expect(result.tasks).toEqual([])
    expect(errorsOf(result)[0]).toMatch(/:1: column "prompt": decrypts to bytes that are not valid UTF-8/)
  })
})

describe("FRAMES (TSV)", () => {
  it("reads the unnamed index column as the task id and the reasoning types as the category", async () => {
    const p = file(
      "test.tsv",
      [
        "\tPrompt\tAnswer\twikipedia_link_1\treasoning_types",
        "0\tWho was president when X?\tJames Buchanan\thttps://en.wikipedia.org/wiki/X\tMultiple constraints",
        '1\t"A ""quoted"" prompt"\t37\thttps://en.wikipedia.org/wiki/Y\tNumerical reasoning',
      ].join("\n"),
    )
    const result = await load("frames", p)
    expect(result.errors).toEqual([])
    expect(result.tasks).toEqual([
      {
        taskId: "0",
        question: "Who was president when X?",
        answer: "James Buchanan",
        category: "Multiple constraints",
        metadata: { wikipedia_link_1: "https://en.wikipedia.org/wiki/X" },
      },
      {
        taskId: "1",
        question: 'A "quoted" prompt',
        answer: "37",
        category: "Numerical reasoning",
        metadata: { wikipedia_link_1: "https://en.wikipedia.org/wiki/Y" },
      },
    ])
  })
})

describe("WebWalkerQA (JSON or JSONL)", () => {
  const rows = [
    {
      Question: "Q1?",
      answer: "A1",
      type: "single_source",
      difficulty_level: "easy",
      lang: "en",
      root_url: "https://a/",
    },
    {
      Question: "Q2?",
      answer: "A2",
      type: "multi_source",
      difficulty_level: "hard",
      lang: "zh",
      root_url: "https://b/",
    },
  ]
  it("reads source type as the category and difficulty as the level, from JSON and JSONL", async () => {
    for (const p of [
      file("webwalker.json", JSON.stringify(rows, null, 2)),
      file("webwalker.jsonl", jsonl(rows)),
    ]) {
      const result = await load("webwalkerqa", p)
      expect(result.errors).toEqual([])
      expect(result.tasks[1]).toEqual({
        taskId: "2",
        question: "Q2?",
        answer: "A2",
        level: "hard",
        category: "multi_source",
        metadata: { lang: "zh", root_url: "https://b/" },
      })
    }
  })

  it("fails clearly on JSON that is not an array of rows", async () => {
    expect(await loadFailure("webwalkerqa", file("object.json", '{"Question": "q"}'))).toMatch(
      /expected a JSON array of row objects, found object/,
    )
    expect(await loadFailure("webwalkerqa", file("broken.json", "[{"))).toMatch(/broken\.json: not JSON/)
  })
})

describe("Seal-0 (parquet)", () => {
  it("reads question, answer and topic", async () => {
    const p = file(
      "seal_0.parquet",
      writeParquet([
        { name: "question", type: "string", values: ["Who won?", "How many?"] },
        { name: "answer", type: "string", values: ["Nobody", "3"] },
        { name: "topic", type: "string", values: ["Sports", null] },
        { name: "freshness", type: "string", values: ["fast-changing", "never-changing"] },
      ]),
    )
    const result = await load("seal-0", p)
    expect(result.errors).toEqual([])
    expect(result.tasks).toEqual([
      {
        taskId: "1",
        question: "Who won?",
        answer: "Nobody",
        category: "Sports",
        metadata: { freshness: "fast-changing" },
      },
      { taskId: "2", question: "How many?", answer: "3", metadata: { freshness: "never-changing" } },
    ])
  })
})

describe("custom files with a field mapping", () => {
  it("maps named columns and keeps every other column in the metadata", async () => {
    const mapping = parseCustomMapping("question=problem, answer=gold, id=qid, level=difficulty, origin=src")
    if (typeof mapping === "string") throw new Error(mapping)
    const rows = [
      { qid: "c1", problem: "P1", gold: "G1", difficulty: "easy", src: "web", extra: [1, 2] },
      { qid: "c2", problem: "P2", gold: "G2", src: "book" },
    ]
    const result = await load("custom", file("mine.jsonl", jsonl(rows)), { mapping })
    expect(result.errors).toEqual([])
    expect(result.tasks).toEqual([
      {
        taskId: "c1",
        question: "P1",
        answer: "G1",
        level: "easy",
        metadata: { origin: "web", extra: [1, 2] },
      },
      { taskId: "c2", question: "P2", answer: "G2", metadata: { origin: "book" } },
    ])
    const fromCsv = await load(
      "custom",
      file(
        "mine.csv",
        csv([
          ["qid", "problem", "gold", "difficulty", "src"],
          ["c9", "P", "G", "", "x"],
        ]),
      ),
      { mapping },
    )
    expect(fromCsv.tasks).toEqual([{ taskId: "c9", question: "P", answer: "G", metadata: { origin: "x" } }])
    expect(
      await loadFailure(
        "custom",
        file(
          "typo.csv",
          csv([
            ["qid", "problem", "gold"],
            ["c9", "P", "G"],
          ]),
        ),
        { mapping },
      ),
    ).toMatch(/missing column\(s\) "difficulty", "src" for custom/)
  })

  it("uses question/answer/id columns by default, row numbers when there is no id column", async () => {
    const result = await load(
      "custom",
      file("default.json", JSON.stringify([{ question: "q", answer: "a", note: "n" }])),
    )
    expect(result.tasks).toEqual([{ taskId: "1", question: "q", answer: "a", metadata: { note: "n" } }])
    const withIds = await load("custom", file("ids.jsonl", jsonl([{ id: 7, question: "q", answer: "a" }])))
    expect(withIds.tasks[0]?.taskId).toBe("7")
  })

  it("rejects malformed mappings", () => {
    expect(parseCustomMapping("question")).toBe('"question" is not name=column')
    expect(parseCustomMapping("id=a,id=b")).toBe('"id" is mapped twice')
  })
})

describe("files that are partly unreadable", () => {
  it("reports CSV rows with broken quoting and keeps what came before", async () => {
    const p = file("quotes.csv", 'question,answer\nq1,a1\nq2,"a"b\nq3,a3\n')
    const result = await load("custom", p)
    expect(result.tasks.map((t) => t.question)).toEqual(["q1"])
    expect(errorsOf(result)[0]).toMatch(new RegExp(`^${p}:2: unreadable CSV record \\(line 3\\)`))
  })

  it("reports the rows of a file that is not valid UTF-8 where the bad bytes are", async () => {
    const good = Buffer.from('{"question": "q1", "answer": "a1"}\n')
    const bad = Buffer.concat([
      Buffer.from('{"question": "q'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('2", "answer": "a2"}\n'),
    ])
    const p = file("latin.jsonl", Buffer.concat([good, bad]))
    const result = await load("custom", p)
    expect(result.tasks.map((t) => t.question)).toEqual(["q1"])
    expect(errorsOf(result)).toEqual([`${p}:2: contains bytes that are not valid UTF-8`])
  })

  it("reports an empty file as having no data rows", async () => {
    const result = await load("custom", file("empty.jsonl", ""))
    expect(errorsOf(result)).toEqual([`${path.join(dir, "empty.jsonl")}: no data rows`])
  })
})

describe("loaders never throw", () => {
  const extensions = ["csv", "tsv", "json", "jsonl", "xlsx", "parquet"] as const
  let counter = 0
  test.prop(
    [
      fc.constantFrom(...BENCHMARK_NAMES.filter((n) => n !== "gaia-text")),
      fc.constantFrom(...extensions),
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.string({ maxLength: 300 }).map((s) => new Uint8Array(Buffer.from(s))),
        fc
          .array(
            fc.dictionary(
              fc.constantFrom("Question", "question", "answer", "id", "canary", "__proto__", "x"),
              fc.jsonValue(),
            ),
            { maxLength: 5 },
          )
          .map((rows) => new Uint8Array(Buffer.from(rows.map((r) => JSON.stringify(r)).join("\n")))),
        fc.constantFrom(new Uint8Array(Buffer.from("PAR1PAR1")), new Uint8Array(Buffer.from("PK\x03\x04"))),
      ),
    ],
    { numRuns: 150 },
  )(
    "on arbitrary bytes: the load succeeds with issues or fails with DatasetUnreadable",
    async (name, ext, bytes) => {
      const p = file(`arbitrary-${counter++}.${ext}`, bytes)
      const exit = await Effect.runPromiseExit(loadBenchmark(name, p))
      if (Exit.isFailure(exit)) {
        const reasons = exit.cause.reasons
        expect(reasons.every((r) => r._tag === "Fail" && r.error._tag === "DatasetUnreadable")).toBe(true)
      } else {
        for (const issue of exit.value.errors) expect(formatIssue(issue)).toContain(p)
      }
    },
  )
})
