// The gateway under the MCP conformance suite: `scripts/conformance.sh` runs this inside a private
// network namespace, with the BUILT gateway (`dist/`, so `npm run build` first) over a small in-memory
// dock (a TEST DOUBLE) whose tools carry the names the suite's tool checks call.
//
// The suite's client cannot send headers, so the gateway keeps its bearer auth and a tiny proxy in
// front of it adds `Authorization: Bearer <token>` and passes everything else through unchanged
// (Host and Origin included, so the gateway's DNS-rebinding checks still see what the suite sent).
// Both listen on 127.0.0.1 only. Prints `READY <proxy url>` on stdout; SIGTERM/SIGINT stop both.
import { randomBytes } from "node:crypto"
import * as http from "node:http"
import { DockError } from "../../dist/src/actors/tools/dockTypes.js"
import { startGateway } from "../../dist/src/actors/tools/gateway.js"

// A 1x1 red PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

/** A 10 ms, 8 kHz, 8-bit mono WAV of silence. */
const wav = () => {
  const samples = 80
  const b = Buffer.alloc(44 + samples, 128)
  b.write("RIFF", 0)
  b.writeUInt32LE(36 + samples, 4)
  b.write("WAVEfmt ", 8)
  b.writeUInt32LE(16, 16)
  b.writeUInt16LE(1, 20) // PCM
  b.writeUInt16LE(1, 22) // mono
  b.writeUInt32LE(8000, 24)
  b.writeUInt32LE(8000, 28)
  b.writeUInt16LE(1, 32)
  b.writeUInt16LE(8, 34)
  b.write("data", 36)
  b.writeUInt32LE(samples, 40)
  return b.toString("base64")
}

const noArgs = { type: "object", properties: {} }

/** name -> [description, inputSchema, mcpContent, isError] */
const tools = {
  test_simple_text: [
    "Returns simple text",
    noArgs,
    [{ type: "text", text: "This is a simple text response for testing." }],
    false,
  ],
  test_image_content: [
    "Returns an image",
    noArgs,
    [{ type: "image", data: PNG, mimeType: "image/png" }],
    false,
  ],
  test_audio_content: [
    "Returns audio",
    noArgs,
    [{ type: "audio", data: wav(), mimeType: "audio/wav" }],
    false,
  ],
  test_embedded_resource: [
    "Returns an embedded resource",
    noArgs,
    [
      {
        type: "resource",
        resource: {
          uri: "test://embedded-resource",
          mimeType: "text/plain",
          text: "This is an embedded resource content.",
        },
      },
    ],
    false,
  ],
  test_multiple_content_types: [
    "Returns text, an image and a resource",
    noArgs,
    [
      { type: "text", text: "Multiple content types test:" },
      { type: "image", data: PNG, mimeType: "image/png" },
      {
        type: "resource",
        resource: {
          uri: "test://mixed-content-resource",
          mimeType: "application/json",
          text: '{"test":"data","value":123}',
        },
      },
    ],
    false,
  ],
  test_error_handling: [
    "Always answers a tool error",
    noArgs,
    [{ type: "text", text: "This tool intentionally returns an error for testing" }],
    true,
  ],
  test_reconnection: [
    "Answers at once (the dock cannot close a stream mid-call)",
    noArgs,
    [{ type: "text", text: "Reconnection test completed" }],
    false,
  ],
  json_schema_2020_12_tool: [
    "Tool with JSON Schema 2020-12 features",
    {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: { type: "object", properties: { street: { type: "string" }, city: { type: "string" } } },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
    [{ type: "text", text: "ok" }],
    false,
  ],
}

// The suite calls fixed names, so this double breaks the pool's `server__tool` naming: each tool's
// dock name is the bare name the suite expects (the gateway serves whatever names the dock gives).
const dock = {
  separator: "__",
  tools: () =>
    Object.entries(tools).map(([name, [description, inputSchema]]) => ({
      name,
      server: "conformance",
      tool: name,
      description,
      inputSchema,
    })),
  call: async (name) => {
    const tool = tools[name]
    if (tool === undefined) throw new DockError("unknown_tool", `unknown tool "${name}"`)
    const [, , mcpContent, isError] = tool
    return {
      outcome: isError ? "tool_error" : "ok",
      content: mcpContent.map((c) => (c.type === "text" ? c : { type: "text", text: `[${c.type}]` })),
      mcpContent,
      isError,
      truncated: false,
      replica: "conformance-0",
      version: "v1",
      attempts: 1,
      latencyMs: 0,
      replayed: false,
    }
  },
  status: () => [],
  swap: async (server) => {
    throw new DockError("unknown_tool", `no server ${server}`)
  },
  close: async () => {},
}

const token = randomBytes(24).toString("hex")
const gateway = await startGateway(dock, { token, log: (line) => process.stderr.write(`${line}\n`) })
const upstream = new URL(gateway.url)

// The auth-adding proxy: streams both ways (SSE included), changes nothing but Authorization.
const proxy = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${token}` }
  const forward = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    },
  )
  forward.on("error", () => {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  })
  res.on("close", () => forward.destroy())
  req.pipe(forward)
})
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve))
const proxyUrl = `http://127.0.0.1:${proxy.address().port}${upstream.pathname}`

const stop = async () => {
  proxy.closeAllConnections()
  proxy.close()
  await gateway.close()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
process.stdout.write(`READY ${proxyUrl}\n`)
