import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEY_1, createTestEdge, type TestEdge } from "../edge-test-app.js";

// The generate body as FastAPI reads it: content types, empty and malformed bodies (the cases every edge shares,
// and the size limits, are in test/contract/public-api.contract.ts).

let edge: TestEdge;
beforeAll(async () => {
  edge = await createTestEdge({ api: { keys: [KEY_1], limits: { max_init_image_bytes: 3000 } } });
});
afterAll(() => edge.close());

function post(body: RequestInit["body"], headers: Record<string, string> = { "content-type": "application/json" }) {
  return edge.request("/api/v1/generate", { method: "POST", headers: { "x-api-key": KEY_1, ...headers }, body });
}

describe("body parsing (FastAPI's rules)", () => {
  it("JSON null -> missing at [\"body\"]", async () => {
    const res = await post("null");
    expect(await res.json()).toEqual({ detail: [{ type: "missing", loc: ["body"], msg: "Field required", input: null }] });
  });

  it("counts the offset in code points, as Python does", async () => {
    const res = await post('{"prompt": "🐱", x}');
    expect(((await res.json()) as { detail: Array<{ loc: unknown[] }> }).detail[0].loc).toEqual(["body", 16]);
  });

  it("a UTF-8 byte order mark is allowed", async () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"prompt":"p"}')]);
    expect((await post(bytes)).status).toBe(200);
  });

  it("parses a body without Content-Type as JSON", async () => {
    expect((await post(new TextEncoder().encode('{"prompt":"p"}'), {})).status).toBe(200);
    expect((await post(new TextEncoder().encode('{"prompt":'), {})).status).toBe(422);
  });

  it.each([
    [{ "content-type": "application/json; charset=utf-8" }, 200],
    [{ "content-type": "application/vnd.api+json" }, 200],
    [{ "content-type": "APPLICATION/JSON" }, 200],
  ])("parses JSON with content type headers %j", async (headers, status) => {
    expect((await post('{"prompt":"p"}', headers)).status).toBe(status);
  });

  it.each(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json", "json"])(
    "refuses %s as model_attributes_type with the raw text as input",
    async (type) => {
      const res = await post('{"prompt":"p"}', { "content-type": type });
      expect(res.status).toBe(422);
      expect(await res.json()).toEqual({
        detail: [
          {
            type: "model_attributes_type",
            loc: ["body"],
            msg: "Input should be a valid dictionary or object to extract fields from",
            input: '{"prompt":"p"}',
          },
        ],
      });
    },
  );

  it.each([["[]"], ['"prompt"'], ["42"], ["true"], ['[{"prompt":"p"}]']])("refuses a JSON %s that is not an object", async (text) => {
    const res = await post(text);
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({
      detail: [{ type: "model_attributes_type", loc: ["body"], msg: "Input should be a valid dictionary or object to extract fields from", input: JSON.parse(text) }],
    });
  });
});

describe("no client mistake yields a 500", () => {
  const bodies: unknown[] = [
    "",
    " ",
    "{",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[".repeat(200_000) + "]".repeat(200_000),
    '{"prompt": {"$gt": ""}}',
    '{"__proto__": {"prompt": "x"}}',
    '{"prompt": "x", "__proto__": {"isAdmin": true}}',
    '{"prompt": "x", "constructor": {"prototype": {}}}',
    '{"prompt": "\\ud800"}',
    '{"prompt": "\\u0000"}',
    '{"prompt": "x", "num_images": 1e400}',
    '{"prompt": "x", "seed": 123456789012345678901234567890}',
    '{"prompt": "x", "width": -0}',
    '{"prompt": "x", "guidance_scale": -1e-400}',
    '{"prompt": "x", "init_image": "data:image/png;base64,"}',
    '{"prompt": "x", "init_image": "data:image/png;base64,====="}',
    '{"prompt": "x", "callback_url": "http://[::1"}',
    '{"prompt": "x", "callback_url": "http://' + "a".repeat(3000) + '"}',
    '{"prompt": "x", "scheduler": "' + "é".repeat(5000) + '"}',
    '{"prompt": "' + "字".repeat(20_000) + '"}',
    { prompt: null, init_image: null, negative_prompt: null, width: null, height: null, num_images: null, seed: null, output_format: null },
    { prompt: [], init_image: [], negative_prompt: {}, width: [], height: {}, num_images: [], seed: {}, output_format: [], callback_url: [], scheduler: {} },
    { prompt: "x", num_images: "1".repeat(10_000) },
    { prompt: "x", width: "0x200", height: "5e2", guidance_scale: "1_000", strength: " .5 " },
  ];
  it.each(bodies.map((b, i) => [i, b]))("body #%i", async (_, body) => {
    const res = await post(typeof body === "string" ? body : JSON.stringify(body));
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    JSON.parse(await res.text());
  });
});
