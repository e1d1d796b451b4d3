/**
 * The `rollout` command line. Global options choose the log (`--log embedded|nats`, `--nats`,
 * `--data-dir`) and the config directory; each subcommand is a small program in its own module.
 * Every subcommand that prints data takes `--json` and then prints one JSON object.
 */
import { Command } from "commander"
import type * as Effect from "effect/Effect"
import type { GlobalOptions } from "./terminal/invocation.ts"
// Command modules load on demand, so `--help` and small commands start fast.
import { registerEvalCommands } from "./tree/evalCommands.ts"
import { registerRlCommands } from "./tree/rlCommands.ts"
import { registerRunCommands } from "./tree/runCommands.ts"

// `rollout … | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
  throw error
})

const program = new Command("rollout")
  .description("An actor-model, event-sourced runtime for long-horizon LLM agents.")
  .option("--log <backend>", "event log backend: embedded (default, no server) or nats")
  .option("--nats <url>", "NATS server URL(s), comma-separated; implies --log nats")
  .option("--data-dir <dir>", "data directory of the embedded log (default .rollout)")
  .option("--config <dir>", "configuration directory", "config")
  .showHelpAfterError()

const globals = (): GlobalOptions => program.opts<GlobalOptions>()
const run = async (effect: Effect.Effect<unknown, unknown>) =>
  (await import("./terminal/invocation.ts")).execute(effect)

program
  .command("worker")
  .description("run actor kinds from the shared JetStream command queues until SIGTERM (then drain)")
  .option("--roles <kinds>", "comma-separated actor kinds to run (default from config: probe)")
  .option("--name <name>", "worker name shown in events and status (default host-pid)")
  .option("--concurrency <n>", "commands in flight per role")
  .option("--ack-wait <ms>", "redelivery deadline for an unacknowledged command")
  .option("--json", "print the final counters as JSON")
  .action(async (options) =>
    run((await import("./commands/workerCommand.ts")).workerCommand(globals(), options)),
  )

const log = program.command("log").description("inspect the event log")
log
  .command("stats")
  .description("size, positions, subjects and event counts by type")
  .option("--no-types", "skip counting events by type")
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run((await import("./commands/logCommands.ts")).logStatsCommand(globals(), options)),
  )
log
  .command("tail")
  .description("print the last events (or from --from); --follow keeps printing new ones")
  .option("-f, --follow", "keep following new events until interrupted")
  .option("--filter <subject>", "subject filter, e.g. rollout.ev.episode.* (NATS wildcards)")
  .option("--from <position>", "first position to print")
  .option("--limit <n>", "stop after n events")
  .option("--json", "JSON: one object {events} (with --follow, one object per line)")
  .action(async (options) =>
    run((await import("./commands/logCommands.ts")).logTailCommand(globals(), options)),
  )

program
  .command("demo")
  .description(
    "offline k = 8 evaluation of the bundled benchmark: scripted test-double model, offline search/fetch_url, embedded log",
  )
  .option("-k, --k <n>", "samples per task", "8")
  .option("--concurrency <n>", "samples in flight", "16")
  .option(
    "--actors",
    "instead: agent episodes as RunEpisode commands through the actor host, with the echo tool",
  )
  .option("--episodes <n>", "with --actors: episodes to run", "8")
  .option("--turns <n>", "with --actors: tool turns the scripted model makes before answering", "3")
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run(
      options.actors === true
        ? (await import("./commands/demoCommand.ts")).demoCommand(globals(), options)
        : (await import("./commands/evalDemoCommand.ts")).evalDemoCommand(
            globals(),
            options,
            (await import("./commands/evalCommand.ts")).evalCommand,
          ),
    ),
  )

program
  .command("probe")
  .description("send probe commands through the actors and check each is recorded exactly once")
  .option("--count <n>", "commands to send", "1000")
  .option("--entities <n>", "probe entities to spread them over", "10")
  .option("--timeout <s>", "give up after this many seconds", "120")
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run((await import("./commands/probeCommand.ts")).probeCommand(globals(), options)),
  )

