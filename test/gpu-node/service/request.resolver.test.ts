import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { GenerateRequestSchema, LoraWeightSchema, OutputFormat, type GenerateRequest } from "../../../shared/gen/sd/v1/gpu_pb.js";
import { resolveScheduler } from "../../../shared/schedulers/scheduler-names.js";
import { isValidTaskId, resolveGenerateRequest, type ResolveContext } from "../../../gpu-node/service/request.resolver.js";

const config = parseConfig({});
const ctx: ResolveContext = {
  defaults: config.generation_defaults,
  limits: config.api.limits,
  native: { width: 512, height: 512 },
  defaultScheduler: resolveScheduler("PNDMScheduler")!,
  drawSeed: () => 42,
  loras: new Map([
    ["style", { name: "style", error: null }],
    ["broken", { name: "broken", error: "broken.safetensors: data runs past the end of the file" }],
  ]),
};
type RequestFields = Partial<Omit<GenerateRequest, "$typeName" | "$unknown">>;
const request = (init: RequestFields = {}): GenerateRequest => create(GenerateRequestSchema, { taskId: "t1", prompt: "a cat", ...init });

function resolvedParams(init: Parameters<typeof request>[0]) {
  const resolved = resolveGenerateRequest(request(init), ctx);
  if (!resolved.ok) throw new Error(`unexpected: ${resolved.error.message}`);
  return resolved;
}

function errorOf(init: Parameters<typeof request>[0], context: ResolveContext = ctx): string {
  const resolved = resolveGenerateRequest(request(init), context);
  if (resolved.ok) throw new Error("expected invalid_argument");
  expect(resolved.error.code).toBe("invalid_argument");
  return resolved.error.message;
}

describe("resolveGenerateRequest", () => {
  it("fills every default: native size, config steps/guidance/strength, model scheduler, drawn seed, png", () => {
    const { params } = resolvedParams({});
    expect(params).toEqual({
      prompt: "a cat",
      negativePrompt: null,
      width: 512,
      height: 512,
      numImages: 1,
      numInferenceSteps: 50,
      guidanceScale: 7.5,
      strength: 0.75,
      scheduler: { name: "PNDMScheduler", className: "PNDMScheduler", overrides: {} },
      seed: 42,
      initImage: null,
      outputFormat: "png",
      loras: [],
    });
  });

  it("prefers configured default sizes over the native size", () => {
    const resolved = resolveGenerateRequest(request({}), { ...ctx, defaults: { ...ctx.defaults, width: 256, height: 128 } });
    expect(resolved.ok && [resolved.params.width, resolved.params.height]).toEqual([256, 128]);
  });

  it("keeps what the request sets, including zero guidance and seed 0", () => {
    const { params } = resolvedParams({
      negativePrompt: "blurry",
      width: 64,
      height: 128,
      numImages: 3,
      numInferenceSteps: 8,
      guidanceScale: 0,
      seed: 0,
      scheduler: "dpm++ 2m karras",
      outputFormat: OutputFormat.JPEG,
      loras: [create(LoraWeightSchema, { name: "style", weight: 0.5 })],
    });
    expect(params).toMatchObject({
      negativePrompt: "blurry",
      width: 64,
      height: 128,
      numImages: 3,
      numInferenceSteps: 8,
      guidanceScale: 0,
      seed: 0,
      outputFormat: "jpeg",
      loras: [{ name: "style", weight: 0.5 }],
      scheduler: { name: "DPM++ 2M Karras", className: "DPMSolverMultistepScheduler", overrides: { use_karras_sigmas: true } },
    });
  });

  it("skips the size checks for img2img (the output takes the init image's size) and accepts strength 0", () => {
    const resolved = resolvedParams({ initImage: new Uint8Array([1, 2, 3]), numInferenceSteps: 10, strength: 0.55, width: 7 });
    expect(resolved.params.initImage).toEqual(new Uint8Array([1, 2, 3]));
    // floor(3 * 0.2) = 0 denoising steps: the pipeline returns the VAE round trip of the input.
    expect(resolvedParams({ initImage: new Uint8Array([1]), numInferenceSteps: 3, strength: 0.2 }).params.strength).toBe(0.2);
    expect(resolvedParams({ initImage: new Uint8Array([1]), strength: 0 }).params.strength).toBe(0);
  });

  it("refuses what the node cannot run, with a message naming the field", () => {
    expect(errorOf({ scheduler: "Euler b" })).toMatch(/unknown scheduler "Euler b"/);
    expect(errorOf({ width: 100, height: 64 })).toMatch(/width must be a positive multiple of 8/);
    expect(errorOf({ width: 0, height: 64 })).toMatch(/width/);
    expect(errorOf({ width: 2048, height: 2048 })).toMatch(/2048x2048 is 4194304 pixels; the limit is 1048576/);
    expect(errorOf({ numImages: 11 })).toMatch(/num_images must be 1..10/);
    expect(errorOf({ numImages: 0 })).toMatch(/num_images/);
    expect(errorOf({ numInferenceSteps: 0 })).toMatch(/num_inference_steps/);
    expect(errorOf({ guidanceScale: Number.NaN })).toMatch(/guidance_scale/);
    expect(errorOf({ strength: 1.5 })).toMatch(/strength must be 0..1/);
    expect(errorOf({ seed: 1.5 })).toMatch(/seed/);
    expect(errorOf({ seed: -1 })).toMatch(/seed/);
    expect(errorOf({ initImage: new Uint8Array(0) })).toMatch(/init_image is empty/);
    const lora = (name: string, weight = 1) => create(LoraWeightSchema, { name, weight });
    expect(errorOf({ loras: [lora(" ")] })).toBe("a LoRA entry has an empty name");
    expect(errorOf({ loras: [lora("nope")] })).toBe('unknown LoRA "nope"; available: style');
    expect(errorOf({ loras: [lora("nope")] }, { ...ctx, loras: new Map() })).toBe('unknown LoRA "nope": this node has no usable LoRA adapters');
    expect(errorOf({ loras: [lora("broken")] })).toBe('LoRA "broken" cannot be used: broken.safetensors: data runs past the end of the file');
    expect(errorOf({ loras: [lora("style"), lora("style", 0.5)] })).toBe('LoRA "style" is listed twice');
    expect(errorOf({ loras: [lora("style", Number.POSITIVE_INFINITY)] })).toBe('LoRA "style" has a weight that is not a number');
    const small = { ...ctx, limits: { ...ctx.limits, max_init_image_bytes: 4 } };
    expect(errorOf({ initImage: new Uint8Array(5) }, small)).toMatch(/init_image is 5 bytes; the limit is 4/);
  });
});

describe("isValidTaskId", () => {
  it("accepts uuid-like ids and refuses what could escape an object key", () => {
    expect(isValidTaskId("550e8400-e29b-41d4-a716-446655440000")).toBe(true);
    expect(isValidTaskId("task_1.v2")).toBe(true);
    for (const bad of ["", "..", "a/b", "a b", "x".repeat(129), "é"]) expect(isValidTaskId(bad)).toBe(false);
  });
});
