// Loads a diffusers-layout ONNX export (OnnxStableDiffusionPipeline or optimum's ORTStableDiffusionPipeline):
// model_index.json, scheduler/scheduler_config.json, tokenizer/, text_encoder/, unet/, vae_decoder/ and, for
// img2img, vae_encoder/. Any missing or unreadable file stops start-up with a message naming it.
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import type { ModelSession, OnnxBackend, SessionSource } from "../backends/onnx.backend.js";
import {
  SD1_UNET_MEMORY,
  SD1_VAE_MEMORY,
  type UnetMemoryInfo,
  type VaeMemoryInfo,
} from "../memory/memory-budget.js";
import { ModelLoadError } from "./model-load.error.js";
import { appendGraphOutputs, findPosteriorSample, readExternalDataLocations, readGraphNodes } from "./onnx-graph.patch.js";
import { TextEncoderModel } from "./text-encoder.model.js";
import { UnetModel } from "./unet.model.js";
import { VaeDecoderModel } from "./vae-decoder.model.js";
import { VaeEncoderModel } from "./vae-encoder.model.js";

type Json = Record<string, unknown>;

/** SD 1.x values, used when the export ships no config.json beside a model. */
const SD1_SCALING_FACTOR = 0.18215;
const SD1_UNET_SAMPLE_SIZE = 64;
/** SD 1.x/2.x UNets downsample three times. */
const SD1_LATENT_MULTIPLE = 8;
/** Graphs larger than this (weights inside) are not read just to count their downsamplers. */
const GRAPH_SCAN_LIMIT = 256 * 1024 * 1024;

export interface VaeSettings {
  /** diffusers' vae.config.scaling_factor. */
  scalingFactor: number;
  /** 2^(len(block_out_channels) - 1): pixels per latent cell. */
  scaleFactor: number;
  latentChannels: number;
}

export interface SdModel {
  name: string;
  dir: string;
  /** The model's own scheduler_config.json, as diffusers' `pipe.scheduler.config`. */
  schedulerConfig: Json;
  tokenizerDir: string;
  textEncoder: TextEncoderModel;
  unet: UnetModel;
  vaeDecoder: VaeDecoderModel;
  /** null when the export has no vae_encoder/ (text-to-image only). */
  vaeEncoder: VaeEncoderModel | null;
  vae: VaeSettings;
  /** unet sample_size x VAE scale factor (512 for SD 1.x). */
  nativeSize: number;
  memory: { unet: UnetMemoryInfo; vae: VaeMemoryInfo };
  release(): Promise<void>;
}

export async function loadSdModel(dir: string, options: { name?: string | null; backend: OnnxBackend }): Promise<SdModel> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new ModelLoadError(`model directory ${root} does not exist`);
  const label = (path: string) => relative(root, path) || ".";

  const index = readJson(root, "model_index.json", true);
  const className = typeof index?._class_name === "string" ? index._class_name : "";
  if (/XL|Flux|StableDiffusion3/i.test(className)) {
    throw new ModelLoadError(`model_index.json: ${className} is not supported (Stable Diffusion 1.x/2.x exports only)`);
  }
  const schedulerConfig = readJson(root, "scheduler/scheduler_config.json", true) as Json;
  const tokenizerDir = join(root, "tokenizer");
  if (!existsSync(tokenizerDir)) throw new ModelLoadError(`tokenizer/ is missing in ${root}`);

  const vaeConfig =
    readJson(root, "vae_decoder/config.json", false) ??
    readJson(root, "vae_encoder/config.json", false) ??
    readJson(root, "vae/config.json", false);
  const unetConfig = readJson(root, "unet/config.json", false);
  const vae = vaeSettings(vaeConfig);

  const sessions: ModelSession[] = [];
  const open = async (component: string, source?: SessionSource): Promise<ModelSession> => {
    const path = join(root, component, "model.onnx");
    if (!existsSync(path)) throw new ModelLoadError(`${component}/model.onnx is missing in ${root}`);
    try {
      const session = await options.backend.createSession(source ?? { path });
      sessions.push(session);
      return session;
    } catch (err) {
      throw explainLoadFailure(root, component, err);
    }
  };
  const releaseAll = async () => {
    await Promise.allSettled(sessions.map((s) => s.release()));
  };

  try {
    const textEncoder = TextEncoderModel.from(await open("text_encoder"), "text_encoder/model.onnx");
    const unet = UnetModel.from(await open("unet"), "unet/model.onnx", unetLatentMultiple(root, unetConfig));
    const vaeDecoder = VaeDecoderModel.from(await open("vae_decoder"), "vae_decoder/model.onnx");
    const vaeEncoder = existsSync(join(root, "vae_encoder")) ? await openEncoder(root, open) : null;
    if (unet.latentChannels !== null && unet.latentChannels !== vae.latentChannels) {
      throw new ModelLoadError(
        `unet/model.onnx takes ${unet.latentChannels} latent channels but the VAE config says ${vae.latentChannels}`,
      );
    }
    const sampleSize = numberOr(unetConfig?.sample_size, SD1_UNET_SAMPLE_SIZE);
    return {
      name: options.name ?? basename(root),
      dir: root,
      schedulerConfig,
      tokenizerDir,
      textEncoder,
      unet,
      vaeDecoder,
      vaeEncoder,
      vae,
      nativeSize: sampleSize * vae.scaleFactor,
      memory: { unet: unetMemory(unetConfig), vae: vaeMemory(vaeConfig) },
      release: releaseAll,
    };
  } catch (err) {
    await releaseAll();
    if (err instanceof ModelLoadError) throw err;
    throw new ModelLoadError(`${label(root)}: ${(err as Error).message}`, { cause: err });
  }
}

