/**
 * The real public benchmark files in `../shared/datasets/` (beside the project, never copied into
 * it) load completely and decrypt to valid UTF-8: xbench-DeepSearch 2505 and 2510 (100 rows each),
 * BrowseComp-ZH (289 rows, and its one-row plaintext sample), WebWalkerQA (680 rows). The folder is
 * `$ROLLOUT_DATASETS` when set (CI sets it for a clone made elsewhere), else `../shared/datasets`.
 * Skipped, with a message saying so, where that folder is absent.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import type { BenchmarkName } from "../../src/actors/evaluator/datasets/benchmarks.ts"
import { type LoadOptions, loadBenchmark } from "../../src/actors/evaluator/datasets/datasetLoader.ts"
import { formatIssue, type LoadResult } from "../../src/actors/evaluator/datasets/task.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const datasets = path.resolve(repoRoot, process.env.ROLLOUT_DATASETS ?? "../shared/datasets")
const present = fs.existsSync(datasets)
if (!present) console.warn(`evaluatorDatasets: skipped — no public datasets folder at ${datasets}`)

const load = (name: BenchmarkName, relative: string, options: LoadOptions = {}): Promise<LoadResult> =>
  Effect.runPromise(loadBenchmark(name, path.join(datasets, relative), options))

const HAN = /\p{Script=Han}/u
const utf8 = new TextDecoder("utf-8", { fatal: true })
/** Text survives a strict UTF-8 round trip (no lone surrogates, no replacement characters). */
const isCleanText = (text: string) =>
  !text.includes("\uFFFD") && !/\p{Cs}/u.test(text) && utf8.decode(Buffer.from(text, "utf8")) === text

const expectComplete = (result: LoadResult, rows: number) => {
  expect(result.errors.map(formatIssue)).toEqual([])
  expect(result.rows).toBe(rows)
  expect(result.tasks).toHaveLength(rows)
  expect(new Set(result.tasks.map((t) => t.taskId)).size).toBe(rows)
  for (const task of result.tasks) {
    expect(task.question.length).toBeGreaterThan(0)
    expect(task.answer.length).toBeGreaterThan(0)
    expect(isCleanText(task.question) && isCleanText(task.answer), task.taskId).toBe(true)
  }
}

describe.skipIf(!present)("public benchmark files in ../shared/datasets", () => {
  it.each([
    ["xbench-deepsearch-2505", "xbench/DeepSearch-2505.csv"],
    ["xbench-deepsearch-2510", "xbench/DeepSearch-2510.csv"],
  ] as const)("%s: 100 rows decrypt (raw canary key) to Chinese text", async (name, file) => {
    const result = await load(name, file)
    expectComplete(result, 100)
    expect(result.decrypted).toBe(100)
    expect(result.fields).toEqual(["id", "prompt", "answer", "reference_steps", "canary"])
    // Decrypted with the right key, the questions are Chinese prose, not noise.
    expect(result.tasks.filter((t) => HAN.test(t.question)).length).toBeGreaterThanOrEqual(95)
    for (const task of result.tasks) {
      const steps = task.metadata.reference_steps
      expect(typeof steps === "string" && isCleanText(steps)).toBe(true)
    }
  })

  it("BrowseComp-ZH: 289 rows decrypt (SHA-256 canary key), topics included", async () => {
    const result = await load("browsecomp-zh", "browsecomp-zh/browsecomp-zh-encrypted.xlsx")
    expectComplete(result, 289)
    expect(result.decrypted).toBe(289)
    expect(result.fields).toEqual(["Topic", "Question", "Answer", "canary"])
    expect(result.tasks.every((t) => t.category !== undefined && HAN.test(t.category))).toBe(true)
    expect(result.tasks.filter((t) => HAN.test(t.question)).length).toBe(289)
    const topics = new Set(result.tasks.map((t) => t.category))
    expect(topics.has("体育")).toBe(true)
  })

  it("BrowseComp-ZH: the plaintext sample loads as plaintext and is refused as ciphertext", async () => {
    const plain = await load("browsecomp-zh", "browsecomp-zh/sample-plaintext.json", { plaintext: true })
    expectComplete(plain, 1)
    expect(plain.tasks[0]).toMatchObject({ answer: "1轮", category: "体育" })
    const asCipher = await load("browsecomp-zh", "browsecomp-zh/sample-plaintext.json")
    expect(asCipher.tasks).toEqual([])
    expect(asCipher.errors.map(formatIssue)[0]).toMatch(/:1: column "Topic": not base64/)
  })

  it("WebWalkerQA: 680 rows with source type and difficulty", async () => {
    const result = await load("webwalkerqa", "webwalkerqa/test.json")
    expectComplete(result, 680)
    expect(result.decrypted).toBe(0)
    expect(new Set(result.tasks.map((t) => t.category))).toEqual(new Set(["single_source", "multi_source"]))
    expect(new Set(result.tasks.map((t) => t.level))).toEqual(new Set(["easy", "medium", "hard"]))
    // type and difficulty became category and level; the other columns stay in the metadata.
    expect(Object.keys(result.tasks[0]?.metadata ?? {})).toEqual([
      "domain",
      "source_website",
      "golden_path",
      "lang",
      "root_url",
    ])
  })
})
