import { rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxBackend } from "../../../../gpu-node/pipeline/backends/onnx.backend.js";
import { ModelLoadError } from "../../../../gpu-node/pipeline/model/model-load.error.js";
import { loadSdModel, type SdModel } from "../../../../gpu-node/pipeline/model/sd-model.loader.js";
import { TINY_SD_DIR, loadGolden, maxAbs, maxAbsDiff } from "../../../helpers/goldens.js";
import { tinyModelCopy } from "../../../helpers/tiny-model.js";

const backend = new OnnxBackend({ intraOpThreads: 1, graphOptimizationLevel: "all", device: "cpu" });

async function loadError(dir: string): Promise<ModelLoadError> {
  try {
    const model = await loadSdModel(dir, { backend });
    await model.release();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelLoadError);
    return err as ModelLoadError;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error("expected the model to fail loading");
}

describe("loadSdModel on models/tiny-sd (diffusers-script export)", () => {
  let model: SdModel;
  beforeAll(async () => {
    model = await loadSdModel(TINY_SD_DIR, { backend });
  });
  afterAll(() => model.release());

  it("reads the VAE config beside the model and SD 1.x defaults otherwise", () => {
    expect(model.name).toBe("tiny-sd");
    expect(model.vae).toEqual({ scalingFactor: 0.18215, scaleFactor: 8, latentChannels: 4 });
    // No unet/config.json: SD 1.x sample_size 64 x scale factor 8.
    expect(model.nativeSize).toBe(512);
    expect(model.schedulerConfig._class_name).toBe("PNDMScheduler");
    expect(model.memory.vae.blockOutChannels).toEqual([8, 8, 16, 16]);
  });

  it("counts the UNet's downsamplers from the graph (no unet/config.json): latent sides multiple of 2", () => {
    expect(model.unet.latentMultiple).toBe(2);
  });

  it("exposes the posterior mean and std of the sampling VAE encoder", () => {
    expect(model.vaeEncoder?.flavour.kind).toBe("patched");
  });

  it("encodes the golden prompts to diffusers' prompt_embeds", async () => {
    const golden = loadGolden("txt2img_euler");
    const ids = Int32Array.from([...golden.params.negative_prompt_input_ids, ...golden.params.prompt_input_ids]);
    const hidden = await model.textEncoder.encode(ids, 2);
    const expected = golden.tensor("prompt_embeds");
    expect(hidden.dims).toEqual(expected.shape);
    expect(maxAbsDiff(hidden.data, expected.data)).toBeLessThan(1e-4 * Math.max(1, maxAbs(expected.data)));
  });

  it("decodes the golden final latents to diffusers' image", async () => {
    for (const name of ["txt2img_euler", "txt2img_ddim"] as const) {
      const golden = loadGolden(name);
      const latents = golden.tensor("final_latents");
      const sf = Math.fround(golden.params.vae_scaling_factor);
      const unscaled = latents.data.map((x) => Math.fround(x / sf));
      const decoded = await model.vaeDecoder.decode(unscaled, latents.shape.slice(1), 1, 1);
      expect(decoded.dims).toEqual([1, 3, 64, 64]);
      const image = golden.tensor("image"); // NHWC
      const nhwc = new Float32Array(image.data.length);
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < 64 * 64; p++) {
          nhwc[p * 3 + c] = Math.min(1, Math.max(0, decoded.data[c * 4096 + p] / 2 + 0.5));
        }
      }
      expect(maxAbsDiff(nhwc, image.data)).toBeLessThan(2e-3);
    }
  });

  it("gives the same posterior for the same image (no sampling inside the graph)", async () => {
    const encoder = model.vaeEncoder!;
    const image = new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i / 50));
    const a = await encoder.encode(image, [3, 64, 64], 1, 1);
    const b = await encoder.encode(image, [3, 64, 64], 1, 1);
    if (a.kind !== "gaussian" || b.kind !== "gaussian") throw new Error("expected a gaussian posterior");
    expect(a.dims).toEqual([1, 4, 8, 8]);
    expect(Buffer.from(a.mean.buffer).equals(Buffer.from(b.mean.buffer))).toBe(true);
    expect(Buffer.from(a.std.buffer).equals(Buffer.from(b.std.buffer))).toBe(true);
    expect(Math.min(...a.std)).toBeGreaterThan(0);
  });
});

describe("loadSdModel start-up errors name the file", () => {
  it("a missing model directory", async () => {
    await expect(loadSdModel(join(tmpdir(), "no-such-model-dir"), { backend })).rejects.toThrow(/no-such-model-dir/);
  });

  it("a missing model.onnx", async () => {
    const err = await loadError(tinyModelCopy((dir) => unlinkSync(join(dir, "unet", "model.onnx"))));
    expect(err.message).toMatch(/unet\/model\.onnx is missing/);
  });

  it("missing external weights", async () => {
    const err = await loadError(tinyModelCopy((dir) => unlinkSync(join(dir, "unet", "weights.pb"))));
    expect(err.message).toMatch(/unet\/weights\.pb is missing/);
  });

  it("a broken model.onnx", async () => {
    const err = await loadError(
      tinyModelCopy((dir) => {
        unlinkSync(join(dir, "text_encoder", "model.onnx"));
        writeFileSync(join(dir, "text_encoder", "model.onnx"), "not an onnx model");
      }),
    );
    expect(err.message).toMatch(/text_encoder\/model\.onnx cannot be loaded/);
  });

  it("a missing or broken scheduler config", async () => {
    let err = await loadError(tinyModelCopy((dir) => unlinkSync(join(dir, "scheduler", "scheduler_config.json"))));
    expect(err.message).toMatch(/scheduler\/scheduler_config\.json is missing/);
    err = await loadError(
      tinyModelCopy((dir) => {
        unlinkSync(join(dir, "scheduler", "scheduler_config.json"));
        writeFileSync(join(dir, "scheduler", "scheduler_config.json"), "{ nope");
      }),
    );
    expect(err.message).toMatch(/scheduler\/scheduler_config\.json: not valid JSON/);
  });

  it("a missing model_index.json", async () => {
    const err = await loadError(tinyModelCopy((dir) => unlinkSync(join(dir, "model_index.json"))));
    expect(err.message).toMatch(/model_index\.json is missing/);
  });

  it("loads without vae_encoder/ (text-to-image only)", async () => {
    const dir = tinyModelCopy((d) => rmSync(join(d, "vae_encoder"), { recursive: true }));
    try {
      const model = await loadSdModel(dir, { backend });
      expect(model.vaeEncoder).toBeNull();
      await model.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
