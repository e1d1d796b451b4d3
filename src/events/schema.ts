/**
 * The vocabulary of `rollout`: every event as an Effect Schema, one union tagged by `type`, and the
 * envelope that carries an event through the log. A `type` string is never renamed or reused; a
 * breaking change bumps that type's schema version and moves the old shape to `legacy.ts`.
 */
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import { Completion, ToolCall } from "./chat.ts"

const Id = Schema.NonEmptyString
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Millis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/** Why an episode ended. An end state is an explicit outcome, never a sentinel string in `answer`. */
export const EpisodeOutcome = Schema.Literals([
  "answered",
  "turns_limit",
  "context_limit",
  "repetition",
  "model_error",
  "tool_infrastructure_error",
  "cancelled",
  "timeout",
])
export type EpisodeOutcome = typeof EpisodeOutcome.Type

export const RunStarted = Schema.Struct({
  type: Schema.Literal("RunStarted"),
  runId: Id,
  kind: Schema.Literals(["eval", "rl", "adhoc"]),
  model: Schema.String,
  benchmark: Schema.optionalKey(Schema.String),
  k: Schema.optionalKey(Count),
  taskCount: Schema.optionalKey(Count),
  config: Schema.optionalKey(Schema.Json),
})

export const RunFinished = Schema.Struct({
  type: Schema.Literal("RunFinished"),
  runId: Id,
  status: Schema.Literals(["completed", "failed", "cancelled"]),
  reason: Schema.optionalKey(Schema.String),
  /**
   * An RL run: how many training batches it publishes in all (the steps closed, and the last
   * partial step this event closes). A trainer is done once it has taken that many.
   */
  batches: Schema.optionalKey(Count),
})

/**
 * How an episode runs, with AgentToLeaP's defaults; recorded in `EpisodeStarted` so a replay
 * re-drives the decisions under the same rules.
 */
export const EpisodePolicy = Schema.Struct({
  maxTurns: Count,
  maxResponseTokens: Count,
  /** Prompt tokens allowed; the context is reset (or the episode ends) past budget − reserve. */
  contextBudget: Count,
  contextReserve: Count,
  contextReset: Schema.Literals(["none", "discard_all_tools", "summarize"]),
  /** The same assistant content this many times ends the episode; twice flags the turn REPEAT. */
  repetitionLimit: Count,
  /** Turns without a tool call or an answer before the model is nudged. */
  nudgeAfter: Count,
  answerStyle: Schema.Literals(["answer_tag", "boxed", "plain"]),
  toolCallFormat: Schema.Literals(["openai", "hermes", "minicpm", "deepseek"]),
  /** Tool results above this many tokens are refined by `refineModel` before entering the context. */
  refineAboveTokens: Schema.optionalKey(Count),
  refinePageTokens: Schema.optionalKey(Count),
  refineModel: Schema.optionalKey(Schema.NonEmptyString),
  /** Wall-clock limit of the whole episode, from its start; past it the episode ends with `timeout`. */
  timeoutMs: Schema.optionalKey(Count),
})
export type EpisodePolicy = typeof EpisodePolicy.Type

export const EpisodeStarted = Schema.Struct({
  type: Schema.Literal("EpisodeStarted"),
  episodeId: Id,
  runId: Schema.optionalKey(Id),
  taskId: Schema.String,
  sampleIndex: Count,
  /**
   * The GRPO group the sample belongs to, when it is not simply its task in its run: an RL run
   * samples a task once per epoch, each time as a new group (`GroupStarted`). Absent: the task.
   */
  group: Schema.optionalKey(Id),
  question: Schema.String,
  model: Schema.String,
  maxTurns: Count,
  systemPrompt: Schema.optionalKey(Schema.String),
  policy: Schema.optionalKey(EpisodePolicy),
})

/**
 * What starts an episode: `EpisodeStarted` without its type and the turn limit its policy sets. The
 * agent's start input and its `RunEpisode` command (whose entity is the episode id) are derived
 * from it, so a start field is declared once, here.
 */
