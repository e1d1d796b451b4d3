/**
 * The scoreboard's queries and renderings, on a real embedded log with file checkpoints: the
 * scoreboard of a small run (two tasks, k = 2: right, wrong, right, timed out) folded to the end
 * of the log and resumed from its checkpoint; one run's report, and none for an unknown run; a
 * broken line counted with its position; a torn last line naming its run. The renderings from
 * plain data: the leaderboard table (text from the log escaped), a run's report as text,
 * report.md and samples.csv, and the JSON shapes `rollout scores --json` prints.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import type { LogDamage } from "../../src/events/log/eventLog.ts"
import type { DomainEvent, NewEvent } from "../../src/events/schema.ts"
import { entitySubject } from "../../src/events/subjects.ts"
import {
  type EvalReport,
  runReport,
  type ScoreboardSource,
  scoreboardOf,
  tornRunOf,
} from "../../src/projections/scoreboard/queries.ts"
import {
  leaderboardJson,
  leaderboardText,
  reportMarkdown,
  reportText,
  runReportJson,
  samplesCsv,
} from "../../src/projections/scoreboard/render.ts"
import { type LeaderboardRow, leaderboard } from "../../src/projections/scoreboard/scoreboardMetrics.ts"
import { fileCheckpointDir, fileCheckpointStore } from "../../src/runtime/checkpointStore.ts"
import { acquire } from "../support/scoped.ts"

const NS = "q"
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

let ids = 0
const newEvent = (event: DomainEvent): NewEvent => ({
  eventId: `ev-${ids++}`,
  recordedAt: "2026-01-01T00:00:00.000Z",
  correlationId: "corr",
  causationId: "cmd",
  actor: "test",
  event,
})

/** Run r1: t1 (level 1) and t2 (level 2), k = 2; t1 right then wrong, t2 right then timed out. */
const runEvents = (runId: string): Array<[string, DomainEvent[]]> => {
  const run = entitySubject(NS, "run", runId)
  const out: Array<[string, DomainEvent[]]> = [
    [
      run,
      [
        {
          type: "RunStarted",
          runId,
          kind: "eval",
          model: "agent",
          benchmark: "custom",
          k: 2,
          taskCount: 2,
          config: {
            scorer: "gaia",
            judgeModel: null,
            tasks: [
              { taskId: "t1", level: "1", category: null },
              { taskId: "t2", level: "2", category: null },
            ],
          },
        },
      ],
    ],
  ]
  const samples: Array<[string, number, "answered" | "timeout", "correct" | "incorrect" | undefined]> = [
    ["t1", 0, "answered", "correct"],
    ["t1", 1, "answered", "incorrect"],
    ["t2", 0, "answered", "correct"],
    ["t2", 1, "timeout", undefined],
  ]
  for (const [taskId, s, outcome, verdict] of samples) {
    const episodeId = `${runId}-${taskId}-${s}`
    out.push([
      entitySubject(NS, "episode", episodeId),
      [
        {
          type: "EpisodeStarted",
          episodeId,
          runId,
          taskId,
          sampleIndex: s,
          question: `q ${taskId}`,
          model: "agent",
          maxTurns: 10,
        },
        { type: "EpisodeFinished", episodeId, outcome, turns: 3, answer: "a" },
      ],
    ])
    if (verdict !== undefined)
      out.push([
        run,
        [
          {
            type: "SampleScored",
            runId,
            taskId,
            sampleIndex: s,
            episodeId,
            scorer: "gaia",
            verdict,
            score: verdict === "correct" ? 1 : 0,
          },
        ],
      ])
  }
  out.push([run, [{ type: "RunFinished", runId, status: "completed" }]])
  return out
}

