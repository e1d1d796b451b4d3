/** The clock port: the manual clock moves only when told, both readings together, never back. */
import { describe, expect, it } from "vitest"
import { manualClock, systemClock } from "../../src/runtime/clock.ts"

describe("clock", () => {
  it("manual clock: fixed until advanced, ISO from the wall reading, refuses to go back", () => {
    const clock = manualClock(Date.UTC(2026, 11, 7, 12))
    expect(clock.iso()).toBe("2026-12-07T12:00:00.000Z")
    expect(clock.monotonicMs()).toBe(0)
    clock.advance(1500)
    expect(clock.wallMs()).toBe(Date.UTC(2026, 11, 7, 12) + 1500)
    expect(clock.monotonicMs()).toBe(1500)
    expect(() => clock.advance(-1)).toThrow(/only moves forward/)
    expect(() => clock.advance(Number.NaN)).toThrow(/only moves forward/)
  })

  it("system clock: monotonic reading never decreases", () => {
    let last = systemClock.monotonicMs()
    for (let i = 0; i < 1000; i++) {
      const now = systemClock.monotonicMs()
      expect(now).toBeGreaterThanOrEqual(last)
      last = now
    }
    expect(Date.parse(systemClock.iso())).toBeGreaterThan(Date.UTC(2020, 0, 1))
  })
})
