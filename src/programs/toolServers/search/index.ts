/** The `search` tool server: providers, failover, the offline BM25 provider and the corpus. */
export { DEFAULT_SEARCH_LIMITS, decodeSearchArgs, type SearchArgs, type SearchLimits } from "./args.ts"
export {
  type Corpus,
  type CorpusDocument,
  corpusUrlKey,
  loadCorpus,
  makeCorpus,
  parseCorpus,
} from "./corpus.ts"
export type { Decoded } from "./decode.ts"
export { createFailover, type Failover, type FailoverOptions, type ProviderStatus } from "./failover.ts"
export { bestSnippet, createBm25Index, offlineProvider } from "./offline.ts"
export {
  bingProvider,
  DEFAULT_ENDPOINTS,
  googleProvider,
  type HttpProviderConfig,
  jinaProvider,
  ONLINE_PROVIDERS,
  type OnlineProviderName,
  PROVIDER_ENV_KEYS,
  serperProvider,
} from "./online.ts"
export { ProviderError, type SearchHit, type SearchProvider } from "./provider.ts"
export {
  createSearchServer,
  createSearchTool,
  type QueryResult,
  type ResolvedProviders,
  resolveSearchProviders,
  SEARCH_PROVIDER_NAMES,
  type SearchProviderName,
  type SearchServerOptions,
  type SearchTool,
} from "./server.ts"
