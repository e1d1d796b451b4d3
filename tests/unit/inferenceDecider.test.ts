/**
 * The inference pool's decider, given/when/then: what a group records and keeps when endpoints
 * join and leave (duplicates, missing keys, draining), when calls and probes fail or answer
 * (ejection at the threshold, bad requests not counted, `retry-after` holding back the return),
 * when weight versions are reported or published, and the weight-update step (pause, updated and
 * recorded, failed → recorded and ejected until an update on it succeeds, which members a publish
 * updates); events read back from the log (no ids) fold by URL. Properties: `evolve` is
 * total over arbitrary event sequences; an ejected endpoint is never routable until it returns;
 * and over arbitrary command sequences, the recorded events alone, folded, tell the same
 * membership, health and failed weight updates as the live state, and a member whose weight update
 * failed stays ejected with no return probe due.
 */
import { fc, test as propTest } from "@fast-check/vitest"
import { Result } from "effect"
import { describe, expect, test } from "vitest"
import {
  decide,
  type EndpointRecord,
  endpointById,
  evolve,
  evolveAll,
  type InferenceCommand,
  type InferenceEvent,
  type InferenceRejection,
  type InferenceState,
  initialState,
  isPoolEvent,
  memberByUrl,
  members,
  needsUpdate,
  probeDue,
  recordable,
  routable,
  unusable,
} from "../../src/actors/inference/decider.ts"

const A = "http://a/v1"
const B = "http://b/v1"
const start = initialState("agent", { ejectAfterFailures: 3 })

const joined = (url: string, endpointId: number): InferenceEvent => ({
  type: "EndpointJoined",
  model: "agent",
  endpoint: url,
  endpointId,
})
const ejected = (
  url: string,
  endpointId: number,
  reason = "timeout: slow",
  failures = 3,
): InferenceEvent => ({
  type: "EndpointEjected",
  model: "agent",
  endpoint: url,
  reason,
  failures,
  endpointId,
})
const failed = (endpointId: number, extra: Partial<Extract<InferenceEvent, { type: "CallFailed" }>> = {}) =>
  ({ type: "CallFailed", endpointId, counted: true, rateLimited: false, ...extra }) as InferenceEvent

const updatedEvent = (
  url: string,
  endpointId: number,
  version: string,
  extra: { ok?: boolean; error?: string; ms?: number; checksum?: string } = {},
): InferenceEvent => {
  const { ok = true, ms = 0, error, checksum } = extra
  return {
    type: "EndpointWeightsUpdated",
    model: "agent",
    endpoint: url,
    version,
    ok,
    ...(error === undefined ? {} : { error }),
    ms,
    ...(checksum === undefined ? {} : { checksum }),
    endpointId,
  }
}

/** given(events).when(command).decides(events), or .refuses(code). */
const given = (...events: ReadonlyArray<InferenceEvent>) => {
  const state = evolveAll(start, events)
  return {
    state,
    when: (command: InferenceCommand) => {
      const decided = decide(state, command)
      return {
        decides: (expected: ReadonlyArray<InferenceEvent>) => {
          expect(decided).toEqual(Result.succeed(expected))
          return evolveAll(state, Result.getOrThrow(decided))
        },
        refuses: (code: InferenceRejection["code"]): InferenceRejection => {
          if (Result.isSuccess(decided))
            throw new Error(`expected ${code}, decided ${JSON.stringify(decided.success)}`)
          expect(decided.failure.code).toBe(code)
          return decided.failure
        },
      }
    },
  }
}

const recordOf = (state: InferenceState, id: number): EndpointRecord => {
  const record = endpointById(state, id)
  if (record === undefined) throw new Error(`no endpoint ${id}`)
  return record
}