/** A fresh data dir holding run r1; opens its log and checkpoints for each `use`. */
const logWithRun = async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-scoreboard-queries-"))
  dirs.push(dataDir)
  // Readers open as the CLI's reading commands do: without the writer lock, cutting nothing.
  const open = async (mode: "writer" | "reader" = "reader") => {
    const log = await acquire(makeEmbeddedLog({ dataDir, namespace: NS, fsync: "never", mode }))
    const source: ScoreboardSource = {
      log: log.value,
      checkpoints: fileCheckpointStore(fileCheckpointDir(dataDir, NS)),
    }
    return { source, close: log.close }
  }
  const first = await open("writer")
  for (const [subject, events] of runEvents("r1"))
    await Effect.runPromise(first.source.log.append(subject, events.map(newEvent)))
  await first.close()
  return { file: path.join(dataDir, "log", NS, "events.ndjson"), open }
}

describe("scoreboard queries", () => {
  it("the scoreboard of a log: the leaderboard line, a run's report, none for an unknown run", async () => {
    const { open } = await logWithRun()
    const opened = await open()
    let folded: ReadonlyArray<LeaderboardRow> = []
    try {
      const board = await Effect.runPromise(scoreboardOf(opened.source))
      folded = leaderboard(board.state)
      expect(board.undecodable).toEqual({ count: 0, positions: [] })
      expect(board.first).toBeUndefined()
      expect(board.tornRun).toBeUndefined()
      const rows = leaderboard(board.state)
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({
        runId: "r1",
        benchmark: "custom",
        model: "agent",
        scorer: "gaia",
        status: "completed",
        k: 2,
        tasks: 2,
        done: 3,
        total: 4,
        avgAtK: 0.5,
        judgeFailed: 0,
        infrastructureFailures: 0,
        notScored: 1,
      })
      const report = runReport(board.state, "r1")
      expect(report).toMatchObject({
        runId: "r1",
        status: "completed",
        k: 2,
        skippedBadRows: null,
        infrastructure: { samples: 0, reasons: {} },
      })
      expect(report?.metrics.statusCounts).toMatchObject({ scored: 3, timeout: 1 })
      expect(report?.samples.map((s) => [s.taskId, s.sample, s.status, s.correct])).toEqual([
        ["t1", 0, "scored", true],
        ["t1", 1, "scored", false],
        ["t2", 0, "scored", true],
        ["t2", 1, "timeout", undefined],
      ])
      expect(runReport(board.state, "r2")).toBeUndefined()
      expect(runReport(board.state, "__proto__")).toBeUndefined()
    } finally {
      await opened.close()
    }
    // Resumed from the checkpoint the first read saved: the same scoreboard.
    const again = await open()
    try {
      const resumed = await Effect.runPromise(scoreboardOf(again.source))
      expect(leaderboard(resumed.state)).toEqual(folded)
      expect(runReport(resumed.state, "r1")?.metrics.avgAtK).toBe(0.5)
    } finally {
      await again.close()
    }
  })

  it("a broken line is counted with its position; a torn last line names its run", async () => {
    const { file, open } = await logWithRun()
    const sound = fs.readFileSync(file, "utf8")
    const lines = sound.trimEnd().split("\n")
    const last = JSON.parse(lines.at(-1)!) as { position: number; subject: string }
    // A line behind the log's back at the next position, then the first half of a line of run r1.
    const torn = `{"position":${last.position + 2},"subject":"${entitySubject(NS, "run", "r1")}","body":{"ty`
    fs.appendFileSync(file, `not an event \u001b[31m\n${torn}`)
    const opened = await open()
    try {
      const board = await Effect.runPromise(scoreboardOf(opened.source))
      expect(board.undecodable).toEqual({ count: 1, positions: [last.position + 1] })
      expect(board.tornRun).toBe("r1")
      expect(board.damage?.tornTail?.offset).toBe(
        Buffer.byteLength(sound) + "not an event \u001b[31m\n".length,
      )
      expect(leaderboard(board.state)[0]?.done).toBe(3)
      const json = leaderboardJson(leaderboard(board.state), board)
      expect(Object.keys(json)).toEqual(["runs", "undecodable", "tornRun", "tornTail"])
      expect(json.tornTail).toEqual(board.damage?.tornTail)
    } finally {
      await opened.close()
    }
  })

  it("tornRunOf: only a torn line whose subject is a run names one", () => {
    const damage = (subject?: string): LogDamage => ({
      undecodable: 0,
      undecodablePositions: [],
      cuts: [],
      tornTail: { offset: 10, bytes: 5, position: 3, ...(subject === undefined ? {} : { subject }) },
    })
    expect(tornRunOf(damage(entitySubject(NS, "run", "r9")))).toBe("r9")
    expect(tornRunOf(damage(entitySubject(NS, "episode", "e1")))).toBeUndefined()
    expect(tornRunOf(damage())).toBeUndefined()
    expect(tornRunOf(undefined)).toBeUndefined()
  })
})

