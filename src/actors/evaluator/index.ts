/**
 * Evaluation's pure core (AgentToLeaP's part of the system): benchmark files into tasks, scorers,
 * LLM-judge prompts and verdict parsing, and metrics. Nothing here touches the event log; the eval
 * driver and projections build on these functions.
 */

export {
  computeMetrics,
  type Metrics,
  type MetricsInput,
  type SampleRecord,
  type SampleStatus,
  type TaskInfo,
} from "../../projections/scoreboard/metrics.ts"
export {
  binomial,
  meanPassAtK,
  naivePassAtK,
  passAtK,
  passAtKFraction,
} from "../../projections/scoreboard/passAtK.ts"
export {
  BENCHMARK_NAMES,
  type BenchmarkName,
  type BenchmarkSpec,
  benchmarkSpec,
  type CustomMapping,
  customBenchmark,
  isBenchmarkName,
  judgeProfileFor,
  parseCustomMapping,
} from "./datasets/benchmarks.ts"
export { type CanaryKeyScheme, canaryKey, decryptField } from "./datasets/canaryDecryption.ts"
export { type LoadOptions, loadBenchmark, readIdList } from "./datasets/datasetLoader.ts"
export { DatasetUnreadable, readTable, type TableFormat } from "./datasets/tableFiles.ts"
export { type Cell, formatIssue, type LoadIssue, type LoadResult, type Task } from "./datasets/task.ts"
export { type GaiaMode, type GaiaScore, gaiaScore } from "./scoring/gaiaScorer.ts"
export {
  type Judge,
  JudgeCallError,
  type JudgePort,
  type JudgeResult,
  type JudgeSettings,
  judgeCacheKey,
  makeJudge,
  parseJudgeVerdict,
  promptHash,
} from "./scoring/judge.ts"
export { poolJudgePort } from "./scoring/judgePort.ts"
export {
  isJudgeProfile,
  JUDGE_PROFILES,
  JUDGE_TEMPLATES,
  type JudgeInput,
  type JudgeMessage,
  type JudgeProfile,
  type JudgeTemplate,
  xbenchExactMatch,
} from "./scoring/judgeTemplates.ts"
export { pythonFloat } from "./scoring/pythonFloat.ts"
export {
  isScorerName,
  JudgeRequired,
  needsJudge,
  SCORER_NAMES,
  type ScoreInput,
  type ScoreResult,
  type ScorerName,
  scoreAnswer,
} from "./scoring/scorers.ts"
export { PARSER_VERSION, parseVerdict, type Verdict } from "./scoring/verdictParsers.ts"