describe("membership", () => {
  test("configured endpoints join in order with fresh ids; the config may list a URL twice", () => {
    given()
      .when({ type: "Join", url: `${A}/`, source: "config" })
      .decides([joined(A, 0)])
    const state = given(joined(A, 0))
      .when({ type: "Join", url: A, source: "config" })
      .decides([joined(A, 1)])
    expect(state.endpoints.map((e) => [e.id, e.url, e.membership, e.health])).toEqual([
      [0, A, "joined", "healthy"],
      [1, A, "joined", "healthy"],
    ])
    expect(state.nextId).toBe(2)
  })

  test("an operator's second copy of a member, or an endpoint without its key, is refused", () => {
    expect(
      given(joined(A, 0))
        .when({ type: "Join", url: `${A}/`, source: "operator" })
        .refuses("already_member"),
    ).toMatchObject({ reason: `${A} already serves agent` })
    const keyProblem = "env var K (apiKeyEnv) is not set"
    expect(
      given().when({ type: "Join", url: B, source: "operator", keyProblem }).refuses("missing_key"),
    ).toEqual({
      code: "missing_key",
      reason: keyProblem,
    })
  })

  test("a configured endpoint without its key is listed disabled, recorded nowhere, never routable", () => {
    const state = given()
      .when({ type: "Join", url: A, source: "config", keyProblem: "env var K is not set" })
      .decides([{ type: "EndpointListedDisabled", endpointId: 0, url: A, reason: "env var K is not set" }])
    expect(recordable({ type: "EndpointListedDisabled", endpointId: 0, url: A, reason: "x" })).toBeUndefined()
    expect(routable(recordOf(state, 0))).toBe(false)
    expect(unusable(state)).toBe("env var K is not set")
    expect(unusable(evolve(state, joined(B, 1)))).toBeUndefined()
    expect(unusable(start)).toBeUndefined()
    expect(probeDue(recordOf(state, 0), 0, "all")).toBeUndefined()
  })

  test("a member leaves (recorded with its reason), drains, and is removed; its URL may join again", () => {
    const left = given(joined(A, 0), joined(B, 1))
      .when({ type: "Leave", url: `${A}/`, reason: "scale down" })
      .decides([{ type: "EndpointLeft", model: "agent", endpoint: A, reason: "scale down", endpointId: 0 }])
    expect(recordOf(left, 0).membership).toBe("left")
    expect(routable(recordOf(left, 0))).toBe(false)
    expect(memberByUrl(left, A)).toBeUndefined()
    // A member is not drained: only a left endpoint goes.
    expect(given(joined(A, 0)).when({ type: "Drained", endpointId: 0 }).decides([]).endpoints).toHaveLength(1)
    const gone = given(joined(A, 0), joined(B, 1), {
      type: "EndpointLeft",
      model: "agent",
      endpoint: A,
      reason: "r",
      endpointId: 0,
    })
      .when({ type: "Drained", endpointId: 0 })
      .decides([{ type: "EndpointDrained", endpointId: 0 }])
    expect(gone.endpoints.map((e) => e.id)).toEqual([1])
    // Joining again, the URL gets a fresh id (never reused).
    const again = given(joined(B, 1))
    expect(again.state.nextId).toBe(2)
    expect(
      evolveAll(
        gone,
        Result.getOrThrow(decide(gone, { type: "Join", url: A, source: "operator" })),
      ).endpoints.map((e) => [e.id, e.url]),
    ).toEqual([
      [1, B],
      [2, A],
    ])
  })

  test("leaving a stranger names the members, never a credential", () => {
    const refusal = given(joined(A, 0))
      .when({ type: "Leave", url: "http://user:hunter2@x/v1", reason: "r" })
      .refuses("not_member")
    expect(refusal.reason).toBe(`no endpoint http://<credentials>@x/v1 in agent (it has ${A})`)
    expect(given().when({ type: "Leave", url: A, reason: "r" }).refuses("not_member").reason).toContain(
      "(it has none)",
    )
  })

  test("an observation about an endpoint no longer listed decides nothing", () => {
    given(joined(A, 0))
      .when({
        type: "ObserveFailure",
        endpointId: 7,
        kind: "transient",
        code: "timeout",
        message: "m",
        now: 0,
      })
      .decides([])
    given()
      .when({ type: "ObserveProbe", endpointId: 0, probe: "return", outcome: { answered: true }, now: 0 })
      .decides([])
  })
})

