/**
 * A model directory as a merge reads it: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (events/tensors/shardIndex.ts). Opening reads and validates every
 * header — not the data — and checks the index against the shards: every listed tensor is in the
 * shard named for it, and every tensor of a shard is listed. Then any tensor's bytes can be read on
 * its own (runtime/safetensorsFile.ts), which is what lets a merge hold one tensor at a time.
 */
import type { FileHandle } from "node:fs/promises"
import { open, readdir, readFile, stat } from "node:fs/promises"
import * as path from "node:path"
import * as Result from "effect/Result"
import type { SafetensorsLayout, TensorInfo } from "../../events/tensors/safetensors.ts"
import { parseShardIndex, type ShardIndex, shardIndexFile } from "../../events/tensors/shardIndex.ts"
import { readSafetensorsHeader, readTensorFromFile } from "../../runtime/safetensorsFile.ts"
import { MergeError } from "./mergeSpec.ts"

/** The single-file checkpoint's name. */
export const singleFile = "model.safetensors"

export interface ModelFile {
  readonly name: string
  readonly path: string
  readonly handle: FileHandle
  readonly layout: SafetensorsLayout
}

export interface ModelTensor {
  readonly file: ModelFile
  readonly info: TensorInfo
}

export interface ModelDir {
  readonly dir: string
  /** The index when the checkpoint is sharded. */
  readonly index: ShardIndex | undefined
  /** The files in the index's shard order (one for a single-file checkpoint). */
  readonly files: ReadonlyArray<ModelFile>
  readonly tensors: ReadonlyMap<string, ModelTensor>
  readonly close: () => Promise<void>
}

const exists = async (p: string): Promise<boolean> =>
  stat(p).then(
    (s) => s.isFile(),
    () => false,
  )

/** Open a model directory, or fail with a MergeError naming the directory, file and field. */
export const openModelDir = async (dir: string, role: string): Promise<ModelDir> => {
  const resolved = path.resolve(dir)
  const info = await stat(resolved).catch(() => undefined)
  if (info === undefined) throw new MergeError({ reason: `${role} ${dir}: no such directory` })
  if (!info.isDirectory()) throw new MergeError({ reason: `${role} ${dir}: not a directory` })
  const files: ModelFile[] = []
  const closeAll = async () => {
    await Promise.all(files.map((f) => f.handle.close().catch(() => undefined)))
  }
  const openFile = async (name: string): Promise<ModelFile> => {
    const file = path.join(resolved, name)
    let handle: FileHandle
    try {
      handle = await open(file, "r")
    } catch (error) {
      throw new MergeError({
        reason: `${role} ${dir}: cannot open ${name}: ${error instanceof Error ? error.message : String(error)}`,
      })
    }
    const layout = await readSafetensorsHeader(handle)
    if (Result.isFailure(layout)) {
      await handle.close().catch(() => undefined)
      throw new MergeError({ reason: `${role} ${dir}: ${name}: ${layout.failure.message}` })
    }
    const opened = { name, path: file, handle, layout: layout.success }
    files.push(opened)
    return opened
  }
  try {
    const tensors = new Map<string, ModelTensor>()
    if (await exists(path.join(resolved, singleFile))) {
      const file = await openFile(singleFile)
      for (const t of file.layout.tensors) tensors.set(t.name, { file, info: t })
      return { dir: resolved, index: undefined, files, tensors, close: closeAll }
    }
    const indexPath = path.join(resolved, shardIndexFile)
    if (!(await exists(indexPath))) {
      const present = (await readdir(resolved)).filter((n) => n.endsWith(".safetensors"))
      throw new MergeError({
        reason:
          `${role} ${dir}: neither ${singleFile} nor ${shardIndexFile}` +
          (present.length > 0
            ? ` (it holds ${present.slice(0, 5).join(", ")})`
            : " (it holds no .safetensors file)"),
      })
    }
    const index = parseShardIndex(await readFile(indexPath, "utf8"))
    if (Result.isFailure(index)) throw new MergeError({ reason: `${role} ${dir}: ${index.failure.message}` })
    const byName = new Map<string, ModelFile>()
    for (const shard of index.success.shards) {
      if (!(await exists(path.join(resolved, shard))))
        throw new MergeError({
          reason: `${role} ${dir}: ${shardIndexFile} names the shard ${shard}, which is missing`,
        })
      byName.set(shard, await openFile(shard))
    }
    for (const [name, shard] of index.success.weightMap) {
      const file = byName.get(shard) as ModelFile
      const t = file.layout.tensors.find((x) => x.name === name)
      if (t === undefined)
        throw new MergeError({
          reason: `${role} ${dir}: ${shardIndexFile} puts tensor "${name}" in ${shard}, which does not hold it`,
        })
      tensors.set(name, { file, info: t })
    }
    for (const file of files)
      for (const t of file.layout.tensors)
        if (index.success.weightMap.get(t.name) !== file.name)
          throw new MergeError({
            reason: `${role} ${dir}: ${file.name} holds tensor "${t.name}", which ${shardIndexFile} ${
              index.success.weightMap.has(t.name)
                ? `puts in ${index.success.weightMap.get(t.name)}`
                : "does not list"
            }`,
          })
    return { dir: resolved, index: index.success, files, tensors, close: closeAll }
  } catch (error) {
    await closeAll()
    throw error
  }
}

/** One tensor's stored bytes, read into the start of `into` when given (a buffer reused per tensor). */
export const readModelTensor = async (
  model: ModelDir,
  tensor: ModelTensor,
  into?: Uint8Array,
): Promise<Uint8Array> => {
  const bytes = await readTensorFromFile(tensor.file.handle, tensor.file.layout, tensor.info, into)
  if (Result.isFailure(bytes))
    throw new MergeError({
      reason: `${model.dir}: ${tensor.file.name}: tensor "${tensor.info.name}": ${bytes.failure.message}`,
    })
  return bytes.success
}
