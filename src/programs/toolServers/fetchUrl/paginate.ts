/**
 * Splits a document into pages of at most `pageSize` characters, preferring to break at a paragraph,
 * then a line, then a space in the last quarter of a page, and never inside a surrogate pair.
 * Joining the pages gives the text back exactly.
 */
export const paginate = (text: string, pageSize: number): ReadonlyArray<string> => {
  const size = Math.max(1, Math.floor(pageSize))
  if (text.length <= size) return [text]
  const pages: string[] = []
  let start = 0
  while (start < text.length) {
    if (text.length - start <= size) {
      pages.push(text.slice(start))
      break
    }
    let end = start + size
    const floor = start + Math.floor(size * 0.75)
    for (const separator of ["\n\n", "\n", " "]) {
      const at = text.lastIndexOf(separator, end - separator.length)
      if (at >= floor) {
        end = at + separator.length
        break
      }
    }
    const code = text.charCodeAt(end - 1)
    if (code >= 0xd800 && code <= 0xdbff && end - 1 > start) end -= 1
    pages.push(text.slice(start, end))
    start = end
  }
  return pages
}