describe("health", () => {
  const failure = (
    endpointId: number,
    fields: Partial<Extract<InferenceCommand, { type: "ObserveFailure" }>> = {},
  ) =>
    ({
      type: "ObserveFailure",
      endpointId,
      kind: "transient",
      code: "http_503",
      message: "busy",
      now: 1_000,
      ...fields,
    }) as InferenceCommand

  test("consecutive failed calls eject at the threshold, with the last failure as the reason", () => {
    given(joined(A, 0))
      .when(failure(0))
      .decides([failed(0)])
    given(joined(A, 0), failed(0))
      .when(failure(0))
      .decides([failed(0)])
    const state = given(joined(A, 0), failed(0), failed(0))
      .when(failure(0))
      .decides([failed(0), ejected(A, 0, "http_503: busy", 3)])
    expect(routable(recordOf(state, 0))).toBe(false)
    // Already ejected: counted, not ejected again.
    given(joined(A, 0), failed(0), failed(0), failed(0), ejected(A, 0))
      .when(failure(0))
      .decides([failed(0)])
  })

  test("a 429 counts toward ejection and is marked rate limited; its retry-after is kept", () => {
    given(joined(A, 0))
      .when(failure(0, { code: "http_429", retryAfterMs: 3_000 }))
      .decides([failed(0, { rateLimited: true, retryAfterUntil: 4_000 })])
  })

  test("a bad request says nothing about the endpoint: not counted, only a retry-after is kept", () => {
    given(joined(A, 0), failed(0), failed(0))
      .when(failure(0, { kind: "request", code: "http_400" }))
      .decides([])
    const state = given(joined(A, 0))
      .when(failure(0, { kind: "request", code: "http_400", retryAfterMs: 5 }))
      .decides([failed(0, { counted: false, retryAfterUntil: 1_005 })])
    expect(recordOf(state, 0)).toMatchObject({
      consecutiveFailures: 0,
      retryAfterUntil: 1_005,
      health: "healthy",
    })
  })

  test("a left endpoint's failures are counted but never eject it: it is leaving anyway", () => {
    const left: InferenceEvent = {
      type: "EndpointLeft",
      model: "agent",
      endpoint: A,
      reason: "r",
      endpointId: 0,
    }
    given(joined(A, 0), left, failed(0), failed(0))
      .when(failure(0))
      .decides([failed(0)])
  })

  test("a success after failures starts both tallies again; a clean success records nothing", () => {
    const state = given(joined(A, 0), failed(0), { type: "ProbeFailed", endpointId: 0, counted: true })
      .when({ type: "ObserveSuccess", endpointId: 0 })
      .decides([{ type: "CallSucceeded", endpointId: 0 }])
    expect(recordOf(state, 0)).toMatchObject({ consecutiveFailures: 0, consecutiveProbeFailures: 0 })
    given(joined(A, 0)).when({ type: "ObserveSuccess", endpointId: 0 }).decides([])
  })

  test("failed health probes of a healthy member eject it; an answered one starts the tally again", () => {
    const probeFailed = (counted = true): InferenceEvent => ({ type: "ProbeFailed", endpointId: 0, counted })
    const down: InferenceCommand = {
      type: "ObserveProbe",
      endpointId: 0,
      probe: "health",
      outcome: { answered: false, reason: "probe: connection refused" },
      now: 0,
    }
    given(joined(A, 0)).when(down).decides([probeFailed()])
    given(joined(A, 0), probeFailed(), probeFailed())
      .when(down)
      .decides([probeFailed(), ejected(A, 0, "probe: connection refused", 3)])
    // An ejected endpoint's failed probes are not counted toward another ejection.
    given(joined(A, 0), ejected(A, 0))
      .when(down)
      .decides([probeFailed(false)])
    given(joined(A, 0), probeFailed())
      .when({ type: "ObserveProbe", endpointId: 0, probe: "health", outcome: { answered: true }, now: 0 })
      .decides([{ type: "ProbeAnswered", endpointId: 0 }])
  })

  test("an ejected member returns on an answered return probe, not within its retry-after", () => {
    const answered = (now: number): InferenceCommand => ({
      type: "ObserveProbe",
      endpointId: 0,
      probe: "return",
      outcome: { answered: true },
      now,
    })
    const out = [joined(A, 0), failed(0, { retryAfterUntil: 5_000 }), ejected(A, 0)]
    given(...out)
      .when(answered(4_999))
      .decides([])
    const back = given(...out)
      .when(answered(5_000))
      .decides([{ type: "EndpointReturned", model: "agent", endpoint: A, endpointId: 0 }])
    expect(recordOf(back, 0)).toEqual({
      id: 0,
      url: A,
      membership: "joined",
      health: "healthy",
      consecutiveFailures: 0,
      consecutiveProbeFailures: 0,
    })
    // A health probe sent while it was healthy does not return it; a healthy one has nothing to return.
    given(...out)
      .when({ type: "ObserveProbe", endpointId: 0, probe: "health", outcome: { answered: true }, now: 9_999 })
      .decides([])
    given(joined(A, 0)).when(answered(0)).decides([])
  })

  test("which endpoints a probe round asks, and what for", () => {
    const state = given(joined(A, 0), failed(0, { retryAfterUntil: 100 }), ejected(A, 0), joined(B, 1)).state
    expect([99, 100].map((now) => probeDue(recordOf(state, 0), now, "ejected"))).toEqual([
      undefined,
      "return",
    ])
    expect(probeDue(recordOf(state, 1), 0, "ejected")).toBeUndefined()
    expect(probeDue(recordOf(state, 1), 0, "all")).toBe("health")
    const paused = evolve(state, { type: "UpdateStarted", endpointId: 1, version: "v2" })
    expect(probeDue(recordOf(paused, 1), 0, "all")).toBeUndefined()
  })
})

