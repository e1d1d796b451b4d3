/** The `search` tool server: providers, failover and the offline BM25 provider (over ../corpus). */
export { DEFAULT_SEARCH_LIMITS, decodeSearchArgs, type SearchArgs, type SearchLimits } from "./args.ts"
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
