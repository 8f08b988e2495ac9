// Assembles the pipeline from config: the ONNX backend, the model directory, the tokenizer, the scheduler
// factory and the torch generator. Runs inside the worker thread.
import { totalmem } from "node:os";
import { resolve } from "node:path";
import type { Config } from "../../shared/config/config.schema.js";
import { LoraRegistry } from "../lora/lora-registry.js";
import { createOnnxMatMul, type OnnxMatMul } from "../lora/onnx-matmul.kernel.js";
import { OnnxBackend } from "./backends/onnx.backend.js";
import { LoraSessionCache } from "./model/lora-sessions.cache.js";
import { ModelLoadError } from "./model/model-load.error.js";
import { loadSdModel } from "./model/sd-model.loader.js";
import { TorchGenerator } from "./rng/torch-generator.js";
import { createScheduler } from "./schedulers/index.js";
import { SdPipeline } from "./sd.pipeline.js";
import { ClipTokenizer } from "./tokenizer/clip.tokenizer.js";

/** The part of Config the pipeline needs; plain data, so it crosses into the worker as workerData. */
export interface PipelineSettings {
  modelPath: string;
  modelName: string | null;
  device: Config["device"];
  intraOpThreads: number;
  graphOptimizationLevel: Config["onnx"]["graph_optimization_level"];
  memoryBudgetMb: number;
  /** A single image over this estimate is refused; default three quarters of the machine's memory. */
  memoryLimitMb?: number;
  jpegQuality: number;
  /** config.lora, with the directory its relative paths resolve against; absent: no adapters. */
  lora?: { config: Config["lora"]; baseDir: string };
}

export function pipelineSettings(config: Config): PipelineSettings {
  return {
    modelPath: resolve(config.sd_model.path),
    modelName: config.sd_model.name,
    device: config.device,
    intraOpThreads: config.onnx.intra_op_threads,
    graphOptimizationLevel: config.onnx.graph_optimization_level,
    memoryBudgetMb: config.onnx.memory_budget_mb,
    jpegQuality: config.output.jpeg_quality,
    lora: { config: config.lora, baseDir: process.cwd() },
  };
}

/** Three quarters of the machine's memory, or of the container's limit when one is set (cgroups). */
function defaultMemoryLimit(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const available = constrained > 0 ? Math.min(constrained, totalmem()) : totalmem();
  return Math.floor(0.75 * available);
}

export async function createSdPipeline(settings: PipelineSettings): Promise<SdPipeline> {
  const backend = new OnnxBackend({
    intraOpThreads: settings.intraOpThreads,
    graphOptimizationLevel: settings.graphOptimizationLevel,
    device: settings.device,
  });
  const model = await loadSdModel(settings.modelPath, { name: settings.modelName, backend });
  let tokenizer: ClipTokenizer;
  try {
    tokenizer = ClipTokenizer.fromDirectory(model.tokenizerDir);
  } catch (err) {
    await model.release();
    throw new ModelLoadError(`tokenizer/ in ${model.dir}: ${(err as Error).message}`, { cause: err });
  }
  let loras: LoraSessionCache;
  let kernel: OnnxMatMul | null = null;
  try {
    const lora = settings.lora;
    const registry =
      lora && LoraRegistry.configured(lora.config)
        ? await LoraRegistry.load(lora.config, { modelDir: model.dir, baseDir: lora.baseDir })
        : LoraRegistry.empty();
    // onnxruntime's MatMul builds ΔW ~20x faster than a TypeScript loop. Its own backend, so merge time is
    // not counted as the request's ort_ms.
    if (registry.list().length > 0) {
      kernel = await createOnnxMatMul(
        new OnnxBackend({ intraOpThreads: settings.intraOpThreads, graphOptimizationLevel: "basic", device: "cpu" }),
      );
    }
    loras = new LoraSessionCache({
      registry,
      modelDir: model.dir,
      base: { unet: model.unet, textEncoder: model.textEncoder },
      createSession: (source) => backend.createSession(source),
      matmul: kernel?.matmul,
      limitBytes: (lora?.config.cache_mb ?? 0) * 1024 * 1024,
    });
    // Start-up adapters apply to every request: merged now, so a broken one stops start-up.
    await loras.prepareStartupSet();
  } catch (err) {
    await kernel?.release();
    await model.release();
    throw new ModelLoadError(`LoRA: ${(err as Error).message}`, { cause: err });
  }
  return new SdPipeline(
    model,
    {
      tokenizer,
      createScheduler: (choice, config) => createScheduler(choice, config),
      createGenerator: (seed) => new TorchGenerator(seed),
      ortMs: () => backend.runMs,
      loras,
    },
    {
      memoryBudgetMb: settings.memoryBudgetMb,
      memoryLimitBytes: settings.memoryLimitMb ? settings.memoryLimitMb * 1024 * 1024 : defaultMemoryLimit(),
      jpegQuality: settings.jpegQuality,
    },
  );
}