describe("weight versions", () => {
  test("an endpoint reporting a new policy version records it; the same version again records nothing", () => {
    const state = given(joined(A, 0))
      .when({ type: "ObserveSuccess", endpointId: 0, policyVersion: "step-1" })
      .decides([{ type: "WeightsPublished", model: "agent", version: "step-1", endpoint: A, endpointId: 0 }])
    expect(recordOf(state, 0).policyVersion).toBe("step-1")
    expect(decide(state, { type: "ObserveSuccess", endpointId: 0, policyVersion: "step-1" })).toEqual(
      Result.succeed([]),
    )
  })

  test("a version published for the model is recorded once", () => {
    const state = given()
      .when({ type: "PublishWeights", version: "step-2" })
      .decides([{ type: "WeightsPublished", model: "agent", version: "step-2" }])
    expect(state.publishedVersion).toBe("step-2")
    expect(decide(state, { type: "PublishWeights", version: "step-2" })).toEqual(Result.succeed([]))
  })

  test("an update pauses the endpoint (no call, no probe) until it serves the new version", () => {
    const paused = given(joined(A, 0))
      .when({ type: "StartUpdate", endpointId: 0, version: "step-2" })
      .decides([{ type: "UpdateStarted", endpointId: 0, version: "step-2" }])
    expect(routable(recordOf(paused, 0))).toBe(false)
    expect(probeDue(recordOf(paused, 0), 0, "all")).toBeUndefined()
    expect(decide(paused, { type: "ObserveUpdated", endpointId: 0, version: "step-3", ms: 5 })).toMatchObject(
      Result.fail({ code: "not_updating" }),
    )
    const updated = evolveAll(
      paused,
      Result.getOrThrow(decide(paused, { type: "ObserveUpdated", endpointId: 0, version: "step-2", ms: 5 })),
    )
    expect(recordOf(updated, 0)).toMatchObject({ policyVersion: "step-2", health: "healthy" })
    expect(recordOf(updated, 0).updatingTo).toBeUndefined()
    expect(routable(recordOf(updated, 0))).toBe(true)
  })

  test("each endpoint's update is recorded with its time and the trainer's checksum", () => {
    given(joined(A, 0), { type: "UpdateStarted", endpointId: 0, version: "step-2" })
      .when({ type: "ObserveUpdated", endpointId: 0, version: "step-2", ms: 40, checksum: "sha256:ab" })
      .decides([updatedEvent(A, 0, "step-2", { ms: 40, checksum: "sha256:ab" })])
  })

  test("a failed update records its error and ejects that endpoint; the others stay routable", () => {
    const updating: InferenceEvent = { type: "UpdateStarted", endpointId: 0, version: "step-2" }
    const state = given(joined(A, 0), joined(B, 1), updating)
      .when({ type: "ObserveUpdateFailed", endpointId: 0, reason: "update_weights: HTTP 500", ms: 9 })
      .decides([
        updatedEvent(A, 0, "step-2", { ok: false, error: "update_weights: HTTP 500", ms: 9 }),
        ejected(A, 0, "weight update to step-2 failed: update_weights: HTTP 500", 1),
      ])
    expect(recordOf(state, 0)).toMatchObject({ health: "ejected", failedUpdate: "step-2" })
    expect(recordOf(state, 0).updatingTo).toBeUndefined()
    expect(routable(recordOf(state, 1))).toBe(true)
  })

  test("an endpoint whose update failed is not returned by a probe, only by an update that succeeds", () => {
    const state = given(
      joined(A, 0),
      { type: "UpdateStarted", endpointId: 0, version: "step-2" },
      updatedEvent(A, 0, "step-2", { ok: false, error: "boom" }),
      ejected(A, 0, "weight update to step-2 failed: boom", 1),
    ).state
    // Its GET /models answers say nothing about its weights.
    expect(probeDue(recordOf(state, 0), 1e12, "all")).toBeUndefined()
    expect(
      decide(state, {
        type: "ObserveProbe",
        endpointId: 0,
        probe: "return",
        outcome: { answered: true },
        now: 1,
      }),
    ).toEqual(Result.succeed([]))
    expect(needsUpdate(recordOf(state, 0), "step-2")).toBe(true)
    const retried = given(
      joined(A, 0),
      { type: "UpdateStarted", endpointId: 0, version: "step-2" },
      updatedEvent(A, 0, "step-2", { ok: false, error: "boom" }),
      ejected(A, 0, "weight update to step-2 failed: boom", 1),
      { type: "UpdateStarted", endpointId: 0, version: "step-3" },
    )
      .when({ type: "ObserveUpdated", endpointId: 0, version: "step-3", ms: 3 })
      .decides([
        updatedEvent(A, 0, "step-3", { ms: 3 }),
        { type: "EndpointReturned", model: "agent", endpoint: A, endpointId: 0 },
      ])
    expect(recordOf(retried, 0)).toMatchObject({ health: "healthy", policyVersion: "step-3" })
    expect(recordOf(retried, 0).failedUpdate).toBeUndefined()
    expect(routable(recordOf(retried, 0))).toBe(true)
  })

  test("an ejected member may be updated: a failure keeps it out without a second ejection", () => {
    given(joined(A, 0), ejected(A, 0))
      .when({ type: "StartUpdate", endpointId: 0, version: "v" })
      .decides([{ type: "UpdateStarted", endpointId: 0, version: "v" }])
    const state = given(joined(A, 0), ejected(A, 0), { type: "UpdateStarted", endpointId: 0, version: "v" })
      .when({ type: "ObserveUpdateFailed", endpointId: 0, reason: "pause: connection refused", ms: 1 })
      .decides([updatedEvent(A, 0, "v", { ok: false, error: "pause: connection refused", ms: 1 })])
    expect(recordOf(state, 0)).toMatchObject({ health: "ejected", failedUpdate: "v" })
  })

  test("an ejection while an update runs does not end the update: its outcome still counts", () => {
    const state = given(
      joined(A, 0),
      { type: "UpdateStarted", endpointId: 0, version: "v" },
      failed(0),
      failed(0),
    )
      .when({
        type: "ObserveFailure",
        endpointId: 0,
        kind: "transient",
        code: "timeout",
        message: "slow",
        now: 0,
      })
      .decides([failed(0), ejected(A, 0)])
    expect(recordOf(state, 0)).toMatchObject({ health: "ejected", updatingTo: "v" })
    expect(
      Result.getOrThrow(decide(state, { type: "ObserveUpdateFailed", endpointId: 0, reason: "x", ms: 1 })),
    ).toEqual([updatedEvent(A, 0, "v", { ok: false, error: "x", ms: 1 })])
  })

  test("a publish updates every enabled member not being updated, unless it is healthy on that version", () => {
    const state = evolveAll(start, [
      joined(A, 0),
      joined(B, 1),
      joined("http://c/v1", 2),
      joined("http://d/v1", 3),
      { type: "EndpointListedDisabled", endpointId: 4, url: "http://e/v1", reason: "no key" },
      { type: "WeightsPublished", model: "agent", version: "v2", endpoint: B, endpointId: 1 },
      ejected("http://c/v1", 2),
      { type: "WeightsPublished", model: "agent", version: "v2", endpoint: "http://c/v1", endpointId: 2 },
      { type: "UpdateStarted", endpointId: 3, version: "v2" },
    ])
    expect(state.endpoints.filter((e) => needsUpdate(e, "v2")).map((e) => e.id)).toEqual([0, 2])
    expect(state.endpoints.filter((e) => needsUpdate(e, "v3")).map((e) => e.id)).toEqual([0, 1, 2])
  })

  test("an update is refused for a disabled, left or already paused endpoint; an end for one not paused", () => {
    const update = { type: "StartUpdate", endpointId: 0, version: "v" } as const
    given({ type: "EndpointListedDisabled", endpointId: 0, url: A, reason: "no key" })
      .when(update)
      .refuses("disabled")
    given(joined(A, 0), { type: "EndpointLeft", model: "agent", endpoint: A, reason: "r", endpointId: 0 })
      .when(update)
      .refuses("not_member")
    given(joined(A, 0), { type: "UpdateStarted", endpointId: 0, version: "w" })
      .when(update)
      .refuses("already_updating")
    given(joined(A, 0))
      .when({ type: "ObserveUpdateFailed", endpointId: 0, reason: "x", ms: 0 })
      .refuses("not_updating")
    // A member that leaves mid-update is no longer being updated: its outcome decides nothing.
    given(
      joined(A, 0),
      { type: "UpdateStarted", endpointId: 0, version: "v" },
      { type: "EndpointLeft", model: "agent", endpoint: A, reason: "r", endpointId: 0 },
    )
      .when({ type: "ObserveUpdated", endpointId: 0, version: "v", ms: 0 })
      .refuses("not_updating")
  })
})

