/**
 * The evaluation commands: `data inspect`, `score` and `judge parse`. Each command module loads on
 * demand, as in `main.ts`.
 */
import type { Command } from "commander"
import type * as Effect from "effect/Effect"
import type { GlobalOptions } from "../terminal/invocation.ts"

export const registerEvalCommands = (
  program: Command,
  globals: () => GlobalOptions,
  run: (effect: Effect.Effect<unknown, unknown>) => Promise<void>,
): void => {
  const data = program.command("data").description("benchmark data files")
  data
    .command("inspect <benchmark> <path>")
    .description(
      "load a benchmark file (decrypting in memory) and report rows, tasks, fields and bad rows (exit 3 if any)",
    )
    .option("--ids <file>", "keep only the task ids listed in this file (required for gaia-text)")
    .option(
      "--map <mapping>",
      "custom benchmark columns: question=<col>,answer=<col>[,id=<col>,level=<col>,…]",
    )
    .option(
      "--format <format>",
      "read the file as csv, tsv, json, jsonl, xlsx or parquet (default: by its name)",
    )
    .option("--plaintext", "the file of an encrypted benchmark is already decrypted")
    .option("--json", "print one JSON object")
    .action(async (benchmark: string, path: string, options) =>
      run(
        (await import("../commands/dataCommand.ts")).dataInspectCommand(globals(), benchmark, path, options),
      ),
    )

  program
    .command("score")
    .description(
      "score one answer against the ground truth (judge scorers need --judge-model; exit 2 without)",
    )
    .requiredOption(
      "--scorer <name>",
      "gaia (exact match) or a judge: hle, browsecomp, browsecomp-zh, xbench, …",
    )
    .requiredOption("--pred <text>", "the answer to score (write --pred=<text> for values starting with -)")
    .requiredOption("--truth <text>", "the ground truth")
    .option("--question <text>", "the question (judge scorers show it to the judge)")
    .option("--judge-model <name>", "the judge model, a model in models.yaml")
    .option("--temperature <t>", "judge sampling temperature (default 0)")
    .option("--json", "print one JSON object")
    .action(async (options) =>
      run((await import("../commands/scoreCommand.ts")).scoreCommand(globals(), options)),
    )

  const judge = program.command("judge").description("LLM-judge tools")
  judge
    .command("parse")
    .description("read a judge's raw response on stdin and print the parsed verdict as JSON")
    .requiredOption("--benchmark <name>", "the benchmark (or judge profile) whose verdict format to read")
    .option("--json", "print one JSON object (always)")
    .action(async (options) =>
      run((await import("../commands/judgeCommand.ts")).judgeParseCommand(globals(), options)),
    )
}
