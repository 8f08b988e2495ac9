// Text-to-image and image-to-image with the numbers of Hugging Face diffusers' StableDiffusionPipeline and
// StableDiffusionImg2ImgPipeline (torch, CPU generator): the same seed gives the same latents, step by step.
// Stages are numbered as in diffusers' __call__.
import { performance } from "node:perf_hooks";
import { DomainError } from "../../shared/errors/error-codes.js";
import { SCHEDULER_CLASSES } from "../../shared/schedulers/scheduler-names.js";
import { decodeInitImage, encodeJpeg, encodePng, type RgbImage } from "./image/image.codec.js";
import {
  fitsMemory,
  megabytes,
  samplesPerRun,
  unetBytesPerSample,
  unetSamplesPerRun,
  vaeBytesPerSample,
} from "./memory/memory-budget.js";
import { withTriggerWords, type ResolvedLora } from "../lora/lora-registry.js";
import type { AdaptedModels } from "./model/lora-sessions.cache.js";
import type { SdModel } from "./model/sd-model.loader.js";
import type { TextEncoderModel } from "./model/text-encoder.model.js";
import type {
  GenerateOutput,
  GenerateParams,
  GeneratedImage,
  LoraAdapterInfo,
  LoraCacheStats,
  LoraRequest,
  PipelineStatus,
  ProgressEvent,
  StartEvent,
} from "./pipeline.types.js";
import type { NoiseSource, Scheduler } from "./schedulers/scheduler.types.js";

const f32 = Math.fround;

export interface PromptTokenizer {
  /** CLIP ids padded/truncated to the text encoder's length (77), and whether the text was cut. */
  encode(text: string): { ids: number[]; truncated: boolean };
}

export type SchedulerFactory = (
  choice: { className: GenerateParams["scheduler"]["className"]; overrides: GenerateParams["scheduler"]["overrides"] },
  modelSchedulerConfig: Record<string, unknown>,
) => Scheduler;

export interface PipelineDeps {
  tokenizer: PromptTokenizer;
  createScheduler: SchedulerFactory;
  /** One generator per request: diffusers' torch.Generator("cpu").manual_seed(seed). */
  createGenerator: (seed: number) => NoiseSource;
  /** Milliseconds spent inside onnxruntime run() so far (the backend's counter). */
  ortMs: () => number;
  /** LoRA adapters: which apply to a request, and the UNet / text encoder with them merged. */
  loras: LoraModels;
}

/** Implemented by model/lora-sessions.cache.ts. */
export interface LoraModels {
  /** Start-up adapters plus the requested ones; DomainError invalid_argument for unknown or unusable names. */
  resolve(requests: GenerateParams["loras"]): ResolvedLora[];
  modelsFor(set: readonly ResolvedLora[], isCancelled?: () => boolean): Promise<AdaptedModels>;
  adapters(): LoraAdapterInfo[];
  stats(): LoraCacheStats;
}

export interface PipelineOptions {
  /** config.onnx.memory_budget_mb: UNet/VAE batches are split into runs whose estimate fits it. */
  memoryBudgetMb: number;
  /** A single image whose estimate exceeds this is refused (out_of_memory) instead of risking the process. */
  memoryLimitBytes: number;
  jpegQuality: number;
}

/** Intermediate values, for tests that compare against diffusers stage by stage. */
export interface PipelineInspector {
  promptEmbeds?(data: Float32Array, dims: number[]): void;
  initialLatents?(data: Float32Array, dims: number[]): void;
  step?(index: number, timestep: number, latents: Float32Array): void;
  finalLatents?(data: Float32Array, dims: number[]): void;
  /** NCHW in [0, 1], after (x / 2 + 0.5).clamp(0, 1). */
  image?(data: Float32Array, dims: number[]): void;
}

export interface RunHooks {
  onStart?: (event: StartEvent) => void;
  onProgress?: (event: ProgressEvent) => void;
  /** Polled between steps; true stops the run with DomainError("cancelled"). */
  isCancelled?: () => boolean;
  inspect?: PipelineInspector;
}

