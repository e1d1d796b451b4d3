/**
 * Reading a safetensors file from disk one tensor at a time, so a checkpoint larger than memory can
 * be streamed (merges, batches): the header is read and validated first (events/tensors/safetensors.ts
 * does the validating), then each tensor's bytes are read at its offsets. I/O failures and short
 * reads come back as a `SafetensorsError` naming the file, like a malformed header does.
 */
import type { FileHandle } from "node:fs/promises"
import * as Result from "effect/Result"
import {
  parseHeader,
  readHeaderLength,
  SafetensorsError,
  type SafetensorsLayout,
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
): Promise<Result.Result<Uint8Array, SafetensorsError>> => {
  const out = new Uint8Array(length)
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

/** Read one tensor's bytes from an open file at the offsets its validated header gave. */
export const readTensorFromFile = (
  handle: FileHandle,
  layout: SafetensorsLayout,
  tensor: TensorInfo,
): Promise<Result.Result<Uint8Array, SafetensorsError>> =>
  readExactly(handle, layout.dataStart + tensor.begin, tensor.end - tensor.begin)