program
  .command("replay <episodeId>")
  .description("render an episode from the log; --verify re-drives its decisions (no model or tool calls)")
  .option("--format <format>", "text (default), openai (chat messages as JSONL) or json")
  .option(
    "--verify",
    "re-drive the decisions over the recorded inputs; exit 3 at the first divergence, 4 when an entry does not decode",
  )
  .option("--fork-at <turn>", "start a new episode from this turn with the live model (models.yaml)")
  .option("--as <episodeId>", "the forked episode's id (default <episodeId>~fork<turn>)")
  .option("--json", "same as --format json: one JSON object")
  .action(async (episodeId: string, options) =>
    run((await import("./commands/replayCommand.ts")).replayCommand(globals(), episodeId, options)),
  )

program
  .command("cancel <episodeId>")
  .description("end an episode with the outcome cancelled (a worker running it stops at its next step)")
  .option("--json", "print one JSON object")
  .action(async (episodeId: string, options) =>
    run((await import("./commands/cancelCommand.ts")).cancelCommand(globals(), episodeId, options)),
  )

program
  .command("status")
  .description("log, command queues per actor kind, dead letters")
  .option("--dead-letters", "list the dead letters")
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run((await import("./commands/statusCommand.ts")).statusCommand(globals(), options)),
  )

const projections = program
  .command("projections")
  .description("projections (folds of the log) and their checkpoints")
projections
  .command("list")
  .description("every projection, its version and checkpoint")
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run((await import("./commands/projectionCommands.ts")).projectionsListCommand(globals(), options)),
  )
projections
  .command("rebuild <name>")
  .description(
    "fold the projection again from position 0 and save its checkpoint (`all`: every projection, one read)",
  )
  .option("--json", "print one JSON object")
  .action(async (name: string, options) =>
    run(
      (await import("./commands/projectionCommands.ts")).projectionsRebuildCommand(globals(), name, options),
    ),
  )

registerEvalCommands(program, globals, run)
registerRunCommands(program, globals, run)
registerRlCommands(program, globals, run)

const dock = program
  .command("dock")
  .description("AgentDock: pooled MCP tool servers (config/tools.yaml) behind one MCP gateway")
dock
  .command("up")
  .description("start the pools and the MCP gateway (127.0.0.1, bearer token) until Ctrl-C / SIGTERM")
  .option("--servers <names>", "only these servers, comma-separated (default: all in tools.yaml)")
  .option("--host <host>", "gateway address (default from tools.yaml: 127.0.0.1)")
  .option("--port <port>", "gateway port (default from tools.yaml: 8765; 0 = any free port)")
  .option("--json", "print the start summary as one JSON object")
  .action(async (options) =>
    run((await import("./commands/dockCommands.ts")).dockUpCommand(globals(), options)),
  )
dock
  .command("status")
  .description(
    "replicas, health, in flight, calls/s, p50/p99 latency, restarts, swaps (from the log when no dock runs)",
  )
  .option("--json", "print one JSON object")
  .action(async (options) =>
    run((await import("./commands/dockCommands.ts")).dockStatusCommand(globals(), options)),
  )
dock
  .command("swap <server>")
  .description("hot-swap a server of the running dock to another version from tools.yaml (no failed calls)")
  .option("--to <version>", "the version to run")
  .option("--json", "print one JSON object")
  .action(async (server: string, options) =>
    run((await import("./commands/dockCommands.ts")).dockSwapCommand(globals(), server, options)),
  )
dock
  .command("call <tool>")
  .description(
    "call a tool by its offered name, server__tool (server.tool is still accepted), through the running dock (or a one-off pool of that server)",
  )
  .option("--args <json>", "arguments as JSON (or JSON5)", "{}")
  .option("--key <idempotencyKey>", "idempotency key: a key already answered returns the recorded result")
  .option("--json", "print one JSON object")
  .action(async (tool: string, options) =>
    run((await import("./commands/dockCommands.ts")).dockCallCommand(globals(), tool, options)),
  )

program
  .command("mcp-server <name>")
  .description("serve one of rollout's tool servers on stdio: search, fetch_url, execute_code or calculator")
  .option("--options <json>", "the server's options as JSON (see config/tools.yaml)")
  .action(async (name: string, options) =>
    run((await import("./commands/dockCommands.ts")).mcpServerCommand(name, options)),
  )

await program.parseAsync(process.argv)