export const EpisodeStart = EpisodeStarted.mapFields(Struct.omit(["type", "maxTurns"]))
export type EpisodeStart = typeof EpisodeStart.Type

export const ModelRequested = Schema.Struct({
  type: Schema.Literal("ModelRequested"),
  episodeId: Id,
  turn: Count,
  requestId: Id,
  model: Schema.String,
  messageCount: Count,
})

/** The model's completion for a turn's request (`chat.ts`), as the agent received it. */
export const ModelResponded = Schema.Struct({
  type: Schema.Literal("ModelResponded"),
  episodeId: Id,
  turn: Count,
  requestId: Id,
  ...Completion.fields,
})

/**
 * A token-exact turn's prompt ids do not extend the ids its episode had reached: the prompt and
 * sampled ids of the previous model turn (`expectedTokens` of them). A chat template that rewrites
 * history (Qwen3 drops past `<think>` blocks) or a message tokenized differently the second time
 * causes it. `index` is the first token where the two differ (the prompt's length when the prompt is
 * a shorter prefix). `realign`: skipping at most 8 tokens on each side from `index`, the rest of the
 * expected ids (at least one) reappears verbatim in the prompt, from `resume.expected` in the
 * expected ids and `resume.prompt` in the prompt (the smallest such skip) — a local
 * re-tokenization; or, when no part of it does, the difference lies within the last 8 expected ids
 * (`resume` is then their end and `index`). `fork`: anything else — the history itself was
 * rewritten. Either way the episode goes on, and a training batch splits the sequence at `index`
 * rather than guess.
 */
export const DriftDetected = Schema.Struct({
  type: Schema.Literal("DriftDetected"),
  episodeId: Id,
  /** The turn whose prompt does not extend. */
  turn: Count,
  /** The turn whose prompt and sampled ids it was checked against. */
  previousTurn: Count,
  index: Count,
  expectedTokens: Count,
  promptTokens: Count,
  kind: Schema.Literals(["realign", "fork"]),
  resume: Schema.optionalKey(Schema.Struct({ expected: Count, prompt: Count })),
})

export const ModelCallFailed = Schema.Struct({
  type: Schema.Literal("ModelCallFailed"),
  episodeId: Id,
  turn: Count,
  requestId: Id,
  endpoint: Schema.optionalKey(Schema.String),
  code: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
})

/** A tool call of the turn that the agent read and will run (`chat.ts`; its arguments an object). */
export const ToolCallRequested = Schema.Struct({
  type: Schema.Literal("ToolCallRequested"),
  episodeId: Id,
  turn: Count,
  ...ToolCall.fields,
})

/** Content larger than the inline limit lives in the blob store; the event keeps its hash and size. */
export const BlobRef = Schema.Struct({
  // With the `u` flag, Effect puts the pattern into the JSON Schema the fast payload checks use.
  sha256: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/u)),
  bytes: Count,
  /** How the bytes read back: `text/plain;charset=utf-8` (a string) or `application/json` (a value). */
  mediaType: Schema.optionalKey(Schema.String),
})
export type BlobRef = typeof BlobRef.Type

/**
 * How a stored payload holds a field the log moved to the blob store (see `log/largeFields.ts`):
 * the field's value is replaced by this marker and the envelope lists the field's path. The log
 * puts the value back before any reader sees the event, so domain code only sees ordinary values.
 */
export const BlobMarker = Schema.Struct({ $blob: BlobRef })

export const ToolCallCompleted = Schema.Struct({
  type: Schema.Literal("ToolCallCompleted"),
  episodeId: Id,
  callId: Id,
  tool: Id,
  content: Schema.Json,
  blob: Schema.optionalKey(BlobRef),
  truncated: Schema.Boolean,
  latencyMs: Millis,
})

