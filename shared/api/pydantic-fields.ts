import { z } from "zod";
import type { PydanticIssueParams } from "./pydantic-errors.js";

// Number fields that behave like pydantic v2's `int` and `float` in lax mode (FastAPI's default): existing
// clients may send "3" or 3.0 for an integer, or true for a number, and get the same answers as before. Input
// of the wrong type is refused here, with pydantic's error type, because zod's own issues cannot tell an int
// field from a float field; the range checks stay zod's (mapped in pydantic-errors.ts).

const INT_STRING = /^[+-]?\d+(\.0*)?$/;
const FLOAT_STRING = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NON_FINITE_STRING = /^[+-]?(inf|infinity|nan)$/i;
// pydantic refuses to parse integer strings longer than this (int_parsing_size).
const MAX_INT_STRING = 4300;

type Ctx = z.RefinementCtx;

function refuse(ctx: Ctx, value: unknown, pydantic: PydanticIssueParams): typeof z.NEVER {
  ctx.addIssue({ code: "custom", message: pydantic.msg, input: value, params: { pydantic } });
  return z.NEVER;
}

const FINITE = { type: "finite_number", msg: "Input should be a finite number" };

/** pydantic v2 lax `int`: bools, floats without a fractional part, integer strings ("42", " 42 ", "42.0"). */
export function laxInt(value: unknown, ctx: Ctx): unknown {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return refuse(ctx, value, FINITE);
    if (!Number.isInteger(value)) {
      return refuse(ctx, value, { type: "int_from_float", msg: "Input should be a valid integer, got a number with a fractional part" });
    }
    return value;
  }
  if (typeof value === "string") {
    const s = value.trim();
    if (s.length > MAX_INT_STRING) {
      return refuse(ctx, value, { type: "int_parsing_size", msg: "Unable to parse input string as an integer, exceeded maximum size" });
    }
    if (INT_STRING.test(s)) return Number(s.replace(/\.0*$/, ""));
    return refuse(ctx, value, { type: "int_parsing", msg: "Input should be a valid integer, unable to parse string as an integer" });
  }
  return refuse(ctx, value, { type: "int_type", msg: "Input should be a valid integer" });
}

/** pydantic v2 lax `float`: numbers, bools and numeric strings; non-finite values are refused. */
export function laxFloat(value: unknown, ctx: Ctx): unknown {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") return Number.isFinite(value) ? value : refuse(ctx, value, FINITE);
  if (typeof value === "string") {
    const s = value.trim();
    if (FLOAT_STRING.test(s)) {
      const n = Number(s);
      return Number.isFinite(n) ? n : refuse(ctx, value, FINITE);
    }
    if (NON_FINITE_STRING.test(s)) return refuse(ctx, value, FINITE);
    return refuse(ctx, value, { type: "float_parsing", msg: "Input should be a valid number, unable to parse string as a number" });
  }
  return refuse(ctx, value, { type: "float_type", msg: "Input should be a valid number" });
}

export interface NumberBounds {
  ge?: number;
  le?: number;
  multipleOf?: number;
}

function bounded<T extends z.ZodNumber>(schema: T, bounds: NumberBounds): T {
  let s = schema;
  if (bounds.ge !== undefined) s = s.gte(bounds.ge) as T;
  if (bounds.le !== undefined) s = s.lte(bounds.le) as T;
  if (bounds.multipleOf !== undefined) s = s.multipleOf(bounds.multipleOf) as T;
  return s;
}

/** An integer field with pydantic's lax input conversions and ge/le/multiple_of constraints. */
export function pyInt(bounds: NumberBounds = {}) {
  const inner = bounded(z.int(), bounds);
  // zod-to-openapi does not carry multipleOf over on its own.
  return z.preprocess(laxInt, bounds.multipleOf === undefined ? inner : inner.meta({ multipleOf: bounds.multipleOf }));
}

/** A float field with pydantic's lax input conversions and ge/le constraints. */
export function pyFloat(bounds: NumberBounds = {}) {
  return z.preprocess(laxFloat, bounded(z.number(), bounds));
}
