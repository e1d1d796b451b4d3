/**
 * The reader of the README's shell commands (tests/support/readmeShell.ts), which the README test
 * trusts to run what the README says: words split as a POSIX shell splits them (fuzzed: any words,
 * quoted either way, come back unchanged), commands cut at `&&` and `&`, continuation lines and
 * comments, `<placeholders>`, the shell syntax it refuses by name, fenced blocks of one language,
 * and the command table.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import {
  fencedBlocks,
  readmeBlocks,
  ShellSyntaxError,
  shellCommands,
  shellWords,
  tableRows,
} from "../support/readmeShell.ts"

const words = (text: string) => shellWords(text).map((t) => (t.kind === "word" ? t.value : `<op ${t.value}>`))

/** A word quoted for a POSIX shell with single quotes (a quote inside: close, escaped quote, reopen). */
const singleQuoted = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`
/** A word in double quotes (`\` and `"` escaped; no `$` or backquote inside). */
const doubleQuoted = (word: string) => `"${word.replace(/[\\"]/g, "\\$&")}"`

describe("shell words", () => {
  it("splits as a shell does", () => {
    expect(words(`node bin/rollout.js dock call s__t --args '{"query": "a b"}'`)).toEqual([
      "node",
      "bin/rollout.js",
      "dock",
      "call",
      "s__t",
      "--args",
      '{"query": "a b"}',
    ])
    expect(words(`a\\ b "c \\"d\\"" e'f'g # a comment`)).toEqual(["a b", 'c "d"', "efg"])
    expect(words("npm install && npm start")).toEqual(["npm", "install", "<op &&>", "npm", "start"])
    expect(words("x --out <dir> --a=<b>.json")).toEqual(["x", "--out", "<dir>", "--a=<b>.json"])
    expect(words("eval … --run r")).toEqual(["eval", "…", "--run", "r"])
    expect(words("a#b")).toEqual(["a#b"])
  })

  it("refuses what it does not run, saying what it is", () => {
    for (const [text, what] of [
      ["a | b", "a pipe"],
      ["a > f", "a redirection"],
      ["a < f", "a redirection"],
      ["a; b", "a command list"],
      ["echo $HOME", "a $ expansion"],
      ['echo "$HOME"', "a $ expansion"],
      ["echo `date`", "a command substitution"],
      ["ls *.ts", "a glob"],
      ["(cd x)", "a sub-shell"],
      ["cat ~/x", "home-directory"],
      ["echo 'open", "unclosed single quote"],
      ['echo "open', "unclosed double quote"],
    ] as const)
      expect(() => shellWords(text), text).toThrow(what)
  })

  test.prop([fc.array(fc.string(), { minLength: 1, maxLength: 8 })])(
    "single-quoted words come back as they were",
    (ws) => {
      expect(words(ws.map(singleQuoted).join(" "))).toEqual(ws)
    },
  )

  test.prop([
    fc.array(
      fc.string().filter((w) => !/[$`]/.test(w)),
      { minLength: 1, maxLength: 8 },
    ),
  ])("double-quoted words come back as they were", (ws) => {
    expect(words(ws.map(doubleQuoted).join(" \\\n  "))).toEqual(ws)
  })

  test.prop([fc.string()])("any text gives words or a ShellSyntaxError, nothing else", (text) => {
    try {
      shellWords(text)
    } catch (error) {
      expect(error).toBeInstanceOf(ShellSyntaxError)
    }
  })
})

describe("shell commands", () => {
  it("cuts at && and &, with leading assignments apart", () => {
    expect(shellCommands("A=1 B=x=y node a.js & node b.js && c")).toEqual([
      { env: { A: "1", B: "x=y" }, words: ["node", "a.js"], background: true },
      { env: {}, words: ["node", "b.js"], background: false },
      { env: {}, words: ["c"], background: false },
    ])
    expect(() => shellCommands("&& a")).toThrow(ShellSyntaxError)
  })
})

describe("the README's blocks and table", () => {
  const markdown = [
    "# x", //                                       1
    "```bash", //                                   2
    "npm install && npm start   # one line", //     3
    "node bin/rollout.js eval --bench b \\", //    4
    "  --data f.csv   # continued", //              5
    "```", //                                       6
    "```", //                                       7
    "not bash | at all", //                         8
    "```", //                                       9
    "~~~bash", //                                  10
    "a &", //                                      11
    "b", //                                        12
    "~~~", //                                      13
    "| command | what |", //                       14
    "|---|---|", //                                15
    "| `rollout a [--x n]` | y \\| z `--w` |", // 16
  ].join("\n")

  it("reads the commands of bash blocks only, with their README lines", () => {
    const blocks = readmeBlocks(markdown)
    expect(blocks.map((b) => b.line)).toEqual([2, 10])
    expect(blocks[0]!.commands.map((c) => [c.line, c.words.join(" "), c.text])).toEqual([
      [3, "npm install", "npm install && npm start"],
      [3, "npm start", "npm install && npm start"],
      [
        4,
        "node bin/rollout.js eval --bench b --data f.csv",
        "node bin/rollout.js eval --bench b --data f.csv",
      ],
    ])
    expect(blocks[1]!.commands.map((c) => [c.line, c.words.join(" "), c.background])).toEqual([
      [11, "a", true],
      [12, "b", false],
    ])
  })

  it("keeps a shorter fence inside a longer one as text", () => {
    expect(fencedBlocks("````bash\na\n```\nb\n````\n", "bash")).toEqual([
      { line: 1, lines: ["a", "```", "b"] },
    ])
  })

  it("names the README line of a command it cannot read, and an unclosed fence", () => {
    expect(() => readmeBlocks("```bash\nok\nls | wc\n```\n")).toThrow(/^README\.md:3: a pipe/)
    expect(() => fencedBlocks("```bash\nx\n", "bash")).toThrow(/line 1 is never closed/)
  })

  it("reads the command table's rows", () => {
    expect(tableRows(markdown, "command")).toEqual([
      { line: 16, cells: ["`rollout a [--x n]`", "y | z `--w`"] },
    ])
    expect(tableRows(markdown, "nothing")).toEqual([])
  })
})
