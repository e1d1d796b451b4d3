/**
 * The episode's chat messages as an immutable list with amortized O(1) append. Every version is a
 * prefix (`length`) of a buffer it may share with later versions: appending to the newest version
 * pushes onto the shared buffer, appending to an older one (a fork, a replay of a prefix) copies
 * first, so no version ever sees another's messages. Copying the whole context for every event
 * made folding an episode quadratic in its length (a fifth of an agent step's CPU at 60 turns).
 */
import type { ChatMessage } from "../../events/chat.ts"

export class MessageList implements Iterable<ChatMessage> {
  private array: ReadonlyArray<ChatMessage> | undefined

  private constructor(
    private readonly buffer: ChatMessage[],
    readonly length: number,
  ) {}

  static readonly empty: MessageList = new MessageList([], 0)

  static from(messages: ReadonlyArray<ChatMessage>): MessageList {
    return new MessageList([...messages], messages.length)
  }

  append(message: ChatMessage): MessageList {
    if (this.buffer.length === this.length) {
      this.buffer.push(message)
      return new MessageList(this.buffer, this.length + 1)
    }
    const copy = this.buffer.slice(0, this.length)
    copy.push(message)
    return new MessageList(copy, this.length + 1)
  }

  at(index: number): ChatMessage | undefined {
    const i = index < 0 ? this.length + index : index
    return i >= 0 && i < this.length ? this.buffer[i] : undefined
  }

  /** The messages as an array of their own (made once per version, then reused). */
  toArray(): ReadonlyArray<ChatMessage> {
    this.array ??= this.buffer.slice(0, this.length)
    return this.array
  }

  *[Symbol.iterator](): Iterator<ChatMessage> {
    for (let i = 0; i < this.length; i++) yield this.buffer[i]!
  }

  /** Tests and logs compare and print the messages, not the buffer they share. */
  toJSON(): ReadonlyArray<ChatMessage> {
    return this.toArray()
  }
}
