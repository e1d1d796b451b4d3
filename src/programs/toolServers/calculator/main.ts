/**
 * Runs the calculator MCP server on stdio when this file is the program
 * (`node dist/src/programs/toolServers/calculator/main.js`, as data/calc/tools.yaml declares it).
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { createCalculatorServer } from "./server.ts"

await createCalculatorServer().connect(new StdioServerTransport())
