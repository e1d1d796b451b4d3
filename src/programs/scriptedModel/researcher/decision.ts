/**
 * A step the researcher decides — search, read or answer — with the `<think>` text saying why, and
 * the phrasing that text shares: how an answer kind is named and how page text is quoted.
 */
import type { AnswerKind } from "./question.ts"

export type Decision =
  | { readonly kind: "search"; readonly query: string; readonly think: string }
  | { readonly kind: "read"; readonly url: string; readonly think: string }
  | { readonly kind: "answer"; readonly answer: string; readonly think: string }

/** Page text quoted in a `<think>`, cut to `max` characters. */
export const quote = (text: string, max = 160): string =>
  `"${text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text}"`

/** How a `<think>` names what the question asks for. */
export const KIND_WORDS: Readonly<Record<AnswerKind, string>> = {
  year: "a year",
  number: "a number",
  place: "a place name",
  name: "a name",
}
