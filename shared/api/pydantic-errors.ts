import type { z } from "zod";

// The original service answered validation failures the way FastAPI + pydantic v2 do, and clients parse those
// bodies. We validate with zod and translate its issues into pydantic's error types, messages and ctx, so the
// 422 bodies stay byte-compatible: {"detail":[{"type","loc","msg","input","ctx"?}]}.

export type Loc = Array<string | number>;

export interface PydanticError {
  type: string;
  loc: Loc;
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

export interface ValidationErrorBody {
  detail: PydanticError[];
}

/**
 * What a custom zod issue may carry in `params.pydantic` to pick the pydantic error type itself; without it a
 * custom issue becomes pydantic's `value_error` ("Value error, <message>").
 */
export interface PydanticIssueParams {
  type: string;
  msg: string;
  ctx?: Record<string, unknown>;
}

export function missingError(loc: Loc, input: unknown): PydanticError {
  return { type: "missing", loc, msg: "Field required", input };
}

/** pydantic's message for a value that is not a mapping where a model is expected (FastAPI validates from_attributes). */
export function modelAttributesTypeError(loc: Loc, input: unknown): PydanticError {
  return {
    type: "model_attributes_type",
    loc,
    msg: "Input should be a valid dictionary or object to extract fields from",
    input,
  };
}

/** FastAPI's own error for a body that is not valid JSON: loc carries the character offset, ctx the decoder's reason. */
export function jsonInvalidError(position: number, reason: string): PydanticError {
  return { type: "json_invalid", loc: ["body", position], msg: "JSON decode error", input: {}, ctx: { error: reason } };
}

/** pydantic's value_error; FastAPI serialises the exception in ctx as an empty object. */
export function valueError(loc: Loc, input: unknown, message: string): PydanticError {
  return { type: "value_error", loc, msg: `Value error, ${message}`, input, ctx: { error: {} } };
}

/** Python's repr of a str/number, as pydantic prints literals in messages ('png'). */
function pyRepr(value: unknown): string {
  if (typeof value === "string") return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  return String(value);
}

/** pydantic joins expected literals as "'a', 'b' or 'c'". */
function pyExpectedList(values: readonly unknown[]): string {
  const reprs = values.map(pyRepr);
  if (reprs.length <= 1) return reprs.join("");
  return `${reprs.slice(0, -1).join(", ")} or ${reprs[reprs.length - 1]}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, key as PropertyKey)) {
      return { found: false, value: undefined };
    }
    node = (node as Record<PropertyKey, unknown>)[key as string];
  }
  return { found: true, value: node };
}

function plural(n: number): string {
  return n === 1 ? "" : "s";
}

function fromInvalidType(issue: z.core.$ZodIssueInvalidType, loc: Loc, input: unknown): PydanticError {
  switch (issue.expected) {
    case "string":
      return { type: "string_type", loc, msg: "Input should be a valid string", input };
    // pyInt/pyFloat (pydantic-fields.ts) refuse wrong types themselves; these cover plain z.int()/z.number().
    case "int":
      return { type: "int_type", loc, msg: "Input should be a valid integer", input };
    case "number":
      if (typeof input === "number") return { type: "finite_number", loc, msg: "Input should be a finite number", input };
      return { type: "float_type", loc, msg: "Input should be a valid number", input };
    case "boolean":
      return { type: "bool_type", loc, msg: "Input should be a valid boolean", input };
    case "array":
      return { type: "list_type", loc, msg: "Input should be a valid list", input };
    case "object":
      return modelAttributesTypeError(loc, input);
    default:
      return { type: `${issue.expected}_type`, loc, msg: issue.message, input };
  }
}

function fromIssue(issue: z.core.$ZodIssue, loc: Loc, input: unknown): PydanticError {
  switch (issue.code) {
    case "invalid_type":
      return fromInvalidType(issue, loc, input);
    case "too_small": {
      const min = Number(issue.minimum);
      if (issue.origin === "string") {
        return { type: "string_too_short", loc, msg: `String should have at least ${min} character${plural(min)}`, input, ctx: { min_length: min } };
      }
      if (issue.origin === "array") {
        return { type: "too_short", loc, msg: `List should have at least ${min} item${plural(min)} after validation, not ${Array.isArray(input) ? input.length : 0}`, input, ctx: { field_type: "List", min_length: min, actual_length: Array.isArray(input) ? input.length : 0 } };
      }
      return issue.inclusive === false
        ? { type: "greater_than", loc, msg: `Input should be greater than ${min}`, input, ctx: { gt: min } }
        : { type: "greater_than_equal", loc, msg: `Input should be greater than or equal to ${min}`, input, ctx: { ge: min } };
    }
    case "too_big": {
      const max = Number(issue.maximum);
      if (issue.origin === "string") {
        return { type: "string_too_long", loc, msg: `String should have at most ${max} character${plural(max)}`, input, ctx: { max_length: max } };
      }
      if (issue.origin === "array") {
        return { type: "too_long", loc, msg: `List should have at most ${max} item${plural(max)} after validation, not ${Array.isArray(input) ? input.length : 0}`, input, ctx: { field_type: "List", max_length: max, actual_length: Array.isArray(input) ? input.length : 0 } };
      }
      return issue.inclusive === false
        ? { type: "less_than", loc, msg: `Input should be less than ${max}`, input, ctx: { lt: max } }
        : { type: "less_than_equal", loc, msg: `Input should be less than or equal to ${max}`, input, ctx: { le: max } };
    }
    case "not_multiple_of":
      return { type: "multiple_of", loc, msg: `Input should be a multiple of ${issue.divisor}`, input, ctx: { multiple_of: issue.divisor } };
    case "invalid_value": {
      const expected = pyExpectedList(issue.values);
      return { type: "literal_error", loc, msg: `Input should be ${expected}`, input, ctx: { expected } };
    }
    case "custom": {
      const own = issue.params?.pydantic as PydanticIssueParams | undefined;
      if (own) return { type: own.type, loc, msg: own.msg, input, ...(own.ctx ? { ctx: own.ctx } : {}) };
      return valueError(loc, input, issue.message);
    }
    default:
      return valueError(loc, input, issue.message);
  }
}

/**
 * Translates zod issues for `root` (the raw input) into pydantic errors under `locPrefix` (e.g. ["body"]).
 * pydantic reports one error per field, in declaration order, and runs model-level validators only once every
 * field is valid; zod may report several issues per path and run object refinements anyway, so both are
 * filtered here.
 */
export function zodIssuesToPydantic(issues: readonly z.core.$ZodIssue[], root: unknown, locPrefix: Loc): PydanticError[] {
  const seen = new Set<string>();
  const fieldErrors: PydanticError[] = [];
  const modelErrors: PydanticError[] = [];
  for (const issue of issues) {
    const path = issue.path as Array<string | number>;
    const key = JSON.stringify(path);
    if (seen.has(key)) continue;
    seen.add(key);
    const loc: Loc = [...locPrefix, ...path];
    const at = valueAt(root, path);
    if (!at.found && path.length > 0) {
      // pydantic's "missing" echoes the enclosing mapping as input.
      fieldErrors.push(missingError(loc, valueAt(root, path.slice(0, -1)).value));
      continue;
    }
    const error = fromIssue(issue, loc, at.value);
    (path.length === 0 ? modelErrors : fieldErrors).push(error);
  }
  return fieldErrors.length > 0 ? fieldErrors : modelErrors;
}
