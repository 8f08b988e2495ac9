import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import {
  jsonInvalidError,
  missingError,
  modelAttributesTypeError,
  zodIssuesToPydantic,
  type PydanticError,
} from "../../shared/api/pydantic-errors.js";
import type { AppBindings, Services } from "../app.types.js";
import { locateJsonError } from "../lib/python-json-error.js";

// Reads a JSON request body the way FastAPI does for a pydantic-model parameter, so every client mistake gets
// the same answer as from the original service:
// - no body, or JSON null             -> 422 missing at ["body"]
// - no Content-Type, application/json or application/*+json -> parsed as JSON; invalid -> 422 json_invalid
// - any other Content-Type            -> 422 model_attributes_type at ["body"] (the raw text is not a mapping)
// - bytes that are not UTF-8          -> 400 "There was an error parsing the body"
// - valid JSON                        -> validated by the zod schema, errors translated to pydantic's
// (zod-openapi's own body validator answers 400/415 for these cases, so bodies are declared to OpenAPI by
// reference and validated here.)

export interface BodyVariables<T> {
  body: T;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lossy = new TextDecoder("utf-8");

function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return true;
  const essence = header.split(";", 1)[0].trim().toLowerCase();
  const slash = essence.indexOf("/");
  if (slash < 0) return false;
  const subtype = essence.slice(slash + 1);
  return essence.slice(0, slash) === "application" && (subtype === "json" || subtype.endsWith("+json"));
}

type ParsedBody = { ok: true; value: unknown } | { ok: false; status: 400 | 422; detail: string | PydanticError[] };

async function readBody(c: { req: { arrayBuffer(): Promise<ArrayBuffer>; header(name: string): string | undefined } }): Promise<ParsedBody> {
  const raw = new Uint8Array(await c.req.arrayBuffer());
  if (raw.byteLength === 0) return { ok: false, status: 422, detail: [missingError(["body"], null)] };
  const contentType = c.req.header("content-type");
  if (!isJsonContentType(contentType)) {
    return { ok: false, status: 422, detail: [modelAttributesTypeError(["body"], utf8Lossy.decode(raw))] };
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, status: 400, detail: API_MESSAGES.bodyUnreadable };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    const located = locateJsonError(text) ?? { message: "Expecting value", position: 0 };
    return { ok: false, status: 422, detail: [jsonInvalidError(located.position, located.message)] };
  }
}

/** Validates the JSON body with the schema `pick` chooses from the app's services; sets the `body` variable. */
export function jsonBody<S extends z.ZodType>(pick: (services: Services) => S) {
  return createMiddleware<AppBindings & { Variables: BodyVariables<z.output<S>> }>(async (c, next) => {
    const parsed = await readBody(c);
    if (!parsed.ok) return c.json({ detail: parsed.detail }, parsed.status);
    if (parsed.value === null) return c.json({ detail: [missingError(["body"], null)] }, 422);
    const result = pick(c.get("services")).safeParse(parsed.value);
    if (!result.success) {
      const detail = zodIssuesToPydantic(result.error.issues, parsed.value, ["body"]);
      try {
        return c.json({ detail }, 422);
      } catch {
        // An echoed input nested too deeply to serialise; Python's decoder refuses such documents outright
        // (RecursionError), which FastAPI answers like an unreadable body.
        return c.json({ detail: API_MESSAGES.bodyUnreadable }, 400);
      }
    }
    c.set("body", result.data);
    await next();
  });
}

/**
 * Caps the body size before anything reads it (413 {"detail": ...}). A declared Content-Length is checked
 * directly, so the body can then be read on the Node adapter's fast path; a chunked body is counted while
 * streaming (hono's bodyLimit).
 */
export const bodySizeLimit = createMiddleware<AppBindings>(async (c, next) => {
  const { maxBodyBytes, bodyLimit } = c.get("services");
  const declared = c.req.header("content-length");
  if (declared !== undefined && c.req.header("transfer-encoding") === undefined) {
    if (Number(declared) > maxBodyBytes) return c.json({ detail: API_MESSAGES.bodyTooLarge }, 413);
    return next();
  }
  return bodyLimit(c, next);
});
