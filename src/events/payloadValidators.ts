/**
 * Fast checks of stored event payloads: per event type, ajv compiles the JSON Schema that Effect
 * derives from the type's Effect Schema. Validating every payload of a replay with the Effect
 * Schema itself cost about ten times as much as ajv's compiled check (1.5 µs against 0.15 µs for a
 * model response), which made it the largest share of a projection rebuild.
 *
 * The Effect Schema stays the definition: the JSON Schema is derived from it, a property test
 * checks that both give the same verdict on sampled and mutated payloads of every type, and a
 * payload ajv refuses is decoded by the Effect Schema again, for its verdict and its message. Only
 * for values parsed from JSON: ajv does not see `undefined`, `NaN` or class instances the way the
 * Effect Schema does, so the append path keeps the Effect Schema.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js"
import * as Schema from "effect/Schema"
import { type EventType, eventSchemas } from "./schema.ts"

const ajv = new Ajv2020({ strict: true, allErrors: false, validateFormats: false })

const compiled = new Map<EventType, ValidateFunction>()

/** The compiled check of one event type's current payload. */
export const payloadCheck = (type: EventType): ValidateFunction => {
  let check = compiled.get(type)
  if (check === undefined) {
    const document = Schema.toJsonSchemaDocument(eventSchemas[type] as Schema.Top)
    check = ajv.compile({ ...document.schema, $defs: document.definitions })
    compiled.set(type, check)
  }
  return check
}
