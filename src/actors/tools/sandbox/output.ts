/**
 * What both adapters share: stdout and stderr as two streams under one byte cap. The process's
 * output is always drained (never back-pressured into the process), buffered up to the cap whether
 * or not anyone reads it, and on the first byte past the cap the rest is dropped and `onOverflow`
 * runs once (the adapters kill the process there).
 */
import { PassThrough } from "node:stream"

export interface CappedOutput {
  readonly stdout: PassThrough
  readonly stderr: PassThrough
  readonly writeStdout: (chunk: Buffer) => void
  readonly writeStderr: (chunk: Buffer) => void
  /** Ends both streams (idempotent). */
  readonly end: () => void
  readonly truncated: () => boolean
}

export const cappedOutput = (limitBytes: number, onOverflow: () => void): CappedOutput => {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let written = 0
  let truncated = false
  let ended = false
  const writer =
    (target: PassThrough) =>
    (chunk: Buffer): void => {
      if (ended || truncated) return
      const room = limitBytes - written
      if (chunk.length <= room) {
        written += chunk.length
        target.write(chunk)
        return
      }
      if (room > 0) target.write(chunk.subarray(0, room))
      written = limitBytes
      truncated = true
      onOverflow()
    }
  return {
    stdout,
    stderr,
    writeStdout: writer(stdout),
    writeStderr: writer(stderr),
    end: () => {
      if (ended) return
      ended = true
      stdout.end()
      stderr.end()
    },
    truncated: () => truncated,
  }
}

/** A promise with its resolve function outside, for events that settle it later. */
export const deferred = <A>(): { readonly promise: Promise<A>; readonly resolve: (value: A) => void } => {
  let resolve: (value: A) => void = () => {}
  const promise = new Promise<A>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
