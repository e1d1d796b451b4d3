/**
 * The README's commands as a test reads them: the fenced ```bash blocks, each cut into commands
 * (continuation lines joined, comments dropped, `&&` and a trailing `&` understood, leading
 * `NAME=value` assignments kept apart), the words of each command as a POSIX shell would split
 * them, and the rows of the command table. Only the shell syntax the README needs is accepted;
 * anything else (pipes, redirections, `$` expansion, globs, sub-shells) is a `ShellSyntaxError`
 * naming the README line, so a new command in a form this reader cannot run fails loudly instead
 * of being run wrongly. `<name>` in a word is a placeholder (the README's convention), not a
 * redirection.
 */

export class ShellSyntaxError extends Error {
  override readonly name = "ShellSyntaxError"
}

export type ShellToken =
  | { readonly kind: "word"; readonly value: string }
  | { readonly kind: "op"; readonly value: "&&" | "&" }

/** Characters that mean shell syntax this reader does not run (outside quotes). */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  "|": "a pipe or ||",
  ";": "a command list with ;",
  ">": "a redirection",
  "<": "a redirection",
  "(": "a sub-shell",
  ")": "a sub-shell",
  $: "a $ expansion",
  "`": "a command substitution",
  "*": "a glob",
}

/** A `<placeholder>` starting at `i` (letters, digits, `.`, `_`, `-` between angle brackets), or undefined. */
const placeholderAt = (text: string, i: number): string | undefined =>
  /^<[A-Za-z][\w.-]*>/.exec(text.slice(i))?.[0]

/**
 * Splits shell text into words and the operators `&&` and `&`: single quotes keep everything,
 * double quotes keep everything but `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside
 * quotes escapes the next character (a backslash-newline joins lines), `#` at the start of a word
 * comments out the rest of its line.
 */
export const shellWords = (text: string): ReadonlyArray<ShellToken> => {
  const tokens: ShellToken[] = []
  let word = ""
  let inWord = false
  const end = () => {
    if (inWord) tokens.push({ kind: "word", value: word })
    word = ""
    inWord = false
  }
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      end()
      i++
    } else if (c === "#" && !inWord) {
      while (i < text.length && text[i] !== "\n") i++
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new ShellSyntaxError("a backslash at the end of the text")
      if (text[i + 1] === "\n") i += 2
      else {
        word += text[i + 1]
        inWord = true
        i += 2
      }
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1)
      if (close < 0) throw new ShellSyntaxError("an unclosed single quote")
      word += text.slice(i + 1, close)
      inWord = true
      i = close + 1
    } else if (c === '"') {
      i++
      inWord = true
      for (;;) {
        if (i >= text.length) throw new ShellSyntaxError("an unclosed double quote")
        const d = text[i]!
        if (d === '"') {
          i++
          break
        }
        if (d === "$" || d === "`") throw new ShellSyntaxError(`${UNSUPPORTED[d]} inside double quotes`)
        if (d === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) {
          word += text[i + 1]
          i += 2
        } else if (d === "\\" && text[i + 1] === "\n") i += 2
        else {
          word += d
          i++
        }
      }
    } else if (c === "&") {
      end()
      if (text[i + 1] === "&") {
        tokens.push({ kind: "op", value: "&&" })
        i += 2
      } else {
        tokens.push({ kind: "op", value: "&" })
        i++
      }
    } else if (c === "<" && placeholderAt(text, i) !== undefined) {
      const placeholder = placeholderAt(text, i)!
      word += placeholder
      inWord = true
      i += placeholder.length
    } else if (UNSUPPORTED[c] !== undefined) {
      throw new ShellSyntaxError(`${UNSUPPORTED[c]} (${JSON.stringify(c)}) is not supported here`)
    } else if (c === "~" && !inWord) {
      throw new ShellSyntaxError("a ~ home-directory expansion is not supported here")
    } else {
      word += c
      inWord = true
      i++
    }
  }
  end()
  return tokens
}

export interface ShellCommand {
  /** `NAME=value` assignments before the program. */
  readonly env: Readonly<Record<string, string>>
  /** The program and its arguments. */
  readonly words: ReadonlyArray<string>
  /** Ended by `&`: started, and the next command runs beside it. */
  readonly background: boolean
}

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/