export const ToolCallFailed = Schema.Struct({
  type: Schema.Literal("ToolCallFailed"),
  episodeId: Id,
  callId: Id,
  tool: Schema.String,
  kind: Schema.Literals(["format", "tool", "infrastructure", "timeout"]),
  message: Schema.String,
})

/** Per-turn flags (REFERENCE §2): FORMAT_ERROR and REPEAT turns never get a positive advantage. */
export const TurnFlag = Schema.Literals(["FORMAT_ERROR", "REPEAT", "TOOL_FAILED", "FAILED"])

/** What the decider concluded about a turn; `feedback` goes back to the model as a user message. */
export const TurnAssessed = Schema.Struct({
  type: Schema.Literal("TurnAssessed"),
  episodeId: Id,
  turn: Count,
  flags: Schema.Array(TurnFlag),
  feedback: Schema.optionalKey(Schema.String),
})

/** A message the runtime adds to steer the model: after idle turns, or to force a final answer. */
export const ModelNudged = Schema.Struct({
  type: Schema.Literal("ModelNudged"),
  episodeId: Id,
  turn: Count,
  reason: Schema.Literals(["idle", "final_answer"]),
  text: Schema.String,
})

/** The context went over budget and was cut down under the episode's reset policy. */
export const ContextReset = Schema.Struct({
  type: Schema.Literal("ContextReset"),
  episodeId: Id,
  turn: Count,
  policy: Schema.Literals(["discard_all_tools", "summarize"]),
  estimatedTokens: Count,
  keptMessages: Count,
  droppedMessages: Count,
  /** With `summarize`: the summary (Actions / Results / Current Status) that replaced the history. */
  summary: Schema.optionalKey(Schema.String),
})

/**
 * A long tool result as it entered the agent's context: summarized page by page by the refinement
 * model (or truncated, when that model was unavailable). The raw result stays in ToolCallCompleted.
 */
export const ToolResultRefined = Schema.Struct({
  type: Schema.Literal("ToolResultRefined"),
  episodeId: Id,
  callId: Id,
  model: Schema.String,
  purpose: Schema.optionalKey(Schema.String),
  pages: Count,
  rawTokens: Count,
  method: Schema.Literals(["summarized", "truncated"]),
  content: Schema.String,
})

export const EpisodeFinished = Schema.Struct({
  type: Schema.Literal("EpisodeFinished"),
  episodeId: Id,
  outcome: EpisodeOutcome,
  answer: Schema.optionalKey(Schema.String),
  turns: Count,
})

export const SampleScored = Schema.Struct({
  type: Schema.Literal("SampleScored"),
  runId: Id,
  taskId: Schema.String,
  sampleIndex: Count,
  /** The sample's GRPO group when its episode names one (`EpisodeStarted.group`). */
  group: Schema.optionalKey(Id),
  episodeId: Id,
  scorer: Schema.String,
  verdict: Schema.Literals(["correct", "incorrect", "judge_failed"]),
  score: Schema.Finite,
})

/**
 * An RL run's sampler started a GRPO group: `samples` episodes of task `taskId` (epoch `epoch` of the
 * task set), while the RL model group served weight `version` (the staleness gate's lower bound for
 * every token the group will sample). Recorded before its episodes, so a resumed sampler finishes
 * the groups it had started and starts no group twice.
 */
export const GroupStarted = Schema.Struct({
  type: Schema.Literal("GroupStarted"),
  runId: Id,
  group: Id,
  taskId: Schema.String,
  epoch: Count,
  samples: Count,
  version: Id,
})

/** Tokens of a batch that were `lag` = step − version steps old (only tokens that train). */
export const LagCount = Schema.Struct({ lag: Count, tokens: Count })

