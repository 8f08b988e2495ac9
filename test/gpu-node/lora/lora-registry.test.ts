import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configSchema } from "../../../shared/config/config.schema.js";
import { DomainError } from "../../../shared/errors/error-codes.js";
import { LoraRegistry, LoraRegistryError, withTriggerWords } from "../../../gpu-node/lora/lora-registry.js";
import { encodeSafetensors, fixtureRng, lohaModule, loraModule, TINY_MODULES, writeSafetensors } from "../../helpers/lora-fixtures.js";

const MODEL = join(process.cwd(), "models/tiny-sd");
const U = TINY_MODULES.unet;
const T = TINY_MODULES.text_encoder;

const loraConfig = (lora: unknown) => configSchema.parse({ lora }).lora;

describe("LoRA registry", () => {
  let root: string;
  let dir: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "lora-registry-"));
    dir = join(root, "loras");
    await mkdir(dir);
    const rng = fixtureRng(5);
    await writeSafetensors(join(dir, "style.safetensors"), {
      ...loraModule(U.to_q, { rank: 2, rng }),
      ...loraModule(T.q_proj, { rank: 2, rng }),
      ...loraModule({ ...T.q_proj, key: "lora_te2_text_model_encoder_layers_0_self_attn_q_proj" }, { rank: 2, rng }),
      ...loraModule({ key: "lora_unet_down_blocks_7_resnets_0_conv1", out: 8, in: 8, kh: 3, kw: 3 }, { rank: 2, rng }),
      "lora_unet_down_blocks_0_resnets_0_conv1.lokr_w1": { dtype: "F32", shape: [2, 2], values: new Float32Array(4) },
    });
    await writeSafetensors(join(dir, "texture.safetensors"), lohaModule(U.conv1, { rank: 2, tucker: true, rng }));
    await writeFile(join(dir, "broken.safetensors"), encodeSafetensors(loraModule(U.to_q, { rank: 2, rng })).subarray(0, 100));
    await writeSafetensors(join(dir, "sdxl-only.safetensors"), loraModule({ ...U.to_q, key: "lora_unet_input_blocks_4_1_proj_in" }, { rank: 2, rng }));
    await writeSafetensors(join(dir, "wrong-shape.safetensors"), loraModule({ ...U.to_q, in: 40 }, { rank: 2, rng }));
    await writeFile(join(dir, "notes.txt"), "not an adapter");
    await writeSafetensors(join(root, "elsewhere", "outside.safetensors"), loraModule(U.proj_in, { rank: 2, rng }));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("lists the directory's adapters with matched, unmatched and unsupported keys", async () => {
    const registry = await LoraRegistry.load(loraConfig({ models_dir: dir }), { modelDir: MODEL });
    const list = registry.list();
    expect(list.map((e) => e.name)).toEqual(["broken", "sdxl-only", "style", "texture", "wrong-shape"]);
    const style = registry.get("style")!;
    expect(style).toMatchObject({ kind: "lora", matchedModules: 2, startupWeight: null, error: null, path: join(dir, "style.safetensors") });
    expect(style.unmatchedKeys.sort()).toEqual(["lora_te2_text_model_encoder_layers_0_self_attn_q_proj", "lora_unet_down_blocks_7_resnets_0_conv1"]);
    expect(style.unsupportedKeys).toEqual([{ key: "lora_unet_down_blocks_0_resnets_0_conv1", reason: "not LoRA or LoHA (parts: lokr_w1)" }]);
    expect(registry.get("texture")).toMatchObject({ kind: "loha", matchedModules: 1, unmatchedKeys: [], error: null });
    expect(registry.get("broken")?.error).toMatch(/broken\.safetensors: .*runs past the end/);
    expect(registry.get("sdxl-only")?.error).toBe("no module of this adapter matches a weight of the model");
    expect(registry.get("sdxl-only")?.unmatchedKeys).toEqual(["lora_unet_input_blocks_4_1_proj_in"]);
    expect(registry.get("wrong-shape")?.error).toMatch(/shape mismatch/);
    expect(registry.startup()).toEqual([]);
  });

  it("resolves request adapters and refuses unknown, unusable and repeated names", async () => {
    const registry = await LoraRegistry.load(loraConfig({ models_dir: dir }), { modelDir: MODEL });
    expect(registry.forRequest([{ name: "texture", weight: 0.4 }])).toEqual([{ name: "texture", path: join(dir, "texture.safetensors"), weight: 0.4, triggerWords: [] }]);
    const refused = (requests: { name: string; weight: number }[]) => {
      try {
        registry.forRequest(requests);
      } catch (err) {
        expect(err).toBeInstanceOf(DomainError);
        expect((err as DomainError).code).toBe("invalid_argument");
        return (err as Error).message;
      }
      throw new Error("not refused");
    };
    expect(refused([{ name: "nope", weight: 1 }])).toBe('unknown LoRA "nope"; available: style, texture');
    expect(refused([{ name: "broken", weight: 1 }])).toMatch(/^LoRA "broken" cannot be used: /);
    expect(refused([{ name: "style", weight: 1 }, { name: "style", weight: 2 }])).toBe('LoRA "style" is listed twice');
    const adapter = await registry.open("style");
    expect(adapter.description.modules).toHaveLength(4);
  });

  it("applies start-up adapters from lora.models and models_list to every request, with trigger words", async () => {
    const registry = await LoraRegistry.load(
      loraConfig({
        models_dir: dir,
        models: [{ path: join("elsewhere", "outside.safetensors"), weight: 0.5, trigger_words: "outside style, ink" }],
        models_list: [{ path: "texture", weight: 0.7, trigger_words: ["rough"] }],
      }),
      { modelDir: MODEL, baseDir: root },
    );
    expect(registry.startup()).toEqual([
      { name: "outside", path: join(root, "elsewhere", "outside.safetensors"), weight: 0.5, triggerWords: ["outside style", "ink"] },
      { name: "texture", path: join(dir, "texture.safetensors"), weight: 0.7, triggerWords: ["rough"] },
    ]);
    const set = registry.forRequest([
      { name: "style", weight: 1 },
      { name: "texture", weight: 0.2 },
    ]);
    expect(set.map((s) => [s.name, s.weight])).toEqual([
      ["outside", 0.5],
      ["texture", 0.2],
      ["style", 1],
    ]);
    expect(withTriggerWords("a cat", set)).toBe("outside style, ink, rough, a cat");
    expect(withTriggerWords("a cat", [])).toBe("a cat");
    expect(withTriggerWords("", set)).toBe("outside style, ink, rough");
  });

  it("is empty when nothing is configured (loading would read the model's graphs for nothing)", () => {
    expect(LoraRegistry.configured(loraConfig({}))).toBe(false);
    expect(LoraRegistry.configured(loraConfig({ models_dir: dir }))).toBe(true);
    expect(LoraRegistry.configured(loraConfig({ models: [{ path: "x.safetensors" }] }))).toBe(true);
    const empty = LoraRegistry.empty();
    expect(empty.list()).toEqual([]);
    expect(empty.forRequest([])).toEqual([]);
    expect(() => empty.forRequest([{ name: "style", weight: 1 }])).toThrow('unknown LoRA "style": this node has no usable LoRA adapters');
  });

  it("stops start-up on a missing or broken start-up adapter, naming the config key", async () => {
    const load = (lora: unknown) => LoraRegistry.load(loraConfig(lora), { modelDir: MODEL, baseDir: root });
    await expect(load({ models: [{ path: "missing.safetensors" }] })).rejects.toThrow(LoraRegistryError);
    await expect(load({ models: [{ path: "missing.safetensors" }] })).rejects.toThrow(/^lora\.models\[0\]\.path: no adapter file at .*missing\.safetensors/);
    await expect(load({ models_dir: dir, models_list: [{ path: "broken.safetensors" }] })).rejects.toThrow(/^lora\.models_list\[0\]\.path: .*broken\.safetensors: /);
    await expect(load({ models_list: [{ path: "style.safetensors" }] })).rejects.toThrow(/lora\.models_list\[0\]\.path: .* lora\.models_dir is not set/);
    await expect(load({ models_dir: join(root, "nowhere") })).rejects.toThrow(/^lora\.models_dir: cannot read/);
  });
});
