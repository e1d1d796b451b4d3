/**
 * The answer-leak block list: URLs an agent under evaluation must not read because they hold
 * benchmark answers (dataset hubs, the benchmarks' own repositories, their answer files). fetch_url
 * refuses them and search drops such hits.
 *
 * A rule is `host[/path]`, matched against a URL's host and path (never its query or fragment),
 * case-insensitively:
 * - the host matches itself and its subdomains (`huggingface.co` matches `www.huggingface.co`);
 *   a host of `*` matches any host;
 * - the path matches as a prefix ending at a segment boundary (`huggingface.co/datasets` matches
 *   `/datasets` and `/datasets/x`, not `/datasetsfoo`); `*` in the path matches any characters,
 *   so a rule with host `*` and path `*browse_comp_test_set*` matches that file anywhere.
 * The path is percent-decoded and its repeated slashes collapsed before matching, so encoding does
 * not slip past a rule.
 */
import { type Decoded, fail, ok } from "../decoding/decode.ts"

/** Benchmark answer sources (see REFERENCE §4): extend it with `extraBlockList`, or replace it. */
export const DEFAULT_BLOCK_LIST: ReadonlyArray<string> = [
  // dataset hubs (GAIA, HLE, FRAMES, WebWalkerQA, Seal-0, xbench, BrowseComp-ZH mirrors…)
  "huggingface.co/datasets",
  "huggingface.co/api/datasets",
  "hf.co/datasets",
  "datasets-server.huggingface.co",
  "hf-mirror.com/datasets",
  "huggingface.co/spaces/gaia-benchmark",
  "modelscope.cn/datasets",
  "kaggle.com/datasets",
  // any proxy, reader or archive path wrapping a dataset-hub URL
  "*/*huggingface.co/datasets",
  "*/*hf.co/datasets",
  // the benchmarks' repositories and answer files
  "github.com/openai/simple-evals",
  "raw.githubusercontent.com/openai/simple-evals",
  "openaipublic.blob.core.windows.net/simple-evals",
  "github.com/PALIN2018/BrowseComp-ZH",
  "raw.githubusercontent.com/PALIN2018/BrowseComp-ZH",
  "github.com/xbench-ai/xbench-evals",
  "raw.githubusercontent.com/xbench-ai/xbench-evals",
  "github.com/centerforaisafety/hle",
  "raw.githubusercontent.com/centerforaisafety/hle",
  "github.com/Alibaba-NLP/WebWalker",
  "raw.githubusercontent.com/Alibaba-NLP/WebWalker",
  "*/*browse_comp_test_set*",
  "*/*browsecomp-zh*.xlsx",
  "*/*gaia*/*metadata.jsonl",
  "*/*webwalkerqa*.jsonl",
]

export interface BlockList {
  /** The rule a URL matches, or undefined when it is allowed (and for unparseable URLs). */
  readonly match: (url: string | URL) => string | undefined
  readonly rules: ReadonlyArray<string>
}

const escapeRegExp = (s: string): string => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")

const safeDecode = (s: string): string => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

const normalizePath = (path: string): string => {
  const decoded = safeDecode(safeDecode(path))
    .toLowerCase()
    .replace(/\/{2,}/g, "/")
  return decoded.startsWith("/") ? decoded : `/${decoded}`
}

const normalizeHost = (host: string): string => host.toLowerCase().replace(/\.$/, "")

interface CompiledRule {
  readonly rule: string
  readonly host: string
  readonly path: RegExp | undefined
}

const compileRule = (raw: string): Decoded<CompiledRule> => {
  const rule = raw.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "")
  if (rule === "") return fail("a block-list rule must not be empty")
  const slash = rule.indexOf("/")
  const host = normalizeHost(slash === -1 ? rule : rule.slice(0, slash))
  const pathPart = slash === -1 ? "" : rule.slice(slash + 1).replace(/\/+$/, "")
  if (host === "") return fail(`block-list rule "${raw}" has no host (use "*" for any host)`)
  if (/[\s?#]/.test(rule))
    return fail(`block-list rule "${raw}" must be host[/path] without spaces, query or fragment`)
  const path =
    pathPart === ""
      ? undefined
      : new RegExp(`^/${pathPart.toLowerCase().split("*").map(escapeRegExp).join(".*")}(?:/|$)`)
  return ok({ rule: raw.trim(), host, path })
}

const hostMatches = (ruleHost: string, host: string): boolean =>
  ruleHost === "*" || host === ruleHost || host.endsWith(`.${ruleHost}`)

/** Compiles rules; the error names the first bad rule. */
export const compileBlockList = (rules: ReadonlyArray<string>): Decoded<BlockList> => {
  const compiled: CompiledRule[] = []
  for (const raw of rules) {
    const c = compileRule(raw)
    if (!c.ok) return c
    compiled.push(c.value)
  }
  const match = (url: string | URL): string | undefined => {
    let parsed: URL
    try {
      parsed = typeof url === "string" ? new URL(url) : url
    } catch {
      return undefined
    }
    const host = normalizeHost(parsed.hostname)
    const path = normalizePath(parsed.pathname)
    for (const c of compiled) {
      if (hostMatches(c.host, host) && (c.path === undefined || c.path.test(path))) return c.rule
    }
    return undefined
  }
  return ok({ match, rules: compiled.map((c) => c.rule) })
}

/** The default list compiled (it is known to be valid). */
export const defaultBlockList = (): BlockList => {
  const compiled = compileBlockList(DEFAULT_BLOCK_LIST)
  if (!compiled.ok) throw new Error(`the default block list is invalid: ${compiled.error}`)
  return compiled.value
}