interface Latents {
  data: Float32Array;
  /** [N, C, h, w]: height before width, as diffusers. */
  dims: [number, number, number, number];
}

export class SdPipeline {
  constructor(
    readonly model: SdModel,
    private readonly deps: PipelineDeps,
    private readonly options: PipelineOptions,
  ) {}

  status(): PipelineStatus {
    return {
      modelLoaded: true,
      modelName: this.model.name,
      nativeWidth: this.model.nativeSize,
      nativeHeight: this.model.nativeSize,
    };
  }

  loras(): { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } {
    return { adapters: this.deps.loras.adapters(), cache: this.deps.loras.stats() };
  }

  async generate(params: GenerateParams, hooks: RunHooks = {}): Promise<GenerateOutput> {
    const held: { models: AdaptedModels | null } = { models: null };
    try {
      return await this.run(params, hooks, held);
    } finally {
      // Frees the sessions of an adapter set too large to keep cached.
      await held.models?.done();
    }
  }

  private async run(params: GenerateParams, hooks: RunHooks, held: { models: AdaptedModels | null }): Promise<GenerateOutput> {
    const started = performance.now();
    const ortStart = this.deps.ortMs();
    const { model } = this;
    const cancelled = () => {
      if (hooks.isCancelled?.()) throw new DomainError("cancelled", "the generation was cancelled");
    };

    // 1. Check inputs (before any work)
    this.checkInputs(params);
    const scheduler = this.createScheduler(params);
    const loras = this.deps.loras.resolve(params.loras);
    // The original service's habit: the adapters' trigger words go in front of the prompt (and into the PNG).
    const promptText = withTriggerWords(params.prompt, loras);
    cancelled();

    // 2. Define call parameters
    const n = params.numImages;
    // diffusers: do_classifier_free_guidance = guidance_scale > 1
    const cfg = params.guidanceScale > 1;
    const generator = this.deps.createGenerator(params.seed);

    // 3. Preprocess image (img2img; diffusers' step 4, moved ahead of the text encoder so a bad image fails fast)
    const init = params.initImage ? await decodeInitImage(params.initImage, model.vae.scaleFactor) : null;
    const width = init ? init.width : params.width;
    const height = init ? init.height : params.height;
    const factor = model.vae.scaleFactor;
    const latentShape = [model.vae.latentChannels, height / factor, width / factor] as const;
    const unetMemory = model.memory.unet;
    const size = `${init ? "the init image's " : ""}${width}x${height}`;
    this.checkFits(size, "UNet", unetBytesPerSample(latentShape[1], latentShape[2], unetMemory));
    const unetChunk = unetSamplesPerRun(latentShape[1], latentShape[2], unetMemory, this.options.memoryBudgetMb);
    const vaeBytes = vaeBytesPerSample(height, width, model.memory.vae);
    this.checkFits(size, "VAE", vaeBytes);
    const vaeChunk = samplesPerRun(vaeBytes, this.options.memoryBudgetMb);

    // 4. Prepare timesteps (diffusers' step 5, moved ahead so the caller learns the run's real shape before the
    //    slower stages: adapter merges and the text encoder)
    scheduler.setTimesteps(params.numInferenceSteps);
    const start = init ? img2imgStart(params.numInferenceSteps, params.strength, scheduler.order) : 0;
    const timesteps = scheduler.timesteps.subarray(start);
    if (init) scheduler.setBeginIndex(start);
    hooks.onStart?.({ totalSteps: timesteps.length, width, height });

    // 5. Encode input prompt: rows [negative x N, positive x N] when guiding, else [positive x N], with the
    //    text encoder (and below, the UNet) of the request's adapter set: the base ones when none applies.
    const adapted = await this.deps.loras.modelsFor(loras, () => hooks.isCancelled?.() ?? false);
    held.models = adapted;
    const { unet, textEncoder } = adapted;
    cancelled();
    const prompt = await this.encodePrompt(textEncoder, promptText, cfg ? (params.negativePrompt ?? "") : null, n);
    hooks.inspect?.promptEmbeds?.(prompt.embeds, prompt.dims);
    cancelled();

    // 6. Prepare latent variables
    let latents: Latents;
    if (init) {
      latents = await this.prepareImageLatents(init, n, timesteps, scheduler, generator, vaeChunk);
    } else {
      const dims: Latents["dims"] = [n, ...latentShape];
      const noise = generator.randn(dims.reduce((a, b) => a * b, 1));
      const sigma = f32(scheduler.initNoiseSigma);
      const data = new Float32Array(noise.length);
      for (let i = 0; i < noise.length; i++) data[i] = f32(noise[i] * sigma);
      latents = { data, dims };
    }
    hooks.inspect?.initialLatents?.(latents.data, [...latents.dims]);

    // 7. Denoising loop
    const total = timesteps.length;
    const perImage = latents.data.length / n;
    const guidance = f32(params.guidanceScale);
    for (let i = 0; i < total; i++) {
      cancelled();
      const t = timesteps[i];
      // expand the latents when doing classifier-free guidance: one UNet call at batch 2N
      let input = latents.data;
      if (cfg) {
        input = new Float32Array(latents.data.length * 2);
        input.set(latents.data, 0);
        input.set(latents.data, latents.data.length);
      }
      const scaled = scheduler.scaleModelInput(input, t);
      const batch = cfg ? 2 * n : n;
      const prediction = await unet.predict(scaled, latentShape, t, prompt.embeds, prompt.rowShape, batch, unetChunk);
      let noisePred = prediction;
      if (cfg) {
        // noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        noisePred = new Float32Array(n * perImage);
        const offset = n * perImage;
        for (let j = 0; j < noisePred.length; j++) {
          const uncond = prediction[j];
          noisePred[j] = f32(uncond + f32(guidance * f32(prediction[offset + j] - uncond)));
        }
      }
      latents = { data: scheduler.step(noisePred, t, latents.data, generator), dims: latents.dims };
      hooks.inspect?.step?.(i, t, latents.data);
      hooks.onProgress?.({ step: i + 1, total });
    }
    cancelled();
    hooks.inspect?.finalLatents?.(latents.data, [...latents.dims]);

    // 8. Decode: vae.decode(latents / scaling_factor), then (x / 2 + 0.5).clamp(0, 1)
    const sf = f32(model.vae.scalingFactor);
    const unscaled = new Float32Array(latents.data.length);
    for (let i = 0; i < unscaled.length; i++) unscaled[i] = f32(latents.data[i] / sf);
    const decoded = await model.vaeDecoder.decode(unscaled, latentShape, n, vaeChunk);
    const pixels = decoded.data;
    for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(1, Math.max(0, f32(f32(pixels[i] / 2) + 0.5)));
    hooks.inspect?.image?.(pixels, decoded.dims);
    const ortMs = this.deps.ortMs() - ortStart;

    // 9. Postprocess and encode
    const encodeStart = performance.now();
    const [, , outHeight, outWidth] = decoded.dims;
    // sharp encodes on libuv's pool: a batch's images in parallel.
    const applied = adapted.usage?.applied ?? [];
    const described = { ...params, prompt: promptText };
    const images: GeneratedImage[] = await Promise.all(
      Array.from({ length: n }, (_, index) =>
        this.encode(toRgb8(pixels, index, outHeight, outWidth), described, index, applied),
      ),
    );
    const encodeMs = performance.now() - encodeStart;

    return {
      images,
      seed: params.seed,
      stepsRun: total,
      promptTruncated: prompt.truncated,
      timings: { totalMs: performance.now() - started, ortMs, encodeMs },
      ...(adapted.usage ? { lora: adapted.usage } : {}),
    };
  }

