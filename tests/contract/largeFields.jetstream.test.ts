/**
 * The large-fields contract on the JetStream log, whose blobs live in the namespace's Object Store
 * bucket, against a real nats-server (free loopback port, temp store) with its default 1 MB
 * message limit. Stored bodies are read back as stream messages; blobs are removed and damaged
 * through the Object Store itself.
 */
import { Objm } from "@nats-io/obj"
import { Effect } from "effect"
import { makeJetStreamLog } from "../../src/events/log/jetStreamLog.ts"
import { connectNats } from "../../src/events/log/natsConnection.ts"
import { blobBucketFor } from "../../src/events/log/objectBlobStore.ts"
import { streamsFor } from "../../src/events/subjects.ts"
import { startTestNatsServer } from "../support/natsServer.ts"
import { acquire } from "../support/scoped.ts"
import { type LargeFieldsHarness, largeFieldsContract } from "./largeFieldsContract.ts"

largeFieldsContract("jetstream", async (): Promise<LargeFieldsHarness> => {
  const server = await startTestNatsServer()
  const side = await acquire(connectNats({ servers: server.url, name: "large-fields-side" }))
  const opened = new Set<() => Promise<void>>()
  const bucket = (namespace: string) => new Objm(side.value.js).open(blobBucketFor(namespace))
  return {
    messageLimit: side.value.nc.info?.max_payload ?? 1024 * 1024,
    open: async (namespace, options) => {
      const resource = await acquire(
        Effect.flatMap(connectNats({ servers: server.url, name: `large-${namespace}` }), (handle) =>
          makeJetStreamLog(handle, { namespace, ...options }),
        ),
      )
      opened.add(resource.close)
      return {
        log: resource.value,
        close: async () => {
          opened.delete(resource.close)
          await resource.close()
        },
      }
    },
    storedBody: async (namespace, position) => {
      const message = await side.value.jsm.streams.getMessage(streamsFor(namespace).events, { seq: position })
      if (message === null) throw new Error(`no message at ${position}`)
      return message.string()
    },
    removeBlob: async (namespace, sha256) => {
      await (await bucket(namespace)).delete(sha256)
    },
    damageBlob: async (namespace, sha256, bytes) => {
      await (await bucket(namespace)).putBlob({ name: sha256 }, bytes)
    },
    cleanup: async () => {
      for (const close of opened) await close()
      await side.close()
      await server.stop()
    },
  }
})
