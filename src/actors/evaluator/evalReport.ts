/**
 * An evaluation run's report files, written from the scoreboard's report (so a report written
 * live and one written again from the log are the same): `report.json` (the metrics and every
 * sample's status), `report.md` and `samples.csv`, rendered by the scoreboard
 * (`projections/scoreboard/render.ts`). No question, ground truth or answer is written: the files
 * hold ids, statuses and numbers only.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { EvalReport } from "../../projections/scoreboard/queries.ts"
import { reportMarkdown, samplesCsv } from "../../projections/scoreboard/render.ts"

export interface ReportFiles {
  readonly dir: string
  readonly markdown: string
  readonly json: string
  readonly csv: string
}

/** Writes `report.md`, `report.json` and `samples.csv` into `dir` (created if needed). */
export const writeReportFiles = (dir: string, report: EvalReport): Effect.Effect<ReportFiles, Error> =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(dir, { recursive: true })
      const files = {
        dir,
        markdown: path.join(dir, "report.md"),
        json: path.join(dir, "report.json"),
        csv: path.join(dir, "samples.csv"),
      }
      await fs.writeFile(files.markdown, reportMarkdown(report))
      await fs.writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`)
      await fs.writeFile(files.csv, samplesCsv(report.samples))
      return files
    },
    catch: (error) =>
      new Error(
        `cannot write the report under ${dir}: ${error instanceof Error ? error.message : String(error)}`,
      ),
  })