/** The commands of one piece of shell text (`a && b &` → a, then b in the background). */
export const shellCommands = (text: string): ReadonlyArray<ShellCommand> => {
  const commands: ShellCommand[] = []
  let words: string[] = []
  const close = (background: boolean, op: string) => {
    if (words.length === 0) throw new ShellSyntaxError(`${op} with no command before it`)
    const env: Record<string, string> = {}
    let start = 0
    while (start < words.length - 1 && ASSIGNMENT.test(words[start]!)) {
      const [name, ...value] = words[start]!.split("=")
      env[name!] = value.join("=")
      start++
    }
    commands.push({ env, words: words.slice(start), background })
    words = []
  }
  for (const token of shellWords(text)) {
    if (token.kind === "word") words.push(token.value)
    else close(token.value === "&", token.value)
  }
  if (words.length > 0) close(false, "end")
  return commands
}

export interface ReadmeCommand extends ShellCommand {
  /** The README line the command starts on (1-based). */
  readonly line: number
  /** The command as written, continuation lines joined. */
  readonly text: string
}

export interface ReadmeBlock {
  /** The line of the opening fence (1-based). */
  readonly line: number
  readonly commands: ReadonlyArray<ReadmeCommand>
}

/** The fenced blocks of `language` in a Markdown text: the line of each opening fence, and its lines. */
export const fencedBlocks = (
  markdown: string,
  language: string,
): ReadonlyArray<{ readonly line: number; readonly lines: ReadonlyArray<string> }> => {
  const blocks: Array<{ line: number; lines: string[] }> = []
  let open: { line: number; lines: string[]; fence: string; language: string } | undefined
  const lines = markdown.split("\n")
  for (let index = 0; index < lines.length; index++) {
    const text = lines[index]!
    if (open === undefined) {
      const opening = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/.exec(text)
      if (opening !== null) open = { line: index + 1, lines: [], fence: opening[1]!, language: opening[2]! }
      continue
    }
    // A closing fence: the same character, at least as many, nothing after it.
    const closing = /^\s*(`{3,}|~{3,})\s*$/.exec(text)
    if (closing !== null && closing[1]![0] === open.fence[0] && closing[1]!.length >= open.fence.length) {
      if (open.language === language) blocks.push({ line: open.line, lines: open.lines })
      open = undefined
    } else open.lines.push(text)
  }
  if (open !== undefined) throw new ShellSyntaxError(`the fenced block at line ${open.line} is never closed`)
  return blocks
}

/** Every fenced ```bash block of the README, cut into commands. */
export const readmeBlocks = (markdown: string): ReadonlyArray<ReadmeBlock> =>
  fencedBlocks(markdown, "bash").map((block) => {
    const commands: ReadmeCommand[] = []
    let i = 0
    while (i < block.lines.length) {
      const first = i
      let text = block.lines[i]!
      // A line ending in a backslash continues on the next (outside a comment).
      while (/\\$/.test(text.replace(/\s+#.*$/, "")) && i + 1 < block.lines.length) {
        i++
        text = `${text}\n${block.lines[i]}`
      }
      i++
      const line = block.line + 1 + first
      try {
        for (const command of shellCommands(text))
          commands.push({
            ...command,
            line,
            text: text
              .replace(/\\\n\s*/g, "")
              .replace(/\s+#.*$/, "")
              .trim(),
          })
      } catch (error) {
        if (error instanceof ShellSyntaxError)
          throw new ShellSyntaxError(`README.md:${line}: ${error.message}`)
        throw error
      }
    }
    return { line: block.line, commands }
  })

export interface TableRow {
  readonly line: number
  readonly cells: ReadonlyArray<string>
}

/**
 * The rows of the Markdown table whose first header cell is `header` (cells trimmed, `\|` read as
 * a literal bar, surrounding backticks kept).
 */
export const tableRows = (markdown: string, header: string): ReadonlyArray<TableRow> => {
  const lines = markdown.split("\n")
  const cellsOf = (text: string) =>
    text
      .trim()
      .replace(/^\|/, "")
      .replace(/\|$/, "")
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim().replaceAll("\\|", "|"))
  const start = lines.findIndex((text) => text.trim().startsWith("|") && cellsOf(text)[0] === header)
  if (start < 0) return []
  const rows: TableRow[] = []
  for (let i = start + 2; i < lines.length && lines[i]!.trim().startsWith("|"); i++)
    rows.push({ line: i + 1, cells: cellsOf(lines[i]!) })
  return rows
}