describe("scoreboard renderings", () => {
  const row: LeaderboardRow = {
    runId: "r\u001b[2J1",
    benchmark: null,
    model: "agent",
    scorer: "gaia",
    status: "completed",
    k: 8,
    tasks: 20,
    done: 158,
    total: 160,
    avgAtK: 0.625,
    stdOverRuns: 0.0433,
    interval95: { low: 0.5, high: 0.75 },
    passAt1: 0.625,
    passAtK: 0.8,
    judgeFailed: 1,
    infrastructureFailures: 2,
    notScored: 2,
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: null,
  }

  it("the leaderboard table: one aligned line per run, text from the log escaped", () => {
    expect(
      leaderboardText([
        row,
        {
          ...row,
          runId: "r2",
          benchmark: "gaia",
          avgAtK: null,
          stdOverRuns: null,
          interval95: null,
          infrastructureFailures: 0,
        },
      ]).split("\n"),
    ).toEqual([
      "run        benchmark  model  k  tasks  done     Avg@k   ± std  95% interval      pass@1  pass@k  judge failed  status",
      "r\\x1b[2J1  -          agent  8  20     158/160  62.50%  4.33   [50.00%, 75.00%]  62.50%  80.00%  1             completed (2 infra failures)",
      "r2         gaia       agent  8  20     158/160  –       –      –                 62.50%  80.00%  1             completed",
    ])
  })

  it("a run's report as text, report.md and samples.csv, from the report the query builds", async () => {
    const { open } = await logWithRun()
    const opened = await open()
    let report: EvalReport | undefined
    try {
      report = runReport((await Effect.runPromise(scoreboardOf(opened.source))).state, "r1")
    } finally {
      await opened.close()
    }
    if (report === undefined) throw new Error("no report for r1")
    const text = reportText(report).split("\n")
    expect(text[0]).toBe("run r1: custom · model agent · scorer gaia · k = 2 · 2 tasks · completed")
    expect(text).toContain("samples: scored 3, timeout 1")
    expect(text).toContain("counted as wrong without a verdict: t2#1 timeout")
    expect(text.at(-1)).toBe("")
    const md = reportMarkdown(report)
    expect(
      md.startsWith("# Evaluation r1\n\n| benchmark | model | scorer | judge | k | tasks | status |\n"),
    ).toBe(true)
    expect(md).toContain("| custom | agent | gaia | – | 2 | 2 | completed |")
    expect(md).toContain("| correct runs | 2 of 4 |")
    expect(md).toContain("- t2 #1: timeout")
    const csv = samplesCsv(report.samples).split("\n")
    expect(csv[0]).toBe(
      "task_id,sample,episode_id,status,verdict,correct,outcome,turns,tool_calls,prompt_tokens,completion_tokens,level,category,failure",
    )
    expect(csv.slice(1)).toEqual([
      "t1,0,r1-t1-0,scored,correct,true,answered,3,0,0,0,1,,",
      "t1,1,r1-t1-1,scored,incorrect,false,answered,3,0,0,0,1,,",
      "t2,0,r1-t2-0,scored,correct,true,answered,3,0,0,0,2,,",
      "t2,1,r1-t2-1,timeout,,,timeout,3,0,0,0,2,,",
      "",
    ])
    const json = runReportJson(report, {
      undecodable: { count: 0, positions: [] },
      tornRun: undefined,
      damage: undefined,
    })
    expect("samples" in json).toBe(false)
    expect(json).toMatchObject({ runId: "r1", undecodable: { count: 0, positions: [] } })
    expect("tornRun" in json).toBe(false)
  })
})
