/**
 * The per-token staleness gate (issue 12, point 4). Properties (fast-check) over random
 * interleavings of weight updates (a monotone sequence of versions) and the tokens of several
 * samples, for random steps s and bounds η: no token that trains has s − v > η; with `mask`,
 * exactly the stale tokens are masked and no sample is emitted all masked; the lag histogram counts
 * every trained token once, as a brute-force recount does; the answer does not depend on the order
 * of the spans nor on how runs of one version are split; a version newer than s is refused; and the
 * group bound says exactly when a batch would drop nothing. Then given/when/then examples.
 */
import * as Result from "effect/Result"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { WeightVersionSpan } from "../../src/events/chat.ts"
import {
  type BatchGate,
  decodeStalenessConfig,
  defaultStaleness,
  type GateSample,
  gateBatch,
  gateSample,
  lastTrainableStep,
  type StalenessConfig,
  trainableAt,
  versionStep,
} from "../../src/projections/batches/staleness.ts"
import { noDrops } from "../../src/projections/rewards/dropReasons.ts"

/** One event of a run: the trainer publishes newer weights, or a sample samples one token. */
type Happening =
  | { readonly kind: "update"; readonly by: number }
  | { readonly kind: "token"; readonly sample: number; readonly newTurn: boolean }

const happening = (samples: number): fc.Arbitrary<Happening> =>
  fc.oneof(
    {
      arbitrary: fc.record({ kind: fc.constant("update" as const), by: fc.integer({ min: 1, max: 3 }) }),
      weight: 1,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant("token" as const),
        sample: fc.integer({ min: 0, max: samples - 1 }),
        newTurn: fc.boolean(),
      }),
      weight: 6,
    },
  )

/** Per sample, per turn, the version of every sampled token, as the interleaving produced them. */
type Tokens = ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>

const simulate = (samples: number, start: number, history: ReadonlyArray<Happening>): Tokens => {
  let live = start
  const turns: Array<Array<Array<number>>> = Array.from({ length: samples }, () => [])
  for (const h of history) {
    if (h.kind === "update") {
      live += h.by
      continue
    }
    const sample = turns[h.sample] as Array<Array<number>>
    if (h.newTurn || sample.length === 0) sample.push([])
    ;(sample[sample.length - 1] as Array<number>).push(live)
  }
  return turns
}

/** The maximal runs of one version of a turn, as spans. */
const canonicalSpans = (versions: ReadonlyArray<number>): Array<WeightVersionSpan> => {
  const spans: Array<WeightVersionSpan> = []
  for (const [i, v] of versions.entries()) {
    const last = spans[spans.length - 1]
    if (last !== undefined && last.version === String(v)) spans[spans.length - 1] = { ...last, end: i + 1 }
    else spans.push({ version: String(v), start: i, end: i + 1 })
  }
  return spans
}

/** The same tokens with runs cut at random points (and empty spans added), then shuffled. */
const scrambled = (versions: ReadonlyArray<number>, cuts: ReadonlyArray<number>, seed: number) => {
  const cutAt = new Set(cuts.map((c) => (versions.length === 0 ? 0 : c % (versions.length + 1))))
  const spans: Array<WeightVersionSpan> = []
  let begin = 0
  for (let i = 1; i <= versions.length; i++)
    if (i === versions.length || versions[i] !== versions[i - 1] || cutAt.has(i)) {
      spans.push({ version: String(versions[begin]), start: begin, end: i })
      if (cutAt.has(i) && i < versions.length) spans.push({ version: String(versions[i]), start: i, end: i })
      begin = i
    }
  // A deterministic shuffle driven by the seed fast-check chose.
  let state = seed >>> 0
  for (let i = spans.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    const j = state % (i + 1)
    ;[spans[i], spans[j]] = [spans[j] as WeightVersionSpan, spans[i] as WeightVersionSpan]
  }
  return spans
}

const asSamples = (
  tokens: Tokens,
  spansOf: (versions: ReadonlyArray<number>, at: number) => Array<WeightVersionSpan>,
) =>
  tokens.map(
    (turns, i): GateSample => ({ sample: `s${i}`, turns: turns.map((v, t) => spansOf(v, i * 100 + t)) }),
  )