  private checkInputs(params: GenerateParams): void {
    const bad = (message: string) => new DomainError("invalid_argument", message);
    const factor = this.model.vae.scaleFactor;
    if (typeof params.prompt !== "string") throw bad("prompt must be a string");
    if (!Number.isInteger(params.numImages) || params.numImages < 1 || params.numImages > 10) {
      throw bad(`num_images must be an integer in 1..10, got ${params.numImages}`);
    }
    if (!Number.isInteger(params.numInferenceSteps) || params.numInferenceSteps < 1) {
      throw bad(`num_inference_steps must be a positive integer, got ${params.numInferenceSteps}`);
    }
    if (!Number.isFinite(params.guidanceScale)) throw bad("guidance_scale must be a finite number");
    if (!Number.isSafeInteger(params.seed) || params.seed < 0) {
      throw bad(`seed must be an integer in 0..${Number.MAX_SAFE_INTEGER}, got ${params.seed}`);
    }
    if (params.initImage) {
      if (!(params.strength >= 0 && params.strength <= 1)) throw bad(`strength must be in [0, 1], got ${params.strength}`);
      if (!this.model.vaeEncoder) {
        throw bad(`image-to-image is unavailable: the model ${this.model.name} has no vae_encoder`);
      }
    } else {
      for (const [name, value] of [
        ["width", params.width],
        ["height", params.height],
      ] as const) {
        if (!Number.isInteger(value) || value <= 0 || value % factor !== 0) {
          throw bad(`${name} must be a positive multiple of ${factor}, got ${value}`);
        }
      }
    }
  }

