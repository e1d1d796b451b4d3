// Test-only entry: runs the `rollout rl bridge` command module from the compiled build, as the CLI
// runs it (same command function, same `execute`), with the global options and the command's
// options as JSON arguments (build with `npm run build`). It stands in for `node bin/rollout.js
// rl bridge …` until the command tree wires `rl bridge`.
// Usage: node tests/support/rlBridgeMain.mjs '<json global options>' '<json command options>'
import { rlBridgeCommand } from "../../dist/src/cli/commands/rlBridge.js"
import { execute } from "../../dist/src/cli/terminal/invocation.js"

const [globals, options] = process.argv.slice(2)
await execute(rlBridgeCommand(JSON.parse(globals ?? "{}"), JSON.parse(options ?? "{}")))