const world = fc
  .integer({ min: 1, max: 5 })
  .chain((samples) =>
    fc.record({
      samples: fc.constant(samples),
      start: fc.integer({ min: 0, max: 20 }),
      history: fc.array(happening(samples), { maxLength: 80 }),
      ahead: fc.integer({ min: 0, max: 12 }),
      maxLag: fc.integer({ min: 0, max: 6 }),
      policy: fc.constantFrom<StalenessConfig["policy"]>("drop", "mask"),
      cuts: fc.array(fc.nat({ max: 40 }), { maxLength: 6 }),
      seed: fc.nat(),
    }),
  )
  .map((w) => {
    const tokens = simulate(w.samples, w.start, w.history)
    const newest = Math.max(w.start, ...tokens.flat(2))
    return {
      ...w,
      tokens,
      step: newest + w.ahead,
      config: { maxLag: w.maxLag, policy: w.policy } as StalenessConfig,
    }
  })

const ok = <A, E>(result: Result.Result<A, E>): A => {
  if (Result.isFailure(result)) throw new Error(`expected success, got ${String(result.failure)}`)
  return result.success
}

/** Which tokens (sample, turn, index) a batch trains and which it masks, token by token. */
const explode = (gate: BatchGate) => {
  const masked = new Set<string>()
  for (const r of gate.masked) for (let i = r.start; i < r.end; i++) masked.add(`${r.sample}/${r.turn}/${i}`)
  return masked
}

describe("staleness gate properties", () => {
  it("no trained token is older than η; mask masks exactly the stale tokens; the histogram recounts", () => {
    fc.assert(
      fc.property(world, ({ tokens, step, config }) => {
        const gate = ok(gateBatch(asSamples(tokens, canonicalSpans), step, config))
        const masked = explode(gate)
        const kept = new Set(gate.kept)
        const recount = new Map<number, number>()
        let violations = 0
        for (const [i, turns] of tokens.entries()) {
          const id = `s${i}`
          const all = turns.flatMap((versions, t) =>
            versions.map((v, j) => ({ key: `${id}/${t}/${j}`, lag: step - v })),
          )
          const stale = all.filter(({ lag }) => lag > config.maxLag)
          const droppedAs = gate.dropped.find((d) => d.sample === id)
          // Kept or dropped, never both, never neither.
          expect(kept.has(id)).toBe(droppedAs === undefined)
          if (droppedAs !== undefined) {
            expect(droppedAs.reason).toBe("stale")
            // Drop policy drops a sample with any stale token; mask only an all-stale one.
            expect(stale.length > 0 && (config.policy === "drop" || stale.length === all.length)).toBe(true)
            for (const { key } of all) expect(masked.has(key)).toBe(false)
            continue
          }
          expect(
            config.policy === "drop" ? stale.length === 0 : stale.length < all.length || all.length === 0,
          ).toBe(true)
          for (const { key, lag } of all) {
            const isMasked = masked.has(key)
            expect(isMasked).toBe(lag > config.maxLag)
            if (!isMasked && lag > config.maxLag) violations += 1
            if (!isMasked) recount.set(lag, (recount.get(lag) ?? 0) + 1)
          }
        }
        expect(violations).toBe(0)
        const expected = [...recount.entries()]
          .sort(([a], [b]) => a - b)
          .map(([lag, n]) => ({ lag, tokens: n }))
        expect(gate.lags).toEqual(expected)
        for (const { lag } of gate.lags) expect(lag).toBeLessThanOrEqual(config.maxLag)
        expect(gate.drops).toEqual({ ...noDrops, stale: gate.dropped.length })
      }),
      { numRuns: 400 },
    )
  })

  it("does not depend on the order of the spans nor on how runs are split", () => {
    fc.assert(
      fc.property(world, ({ tokens, step, config, cuts, seed }) => {
        const canonical = ok(gateBatch(asSamples(tokens, canonicalSpans), step, config))
        const messy = ok(
          gateBatch(
            asSamples(tokens, (v, at) => scrambled(v, cuts, seed + at)),
            step,
            config,
          ),
        )
        expect(messy).toEqual(canonical)
        for (const [i, turns] of tokens.entries()) {
          const one = { sample: `s${i}`, turns: turns.map((v) => canonicalSpans(v)) }
          const other = { sample: `s${i}`, turns: turns.map((v, t) => scrambled(v, cuts, seed + t)) }
          expect(ok(gateSample(other, step, config))).toEqual(ok(gateSample(one, step, config)))
        }
      }),
      { numRuns: 300 },
    )
  })

  it("refuses a token sampled under a version newer than the step, naming it", () => {
    fc.assert(
      fc.property(world, fc.integer({ min: 1, max: 5 }), ({ tokens, config }, before) => {
        const versions = tokens.flat(2)
        fc.pre(versions.length > 0)
        const newest = Math.max(...versions)
        const step = newest - before
        fc.pre(step >= 0)
        const result = gateBatch(asSamples(tokens, canonicalSpans), step, config)
        expect(Result.isFailure(result)).toBe(true)
        if (Result.isFailure(result)) expect(result.failure.reason).toMatch(/newer than training step/)
      }),
      { numRuns: 200 },
    )
  })

  it("the group bound says exactly when the batch would drop nothing", () => {
    fc.assert(
      fc.property(world, ({ tokens, step, config }) => {
        const samples = asSamples(tokens, canonicalSpans)
        const gate = ok(gateBatch(samples, step, config))
        expect(ok(trainableAt(samples, step, config))).toBe(gate.dropped.length === 0)
        const bound = ok(lastTrainableStep(samples, config))
        if (bound === undefined) expect(tokens.flat(2)).toEqual([])
        else expect(step <= bound).toBe(gate.dropped.length === 0)
      }),
      { numRuns: 300 },
    )
  })

  it("reads only canonical integer versions", () => {
    fc.assert(
      fc.property(fc.nat(), (n) => {
        expect(versionStep(String(n))).toBe(n)
      }),
    )
    fc.assert(
      fc.property(fc.string(), (label) => {
        const step = versionStep(label)
        if (step !== undefined) expect(String(step)).toBe(label)
      }),
    )
  })
})