describe("events as the log records them", () => {
  test("recordable drops the endpoint id; tallies are not recorded; isPoolEvent picks the pool's events", () => {
    expect(recordable(joined(A, 3))).toEqual({ type: "EndpointJoined", model: "agent", endpoint: A })
    expect(recordable(failed(0))).toBeUndefined()
    expect(isPoolEvent({ type: "EndpointReturned", model: "agent", endpoint: A })).toBe(true)
    expect(isPoolEvent({ type: "ProbeRecorded", probeId: "p", seq: 1, worker: "w" })).toBe(false)
  })

  test("read back without ids, events concern the first joined endpoint of their URL", () => {
    const log: ReadonlyArray<InferenceEvent> = [
      { type: "EndpointJoined", model: "agent", endpoint: A },
      { type: "EndpointJoined", model: "agent", endpoint: B },
      { type: "EndpointEjected", model: "agent", endpoint: A, reason: "timeout", failures: 3 },
      { type: "WeightsPublished", model: "agent", version: "v1", endpoint: B },
      { type: "EndpointLeft", model: "agent", endpoint: B, reason: "drain" },
      { type: "EndpointJoined", model: "agent", endpoint: B },
      { type: "EndpointReturned", model: "agent", endpoint: "http://nobody/v1" },
      { type: "WeightsPublished", model: "agent", version: "v2" },
      { type: "EndpointWeightsUpdated", model: "agent", endpoint: B, version: "v2", ok: true, ms: 1 },
      {
        type: "EndpointWeightsUpdated",
        model: "agent",
        endpoint: A,
        version: "v2",
        ok: false,
        error: "e",
        ms: 1,
      },
    ]
    const state = evolveAll(start, log)
    expect(
      state.endpoints.map((e) => [e.id, e.url, e.membership, e.health, e.policyVersion, e.failedUpdate]),
    ).toEqual([
      [0, A, "joined", "ejected", undefined, "v2"],
      [1, B, "left", "healthy", "v1", undefined],
      [2, B, "joined", "healthy", "v2", undefined],
    ])
    expect(state.publishedVersion).toBe("v2")
  })
})

