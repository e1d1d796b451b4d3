/**
 * The training commands, `rollout rl …`: `run` (the sampler, and the trainer bridge beside it),
 * `status` (steps, versions, drop reasons, rebuilt from the log), `batches` (the published steps),
 * `batch <step>` (one batch: its header, `--verify` derives it again from the log), `bridge` (the
 * trainer bridge alone, for a run sampled elsewhere) and `demo` (a toy policy that learns through all
 * of it, on CPU). Each command module loads on demand, as in `main.ts`.
 */
import type { Command } from "commander"
import type * as Effect from "effect/Effect"
import type { GlobalOptions } from "../terminal/invocation.ts"

export const registerRlCommands = (
  program: Command,
  globals: () => GlobalOptions,
  run: (effect: Effect.Effect<unknown, unknown>) => Promise<void>,
): void => {
  const rl = program
    .command("rl")
    .description(
      "reinforcement learning: sample GRPO groups, publish training batches, serve them to a trainer",
    )

  rl.command("run")
    .description(
      "sample an RL run from its config (--config <file>, default config/rl.yaml; models.yaml and tools.yaml are read beside it): GRPO groups as agent episodes, scored, filtered into training batches served to a trainer through the bridge (re-run with the same --run to resume)",
    )
    .option("--run <id>", "the run id (default rl-<model>-<time>); an existing run with this id is resumed")
    .option("--tools <servers>", "the tools.yaml servers the agent gets, comma-separated (default: all)")
    .option(
      "--dispatch",
      "run the episodes on `rollout worker --roles agent` processes (NATS log); models and tools are theirs",
    )
    .option("--bridge-port <n>", "the trainer bridge's port on 127.0.0.1 (default: any free port)")
    .option("--bridge-host <host>", "the address the bridge binds (default 127.0.0.1)")
    .option("--no-bridge", "publish batches only; a trainer reaches them through `rollout rl bridge`")
    .option(
      "--simulated-trainer <ms>",
      "train with the built-in simulated trainer (a test double: it waits <ms> per step and publishes versions, it learns nothing)",
    )
    .option("--json", "print one JSON object at the end (no progress line)")
    .action(async (options) =>
      run((await import("../commands/rlCommands.ts")).rlRunCommand(globals(), options)),
    )

  rl.command("demo")
    .description(
      "a policy that learns through rollout on CPU: the Python policy server and trainer (trainer/), the calculator task (data/calc); evaluates the untrained policy, warm-starts it (SFT), evaluates, trains it with GRPO (rl run's sampler, bridge and trainer), evaluates, merges RL with warm at a few weights; the global --nats <url> puts the log on JetStream",
    )
    .option("--python <path>", "the interpreter with torch", "/usr/bin/python3")
    .option("--out <dir>", "checkpoints (warm, trainer versions, merges); default <data-dir>/runs/<id>-rl")
    .option("--id <id>", "the demo's id, prefix of its run ids (default demo-<time>)")
    .option("--namespace <ns>", "the log namespace of the demo (default rl-demo-<time>: a fresh one)")
    .option("--heldout <n>", "held-out tasks evaluated (the first n of data/calc/heldout.jsonl)")
    .option("-k, --k <n>", "samples per held-out task (Avg@k)")
    .option("--eval-concurrency <n>", "evaluation episodes in flight")
    .option(
      "--demonstrations <n>",
      "warm-start demonstrations recorded as episodes: the first n training tasks answered by a scripted calc teacher (a test double) through the calculator, run <id>-demos (default 512; 0: read data/calc/demonstrations.jsonl instead)",
    )
    .option("--sft-steps <n>", "warm-start (SFT) optimizer steps, at most")
    .option("--sft-lr <x>", "warm-start learning rate")
    .option("--sft-batch <n>", "warm-start batch size (demonstrations per step)")
    .option(
      "--sft-stop-at <x>",
      "stop the warm start once calc episodes on the training split reach this exact match (default 0.1; 0: run every --sft-steps step)",
    )
    .option("--steps <n>", "RL training steps")
    .option("--groups <n>", "GRPO groups with signal per training step")
    .option("--group-size <n>", "samples per GRPO group")
    .option("--lr <x>", "the RL trainer's learning rate")
    .option("--concurrency <n>", "RL episodes in flight")
    .option("--max-lag <n>", "eta: the largest step - version a trained token may have")
    .option("--rewards <profile>", "reward profile: dapo (zero-variance groups dropped), grpo or agentcpm")
    .option("--train-tasks <n>", "training tasks drawn from (the first n of data/calc/train.jsonl)")
    .option(
      "--merge-weights <list>",
      "RL weights of the linear merges with the warm policy (default 0,0.25,0.5,0.75,1)",
    )
    .option("--no-merge", "skip the merge phase")
    .option("--seed <n>", "seed of the untrained model, the warm start and the task order")
    .option(
      "--kill-trainer-after <step>",
      "kill the trainer (SIGKILL) once it has reported this step and start another: it resumes from its last checkpoint",
    )
    .option("--json", "print one JSON object (figures, reward per step, phase times, targets)")
    .action(async (options) =>
      run((await import("../commands/rlDemoCommand.ts")).rlDemoCommand(globals(), options)),
    )

  rl.command("status")
    .description("an RL run's training steps, weight versions, drop reasons per step and trainer metrics")
    .option("--run <id>", "the run (default: the latest RL run)")
    .option("--json", "print one JSON object")
    .action(async (options) =>
      run((await import("../commands/rlCommands.ts")).rlStatusCommand(globals(), options)),
    )

  rl.command("batches")
    .description("the training batches an RL run published: step, hash, groups, samples, tokens, lags")
    .option("--run <id>", "the run (default: the latest RL run)")
    .option("--json", "print one JSON object")
    .action(async (options) =>
      run((await import("../commands/rlCommands.ts")).rlBatchesCommand(globals(), options)),
    )

  rl.command("batch <step>")
    .description(
      "one training batch: its header and sequences; --verify derives it again from the log and compares the hash",
    )
    .option("--run <id>", "the run (default: the latest RL run)")
    .option(
      "--verify",
      "derive the batch from the log again and compare its hash with the published one (exit 1 if not equal)",
    )
    .option("--json", "print one JSON object (with every tensor as a list)")
    .action(async (step: string, options) =>
      run((await import("../commands/rlCommands.ts")).rlBatchCommand(globals(), step, options)),
    )

  rl.command("bridge")
    .description(
      "serve an RL run's batches to a trainer over HTTP (and NATS), and load its weights on the endpoints",
    )
    .requiredOption("--run <id>", "the RL run")
    .option("--model <name>", "the RL model group in models.yaml (default: the run's)")
    .option("--port <n>", "the port on 127.0.0.1 (default: any free port)")
    .option("--host <host>", "the address to bind (default 127.0.0.1)")
    .option("--token-file <file>", "where the bearer token is read from or written to (mode 0600)")
    .option("--json", "print one JSON object when listening")
    .action(async (options) =>
      run((await import("../commands/rlBridge.ts")).rlBridgeCommand(globals(), options)),
    )
}
