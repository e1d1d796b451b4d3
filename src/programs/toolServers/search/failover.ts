/**
 * Provider failover with cool-down: a query goes to the providers in order; one that errors or
 * times out is cooled down for `cooldownMs` (skipped by later queries) and the next one is tried.
 * When every provider is cooling down, the one whose cool-down ends first is tried anyway (a probe),
 * so a single-provider setup keeps answering once the outage is over; a failed probe renews its
 * cool-down. The clock is injected, so tests step through cool-downs without waiting. Every message
 * leaving here has the providers' secrets redacted.
 */
import { ProviderError, redact, type SearchHit, type SearchProvider } from "./provider.ts"

export interface FailoverOptions {
  readonly cooldownMs: number
  readonly timeoutMs: number
  /** Milliseconds since some epoch (Date.now by default); only used for cool-downs. */
  readonly now: () => number
}

export type FailoverOutcome =
  | {
      readonly ok: true
      readonly provider: string
      readonly hits: ReadonlyArray<SearchHit>
      /** Providers that failed before this one answered, with their reasons. */
      readonly failures: ReadonlyArray<string>
    }
  | { readonly ok: false; readonly error: string; readonly failures: ReadonlyArray<string> }

export interface ProviderStatus {
  readonly name: string
  /** Set while the provider is cooling down (clock milliseconds when it becomes available). */
  readonly coolingDownUntil?: number
  readonly lastError?: string
}

export interface Failover {
  readonly search: (query: string, numResults: number) => Promise<FailoverOutcome>
  readonly status: () => ReadonlyArray<ProviderStatus>
}

class Timeout extends Error {}

const runWithTimeout = async (
  provider: SearchProvider,
  query: string,
  numResults: number,
  timeoutMs: number,
): Promise<ReadonlyArray<SearchHit>> => {
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new Timeout())
    }, timeoutMs)
  })
  try {
    return await Promise.race([provider.search(query, numResults, controller.signal), timedOut])
  } catch (error) {
    if (error instanceof Timeout || controller.signal.aborted) {
      throw new ProviderError(provider.name, `timed out after ${timeoutMs} ms`)
    }
    throw error
  } finally {
    clearTimeout(timer)
  }
}

export const createFailover = (
  providers: ReadonlyArray<SearchProvider>,
  options: FailoverOptions,
): Failover => {
  const secrets = providers.flatMap((p) => p.secrets ?? [])
  const cooldownUntil = new Map<number, number>()
  const lastError = new Map<number, string>()
  const safe = (text: string) => redact(text, secrets)
  const reason = (provider: SearchProvider, error: unknown): string =>
    safe(
      error instanceof ProviderError
        ? error.message
        : `${provider.name}: ${error instanceof Error ? error.message : String(error)}`,
    )

  const search = async (query: string, numResults: number): Promise<FailoverOutcome> => {
    const now = options.now()
    const indexed = providers.map((provider, i) => ({ provider, i }))
    const available = indexed.filter(({ i }) => (cooldownUntil.get(i) ?? Number.NEGATIVE_INFINITY) <= now)
    const skipped = indexed.filter(({ i }) => !available.some((a) => a.i === i))
    const probe = [...skipped].sort(
      (a, b) => (cooldownUntil.get(a.i) ?? 0) - (cooldownUntil.get(b.i) ?? 0) || a.i - b.i,
    )[0]
    const candidates = available.length > 0 || probe === undefined ? available : [probe]
    const failures: string[] = []
    for (const { provider, i } of candidates) {
      try {
        const hits = await runWithTimeout(provider, query, numResults, options.timeoutMs)
        cooldownUntil.delete(i)
        lastError.delete(i)
        return {
          ok: true,
          provider: provider.name,
          hits: hits.map((h) => ({ title: safe(h.title), url: safe(h.url), snippet: safe(h.snippet) })),
          failures,
        }
      } catch (error) {
        const message = reason(provider, error)
        failures.push(message)
        lastError.set(i, message)
        cooldownUntil.set(i, options.now() + options.cooldownMs)
      }
    }
    const cooling = skipped
      .filter((s) => !candidates.includes(s))
      .map(
        ({ provider, i }) =>
          `${provider.name} cooling down for ${Math.max(0, Math.ceil(((cooldownUntil.get(i) ?? now) - now) / 1000))} s`,
      )
    const parts = [...failures, ...cooling]
    return {
      ok: false,
      error:
        providers.length === 0
          ? "no search provider is configured"
          : `every search provider failed: ${parts.join("; ")}`,
      failures,
    }
  }

  const status = (): ReadonlyArray<ProviderStatus> => {
    const now = options.now()
    return providers.map((p, i) => {
      const until = cooldownUntil.get(i)
      const error = lastError.get(i)
      return {
        name: p.name,
        ...(until !== undefined && until > now ? { coolingDownUntil: until } : {}),
        ...(error !== undefined ? { lastError: error } : {}),
      }
    })
  }

  return { search, status }
}
