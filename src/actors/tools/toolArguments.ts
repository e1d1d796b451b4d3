/**
 * Lenient argument parsing for tool calls: an object as is, or a string read as JSON, then JSON5
 * (models write single quotes, trailing commas, unquoted keys), then checked against the tool's
 * input JSON Schema. A failure is a message meant for the model: which tool, what is wrong, where.
 */
import { Ajv, type ValidateFunction } from "ajv"
import JSON5 from "json5"

export type ParsedArguments =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly message: string }

const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false })
const compiled = new WeakMap<object, ValidateFunction | string>()

const validatorFor = (schema: object): ValidateFunction | string => {
  let v: ValidateFunction | string | undefined = compiled.get(schema)
  if (v === undefined) {
    try {
      v = ajv.compile(schema)
    } catch (error) {
      v = `the tool's input schema does not compile (${(error as Error).message}); arguments are not checked`
    }
    compiled.set(schema, v)
  }
  return v
}

const asObject = (tool: string, raw: unknown): ParsedArguments => {
  if (raw === undefined || raw === null || raw === "") return { ok: true, value: {} }
  let value = raw
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw)
    } catch {
      try {
        value = JSON5.parse(raw)
      } catch (error) {
        return {
          ok: false,
          message: `arguments of ${tool} are not valid JSON or JSON5: ${(error as Error).message}`,
        }
      }
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return {
      ok: false,
      message: `arguments of ${tool} must be a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`,
    }
  return { ok: true, value: value as Record<string, unknown> }
}

/** Parses and validates; `schema` is the tool's `inputSchema` (absent = no check). */
export const parseToolArguments = (
  tool: string,
  raw: unknown,
  schema: object | undefined,
): ParsedArguments => {
  const parsed = asObject(tool, raw)
  if (!parsed.ok || schema === undefined) return parsed
  const validate = validatorFor(schema)
  if (typeof validate === "string") return parsed
  if (validate(parsed.value)) return parsed
  const problems = (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => {
      const at = e.instancePath === "" ? "arguments" : `arguments${e.instancePath.replace(/\//g, ".")}`
      const extra =
        e.keyword === "additionalProperties"
          ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})`
          : e.keyword === "enum"
            ? ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`
            : ""
      return `${at} ${e.message ?? "is invalid"}${extra}`
    })
    .join("; ")
  return { ok: false, message: `invalid arguments for ${tool}: ${problems}` }
}
