/**
 * `rollout merge --method <m> --base <dir> --models <dir>[:weight],… [--param k=v]… --out <dir>
 * [--dtype f32|f16|bf16] [--json]`: model fusion with mergekit's formulas, streamed one tensor at a
 * time (programs/merge/mergeModels.ts). The command only reads the flags into a merge and prints:
 * progress on stderr while it runs, then a summary (or one JSON object with `--json`).
 */
import * as Effect from "effect/Effect"
import { type MergeSummary, mergeModels } from "../../programs/merge/mergeModels.ts"
import { MergeError, parseMethod, parseModels, parseParams } from "../../programs/merge/mergeSpec.ts"
import type { FloatDType } from "../../programs/merge/tensorCodec.ts"
import { type GlobalOptions, printJson, progressLine, UsageError } from "../terminal/invocation.ts"

export interface MergeCommandOptions {
  readonly method: string
  readonly base: string
  readonly models: string
  readonly param?: ReadonlyArray<string>
  readonly out: string
  readonly dtype?: string
  readonly json?: boolean
}

const dtypeFlags: Readonly<Record<string, FloatDType>> = { f32: "F32", f16: "F16", bf16: "BF16" }

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`

const usage = (error: MergeError) => new UsageError(error.reason)

export const mergeCommand = (_global: GlobalOptions, options: MergeCommandOptions) =>
  Effect.gen(function* () {
    const method = parseMethod(options.method)
    if (method instanceof MergeError) return yield* Effect.fail(usage(method))
    const models = parseModels(options.models)
    if (models instanceof MergeError) return yield* Effect.fail(usage(models))
    const params = parseParams(method, options.param ?? [])
    if (params instanceof MergeError) return yield* Effect.fail(usage(params))
    const dtypeFlag = options.dtype?.toLowerCase()
    const dtype = dtypeFlag === undefined ? undefined : dtypeFlags[dtypeFlag]
    if (dtypeFlag !== undefined && dtype === undefined)
      return yield* Effect.fail(
        new UsageError(
          `--dtype must be one of ${Object.keys(dtypeFlags).join(", ")}, got "${options.dtype}"`,
        ),
      )
    const progress = progressLine()
    const summary: MergeSummary = yield* mergeModels({
      method,
      base: options.base,
      models,
      params,
      out: options.out,
      ...(dtype === undefined ? {} : { dtype }),
      onProgress: (p) =>
        progress.update(
          `merge ${method}: ${p.tensorsDone}/${p.tensorsTotal} tensors, ${mb(p.bytesDone)} of ${mb(p.bytesTotal)} read`,
          p.tensorsDone === p.tensorsTotal,
        ),
    }).pipe(Effect.mapError((e) => new UsageError(e.reason)))
    if (options.json === true) return printJson({ ...summary, dtype: dtype ?? "base", models, params })
    process.stdout.write(
      [
        `merged ${summary.merged} tensors (${summary.copied} copied from the base) of ${models.length + 1} models with ${method} into ${summary.out}`,
        `files: ${summary.files.join(", ")}${summary.sideFiles.length > 0 ? `; copied from the base: ${summary.sideFiles.join(", ")}` : ""}`,
        `${mb(summary.bytesRead)} read, ${mb(summary.bytesWritten)} written in ${summary.seconds.toFixed(1)} s (${mb(summary.bytesRead / Math.max(summary.seconds, 1e-9))}/s); largest tensor ${mb(summary.largestTensorBytes)}`,
      ].join("\n") + "\n",
    )
  })
