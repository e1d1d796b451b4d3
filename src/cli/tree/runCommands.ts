/**
 * The commands of evaluation runs: `eval` (one command for a whole evaluation, resumable),
 * `scores` (the leaderboard rebuilt from the log) and `export` (a run's trajectories for SFT or in
 * AgentToLeaP's layout); and `merge`, which blends the checkpoints runs train and evaluate. Each
 * command module loads on demand, as in `main.ts`.
 */
import type { Command } from "commander"
import type * as Effect from "effect/Effect"
import type { GlobalOptions } from "../terminal/invocation.ts"

export const registerRunCommands = (
  program: Command,
  globals: () => GlobalOptions,
  run: (effect: Effect.Effect<unknown, unknown>) => Promise<void>,
): void => {
  program
    .command("eval")
    .description(
      "evaluate a model on a benchmark: every task k times through the agent, scored, with a report (re-run with the same --run to resume)",
    )
    .requiredOption(
      "--bench <name>",
      "the benchmark: gaia, gaia-text, hle, browsecomp, browsecomp-zh, xbench-deepsearch, frames, webwalkerqa, seal-0, custom",
    )
    .requiredOption(
      "--data <path>",
      "the benchmark file (CSV, TSV, JSON, JSONL, xlsx or parquet); encrypted sets are decrypted in memory",
    )
    .requiredOption(
      "--model <name>",
      "the agent model: a model in models.yaml, or any lower-case name with --base-url",
    )
    .option(
      "--base-url <url>",
      "the model's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (sets ROLLOUT_MODEL_<MODEL>_URL)",
    )
    .option("-k, --k <n>", "samples (runs) per task", "8")
    .option("--concurrency <n>", "samples in flight at once", "16")
    .option("--limit <n>", "only the first n tasks")
    .option("--tools <servers>", "the tools.yaml servers the agent gets, comma-separated (default: all)")
    .option(
      "--run <id>",
      "the run id (default <bench>-<model>-<time>); an existing run with this id is resumed",
    )
    .option("--scorer <name>", "override the benchmark's scorer: gaia (exact match) or a judge profile")
    .option("--judge-model <name>", "the judge model for LLM-judged benchmarks (a model in models.yaml)")
    .option("--judge-base-url <url>", "the judge model's OpenAI-compatible endpoint")
    .option("--ids <file>", "keep only the task ids listed in this file (required for gaia-text)")
    .option(
      "--map <mapping>",
      "custom benchmark columns: question=<col>,answer=<col>[,id=<col>,level=<col>,category=<col>]",
    )
    .option(
      "--format <format>",
      "read the file as csv, tsv, json, jsonl, xlsx or parquet (default: by its name)",
    )
    .option("--plaintext", "the file of an encrypted benchmark is already decrypted")
    .option(
      "--skip-bad-rows",
      "evaluate without the data file's bad rows (default: list them and stop, exit 3); the run records which",
    )
    .option("--max-turns <n>", "turn limit per episode (default 200)")
    .option(
      "--dispatch",
      "run the episodes on `rollout worker --roles agent` processes (NATS log): each takes a share; models and tools are theirs",
    )
    .option("--json", "print one JSON object (no progress bar)")
    .action(async (options) =>
      run((await import("../commands/evalCommand.ts")).evalCommand(globals(), options)),
    )

  program
    .command("scores")
    .description(
      "the leaderboard of evaluation runs (Avg@k ± std, 95% interval, pass@k), rebuilt from the log",
    )
    .option("--run <id>", "print one run's full report instead")
    .option("--json", "print one JSON object")
    .action(async (options) =>
      run((await import("../commands/scoresCommand.ts")).scoresCommand(globals(), options)),
    )

  program
    .command("export <run>")
    .description(
      "write a run's trajectories: chat JSONL for SFT, or AgentToLeaP's traj_<i>/result.json layout",
    )
    .requiredOption("--format <format>", "sft or agenttoleap")
    .option("--out <dir>", "the output folder (default <data-dir>/runs/<run>/export-<format>)")
    .option("--correct-only", "only samples the scorer found correct")
    .option("--json", "print one JSON object")
    .addHelpText(
      "after",
      `
Formats (no ground truth in either: the log does not hold it):
  sft          <out>/sft.jsonl, one line per finished sample:
               {"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": ...,
                 "tool_calls"?: [{"id", "type": "function", "function": {"name", "arguments"}}],
                 "tool_call_id"?: ...}, ...],
                "metadata": {"run_id", "task_id", "sample", "episode_id", "outcome", "verdict",
                             "correct", "turns"}}
               (the messages as \`rollout replay --format openai\` prints them)
  agenttoleap  the layout AgentCPM-Explore's AgentToLeaP report scripts read:
               <out>/<task id>/traj_<i>/result.json, i = 0, 1, … over the task's exported samples
                 {"task_id", "query", "success", "error"?, "conversation_history": [the messages],
                  "tool_calls": [{"id", "type", "function", "response", "error"?, …}],
                  "execution_time" (s), "interactions", "max_interactions_reached",
                  and ours: "sample", "traj", "run_id", "episode_id", "model", "benchmark", "outcome",
                  "final_answer", "verdict", "correct", "score", "turns", "tool_call_count", "usage"}
               <out>/<task id>/traj_<i>/dialog.json  the user, assistant and tool messages (tool ones
                 with "name"); <out>/rollout-export.json lists the folders. A task id that is not a
                 safe folder name gets a percent-encoded folder, and the command prints which.`,
    )
    .action(async (runId: string, options) =>
      run((await import("../commands/exportCommand.ts")).exportCommand(globals(), runId, options)),
    )

  program
    .command("merge")
    .description(
      "merge model checkpoints (safetensors, one file or sharded) with mergekit's formulas, one tensor at a time",
    )
    .requiredOption("--method <m>", "linear, slerp, task_arithmetic, ties, dare_linear or dare_ties")
    .requiredOption("--base <dir>", "the base model's folder (its tensors, dtype, sharding and side files)")
    .requiredOption(
      "--models <list>",
      "the models merged in, comma-separated: <dir>[:weight], a weight may be a list over layers: dir:[0.2,0.8]",
    )
    .option(
      "--param <k=v>",
      "a method parameter (repeatable): base_weight, t, lambda, density (a number or [a,b,…] over layers), normalize=true|false, rescale=l1|inverse|none, seed=<int>",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .requiredOption("--out <dir>", "the merged model's folder (new or empty)")
    .option("--dtype <dtype>", "the merged floats' dtype: f32, f16 or bf16 (default: the base's)")
    .option("--json", "print one JSON object (progress stays on stderr)")
    .action(async (options) =>
      run((await import("../commands/mergeCommand.ts")).mergeCommand(globals(), options)),
    )
}
