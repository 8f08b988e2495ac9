// The contract between the SD pipeline (runs in a worker thread) and the gpu-node service around it.
import type { SchedulerOverrides, SchedulerClass } from "../../shared/schedulers/scheduler-names.js";
import type { LoraInfo } from "../lora/lora-registry.js";

export type OutputFormat = "png" | "jpeg";

export interface LoraRequest {
  name: string;
  weight: number;
}

/** A fully resolved request: the service fills every default before the pipeline sees it. */
export interface GenerateParams {
  prompt: string;
  negativePrompt: string | null;
  /** Ignored for img2img: the output takes the init image's size (rounded as diffusers' processor does). */
  width: number;
  height: number;
  numImages: number;
  numInferenceSteps: number;
  guidanceScale: number;
  /** img2img only, 0..1. */
  strength: number;
  /** Name echoed in metadata (e.g. "Euler a"), with its class and config overrides. */
  scheduler: { name: string; className: SchedulerClass; overrides: SchedulerOverrides };
  /** 0..2^53-1, already drawn by the caller when the client sent none. */
  seed: number;
  /** PNG or JPEG bytes; present → img2img. */
  initImage: Uint8Array | null;
  outputFormat: OutputFormat;
  loras: LoraRequest[];
}

export interface GeneratedImage {
  index: number;
  bytes: Uint8Array;
  contentType: "image/png" | "image/jpeg";
  ext: "png" | "jpg";
  width: number;
  height: number;
}

export interface GenerateTimings {
  /** Wall time of the whole generation inside the pipeline. */
  totalMs: number;
  /** Time spent inside onnxruntime `run()` calls. */
  ortMs: number;
  encodeMs: number;
}

/** What the pipeline did about adapters for one request. */
export interface LoraUsage {
  /** The set applied (start-up adapters and requested ones, weight 0 left out), in application order. */
  applied: LoraRequest[];
  /** The set's sessions came from the cache (no merge). */
  cached: boolean;
  /** Time spent merging and creating sessions for this request; 0 when cached. */
  mergeMs: number;
}

export interface GenerateOutput {
  images: GeneratedImage[];
  seed: number;
  /** Denoising steps actually run (img2img runs fewer than numInferenceSteps). */
  stepsRun: number;
  /** The prompt (or negative prompt) was longer than the text encoder's 77 tokens and was cut. */
  promptTruncated: boolean;
  timings: GenerateTimings;
  /** Absent when no adapter applied (the base model's sessions ran). */
  lora?: LoraUsage;
}

/** One adapter the node knows, as checked against its model at start-up (GET /api/v1/loras): the registry's
 * entry without its file path, which stays on the node. */
export type LoraAdapterInfo = Omit<LoraInfo, "path">;

/** The sessions with merged adapters a pipeline keeps (LRU, bounded by lora.cache_mb). */
export interface LoraCacheStats {
  entries: number;
  bytes: number;
  limitBytes: number;
}

export interface ProgressEvent {
  step: number;
  total: number;
}

/**
 * The run's real shape, known once the pipeline has decoded its input and set its timesteps: img2img takes the
 * init image's (rounded) size and runs only the last part of the schedule; PLMS and second-order schedulers
 * call the UNet more often than num_inference_steps.
 */
export interface StartEvent {
  totalSteps: number;
  width: number;
  height: number;
}

export interface RunnerHooks {
  onStart?: (event: StartEvent) => void;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

export interface PipelineStatus {
  modelLoaded: boolean;
  modelName: string;
  /** The model's native size (unet sample_size x VAE scale factor; 512 for SD 1.x without a unet config). */
  nativeWidth: number;
  nativeHeight: number;
  /** Present (true) while a planned replacement of the worker loads: loaded, but a job would wait for the reload. */
  reloading?: true;
}

/**
 * What the gpu-node service drives. Implemented by a host that owns a worker thread running the pipeline, and by
 * a pool of such hosts when gpu_node.concurrency > 1.
 * Failures reject with a DomainError (shared/errors): invalid_argument for bad input, cancelled when the
 * signal fired, out_of_memory / internal otherwise.
 */
export interface PipelineRunner {
  status(): PipelineStatus;
  /** The adapters the pipeline can apply, and its cache of merged sessions. */
  loras(): { adapters: LoraAdapterInfo[]; cache: LoraCacheStats };
  generate(params: GenerateParams, hooks: RunnerHooks): Promise<GenerateOutput>;
  close(): Promise<void>;
}
