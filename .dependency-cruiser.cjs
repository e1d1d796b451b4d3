/**
 * The house as rules (`npm run depcheck`, run by CI): no folder cycles, rooms import only
 * downward, and the determinism boundary. Floors, top to bottom:
 *   cli → app (the composition root) → programs → actors → projections → runtime → events
 * A room may import its own floor's files and any lower floor, never a higher one. Pure code —
 * events/ outside log/, projections/ outside runner/, and every decider — imports nothing
 * effectful (node:*, NATS, openai, dockerode, the MCP SDK). TypeScript 7 has no JS API, so the
 * files are parsed with swc.
 */
const floors = ["events", "runtime", "projections", "actors", "programs", "app", "cli"]
const above = (floor) => floors.slice(floors.indexOf(floor) + 1)

const upward = floors.slice(0, -1).map((floor) => ({
  name: `no-upward-from-${floor}`,
  comment: `src/${floor}/ sits below ${above(floor).join(", ")}: it may not import them`,
  severity: "error",
  from: { path: `^src/${floor}/` },
  to: { path: `^src/(${above(floor).join("|")})/` },
}))

const effectful = ["^node:", "^(fs|path|os|crypto|child_process|http|https|net|events|stream|url|util|worker_threads|perf_hooks)$",
  "@nats-io/", "^openai", "/node_modules/openai/", "dockerode", "@modelcontextprotocol/"]
const pure = ["^src/events/(?!log/)", "^src/projections/(?!runner/)", "(^|/)decider\\.ts$"]

module.exports = {
  forbidden: [
    {
      name: "no-folder-cycles",
      comment: "folders that import each other are one concept in two rooms, or a missing lower room",
      severity: "error",
      scope: "folder",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "no-file-cycles",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    ...upward,
    {
      name: "determinism-boundary",
      comment: "pure code (events outside log/, projections outside runner/, deciders) imports nothing effectful",
      severity: "error",
      from: { path: pure },
      to: { path: effectful, dependencyTypesNot: ["type-only"] },
    },
    {
      name: "no-cli-to-cli",
      comment:
        "a CLI command only parses flags and prints: what two commands share lives in a domain's queries and renderings or in cli/terminal/",
      severity: "error",
      from: { path: "^src/cli/commands/" },
      to: { path: "^src/cli/commands/" },
    },
    {
      name: "cli-terminal-below-commands",
      comment: "cli/terminal/ is what commands share (printing, invocation): it knows no command and no command tree",
      severity: "error",
      from: { path: "^src/cli/terminal/" },
      to: { path: "^src/cli/(commands|tree)/" },
    },
  ],
  options: {
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist)/" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".mjs"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
}