/**
 * Training step `step` of an RL run is ready: its batch (the format in docs/training.md: a
 * safetensors file whose JSON header describes every sequence) is in the blob store under `blob`,
 * `hash` is the SHA-256 of those bytes. `groups` are the GRPO groups it holds (in the order they
 * completed), `samples` the samples that train, `sequences` and `tokens` its rows and all their
 * tokens, `trainedTokens` those whose loss is not masked; `lags` the histogram of their version
 * lags (every lag ≤ η), `drops` what was dropped while the step filled, by reason (closed set).
 * Derived from the log alone: `rollout rl batch <step> --verify` derives it again and compares.
 */
export const BatchPublished = Schema.Struct({
  type: Schema.Literal("BatchPublished"),
  runId: Id,
  step: Count,
  hash: Schema.String,
  blob: BlobRef,
  groups: Schema.Array(Id),
  samples: Count,
  sequences: Count,
  tokens: Count,
  trainedTokens: Count,
  lags: Schema.Array(LagCount),
  drops: Schema.Record(Schema.String, Count),
})

/** The trainer took step `step` and trained it (acknowledged through the bridge); at most once per step. */
export const BatchConsumed = Schema.Struct({
  type: Schema.Literal("BatchConsumed"),
  runId: Id,
  step: Count,
  trainer: Schema.optionalKey(Schema.String),
})

/**
 * What the trainer reported of one optimizer step, through the bridge: the loss and its parts, and
 * the mean importance ratio of the tokens of each version lag (on-policy tokens, lag 0, should be
 * at 1: the batches are token-exact and their log-probs the sampler's).
 */
export const TrainerStepReported = Schema.Struct({
  type: Schema.Literal("TrainerStepReported"),
  runId: Id,
  step: Count,
  /** The weight version the step produced. */
  version: Id,
  metrics: Schema.Record(Schema.String, Schema.Finite),
  ratioByLag: Schema.Array(Schema.Struct({ lag: Count, tokens: Count, meanRatio: Schema.Finite })),
})

/** The diagnostic `probe` actor's answer: proves a worker took a command and wrote once. */
export const ProbeRecorded = Schema.Struct({
  type: Schema.Literal("ProbeRecorded"),
  probeId: Id,
  seq: Count,
  worker: Schema.String,
})

/**
 * The embedded log's writer cut an incomplete last line off the file when it opened it (a crash
 * mid-write, or a truncated copy): where the line was, its size and digest, the position it would
 * have had, and the side file (relative to the log's directory) that keeps its bytes.
 */
export const LogTailCut = Schema.Struct({
  type: Schema.Literal("LogTailCut"),
  offset: Count,
  bytes: Count,
  sha256: Schema.String,
  position: Count,
  keptIn: Schema.String,
})

/** An endpoint joined a model's group in the inference pool (from config, when the pool starts). */
export const EndpointJoined = Schema.Struct({
  type: Schema.Literal("EndpointJoined"),
  model: Id,
  /** The base URL, never with credentials (the pool's config refuses them). */
  endpoint: Id,
})

/** The pool stopped routing to an endpoint after `failures` consecutive failed calls or probes. */
export const EndpointEjected = Schema.Struct({
  type: Schema.Literal("EndpointEjected"),
  model: Id,
  endpoint: Id,
  /** The last failure, as the client reported it (status and message; never a credential). */
  reason: Schema.String,
  failures: Count,
})

/**
 * An endpoint was removed from a model's group at run time: it takes no new calls (its in-flight
 * calls finish there when drained, else they are retried elsewhere).
 */
export const EndpointLeft = Schema.Struct({
  type: Schema.Literal("EndpointLeft"),
  model: Id,
  endpoint: Id,
  reason: Schema.String,
})

/** An ejected endpoint answered its health probe again and takes calls again. */
export const EndpointReturned = Schema.Struct({
  type: Schema.Literal("EndpointReturned"),
  model: Id,
  endpoint: Id,
})

/**
 * A new policy (weight) version of a model became visible: reported by an endpoint's responses
 * (then `endpoint` says which) or announced by the trainer bridge.
 */
