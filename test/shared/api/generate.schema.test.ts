import { describe, expect, it } from "vitest";
import { createGenerateRequestSchema, type GenerateLimits } from "../../../shared/api/generate.schema.js";
import { zodIssuesToPydantic, type PydanticError } from "../../../shared/api/pydantic-errors.js";
import { SCHEDULER_CLASSES } from "../../../shared/schedulers/scheduler-names.js";

const LIMITS: GenerateLimits = { maxPixels: 1024 * 1024, maxInitImageBytes: 1000, defaultWidth: null, defaultHeight: null };
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]);
const GIF = Buffer.from("GIF89a....");

function parse(input: Record<string, unknown>, limits: GenerateLimits = LIMITS) {
  const body = { prompt: "p", ...input };
  const result = createGenerateRequestSchema(limits).safeParse(body);
  return result.success
    ? { ok: true as const, value: result.data }
    : { ok: false as const, errors: zodIssuesToPydantic(result.error.issues, body, ["body"]) };
}

function errorsOf(input: Record<string, unknown>, limits?: GenerateLimits): PydanticError[] {
  const r = parse(input, limits);
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(input)}`);
  return r.errors;
}

function valueError(field: string | null, input: unknown, message: RegExp) {
  return {
    type: "value_error",
    loc: field === null ? ["body"] : ["body", field],
    msg: expect.stringMatching(new RegExp(`^Value error, ${message.source}`)),
    input,
    ctx: { error: {} },
  };
}

describe("prompt", () => {
  it("must not be blank", () => {
    expect(errorsOf({ prompt: "" })).toEqual([valueError("prompt", "", /prompt must not be blank/)]);
    expect(errorsOf({ prompt: " \n\t " })).toEqual([valueError("prompt", " \n\t ", /prompt must not be blank/)]);
  });
  it("keeps unicode as it came", () => {
    const prompt = "一只猫 🐱 \u0000 \ud800";
    expect(parse({ prompt })).toMatchObject({ ok: true, value: { prompt } });
  });
});

describe("scheduler", () => {
  it.each([...SCHEDULER_CLASSES])("accepts %s in any case", (name) => {
    expect(parse({ scheduler: name.toLowerCase() })).toMatchObject({ ok: true, value: { scheduler: name } });
  });
  it.each([
    ["euler a", "Euler a"],
    ["DPM++ 2M KARRAS", "DPM++ 2M Karras"],
    ["  ddim ", "DDIM"],
    ["plms", "PLMS"],
  ])("resolves the A1111 name %j to %j", (given, canonical) => {
    expect(parse({ scheduler: given })).toMatchObject({ ok: true, value: { scheduler: canonical } });
  });
  it("refuses unknown names with a value_error", () => {
    expect(errorsOf({ scheduler: "UniPCMultistepScheduler" })).toEqual([
      valueError("scheduler", "UniPCMultistepScheduler", /unknown scheduler 'UniPCMultistepScheduler'/),
    ]);
  });
  it("null means the server's default", () => {
    expect(parse({ scheduler: null })).toMatchObject({ ok: true, value: { scheduler: null } });
  });
});

describe("output_format", () => {
  it("defaults to png and accepts jpg/jpeg in any case", () => {
    expect(parse({})).toMatchObject({ ok: true, value: { output_format: "png" } });
    expect(parse({ output_format: "JPG" })).toMatchObject({ ok: true, value: { output_format: "jpg" } });
    expect(parse({ output_format: "Jpeg" })).toMatchObject({ ok: true, value: { output_format: "jpeg" } });
  });
  it("refuses other formats as pydantic's literal_error", () => {
    expect(errorsOf({ output_format: "webp" })).toEqual([
      { type: "literal_error", loc: ["body", "output_format"], msg: "Input should be 'png', 'jpg' or 'jpeg'", input: "webp", ctx: { expected: "'png', 'jpg' or 'jpeg'" } },
    ]);
  });
});

describe("init_image", () => {
  const url = (mime: string, bytes: Buffer) => `data:${mime};base64,${bytes.toString("base64")}`;

  it("accepts PNG and JPEG data URLs and keeps the decoded bytes", () => {
    const png = parse({ init_image: url("image/png", PNG) });
    expect(png.ok && png.value.init_image).toEqual({ type: "png", bytes: new Uint8Array(PNG) });
    const jpeg = parse({ init_image: url("image/jpeg", JPEG) });
    expect(jpeg.ok && jpeg.value.init_image).toEqual({ type: "jpeg", bytes: new Uint8Array(JPEG) });
    // Clients label any image as png (the spec's own example does); the bytes decide.
    const labelledWrong = parse({ init_image: url("image/png", JPEG) });
    expect(labelledWrong.ok && labelledWrong.value.init_image?.type).toBe("jpeg");
    expect(parse({ init_image: url("image/jpg", JPEG) }).ok).toBe(true);
  });

  it.each([
    ["a bare base64 string", PNG.toString("base64"), /init_image must be a data URL/],
    ["another image type", url("image/gif", GIF), /init_image must be a data URL/],
    ["bytes that are not PNG or JPEG", url("image/png", GIF), /init_image is not a PNG or JPEG image/],
    ["invalid base64", "data:image/png;base64,%%%%", /init_image is not valid base64/],
    ["an image far over the byte limit (refused before decoding)", url("image/png", Buffer.concat([PNG, Buffer.alloc(20_000)])), /init_image is larger than 1000 bytes/],
    ["an image just over the byte limit", url("image/png", Buffer.concat([PNG, Buffer.alloc(1000 - PNG.length + 1)])), /init_image is 1001 bytes; the limit is 1000 bytes/],
  ])("refuses %s", (_, value, message) => {
    expect(errorsOf({ init_image: value })).toEqual([valueError("init_image", value, message)]);
  });

  it("accepts an image exactly at the byte limit", () => {
    expect(parse({ init_image: url("image/png", Buffer.concat([PNG, Buffer.alloc(1000 - PNG.length)])) }).ok).toBe(true);
  });
});

describe("callback_url", () => {
  it.each(["http://example.com/cb", "https://example.com:8443/a?b=c", "http://127.0.0.1:9999/hook"])("accepts %s", (value) => {
    expect(parse({ callback_url: value })).toMatchObject({ ok: true, value: { callback_url: value } });
  });
  it.each(["ftp://example.com/x", "example.com/cb", "/relative", "javascript:alert(1)", "http://", "file:///etc/passwd", ""])("refuses %j", (value) => {
    expect(errorsOf({ callback_url: value })).toEqual([valueError("callback_url", value, /callback_url must be an http or https URL with a host/)]);
  });
});

describe("loras", () => {
  function loraError(i: number, input: unknown, message: RegExp) {
    return { ...valueError("loras", input, message), loc: ["body", "loras", i, "name"] };
  }

  it("defaults each weight to 1 and drops unknown keys of an entry", () => {
    expect(parse({ loras: [{ name: "ink" }, { name: "style", weight: "-0.5", strength: 3 }] })).toMatchObject({
      ok: true,
      value: { loras: [{ name: "ink", weight: 1 }, { name: "style", weight: -0.5 }] },
    });
    expect(parse({ loras: [] })).toMatchObject({ ok: true, value: { loras: [] } });
  });

  it("refuses blank and repeated names at the entry's name, the first occurrence kept", () => {
    expect(errorsOf({ loras: [{ name: "  " }] })).toEqual([loraError(0, "  ", /LoRA name must not be blank$/)]);
    expect(errorsOf({ loras: [{ name: "ink" }, { name: "style" }, { name: "ink", weight: 0.5 }] })).toEqual([
      loraError(2, "ink", /LoRA 'ink' is listed twice$/),
    ]);
  });

  it("checks duplicates only once every entry is valid", () => {
    expect(errorsOf({ loras: [{ name: "ink" }, { name: "ink", weight: 20 }] })).toEqual([
      { type: "less_than_equal", loc: ["body", "loras", 1, "weight"], msg: "Input should be less than or equal to 10", input: 20, ctx: { le: 10 } },
    ]);
  });

  it("allows the whole weight range, 0 and negative included", () => {
    for (const weight of [-10, -1, 0, 0.35, 10]) expect(parse({ loras: [{ name: "ink", weight }] }), String(weight)).toMatchObject({ ok: true });
    expect(errorsOf({ loras: [{ name: "ink", weight: Number.POSITIVE_INFINITY }] })[0]).toMatchObject({ type: "finite_number", loc: ["body", "loras", 0, "weight"] });
  });
});

describe("pixel budget", () => {
  it("refuses width x height over api.limits.max_pixels as a model-level value_error", () => {
    const body = { prompt: "p", width: 2048, height: 1024 };
    expect(errorsOf(body)).toEqual([valueError(null, body, /width × height = 2097152 pixels exceeds the limit of 1048576/)]);
    expect(parse({ width: 1024, height: 1024 }).ok).toBe(true);
  });
  it("uses generation_defaults for a missing side when the config fixes one", () => {
    const limits = { ...LIMITS, defaultWidth: 1024, defaultHeight: 1024 };
    expect(parse({ width: 2048 }, limits).ok).toBe(false);
    expect(parse({ width: 2048 }, LIMITS).ok).toBe(true);
  });
  it("does not apply to img2img (the output takes the input's size)", () => {
    const init_image = `data:image/png;base64,${PNG.toString("base64")}`;
    expect(parse({ width: 2048, height: 2048, init_image }).ok).toBe(true);
  });
  it("is only checked once every field is valid (as pydantic's model validators)", () => {
    expect(errorsOf({ width: 2048, height: 2048, num_images: 0 })).toEqual([
      expect.objectContaining({ type: "greater_than_equal", loc: ["body", "num_images"] }),
    ]);
  });
});

describe("numbers", () => {
  it("refuses non-finite values and huge integers without crashing", () => {
    expect(errorsOf({ guidance_scale: Infinity })[0]).toMatchObject({ type: "finite_number", loc: ["body", "guidance_scale"] });
    expect(errorsOf({ num_images: -Infinity })[0]).toMatchObject({ type: "finite_number", loc: ["body", "num_images"] });
    expect(errorsOf({ guidance_scale: "nan" })[0]).toMatchObject({ type: "finite_number" });
    expect(errorsOf({ seed: 2 ** 70 })[0]).toMatchObject({ type: "less_than_equal", loc: ["body", "seed"], ctx: { le: Number.MAX_SAFE_INTEGER } });
    expect(errorsOf({ seed: "1".repeat(5000) })[0]).toMatchObject({ type: "int_parsing_size", loc: ["body", "seed"] });
  });
  it("accepts the full seed range", () => {
    expect(parse({ seed: 0 })).toMatchObject({ ok: true, value: { seed: 0 } });
    expect(parse({ seed: Number.MAX_SAFE_INTEGER })).toMatchObject({ ok: true, value: { seed: Number.MAX_SAFE_INTEGER } });
  });
});

describe("defaults", () => {
  it("resolves the spec's defaults and leaves nullable fields null", () => {
    expect(parse({})).toEqual({
      ok: true,
      value: {
        prompt: "p",
        init_image: null,
        negative_prompt: null,
        width: null,
        height: null,
        num_images: 1,
        num_inference_steps: null,
        guidance_scale: null,
        strength: 0.75,
        scheduler: null,
        seed: null,
        output_format: "png",
        callback_url: null,
        loras: null,
      },
    });
  });
});
