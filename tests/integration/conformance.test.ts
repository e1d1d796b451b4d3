/**
 * The MCP conformance suite against the built gateway: runs `scripts/conformance.sh` (a private
 * network namespace, the gateway from dist/ over a test-double dock) and asserts that no scenario
 * failed unexpectedly and that the tool, transport and DNS-rebinding scenarios passed. Skipped, with
 * the reason, when `unshare -n` is not permitted or the build in dist/ is missing or older than the
 * gateway's sources (run `npm run build`).
 */
import { execFile, spawnSync } from "node:child_process"
import { existsSync, statSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

interface Summary {
  readonly scenarios: number
  readonly passed: ReadonlyArray<string>
  readonly failed: ReadonlyArray<string>
  readonly expectedFailures: number
  readonly stale: ReadonlyArray<string>
  readonly unknownEntries: ReadonlyArray<string>
}

/** Why the run cannot happen here, or undefined. */
const cannotRun = (): string | undefined => {
  const probe = spawnSync("unshare", ["-n", "true"], { stdio: "ignore" })
  if (probe.error !== undefined || probe.status !== 0)
    return "unshare -n is not permitted here (needs root or user namespaces): conformance run skipped"
  const sources = ["gateway", "gatewayHttp", "gatewayMcp", "gatewaySessions", "gatewayAdmin", "dockTypes"]
  for (const name of sources) {
    const built = path.join(root, "dist/src/actors/tools", `${name}.js`)
    if (!existsSync(built))
      return `dist/ has no ${name}.js: run npm run build first (conformance run skipped)`
    const source = path.join(root, "src/actors/tools", `${name}.ts`)
    if (statSync(source).mtimeMs > statSync(built).mtimeMs)
      return `dist/ is older than src/actors/tools/${name}.ts: run npm run build first (conformance run skipped)`
  }
  return undefined
}

const runScript = (): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      "bash",
      [path.join(root, "scripts/conformance.sh")],
      { cwd: root, timeout: 55_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })

describe("MCP conformance of the gateway", () => {
  it("has no unexpected failure", async (ctx) => {
    const reason = cannotRun()
    if (reason !== undefined) {
      console.warn(reason)
      ctx.skip(reason)
    }
    const run = await runScript()
    const line = run.stdout.split("\n").find((l) => l.startsWith("CONFORMANCE_SUMMARY "))
    expect(
      line,
      `no summary from scripts/conformance.sh (exit ${run.code}):\n${run.stdout}\n${run.stderr}`,
    ).toBeDefined()
    const summary = JSON.parse(line!.slice("CONFORMANCE_SUMMARY ".length)) as Summary
    expect(summary.failed, run.stdout).toEqual([])
    expect(run.code, run.stdout).toBe(0)
    expect(summary.passed).toEqual(
      expect.arrayContaining([
        "server-initialize",
        "ping",
        "tools-list",
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-error",
        "json-schema-2020-12",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
      ]),
    )
    expect(summary.stale, "expected-failures.txt lists scenarios that pass now").toEqual([])
    expect(summary.unknownEntries).toEqual([])
  })
})
