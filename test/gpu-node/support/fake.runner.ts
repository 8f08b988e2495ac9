// A PipelineRunner test double for unit tests of the service core: timed steps that honour the abort signal,
// real PNG/JPEG bytes from sharp, and the contract's errors. The contract suite uses the real runner instead.
import sharp from "sharp";
import { DomainError } from "../../../shared/errors/error-codes.js";
import type {
  GenerateOutput,
  GenerateParams,
  LoraAdapterInfo,
  LoraCacheStats,
  PipelineRunner,
  PipelineStatus,
  RunnerHooks,
} from "../../../gpu-node/pipeline/pipeline.types.js";

export interface FakeRunnerOptions {
  stepMs?: number;
  native?: number;
  /** Makes the next generate() reject with this error. */
  failWith?: Error;
  /** What loras() lists (it applies none of them). */
  loras?: LoraAdapterInfo[];
}

export class FakeRunner implements PipelineRunner {
  readonly calls: GenerateParams[] = [];
  stepMs: number;
  failWith: Error | undefined;
  private readonly native: number;
  private readonly adapters: LoraAdapterInfo[];

  constructor(options: FakeRunnerOptions = {}) {
    this.stepMs = options.stepMs ?? 5;
    this.native = options.native ?? 64;
    this.failWith = options.failWith;
    this.adapters = options.loras ?? [];
  }

  loras(): { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } {
    return { adapters: this.adapters, cache: { entries: 0, bytes: 0, limitBytes: 0 } };
  }

  status(): PipelineStatus {
    return { modelLoaded: true, modelName: "fake-sd", nativeWidth: this.native, nativeHeight: this.native };
  }

  async generate(params: GenerateParams, hooks: RunnerHooks): Promise<GenerateOutput> {
    this.calls.push(params);
    if (this.failWith) {
      const error = this.failWith;
      this.failWith = undefined;
      throw error;
    }
    let width = params.width;
    let height = params.height;
    let total = params.numInferenceSteps;
    if (params.initImage) {
      try {
        const meta = await sharp(params.initImage).metadata();
        width = Math.floor((meta.width ?? 0) / 8) * 8;
        height = Math.floor((meta.height ?? 0) / 8) * 8;
      } catch {
        throw new DomainError("invalid_argument", "init_image is not a decodable image");
      }
      total = Math.min(Math.floor(params.numInferenceSteps * params.strength), params.numInferenceSteps);
    }
    hooks.onStart?.({ totalSteps: total, width, height });
    for (let step = 1; step <= total; step++) {
      if (hooks.signal?.aborted) throw new DomainError("cancelled", "cancelled");
      await new Promise((resolve) => setTimeout(resolve, this.stepMs));
      hooks.onProgress?.({ step, total });
    }
    if (hooks.signal?.aborted) throw new DomainError("cancelled", "cancelled");
    const jpeg = params.outputFormat === "jpeg";
    const images = await Promise.all(
      Array.from({ length: params.numImages }, async (_, index) => {
        const raw = sharp({ create: { width, height, channels: 3, background: { r: index * 40, g: 80, b: 160 } } });
        const bytes = new Uint8Array(await (jpeg ? raw.jpeg() : raw.png()).toBuffer());
        return {
          index,
          bytes,
          contentType: jpeg ? ("image/jpeg" as const) : ("image/png" as const),
          ext: jpeg ? ("jpg" as const) : ("png" as const),
          width,
          height,
        };
      }),
    );
    return {
      images,
      seed: params.seed,
      stepsRun: total,
      promptTruncated: false,
      timings: { totalMs: total * this.stepMs, ortMs: total * this.stepMs * 0.9, encodeMs: 1 },
    };
  }

  async close(): Promise<void> {}
}