export const WeightsPublished = Schema.Struct({
  type: Schema.Literal("WeightsPublished"),
  model: Id,
  version: Id,
  endpoint: Schema.optionalKey(Id),
})

/**
 * The inference pool updated one endpoint of a model's group to a published weight `version`
 * through the server's own API (vLLM's native update sequence, or SGLang's
 * `update_weights_from_disk`). `ok` when the server then reported serving that version; otherwise
 * `error` says which step failed, and the endpoint is ejected (a failed load may have applied part
 * of the weights) until an update on it succeeds. `ms` runs from the pause to the end, the wait for
 * the endpoint's calls in flight included; `checksum` is the trainer's, as given.
 */
export const EndpointWeightsUpdated = Schema.Struct({
  type: Schema.Literal("EndpointWeightsUpdated"),
  model: Id,
  endpoint: Id,
  version: Id,
  ok: Schema.Boolean,
  error: Schema.optionalKey(Schema.String),
  ms: Millis,
  checksum: Schema.optionalKey(Schema.String),
  /** What the update found an earlier one had left on the server (paused, an update still open). */
  recovered: Schema.optionalKey(Schema.String),
})

/**
 * A judge's verdict on one prediction, with what makes it reproducible: the judge model, the hash
 * of the exact prompt, the temperature, the template and parser versions and the raw response.
 * Recorded under its content-hash cache key, so the same judgement is never asked twice.
 */
export const JudgeVerdictRecorded = Schema.Struct({
  type: Schema.Literal("JudgeVerdictRecorded"),
  cacheKey: Id,
  benchmark: Schema.String,
  judgeModel: Schema.String,
  promptHash: Schema.String,
  temperature: Schema.Finite,
  templateVersion: Schema.String,
  parserVersion: Schema.String,
  verdict: Schema.Literals(["correct", "incorrect", "judge_failed"]),
  confidence: Schema.optionalKey(Schema.Finite),
  attempts: Count,
  responses: Schema.Array(Schema.String),
  failure: Schema.optionalKey(Schema.String),
})

/** Normalized MCP content: text, JSON, an image (hash and size; the bytes stay with the caller), a resource. */
export const ToolContent = Schema.Union([
  Schema.Struct({ type: Schema.Literal("text"), text: Schema.String }),
  Schema.Struct({ type: Schema.Literal("json"), value: Schema.Json }),
  Schema.Struct({
    type: Schema.Literal("image"),
    mimeType: Schema.String,
    bytes: Count,
    sha256: Schema.String,
  }),
  Schema.Struct({
    type: Schema.Literal("resource"),
    uri: Schema.String,
    mimeType: Schema.optionalKey(Schema.String),
    text: Schema.optionalKey(Schema.String),
  }),
])

/** A version of a pooled MCP server was registered (at start, or to hot-swap to). */
export const ToolVersionRegistered = Schema.Struct({
  type: Schema.Literal("ToolVersionRegistered"),
  server: Id,
  version: Id,
  transport: Schema.Literals(["stdio", "http", "docker"]),
  replicas: Count,
})

/** A replica of a tool server is up (its MCP session initialized). `sandboxId` names its container. */
export const ToolReplicaStarted = Schema.Struct({
  type: Schema.Literal("ToolReplicaStarted"),
  server: Id,
  version: Id,
  replica: Id,
  restarts: Count,
  startMs: Millis,
  sandboxId: Schema.optionalKey(Schema.String),
  owner: Schema.optionalKey(Schema.String),
})

/** A replica ended: crashed, failed its health check, drained, or was stopped. */
export const ToolReplicaExited = Schema.Struct({
  type: Schema.Literal("ToolReplicaExited"),
  server: Id,
  version: Id,
  replica: Id,
  reason: Schema.Literals(["crashed", "unhealthy", "drained", "stopped", "start_failed"]),
  detail: Schema.String,
  sandboxId: Schema.optionalKey(Schema.String),
})

