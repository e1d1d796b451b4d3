/**
 * The large-fields contract on the embedded log, whose blobs are files beside its event file (a
 * temp data dir per test). Stored bodies are read from the file's lines; blobs are removed and
 * damaged by writing their files directly.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { makeEmbeddedLog } from "../../src/events/log/embeddedLog.ts"
import { fileBlobDir } from "../../src/events/log/fileBlobStore.ts"
import { type LargeFieldsHarness, largeFieldsContract } from "./largeFieldsContract.ts"

largeFieldsContract("embedded", async (): Promise<LargeFieldsHarness> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-large-"))
  const blobFile = (namespace: string, sha256: string) =>
    path.join(fileBlobDir(dataDir, namespace), sha256.slice(0, 2), sha256)
  return {
    open: async (namespace, options) => {
      const scope = Effect.runSync(Scope.make())
      const log = await Effect.runPromise(
        Scope.provide(scope)(makeEmbeddedLog({ dataDir, namespace, fsync: "never", ...options })),
      )
      return { log, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
    },
    storedBody: async (namespace, position) => {
      const lines = fs.readFileSync(path.join(dataDir, "log", namespace, "events.ndjson"), "utf8").split("\n")
      const line = JSON.parse(lines[position - 1]!) as { position: number; body: unknown }
      if (line.position !== position) throw new Error(`line ${position} holds position ${line.position}`)
      return JSON.stringify(line.body)
    },
    removeBlob: async (namespace, sha256) => fs.rmSync(blobFile(namespace, sha256)),
    damageBlob: async (namespace, sha256, bytes) => fs.writeFileSync(blobFile(namespace, sha256), bytes),
    cleanup: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
  }
})
