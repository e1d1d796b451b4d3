/**
 * The BlobStore contract on the file adapter: each harness owns a fresh temp directory; damage and
 * removal write and delete the blob's file directly, as a disk fault or a careless hand would.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileBlobStore } from "../../src/events/log/fileBlobStore.ts"
import { type BlobHarness, blobStoreContract } from "./blobStoreContract.ts"

blobStoreContract("files", async (): Promise<BlobHarness> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-blobs-"))
  const fileOf = (sha256: string) => path.join(dir, sha256.slice(0, 2), sha256)
  return {
    open: async () => fileBlobStore(dir),
    damage: async (sha256, bytes) => fs.writeFileSync(fileOf(sha256), bytes),
    remove: async (sha256) => fs.rmSync(fileOf(sha256)),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  }
})
