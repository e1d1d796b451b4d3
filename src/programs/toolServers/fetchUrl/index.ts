/** The `fetch_url` tool server: fetching, HTML to Markdown and pagination (the answer-leak block list is ../blockList). */
export { decodeFetchUrlArgs, decodeHttpUrl, type FetchUrlArgs } from "./args.ts"
export { FetchError, type FetchedDocument, fetchDocument } from "./fetchDocument.ts"
export { htmlToMarkdown, type Readable, stripTags } from "./html.ts"
export { paginate } from "./paginate.ts"
export {
  createFetchUrlServer,
  createFetchUrlTool,
  DEFAULT_USER_AGENT,
  type FetchUrlServerOptions,
  type FetchUrlTool,
} from "./server.ts"
