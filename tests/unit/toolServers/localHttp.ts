/**
 * A local node:http server for the tool-server tests (127.0.0.1, port 0): each test gives a handler
 * and gets the base URL, the recorded requests and a `close()` that also drops held connections
 * (a handler may leave a request hanging to provoke a timeout).
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

export interface LocalServer {
  readonly url: string
  readonly requests: RecordedRequest[]
  readonly close: () => Promise<void>
}

export type Handler = (request: RecordedRequest, response: http.ServerResponse) => void

export const startLocalServer = async (handler: Handler): Promise<LocalServer> => {
  const requests: RecordedRequest[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const recorded = {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      }
      requests.push(recorded)
      handler(recorded, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export const sendJson = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

/** Servers started by a test file, closed in afterEach. */
export const serverPool = () => {
  const started: LocalServer[] = []
  return {
    start: async (handler: Handler) => {
      const s = await startLocalServer(handler)
      started.push(s)
      return s
    },
    closeAll: async () => {
      await Promise.all(started.splice(0).map((s) => s.close()))
    },
  }
}