async function openEncoder(
  root: string,
  open: (component: string, source?: SessionSource) => Promise<ModelSession>,
): Promise<VaeEncoderModel> {
  const path = join(root, "vae_encoder", "model.onnx");
  if (!existsSync(path)) throw new ModelLoadError(`vae_encoder/model.onnx is missing in ${root}`);
  const bytes = readFileSync(path);
  let posterior: { mean: string; std: string } | null = null;
  try {
    posterior = findPosteriorSample(readGraphNodes(bytes));
  } catch (err) {
    throw new ModelLoadError(`vae_encoder/model.onnx: not a readable ONNX model (${(err as Error).message})`);
  }
  const source: SessionSource | undefined = posterior
    ? { bytes: appendGraphOutputs(bytes, [posterior.mean, posterior.std]), externalDataDir: join(root, "vae_encoder") }
    : undefined;
  return VaeEncoderModel.from(await open("vae_encoder", source), "vae_encoder/model.onnx", posterior);
}

/**
 * 2^(number of downsampling blocks): from unet/config.json's down_block_types when present, else counted from
 * the graph's node names (/down_blocks.N/downsamplers...), else the SD 1.x value.
 */
function unetLatentMultiple(root: string, config: Json | null): number {
  const blocks = config?.down_block_types;
  if (Array.isArray(blocks) && blocks.length > 0) return 2 ** (blocks.length - 1);
  const path = join(root, "unet", "model.onnx");
  if (statSync(path).size > GRAPH_SCAN_LIMIT) return SD1_LATENT_MULTIPLE;
  const downsamplers = new Set<string>();
  let named = false;
  for (const node of readGraphNodes(readFileSync(path))) {
    for (const output of node.outputs) {
      if (output.includes("down_blocks.")) named = true;
      const match = /down_blocks\.(\d+)\/downsamplers/.exec(output);
      if (match) downsamplers.add(match[1]);
    }
  }
  return named ? 2 ** downsamplers.size : SD1_LATENT_MULTIPLE;
}

function readJson(root: string, file: string, required: true): Json;
function readJson(root: string, file: string, required: false): Json | null;
function readJson(root: string, file: string, required: boolean): Json | null {
  const path = join(root, file);
  if (!existsSync(path)) {
    if (required) throw new ModelLoadError(`${file} is missing in ${root}`);
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ModelLoadError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ModelLoadError(`${file}: expected a JSON object`);
  }
  return value as Json;
}

/** Names the file behind an onnxruntime load failure: a missing external-data file, else the model itself. */
function explainLoadFailure(root: string, component: string, err: unknown): ModelLoadError {
  const message = err instanceof Error ? err.message : String(err);
  try {
    const model = readFileSync(join(root, component, "model.onnx"));
    const missing = readExternalDataLocations(model).filter((loc) => !existsSync(join(root, component, loc)));
    if (missing.length > 0) {
      return new ModelLoadError(
        `${component}/${missing[0]} is missing in ${root} (external weights of ${component}/model.onnx)`,
        { cause: err },
      );
    }
  } catch {
    // Not parseable as ONNX: fall through to the runtime's own message.
  }
  return new ModelLoadError(`${component}/model.onnx cannot be loaded: ${message}`, { cause: err });
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

function numberList(value: unknown): number[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  return value.every((v) => typeof v === "number" && v > 0) ? (value as number[]) : null;
}

function vaeSettings(config: Json | null): VaeSettings {
  const blocks = numberList(config?.block_out_channels) ?? SD1_VAE_MEMORY.blockOutChannels;
  return {
    scalingFactor: numberOr(config?.scaling_factor, SD1_SCALING_FACTOR),
    scaleFactor: 2 ** (blocks.length - 1),
    latentChannels: numberOr(config?.latent_channels, 4),
  };
}

function vaeMemory(config: Json | null): VaeMemoryInfo {
  return { blockOutChannels: numberList(config?.block_out_channels) ?? SD1_VAE_MEMORY.blockOutChannels };
}

/**
 * diffusers' UNet2DConditionModel takes its head count from `num_attention_heads`, or else (a naming accident
 * kept for compatibility) from `attention_head_dim`; either may be per block. The largest is used.
 */
function unetMemory(config: Json | null): UnetMemoryInfo {
  if (!config) return SD1_UNET_MEMORY;
  const heads = config.num_attention_heads ?? config.attention_head_dim;
  const headList = typeof heads === "number" ? [heads] : (numberList(heads) ?? [SD1_UNET_MEMORY.heads]);
  const blocks = numberList(config.block_out_channels);
  return {
    heads: Math.max(...headList),
    channelsAtFullLatent: blocks ? blocks[0] : SD1_UNET_MEMORY.channelsAtFullLatent,
  };
}
