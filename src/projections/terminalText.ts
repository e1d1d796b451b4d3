/**
 * Text that reaches a terminal from outside the program — log entries, tool output, error
 * messages quoting either — made inert, and the aligned text table every read model renders its
 * rows into. A damaged or hostile log line can carry an ESC sequence that recolours, moves the
 * cursor, retitles the window or hides what came before it; printed raw, the report of the damage
 * would itself be damaged. Every printer of such text goes through `terminalText` (the read models'
 * tables and reports, the CLI's warnings and error lines, `log tail`). Pure: renderings that use it
 * are strings a command prints and a viewer may show.
 */

/**
 * Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and the bidi
 * marks and overrides that reorder what is shown. Backslashes are left alone: an escape printed
 * here and the same characters typed literally look alike, which costs clarity, never safety.
 */
const isUnsafe = (code: number): boolean =>
  code < 0x20 ||
  (code >= 0x7f && code <= 0x9f) ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0x200e ||
  code === 0x200f ||
  (code >= 0x202a && code <= 0x202e) ||
  (code >= 0x2066 && code <= 0x2069)

const NAMED: Readonly<Record<number, string>> = { 10: "\\n", 13: "\\r", 9: "\\t" }

const visible = (code: number): string =>
  NAMED[code] ??
  (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`)

/**
 * `text` with every character that could drive the terminal shown as a visible escape (`\x1b`,
 * `\r`, `\u202e`). `multiline` keeps newlines and tabs, for text whose layout is the caller's own
 * (an error message over several lines); everything else (table cells, the tab-separated rows of
 * `log tail`) escapes them too, so one entry stays one line.
 */
export const terminalText = (text: string, options?: { readonly multiline?: boolean }): string => {
  const keepLayout = options?.multiline === true
  let out = ""
  let from = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (!isUnsafe(code) || (keepLayout && (code === 0x0a || code === 0x09))) continue
    out += text.slice(from, i) + visible(code)
    from = i + 1
  }
  return from === 0 ? text : out + text.slice(from)
}

/** Renders rows as an aligned text table. */
export const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string => {
  // Cells often hold text from the log (ids, models, reasons): one cell stays one inert line.
  const cells = [header, ...rows.map((r) => r.map((c) => terminalText(String(c))))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)))
  return cells
    .map((r) =>
      r
        .map((c, i) => (c ?? "").padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")
}