// ---------------------------------------------------------------------------------------------
// Properties

const urls = fc.constantFrom(A, B, "http://c/v1")
const id = fc.nat({ max: 5 })
const version = fc.constantFrom("v1", "v2", "v3")
const withId = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc
    .tuple(arbitrary, fc.option(id, { nil: undefined }))
    .map(([event, endpointId]) => (endpointId === undefined ? event : { ...event, endpointId }))

/** Any event, including ones that make no sense where they fall (unknown ids, a second join). */
const anyEvent: fc.Arbitrary<InferenceEvent> = fc.oneof(
  withId(urls.map((endpoint) => ({ type: "EndpointJoined" as const, model: "agent", endpoint }))),
  withId(urls.map((endpoint) => ({ type: "EndpointLeft" as const, model: "agent", endpoint, reason: "r" }))),
  withId(
    fc.record({ endpoint: urls, failures: fc.nat({ max: 5 }) }).map((e) => ({
      type: "EndpointEjected" as const,
      model: "agent",
      reason: "x",
      ...e,
    })),
  ),
  withId(urls.map((endpoint) => ({ type: "EndpointReturned" as const, model: "agent", endpoint }))),
  withId(
    fc.record({ version, endpoint: fc.option(urls, { nil: undefined }) }).map(({ version, endpoint }) => ({
      type: "WeightsPublished" as const,
      model: "agent",
      version,
      ...(endpoint === undefined ? {} : { endpoint }),
    })),
  ),
  fc.record({ endpointId: id, url: urls, reason: fc.constant("no key") }).map((e) => ({
    type: "EndpointListedDisabled" as const,
    ...e,
  })),
  id.map((endpointId) => ({ type: "EndpointDrained" as const, endpointId })),
  id.map((endpointId) => ({ type: "CallSucceeded" as const, endpointId })),
  fc
    .record({
      endpointId: id,
      counted: fc.boolean(),
      rateLimited: fc.boolean(),
      until: fc.option(fc.nat(), { nil: undefined }),
    })
    .map(({ until, ...e }) => ({
      type: "CallFailed" as const,
      ...e,
      ...(until === undefined ? {} : { retryAfterUntil: until }),
    })),
  id.map((endpointId) => ({ type: "ProbeAnswered" as const, endpointId })),
  fc.record({ endpointId: id, counted: fc.boolean() }).map((e) => ({ type: "ProbeFailed" as const, ...e })),
  fc.record({ endpointId: id, version }).map((e) => ({ type: "UpdateStarted" as const, ...e })),
  withId(
    fc.record({ endpoint: urls, version, ok: fc.boolean() }).map((e) => ({
      type: "EndpointWeightsUpdated" as const,
      model: "agent",
      ms: 1,
      ...e,
      ...(e.ok ? {} : { error: "x" }),
    })),
  ),
)

