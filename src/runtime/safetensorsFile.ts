/**
 * Reading and writing a safetensors file on disk one tensor at a time, so a checkpoint larger than
 * memory can be streamed (merges, batches). Reading: the header is read and validated first
 * (events/tensors/safetensors.ts does the validating), then each tensor's bytes at its offsets.
 * Writing: the header planned by `planSafetensors` goes first, then each tensor's bytes at their
 * planned place, and closing checks that every tensor came. I/O failures and short reads come back
 * as a `SafetensorsError` naming the file, like a malformed header does.
 */
import { type FileHandle, open, rm } from "node:fs/promises"
import * as Result from "effect/Result"
import type { DType } from "../events/tensors/dtypes.ts"
import {
  parseHeader,
  planSafetensors,
  readHeaderLength,
  SafetensorsError,
  type SafetensorsLayout,
  type SafetensorsPlan,
  type TensorInfo,
} from "../events/tensors/safetensors.ts"

const ioError = (what: string, error: unknown) =>
  Result.fail(
    new SafetensorsError({
      field: "file",
      reason: `${what}: ${error instanceof Error ? error.message : String(error)}`,
    }),
  )

/** Read exactly `length` bytes at `position`, or say how many came. */
const readExactly = async (
  handle: FileHandle,
  position: number,
  length: number,
  into?: Uint8Array,
): Promise<Result.Result<Uint8Array, SafetensorsError>> => {
  const out = into === undefined ? new Uint8Array(length) : into.subarray(0, length)
  let got = 0
  try {
    while (got < length) {
      const { bytesRead } = await handle.read(out, got, length - got, position + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
  } catch (error) {
    return ioError(`reading ${length} bytes at ${position}`, error)
  }
  if (got < length)
    return Result.fail(
      new SafetensorsError({
        field: "file",
        reason: `${got} of ${length} bytes at ${position}: the file is shorter`,
      }),
    )
  return Result.succeed(out)
}

/** Read and validate the header of an open safetensors file (its data is not read). */
export const readSafetensorsHeader = async (
  handle: FileHandle,
): Promise<Result.Result<SafetensorsLayout, SafetensorsError>> => {
  let size: number
  try {
    size = (await handle.stat()).size
  } catch (error) {
    return ioError("stat", error)
  }
  const first8 = await readExactly(handle, 0, Math.min(8, size))
  if (Result.isFailure(first8)) return Result.fail(first8.failure)
  const n = readHeaderLength(first8.success, size)
  if (Result.isFailure(n)) return Result.fail(n.failure)
  const header = await readExactly(handle, 8, n.success)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  return parseHeader(header.success, size - 8 - n.success)
}

/**
 * Read one tensor's bytes from an open file at the offsets its validated header gave: into a new
 * buffer, or into the start of `into` (a buffer reused from tensor to tensor, so streaming a
 * checkpoint does not allocate per tensor); the answer is a view of exactly the tensor's bytes.
 */
export const readTensorFromFile = async (
  handle: FileHandle,
  layout: SafetensorsLayout,
  tensor: TensorInfo,
  into?: Uint8Array,
): Promise<Result.Result<Uint8Array, SafetensorsError>> => {
  const length = tensor.end - tensor.begin
  if (into !== undefined && into.byteLength < length)
    return Result.fail(
      new SafetensorsError({
        field: `${JSON.stringify(tensor.name)}.data`,
        reason: `${length} bytes do not fit the ${into.byteLength}-byte buffer given`,
      }),
    )
  return readExactly(handle, layout.dataStart + tensor.begin, length, into)
}

/** A safetensors file being written tensor by tensor; its header is already on disk. */
export interface SafetensorsWriter {
  readonly path: string
  readonly plan: SafetensorsPlan
  /** Write one planned tensor's little-endian bytes (each tensor once, in any order; plan order is sequential). */
  readonly write: (name: string, bytes: Uint8Array) => Promise<Result.Result<void, SafetensorsError>>
  /** Close the file, refusing it when a planned tensor was never written. */
  readonly close: () => Promise<Result.Result<void, SafetensorsError>>
  /** Close and delete the file (after a failure elsewhere). */
  readonly abort: () => Promise<void>
}

/**
 * Create (or truncate) a safetensors file for these tensors: plan the layout, write the header,
 * and hand back a writer for the tensors' data. Each tensor is written at its own offset, so they
 * may come in any order; in plan order the writes are sequential.
 */
export const openSafetensorsWriter = async (
  path: string,
  tensors: ReadonlyArray<{
    readonly name: string
    readonly dtype: DType
    readonly shape: ReadonlyArray<number>
  }>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<Result.Result<SafetensorsWriter, SafetensorsError>> => {
  const planned = planSafetensors(tensors, metadata)
  if (Result.isFailure(planned)) return Result.fail(planned.failure)
  const plan = planned.success
  const places = new Map(plan.tensors.map((t) => [t.name, t]))
  const written = new Set<string>()
  let handle: FileHandle
  try {
    handle = await open(path, "w")
  } catch (error) {
    return ioError(`creating ${path}`, error)
  }
  const writeAt = async (
    bytes: Uint8Array,
    position: number,
  ): Promise<Result.Result<void, SafetensorsError>> => {
    try {
      let done = 0
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done)
        done += bytesWritten
      }
      return Result.succeed(undefined)
    } catch (error) {
      return ioError(`writing ${bytes.byteLength} bytes at ${position} of ${path}`, error)
    }
  }
  const header = await writeAt(plan.header, 0)
  if (Result.isFailure(header)) {
    await handle.close().catch(() => undefined)
    return Result.fail(header.failure)
  }
  const field = (name: string) => `${JSON.stringify(name)}.data`
  return Result.succeed({
    path,
    plan,
    write: async (name, bytes) => {
      const place = places.get(name)
      if (place === undefined)
        return Result.fail(
          new SafetensorsError({ field: field(name), reason: `is not a tensor planned for ${path}` }),
        )
      if (written.has(name))
        return Result.fail(new SafetensorsError({ field: field(name), reason: "is written twice" }))
      if (bytes.byteLength !== place.end - place.begin)
        return Result.fail(
          new SafetensorsError({
            field: field(name),
            reason: `${bytes.byteLength} bytes, but ${place.dtype} [${place.shape.join(", ")}] takes ${place.end - place.begin}`,
          }),
        )
      written.add(name)
      return writeAt(bytes, plan.header.byteLength + place.begin)
    },
    close: async () => {
      const missing = plan.tensors.filter((t) => !written.has(t.name))
      try {
        await handle.close()
      } catch (error) {
        return ioError(`closing ${path}`, error)
      }
      if (missing.length > 0)
        return Result.fail(
          new SafetensorsError({
            field: field((missing[0] as TensorInfo).name),
            reason: `was never written (${missing.length} tensor${missing.length === 1 ? "" : "s"} missing from ${path})`,
          }),
        )
      return Result.succeed(undefined)
    },
    abort: async () => {
      await handle.close().catch(() => undefined)
      await rm(path, { force: true })
    },
  })
}
