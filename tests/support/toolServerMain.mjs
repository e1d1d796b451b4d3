// Test-only entry: serves one deep-research tool server (`search` or `fetch_url`) on stdio from the
// compiled build, with its JSON options as the second argument (build with `npm run build`).
// Usage: node tests/support/toolServerMain.mjs <name> '<json options>'
import { serveStdioFromConfig } from "../../dist/src/programs/toolServers/serve.js"

const [name, json] = process.argv.slice(2)
try {
  await serveStdioFromConfig(name, json === undefined ? undefined : JSON.parse(json))
} catch (error) {
  process.stderr.write(`tool server: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(2)
}