const span = (version: string, start: number, end: number): WeightVersionSpan => ({ version, start, end })

describe("staleness gate examples", () => {
  it("given tokens 2 and 4 steps old, when η = 4 at step 10, then the sample is kept with its lags", () => {
    const sample = { sample: "a", turns: [[span("8", 0, 3)], [span("6", 0, 2), span("8", 2, 5)]] }
    expect(ok(gateSample(sample, 10))).toEqual({
      verdict: "keep",
      lags: [
        { lag: 2, tokens: 6 },
        { lag: 4, tokens: 2 },
      ],
    })
  })

  it("given one token 5 steps old, when the policy is drop, then the sample is dropped as stale", () => {
    const sample = { sample: "a", turns: [[span("5", 0, 1), span("9", 1, 4)]] }
    expect(ok(gateSample(sample, 10))).toEqual({ verdict: "drop", reason: "stale", staleTokens: 1 })
  })

  it("given stale runs of two versions side by side, when the policy is mask, then one range is masked", () => {
    const sample = {
      sample: "a",
      turns: [[span("3", 0, 2), span("4", 2, 5), span("7", 5, 8)], [span("9", 0, 1)]],
    }
    expect(ok(gateSample(sample, 10, { maxLag: 4, policy: "mask" }))).toEqual({
      verdict: "mask",
      masked: [{ turn: 0, start: 0, end: 5 }],
      lags: [
        { lag: 1, tokens: 1 },
        { lag: 3, tokens: 3 },
      ],
    })
  })

  it("given every token stale, when the policy is mask, then the sample is dropped, not emitted all masked", () => {
    const sample = { sample: "a", turns: [[span("1", 0, 4)]] }
    expect(ok(gateSample(sample, 10, { maxLag: 4, policy: "mask" }))).toEqual({
      verdict: "drop",
      reason: "stale",
      staleTokens: 4,
    })
  })

  it("given a batch, then kept, dropped, masked and the merged histogram come together, drops counted", () => {
    const samples = [
      { sample: "fresh", turns: [[span("9", 0, 2)]] },
      { sample: "old", turns: [[span("2", 0, 3)]] },
      { sample: "mixed", turns: [[span("5", 0, 1), span("9", 1, 3)]] },
    ]
    const gate = ok(gateBatch(samples, 10, { maxLag: 4, policy: "mask" }))
    expect(gate).toEqual({
      step: 10,
      kept: ["fresh", "mixed"],
      dropped: [{ sample: "old", reason: "stale" }],
      masked: [{ sample: "mixed", turn: 0, start: 0, end: 1 }],
      lags: [{ lag: 1, tokens: 4 }],
      drops: { ...noDrops, stale: 1 },
    })
    expect(ok(gateBatch(samples, 10)).kept).toEqual(["fresh"])
  })

  it("given a group whose oldest token is version 3, then it can be trained up to step 7 (η = 4) and not at 8", () => {
    const group = [
      { sample: "a", turns: [[span("3", 0, 2), span("6", 2, 3)]] },
      { sample: "b", turns: [[span("5", 0, 1)]] },
    ]
    expect(ok(lastTrainableStep(group))).toBe(7)
    expect(ok(trainableAt(group, 7))).toBe(true)
    expect(ok(trainableAt(group, 8))).toBe(false)
    // Under mask, sample a keeps its version-6 tokens until step 10, b its only token until 9.
    expect(ok(lastTrainableStep(group, { maxLag: 4, policy: "mask" }))).toBe(9)
    expect(ok(lastTrainableStep([{ sample: "empty", turns: [[]] }]))).toBeUndefined()
  })

  it("refuses bad input with an error naming what and where", () => {
    const reason = (result: Result.Result<unknown, { reason: string }>) =>
      Result.isFailure(result) ? result.failure.reason : "accepted"
    for (const label of ["7.0", "07", "v7", "-1", "1e3", " 7", "9007199254740993"])
      expect(reason(gateSample({ sample: "a", turns: [[], [span(label, 0, 1)]] }, 10))).toBe(
        `staleness: sample "a" turn 1 span 0: weight version "${label}" is not a training step (a non-negative integer written canonically, e.g. "7")`,
      )
    expect(reason(gateSample({ sample: "a", turns: [[span("9", 0, 2), span("9", 3, 4)]] }, 10))).toBe(
      'staleness: sample "a" turn 0: the spans leave a gap at token 2',
    )
    expect(reason(gateSample({ sample: "a", turns: [[span("9", 0, 2), span("9", 1, 4)]] }, 10))).toBe(
      'staleness: sample "a" turn 0: the spans overlap at token 1',
    )
    expect(reason(gateSample({ sample: "a", turns: [[span("9", 1, 2)]] }, 10))).toMatch(
      /leave a gap at token 0/,
    )
    expect(reason(gateSample({ sample: "a", turns: [[span("9", 2, 1)]] }, 10))).toMatch(
      /span 0: \[2, 1\) is not a range/,
    )
    expect(reason(gateSample({ sample: "a", turns: [[span("12", 0, 3)]] }, 10))).toBe(
      'staleness: sample "a" turn 0 tokens [0, 3) were sampled under weight version 12, newer than training step 10; versions must come from steps already trained',
    )
    expect(reason(gateSample({ sample: "a", turns: [] }, 1.5))).toMatch(
      /step 1.5 is not a non-negative integer/,
    )
    const twice = [
      { sample: "a", turns: [] },
      { sample: "a", turns: [] },
    ]
    expect(reason(gateBatch(twice, 3))).toBe('staleness: sample "a" is listed twice in the batch')
  })

  it("decodes the staleness section with defaults and names a bad key", () => {
    expect(ok(decodeStalenessConfig({}))).toEqual(defaultStaleness)
    expect(ok(decodeStalenessConfig({ maxLag: 2, policy: "mask" }))).toEqual({ maxLag: 2, policy: "mask" })
    const bad = decodeStalenessConfig({ maxLag: -1 })
    expect(Result.isFailure(bad) && bad.failure.reason).toMatch(/^staleness: .*maxLag/s)
    const extra = decodeStalenessConfig({ eta: 4 })
    expect(Result.isFailure(extra) && extra.failure.reason).toMatch(/eta/)
  })
})