/** A replica's circuit breaker opened (consecutive failures) or closed again. */
export const ToolCircuitChanged = Schema.Struct({
  type: Schema.Literal("ToolCircuitChanged"),
  server: Id,
  replica: Id,
  state: Schema.Literals(["open", "closed"]),
  failures: Count,
})

/** Traffic of a server moved between versions during a hot-swap (`weight` of `to`, 0..1). */
export const ToolTrafficShifted = Schema.Struct({
  type: Schema.Literal("ToolTrafficShifted"),
  server: Id,
  from: Id,
  to: Id,
  weight: Schema.Finite,
})

/** Orphaned sandboxes (containers of a dead pool process) removed on start. */
export const ToolSandboxesReconciled = Schema.Struct({
  type: Schema.Literal("ToolSandboxesReconciled"),
  owner: Id,
  removed: Schema.Array(Schema.String),
})

/**
 * One call through a tool pool, as served: which replica, how many attempts, the normalized
 * result or the error. Recorded under the call's idempotency key, so a call retried after a crash
 * is answered from here instead of running twice.
 */
export const ToolCallServed = Schema.Struct({
  type: Schema.Literal("ToolCallServed"),
  server: Id,
  tool: Id,
  idempotencyKey: Id,
  version: Schema.String,
  replica: Schema.String,
  attempts: Count,
  latencyMs: Millis,
  outcome: Schema.Literals(["ok", "tool_error", "invalid_arguments", "timeout", "unavailable", "rejected"]),
  content: Schema.Array(ToolContent),
  truncated: Schema.Boolean,
  error: Schema.optionalKey(Schema.String),
  /**
   * Arguments the tool's schema refused as written and accepted as read by it (`"2"` as 2, a
   * single value as a one-item list): where (a JSON Pointer into the arguments), from, to.
   */
  coerced: Schema.optionalKey(
    Schema.Array(Schema.Struct({ path: Schema.String, from: Schema.Json, to: Schema.Json })),
  ),
})

/** A periodic look at a pool: in flight and queued per replica (for `rollout dock status`). */
export const ToolPoolSampled = Schema.Struct({
  type: Schema.Literal("ToolPoolSampled"),
  server: Id,
  queued: Count,
  replicas: Schema.Array(
    Schema.Struct({
      replica: Schema.String,
      version: Schema.String,
      inFlight: Count,
      healthy: Schema.Boolean,
      circuit: Schema.Literals(["open", "closed"]),
    }),
  ),
})

/** Every event type, current versions only. Domain code sees only these shapes. */
export const DomainEvent = Schema.Union([
  RunStarted,
  RunFinished,
  EpisodeStarted,
  ModelRequested,
  ModelResponded,
  DriftDetected,
  ModelCallFailed,
  ToolCallRequested,
  ToolCallCompleted,
  ToolCallFailed,
  TurnAssessed,
  ModelNudged,
  ContextReset,
  ToolResultRefined,
  EpisodeFinished,
  SampleScored,
  ProbeRecorded,
  LogTailCut,
  EndpointJoined,
  EndpointLeft,
  EndpointEjected,
  EndpointReturned,
  WeightsPublished,
  EndpointWeightsUpdated,
  ToolVersionRegistered,
  ToolReplicaStarted,
  ToolReplicaExited,
  ToolCircuitChanged,
  ToolTrafficShifted,
  ToolSandboxesReconciled,
  ToolCallServed,
  ToolPoolSampled,
  JudgeVerdictRecorded,
  GroupStarted,
  BatchPublished,
  BatchConsumed,
  TrainerStepReported,
])
export type DomainEvent = typeof DomainEvent.Type
export type EventType = DomainEvent["type"]
export type EventOf<T extends EventType> = Extract<DomainEvent, { readonly type: T }>

