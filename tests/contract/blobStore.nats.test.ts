/**
 * The BlobStore contract on the NATS Object Store adapter, against a real nats-server (free
 * loopback port, temp store) per harness. Damage is another object put under the blob's name
 * through the Object Store itself (its own digest then agrees with the bytes, so only the
 * adapter's check against the ref's hash can find it); removal deletes the object.
 */
import { Objm } from "@nats-io/obj"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import { objectBlobStore } from "../../src/events/log/objectBlobStore.ts"
import { startTestNatsServer } from "../support/natsServer.ts"
import { type Acquired, acquire } from "../support/scoped.ts"
import { type BlobHarness, blobStoreContract } from "./blobStoreContract.ts"

let buckets = 0

blobStoreContract("nats object store", async (): Promise<BlobHarness> => {
  const server = await startTestNatsServer()
  const bucket = `CONTRACT_BLOBS_${buckets++}`
  const connections: Array<Acquired<unknown>> = []
  const connect = async () => {
    const connection = await acquire(connectNats({ servers: server.url, name: "blob-contract" }))
    connections.push(connection)
    return connection.value
  }
  const side = await connect()
  const objects = () => new Objm(side.js).open(bucket)
  return {
    open: async () => objectBlobStore(await connect(), { bucket }),
    damage: async (sha256, bytes) => {
      await (await objects()).putBlob({ name: sha256 }, bytes)
    },
    remove: async (sha256) => {
      await (await objects()).delete(sha256)
    },
    restart: () => server.restart(),
    cleanup: async () => {
      for (const connection of connections) await connection.close()
      await server.stop()
    },
  }
})
