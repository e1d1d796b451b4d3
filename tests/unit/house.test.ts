/**
 * The house as rules, on the real tree and on planted violations: the dependency rules of
 * .dependency-cruiser.cjs (no folder or file cycles, rooms import only downward, the determinism
 * boundary on imports, commands never import commands) and the determinism boundary on calls —
 * pure code (events/ outside log/, projections/ outside runner/, every decider) reads no clock
 * and no randomness: no `Date.now()`, `new Date()` without an argument, `Math.random`,
 * `crypto`, `performance`. A time or a random draw comes in a command or an event.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseSync } from "@swc/core"
import { afterAll, describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "../..")

/** The files on the pure side of the boundary, relative to the repository root. */
const pureFiles = (base: string): string[] => {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(base, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(rel)
      else if (rel.endsWith(".ts") && isPure(rel)) out.push(rel)
    }
  }
  walk("src")
  return out.sort()
}

const isPure = (rel: string): boolean =>
  (rel.startsWith("src/events/") && !rel.startsWith("src/events/log/")) ||
  (rel.startsWith("src/projections/") && !rel.startsWith("src/projections/runner/")) ||
  path.basename(rel) === "decider.ts"

interface ImpureCall {
  readonly line: number
  readonly what: string
}

/** Clock and randomness reads in a source text, found on its syntax tree (comments and strings never match). */
const impureCalls = (source: string): ImpureCall[] => {
  const module = parseSync(source, { syntax: "typescript" })
  const found: Array<{ offset: number; what: string }> = []
  const start = module.span.start
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item)
      return
    }
    if (node === null || typeof node !== "object") return
    const n = node as { type?: string; span?: { start: number } } & Record<string, unknown>
    const at = (what: string) => found.push({ offset: (n.span?.start ?? start) - start, what })
    if (n.type === "MemberExpression") {
      const object = n.object as { type?: string; value?: string }
      const property = n.property as { type?: string; value?: string }
      if (object.type === "Identifier" && property.type === "Identifier") {
        if (object.value === "Date" && property.value === "now") at("Date.now")
        if (object.value === "Math" && property.value === "random") at("Math.random")
        if (object.value === "performance") at(`performance.${property.value}`)
      }
    }
    if (n.type === "NewExpression") {
      const callee = n.callee as { type?: string; value?: string }
      const args = n.arguments as unknown[] | undefined
      if (
        callee.type === "Identifier" &&
        callee.value === "Date" &&
        (args === undefined || args.length === 0)
      )
        at("new Date()")
    }
    if (n.type === "CallExpression") {
      const callee = n.callee as { type?: string; value?: string }
      if (callee.type === "Identifier" && callee.value === "Date") at("Date()")
    }
    if (n.type === "Identifier" && n.value === "crypto") at("crypto")
    for (const [key, value] of Object.entries(n)) {
      if (key === "span" || key === "ctxt") continue
      // `x.crypto` names a property, not the global: only a computed property is an expression.
      if (
        n.type === "MemberExpression" &&
        key === "property" &&
        (value as { type?: string }).type !== "Computed"
      )
        continue
      visit(value)
    }
  }
  visit(module.body)
  const lineOf = (offset: number) => source.slice(0, offset).split("\n").length
  return found.map((f) => ({ line: lineOf(f.offset), what: f.what }))
}

const depcruise = (
  cwd: string,
): { errors: number; violations: ReadonlyArray<{ rule: string; from: string; to: string }> } => {
  const bin = path.join(root, "node_modules/.bin/depcruise")
  const config = path.join(root, ".dependency-cruiser.cjs")
  let out: string
  try {
    out = execFileSync(bin, ["src", "--config", config, "--output-type", "json"], {
      cwd,
      encoding: "utf8",
      maxBuffer: 64 << 20,
    })
  } catch (error) {
    // depcruise exits non-zero when a rule is broken; its JSON is still on stdout.
    out = (error as { stdout?: string }).stdout ?? ""
  }
  const result = JSON.parse(out) as {
    summary: { error: number; violations: Array<{ rule: { name: string }; from: string; to: string }> }
  }
  return {
    errors: result.summary.error,
    violations: result.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to })),
  }
}

const temps: string[] = []
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true })
})

describe("the house", () => {
  it("pure code reads no clock and no randomness", () => {
    const files = pureFiles(root)
    expect(files.length).toBeGreaterThan(10)
    expect(files).toContain("src/actors/agent/decider.ts")
    const offenders = files.flatMap((file) =>
      impureCalls(fs.readFileSync(path.join(root, file), "utf8")).map((c) => `${file}:${c.line} ${c.what}`),
    )
    expect(offenders).toEqual([])
  })

  it("finds a planted clock or random read, and leaves deterministic uses alone", () => {
    const planted = [
      "export const decide = (state: number) => {",
      "  const at = Date.now()",
      "  const id = crypto.randomUUID()",
      "  return { state, at, id, r: Math.random(), t: new Date(), p: performance.now() }",
      "}",
    ].join("\n")
    expect(impureCalls(planted)).toEqual([
      { line: 2, what: "Date.now" },
      { line: 3, what: "crypto" },
      { line: 4, what: "Math.random" },
      { line: 4, what: "new Date()" },
      { line: 4, what: "performance.now" },
    ])
    const fine = [
      "// Date.now() in a comment, and in a string:",
      'const s = "Math.random()"',
      "export const age = (a: string, b: string) => Date.parse(b) - Date.parse(a)",
      "export const iso = (ms: number) => new Date(ms).toISOString()",
    ].join("\n")
    expect(impureCalls(fine)).toEqual([])
  })

  it("the dependency rules hold on the tree", { timeout: 120_000 }, () => {
    const { errors, violations } = depcruise(root)
    expect(violations).toEqual([])
    expect(errors).toBe(0)
  })

  it("the dependency rules catch a planted upward import, an effectful decider and a command importing a command", {
    timeout: 120_000,
  }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollout-house-"))
    temps.push(dir)
    fs.cpSync(path.join(root, "src"), path.join(dir, "src"), { recursive: true })
    const plant = (file: string, line: string) => fs.appendFileSync(path.join(dir, file), `\n${line}\n`)
    plant("src/events/subjects.ts", 'import "../cli/main.ts"')
    plant(
      "src/actors/probe/decider.ts",
      'import * as planted from "node:fs"\nexport const plantedRead = planted.readFileSync',
    )
    const commands = fs
      .readdirSync(path.join(dir, "src/cli/commands"))
      .filter((f) => f.endsWith(".ts"))
      .sort()
    plant(`src/cli/commands/${commands[0]}`, `import "./${commands[1]}"`)
    const rules = new Set(depcruise(dir).violations.map((v) => `${v.rule}: ${v.from} → ${v.to}`))
    expect(rules).toContain("no-upward-from-events: src/events/subjects.ts → src/cli/main.ts")
    expect(rules).toContain("determinism-boundary: src/actors/probe/decider.ts → fs")
    expect(rules).toContain(
      `no-cli-to-cli: src/cli/commands/${commands[0]} → src/cli/commands/${commands[1]}`,
    )
    // The planted upward import also closes folder cycles (events → cli → … → events).
    expect([...rules].some((r) => r.startsWith("no-folder-cycles:"))).toBe(true)
  })
})