  private createScheduler(params: GenerateParams): Scheduler {
    const { className, overrides, name } = params.scheduler;
    if (!(SCHEDULER_CLASSES as readonly string[]).includes(className)) {
      throw new DomainError("invalid_argument", `unknown scheduler ${JSON.stringify(name || className)}`);
    }
    try {
      return this.deps.createScheduler({ className, overrides }, this.model.schedulerConfig);
    } catch (err) {
      if (err instanceof DomainError) throw err;
      throw new DomainError("invalid_argument", `scheduler ${name || className}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Refuses a size whose single image cannot fit in memory at all (a batch is split to fit the budget). */
  private checkFits(size: string, stage: string, bytesPerSample: number): void {
    const limit = this.options.memoryLimitBytes;
    if (!fitsMemory(bytesPerSample, limit)) {
      throw new DomainError(
        "out_of_memory",
        `${size} needs about ${megabytes(bytesPerSample)} MB per image in the ${stage}, more than the ` +
          `${megabytes(limit)} MB this node can give one run; use a smaller size`,
      );
    }
  }

  /**
   * diffusers' encode_prompt: each text through the text encoder (one run here, rows are independent), each
   * row repeated num_images_per_prompt times, negative rows first.
   */
  private async encodePrompt(textEncoder: TextEncoderModel, positive: string, negative: string | null, n: number) {
    const texts = negative === null ? [positive] : [negative, positive];
    const encoded = texts.map((text) => this.deps.tokenizer.encode(text));
    const sequence = encoded[0].ids.length;
    const ids = new Int32Array(texts.length * sequence);
    encoded.forEach((e, row) => ids.set(e.ids, row * sequence));
    const hidden = await textEncoder.encode(ids, texts.length);
    const rowSize = hidden.data.length / texts.length;
    const embeds = new Float32Array(texts.length * n * rowSize);
    for (let t = 0; t < texts.length; t++) {
      const row = hidden.data.subarray(t * rowSize, (t + 1) * rowSize);
      for (let k = 0; k < n; k++) embeds.set(row, (t * n + k) * rowSize);
    }
    const rowShape = hidden.dims.slice(1);
    return {
      embeds,
      rowShape,
      dims: [texts.length * n, ...rowShape],
      truncated: encoded.some((e) => e.truncated),
    };
  }

  /**
   * StableDiffusionImg2ImgPipeline.prepare_latents: the posterior sampled once for the image with the
   * generator's first draw, times scaling_factor, repeated N times; then noise (second draw) added at the
   * first timestep. With no timesteps left (strength 0) the latents stay the clean encoding.
   */
  private async prepareImageLatents(
    image: RgbImage,
    n: number,
    timesteps: Float64Array,
    scheduler: Scheduler,
    generator: NoiseSource,
    vaeChunk: number,
  ): Promise<Latents> {
    const encoder = this.model.vaeEncoder;
    if (!encoder) throw new DomainError("invalid_argument", "image-to-image needs a vae_encoder");
    const { width, height } = image;
    const pixels = toSignedTensor(image);
    const posterior = await encoder.encode(pixels, [3, height, width], 1, vaeChunk);
    const [, channels, h, w] = posterior.dims;
    const size = channels * h * w;
    const eps = generator.randn(size);
    const sf = f32(this.model.vae.scalingFactor);
    const clean = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const sample =
        posterior.kind === "gaussian" ? f32(posterior.mean[i] + f32(posterior.std[i] * eps[i])) : posterior.sample[i];
      clean[i] = f32(sf * sample);
    }
    const repeated = new Float32Array(n * size);
    for (let k = 0; k < n; k++) repeated.set(clean, k * size);
    const dims: Latents["dims"] = [n, channels, h, w];
    if (timesteps.length === 0) return { data: repeated, dims };
    const noise = generator.randn(n * size);
    return { data: scheduler.addNoise(repeated, noise, timesteps[0]), dims };
  }

  private async encode(rgb: RgbImage, params: GenerateParams, index: number, loras: readonly LoraRequest[]): Promise<GeneratedImage> {
    const { width, height } = rgb;
    if (params.outputFormat === "jpeg") {
      const bytes = await encodeJpeg(rgb, this.options.jpegQuality);
      return { index, bytes, contentType: "image/jpeg", ext: "jpg", width, height };
    }
    const bytes = await encodePng(rgb, infotext(params, this.model.name, width, height, index, loras));
    return { index, bytes, contentType: "image/png", ext: "png", width, height };
  }
}

/**
 * diffusers' get_timesteps: init_timestep = min(int(steps * strength), steps), t_start = steps - init_timestep;
 * the loop starts at index t_start * scheduler.order.
 */
export function img2imgStart(steps: number, strength: number, order: number): number {
  const initTimestep = Math.min(Math.floor(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  return tStart * order;
}

/** HWC uint8 → NCHW float32 in [-1, 1]: numpy's astype(float32) / 255, then 2x - 1 (VaeImageProcessor). */
function toSignedTensor(image: RgbImage): Float32Array {
  const { data, width, height } = image;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const unit = f32(data[p * 3 + c] / 255);
      out[c * plane + p] = f32(f32(2 * unit) - 1);
    }
  }
  return out;
}

/** One image of an NCHW [0, 1] batch → HWC uint8 with numpy's (x * 255).round() (half to even). */
function toRgb8(pixels: Float32Array, index: number, height: number, width: number): RgbImage {
  const plane = height * width;
  const base = index * 3 * plane;
  const data = new Uint8Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) data[p * 3 + c] = roundHalfEven(f32(pixels[base + c * plane + p] * 255));
  }
  return { data, width, height };
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** A1111's "parameters" text: prompt, negative prompt line, then the settings line. */
export function infotext(
  params: GenerateParams,
  modelName: string,
  width: number,
  height: number,
  index: number,
  loras: readonly LoraRequest[] = [],
): string {
  const lines = [params.prompt];
  if (params.negativePrompt) lines.push(`Negative prompt: ${params.negativePrompt}`);
  const settings: Array<[string, string | number]> = [
    ["Steps", params.numInferenceSteps],
    ["Sampler", params.scheduler.name],
    ["CFG scale", params.guidanceScale],
    ["Seed", params.seed],
    ["Size", `${width}x${height}`],
    ["Model", modelName],
  ];
  if (params.initImage) settings.push(["Denoising strength", params.strength]);
  if (params.numImages > 1) settings.push(["Batch size", params.numImages], ["Batch pos", index]);
  if (loras.length > 0) settings.push(["LoRA", quoted(loras.map((l) => `${l.name}: ${l.weight}`).join(", "))]);
  lines.push(settings.map(([k, v]) => `${k}: ${v}`).join(", "));
  return lines.join("\n");
}

/** A1111's infotext quoting: a value holding a comma, colon or newline goes in JSON double quotes. */
function quoted(value: string): string {
  return /[,:\n]/.test(value) ? JSON.stringify(value) : value;
}
