/**
 * Damage to an embedded log file as fast-check makes it, and the model a test checks the log's
 * report against: lines replaced by arbitrary bytes (terminal escapes included), inserted or
 * deleted, the file cut anywhere, a partial line appended. A complete line decodes exactly when it
 * is the original line of the position its line number gives it; the bytes after the last newline
 * are the incomplete tail.
 */
import fc from "fast-check"

export const NEWLINE = 0x0a

/** The lines of a sound log file (it ends with a newline). */
export const linesOf = (file: Buffer): Buffer[] =>
  file.length === 0
    ? []
    : file
        .subarray(0, file.length - 1)
        .toString("latin1")
        .split("\n")
        .map((l) => Buffer.from(l, "latin1"))

export type Damage =
  | { readonly kind: "replace"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "delete"; readonly at: number }

/** Garbage: arbitrary bytes, or text with terminal escapes, or a line that is JSON but no entry. */
export const garbage = fc.oneof(
  fc.uint8Array({ maxLength: 60 }),
  fc.string({ maxLength: 40 }).map((s) => Buffer.from(`\u001b[31m${s}\u0007`)),
  fc.constant(Buffer.from('{"position":1,"subject":"dmg.ev.probe.x"}')),
)

export const damageArb = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), bytes: garbage }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: garbage }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  ),
  { maxLength: 4 },
)

export interface Expected {
  readonly complete: number
  readonly broken: number[]
  readonly tail: { readonly offset: number; readonly bytes: Buffer } | undefined
}

/**
 * The model: split the damaged bytes at newlines; a complete line decodes exactly when it is the
 * original line of the position its line number gives it; the bytes after the last newline are
 * the incomplete tail.
 */
export const expectedOf = (bytes: Buffer, original: ReadonlyArray<Buffer>): Expected => {
  const broken: number[] = []
  let start = 0
  let line = 0
  for (;;) {
    const nl = bytes.indexOf(NEWLINE, start)
    if (nl === -1) break
    line++
    const segment = bytes.subarray(start, nl)
    if (!(line <= original.length && segment.equals(original[line - 1]!))) broken.push(line)
    start = nl + 1
  }
  return {
    complete: line,
    broken,
    tail: start < bytes.length ? { offset: start, bytes: Buffer.from(bytes.subarray(start)) } : undefined,
  }
}

export const damaged = (
  original: ReadonlyArray<Buffer>,
  damage: ReadonlyArray<Damage>,
  cut: number,
  partial: Buffer,
) => {
  const lines = [...original]
  for (const d of damage) {
    const at = lines.length === 0 ? 0 : d.at % (lines.length + (d.kind === "insert" ? 1 : 0))
    if (d.kind === "replace" && lines.length > 0) lines[at] = Buffer.from(d.bytes)
    if (d.kind === "insert") lines.splice(at, 0, Buffer.from(d.bytes))
    if (d.kind === "delete" && lines.length > 0) lines.splice(at, 1)
  }
  const whole = Buffer.concat(lines.flatMap((l) => [l, Buffer.from([NEWLINE])]))
  return Buffer.concat([whole.subarray(0, Math.max(0, whole.length - cut)), partial])
}