/** The id an event concerns in `state` (as `evolve` resolves it), for the models below. */
const concerns = (state: InferenceState, event: InferenceEvent): number | undefined => {
  if ("endpointId" in event && event.endpointId !== undefined) return event.endpointId
  if ("endpoint" in event && event.endpoint !== undefined) return memberByUrl(state, event.endpoint)?.id
  return undefined
}

describe("properties", () => {
  propTest.prop([fc.array(anyEvent, { minLength: 10, maxLength: 80 })])(
    "evolve is total over arbitrary event sequences and keeps ids unique and tallies non-negative",
    (events) => {
      let state = start
      for (const event of events) {
        state = evolve(state, event)
        const ids = state.endpoints.map((e) => e.id)
        expect(new Set(ids).size).toBe(ids.length)
        for (const e of state.endpoints) {
          expect(e.id).toBeLessThan(state.nextId)
          expect(e.consecutiveFailures).toBeGreaterThanOrEqual(0)
          expect(e.consecutiveProbeFailures).toBeGreaterThanOrEqual(0)
          if (e.membership === "left") expect(e.updatingTo).toBeUndefined()
        }
      }
    },
  )

  propTest.prop([fc.array(anyEvent, { minLength: 10, maxLength: 80 })])(
    "an ejected endpoint is never routable until it returns",
    (events) => {
      let state = start
      /** Ids ejected since they were listed, and not returned since. */
      const out = new Set<number>()
      for (const event of events) {
        const target = concerns(state, event)
        const before = target === undefined ? undefined : endpointById(state, target)
        state = evolve(state, event)
        const after = target === undefined ? undefined : endpointById(state, target)
        if (target !== undefined && before === undefined && after !== undefined) out.delete(target)
        if (after !== undefined && event.type === "EndpointEjected") out.add(target!)
        if (after !== undefined && event.type === "EndpointReturned") out.delete(target!)
        if (after === undefined && target !== undefined) out.delete(target)
        for (const e of state.endpoints) {
          if (out.has(e.id)) expect(routable(e)).toBe(false)
          expect(e.health === "ejected").toBe(out.has(e.id))
        }
      }
    },
  )

  const anyCommand: fc.Arbitrary<InferenceCommand> = fc.oneof(
    fc
      .record({ url: urls, keyProblem: fc.option(fc.constant("no key"), { nil: undefined, freq: 8 }) })
      .map(({ url, keyProblem }) => ({
        type: "Join" as const,
        url,
        source: "operator" as const,
        ...(keyProblem === undefined ? {} : { keyProblem }),
      })),
    urls.map((url) => ({ type: "Leave" as const, url, reason: "r" })),
    id.map((endpointId) => ({ type: "Drained" as const, endpointId })),
    fc
      .record({ endpointId: id, policyVersion: fc.option(version, { nil: undefined }) })
      .map(({ policyVersion, ...c }) => ({
        type: "ObserveSuccess" as const,
        ...c,
        ...(policyVersion === undefined ? {} : { policyVersion }),
      })),
    fc
      .record({
        endpointId: id,
        kind: fc.constantFrom("transient", "endpoint", "request") as fc.Arbitrary<
          "transient" | "endpoint" | "request"
        >,
        code: fc.constantFrom("http_429", "http_503", "timeout"),
        retryAfterMs: fc.option(fc.nat({ max: 50 }), { nil: undefined }),
        now: fc.nat({ max: 200 }),
      })
      .map(({ retryAfterMs, ...c }) => ({
        type: "ObserveFailure" as const,
        message: "m",
        ...c,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      })),
    fc
      .record({
        endpointId: id,
        probe: fc.constantFrom("health", "return") as fc.Arbitrary<"health" | "return">,
        answered: fc.boolean(),
        now: fc.nat({ max: 200 }),
      })
      .map(({ answered, ...c }) => ({
        type: "ObserveProbe" as const,
        ...c,
        outcome: answered
          ? ({ answered: true } as const)
          : ({ answered: false, reason: "probe: down" } as const),
      })),
    version.map((v) => ({ type: "PublishWeights" as const, version: v })),
    fc.record({ endpointId: id, version }).map((c) => ({ type: "StartUpdate" as const, ...c })),
    fc.record({ endpointId: id, version }).map((c) => ({ type: "ObserveUpdated" as const, ms: 1, ...c })),
    id.map((endpointId) => ({ type: "ObserveUpdateFailed" as const, endpointId, reason: "x", ms: 1 })),
  )

  propTest.prop([fc.array(anyCommand, { minLength: 20, maxLength: 120 }), fc.integer({ min: 1, max: 4 })])(
    "over arbitrary commands, the recorded events alone tell the same membership and health as the live state",
    (commands, ejectAfterFailures) => {
      const initial = initialState("agent", { ejectAfterFailures })
      let live = initial
      const log: Array<InferenceEvent> = []
      for (const command of commands) {
        const decided = decide(live, command)
        if (Result.isFailure(decided)) continue
        for (const event of decided.success) {
          // Only a healthy member is ever ejected; only an ejected member returns.
          const target = concerns(live, event)
          const record = target === undefined ? undefined : endpointById(live, target)
          if (event.type === "EndpointEjected")
            expect(record).toMatchObject({ membership: "joined", health: "healthy" })
          if (event.type === "EndpointReturned")
            expect(record).toMatchObject({ membership: "joined", health: "ejected" })
          live = evolve(live, event)
          const recorded = recordable(event)
          if (recorded !== undefined) log.push(recorded)
        }
        // Weights in doubt keep a member out: it is ejected, and no probe is due to return it.
        for (const e of members(live))
          if (e.failedUpdate !== undefined) {
            expect(e.health).toBe("ejected")
            expect(probeDue(e, Number.MAX_SAFE_INTEGER, "all")).toBeUndefined()
          }
      }
      const story = (state: InferenceState) =>
        members(state).map((e) => `${e.url} ${e.health} ${e.failedUpdate ?? "-"}`)
      expect(story(evolveAll(initial, log))).toEqual(story(live))
    },
  )
})
