/**
 * The `calculator` MCP server: one tool, `calculator {expression}`, that evaluates an integer
 * expression exactly (expression.ts) and answers the value alone as text (so it enters the
 * model's context as a few tokens), or an error result naming the column and the problem. The
 * toy RL task (data/calc) needs a real tool call through AgentDock; this is that tool.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { z } from "zod"
import { evaluate, MAX_EXPRESSION_LENGTH } from "./expression.ts"

export const calculatorToolName = "calculator"

/** The tool's answer to one expression. */
export const calculatorResult = (expression: string): CallToolResult => {
  const result = evaluate(expression)
  if ("value" in result) return { content: [{ type: "text", text: result.value }] }
  return {
    isError: true,
    content: [
      {
        type: "text",
        text: `error at column ${result.error.column} of the expression: ${result.error.reason}`,
      },
    ],
  }
}

export const createCalculatorServer = (): McpServer => {
  const server = new McpServer(
    { name: "rollout-calculator", version: "0.1.0" },
    { instructions: "calculator evaluates integer arithmetic exactly: + - * / and parentheses." },
  )
  server.registerTool(
    calculatorToolName,
    {
      title: "Calculator",
      description:
        "Evaluates an arithmetic expression of integers with + - * / and parentheses, exactly; the answer is the value alone.",
      inputSchema: {
        expression: z.string().max(MAX_EXPRESSION_LENGTH).describe("e.g. 123*45 or (7 - 2) / 4"),
      },
    },
    async ({ expression }) => calculatorResult(expression),
  )
  return server
}
