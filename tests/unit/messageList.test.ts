import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { MessageList } from "../../src/actors/agent/messageList.ts"
import type { ChatMessage } from "../../src/events/chat.ts"

const message = (n: number): ChatMessage => ({ role: n % 2 === 0 ? "user" : "assistant", content: `m${n}` })

describe("MessageList", () => {
  it("keeps every version as it was, whichever version is appended to", () => {
    // Operations: append to the version at some index (older versions fork, the newest extends).
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (picks) => {
        const versions: MessageList[] = [MessageList.empty]
        const expected: ChatMessage[][] = [[]]
        picks.forEach((pick, n) => {
          const from = pick % versions.length
          versions.push(versions[from]!.append(message(n)))
          expected.push([...expected[from]!, message(n)])
        })
        versions.forEach((v, i) => {
          expect(v.length).toBe(expected[i]!.length)
          expect(v.toArray()).toEqual(expected[i])
          expect([...v]).toEqual(expected[i])
          expect(v.at(-1)).toEqual(expected[i]!.at(-1))
        })
      }),
    )
  })

  it("does not share its array with the caller of from(), nor toArray()'s with later versions", () => {
    const source = [message(0)]
    const list = MessageList.from(source)
    source.push(message(1))
    expect(list.toArray()).toEqual([message(0)])
    const before = list.toArray()
    list.append(message(2))
    expect(before).toEqual([message(0)])
    expect(JSON.stringify({ messages: list })).toBe(JSON.stringify({ messages: [message(0)] }))
  })
})
