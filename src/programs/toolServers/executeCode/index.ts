/** The `execute_code` MCP server: Python in a fresh sandbox per call. */
export {
  createExecuteCodeServer,
  defaultPythonImage,
  type ExecuteCodeServerOptions,
  executeCodeInstructions,
  executeCodeToolName,
  sandboxMetaKey,
} from "./server.ts"