/** One schema per type, for lookups by `type` without scanning the union. */
export const eventSchemas = {
  RunStarted,
  RunFinished,
  EpisodeStarted,
  ModelRequested,
  ModelResponded,
  DriftDetected,
  ModelCallFailed,
  ToolCallRequested,
  ToolCallCompleted,
  ToolCallFailed,
  TurnAssessed,
  ModelNudged,
  ContextReset,
  ToolResultRefined,
  EpisodeFinished,
  SampleScored,
  ProbeRecorded,
  LogTailCut,
  EndpointJoined,
  EndpointLeft,
  EndpointEjected,
  EndpointReturned,
  WeightsPublished,
  EndpointWeightsUpdated,
  ToolVersionRegistered,
  ToolReplicaStarted,
  ToolReplicaExited,
  ToolCircuitChanged,
  ToolTrafficShifted,
  ToolSandboxesReconciled,
  ToolCallServed,
  ToolPoolSampled,
  JudgeVerdictRecorded,
  GroupStarted,
  BatchPublished,
  BatchConsumed,
  TrainerStepReported,
} as const satisfies { readonly [T in EventType]: Schema.Codec<EventOf<T>, unknown> }

/** The current schema version of each type; a retired version is upcast on read. */
export const currentVersions: { readonly [T in EventType]: number } = {
  RunStarted: 1,
  RunFinished: 1,
  EpisodeStarted: 1,
  ModelRequested: 1,
  ModelResponded: 1,
  DriftDetected: 1,
  ModelCallFailed: 1,
  ToolCallRequested: 1,
  ToolCallCompleted: 1,
  ToolCallFailed: 1,
  TurnAssessed: 1,
  ModelNudged: 1,
  ContextReset: 1,
  ToolResultRefined: 1,
  EpisodeFinished: 1,
  SampleScored: 1,
  ProbeRecorded: 1,
  LogTailCut: 1,
  EndpointJoined: 1,
  EndpointLeft: 1,
  EndpointEjected: 1,
  EndpointReturned: 1,
  WeightsPublished: 1,
  EndpointWeightsUpdated: 1,
  ToolVersionRegistered: 1,
  ToolReplicaStarted: 1,
  ToolReplicaExited: 1,
  ToolCircuitChanged: 1,
  ToolTrafficShifted: 1,
  ToolSandboxesReconciled: 1,
  ToolCallServed: 1,
  ToolPoolSampled: 1,
  JudgeVerdictRecorded: 1,
  GroupStarted: 1,
  BatchPublished: 1,
  BatchConsumed: 1,
  TrainerStepReported: 1,
}

export const isEventType = (type: string): type is EventType => Object.hasOwn(currentVersions, type)

/**
 * Envelope fields an actor supplies when it appends. `eventId` is deterministic where the event
 * answers a command (derived from the command id), so a redelivered command cannot write twice.
 */
export interface EventMeta {
  readonly eventId: string
  readonly recordedAt: string
  readonly correlationId: string
  readonly causationId: string
  readonly actor: string
}

/** An event to append: its meta plus the payload, validated against the schema before it is written. */
export interface NewEvent<E extends DomainEvent = DomainEvent> extends EventMeta {
  readonly event: E
}

/**
 * An event as the log holds it: envelope decoded, payload not yet checked against the schema.
 * `position` is the log's stream sequence: strictly increasing, not necessarily contiguous.
 */
export interface LogRecord extends EventMeta {
  readonly position: number
  readonly subject: string
  readonly schemaVersion: number
  readonly type: string
  readonly payload: unknown
  /**
   * Paths in `payload` of fields held in the blob store (a `BlobMarker` at each). Set only on a
   * record straight from the bytes: the log resolves them before a reader sees the record.
   */
  readonly blobs?: ReadonlyArray<ReadonlyArray<string | number>>
}

/** A fully decoded event: the envelope and a payload of the current schema version. */
export interface Envelope<E extends DomainEvent = DomainEvent> extends EventMeta {
  readonly position: number
  readonly subject: string
  readonly schemaVersion: number
  readonly event: E
}
