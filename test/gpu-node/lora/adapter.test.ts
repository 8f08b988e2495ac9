import { describe, expect, it } from "vitest";
import { AdapterFormatError, jsMatMul, moduleDelta, openAdapter, transpose } from "../../../gpu-node/lora/adapter.js";
import type { MatMulKernel } from "../../../gpu-node/lora/adapter.js";
import { parseSafetensors } from "../../../gpu-node/lora/safetensors.reader.js";
import { encodeSafetensors, fixtureRng, lohaModule, loraModule, referenceDelta, TINY_MODULES } from "../../helpers/lora-fixtures.js";
import type { FixtureTensors, ModuleSpec } from "../../helpers/lora-fixtures.js";

const U = TINY_MODULES.unet;

function open(tensors: FixtureTensors, label = "fixture.safetensors") {
  return openAdapter("fixture", parseSafetensors(encodeSafetensors(tensors), label));
}

function expectClose(actual: Float32Array, expected: Float64Array) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  expect(scale).toBeGreaterThan(0);
  expect(worst).toBeLessThanOrEqual(scale * 1e-5);
}

describe("adapter parsing", () => {
  it("groups kohya keys by module and component, with shapes", () => {
    const rng = fixtureRng(1);
    const adapter = open({
      ...loraModule(U.to_q, { rank: 4, alpha: 2, rng }),
      ...loraModule(U.conv1, { rank: 2, rng }),
      ...lohaModule(U.up_conv1, { rank: 3, alpha: 1, rng }),
      ...lohaModule(U.conv1 as ModuleSpec & { key: string }, { rank: 2, tucker: true, rng }),
      ...loraModule(TINY_MODULES.text_encoder.q_proj, { rank: 4, rng }),
      ...loraModule({ ...TINY_MODULES.text_encoder.q_proj, key: "lora_te2_text_model_encoder_layers_0_self_attn_q_proj" }, { rank: 4, rng }),
    });
    const byKey = new Map(adapter.description.modules.map((m) => [m.key + ":" + m.kind, m]));
    expect(byKey.get(`${U.to_q.key}:lora`)).toMatchObject({ component: "unet", module: U.to_q.key.slice("lora_unet_".length), rank: 4, out: 32, inFlat: 32, kernel: [1, 1] });
    expect(byKey.get(`${U.conv1.key}:lora`)).toMatchObject({ rank: 2, out: 64, inFlat: 32 * 9, kernel: [3, 3] });
    expect(byKey.get(`${U.up_conv1.key}:loha`)).toMatchObject({ rank: 3, out: 64, inFlat: 128 * 9, kernel: null });
    expect(byKey.get(`${TINY_MODULES.text_encoder.q_proj.key}:lora`)).toMatchObject({ component: "text_encoder", module: "text_model_encoder_layers_0_self_attn_q_proj" });
    expect(byKey.get("lora_te2_text_model_encoder_layers_0_self_attn_q_proj:lora")).toMatchObject({ component: "text_encoder_2" });
    expect(adapter.description.unsupported).toEqual([]);
  });

  it("lists what it does not apply instead of failing", () => {
    const adapter = open({
      "lora_unet_x.lokr_w1": { dtype: "F32", shape: [2, 2], values: new Float32Array(4) },
      "lora_unet_y.lora_down.weight": { dtype: "F32", shape: [1, 2], values: new Float32Array(2) },
      "lora_unet_y.lora_up.weight": { dtype: "F32", shape: [2, 1], values: new Float32Array(2) },
      "lora_unet_y.dora_scale": { dtype: "F32", shape: [2, 1], values: new Float32Array(2) },
      "text_encoder.q.lora_A.weight": { dtype: "F32", shape: [1, 2], values: new Float32Array(2) },
      stray: { dtype: "F32", shape: [1], values: new Float32Array(1) },
    });
    expect(adapter.description.modules).toEqual([]);
    const reasons = Object.fromEntries(adapter.description.unsupported.map((u) => [u.key, u.reason]));
    expect(reasons["lora_unet_x"]).toMatch(/not LoRA or LoHA \(parts: lokr_w1\)/);
    expect(reasons["lora_unet_y"]).toMatch(/DoRA/);
    expect(reasons["text_encoder"]).toMatch(/unknown prefix/);
    expect(reasons["stray"]).toMatch(/not a <module>.<part> key/);
  });

  const malformed: [string, FixtureTensors, RegExp][] = [
    ["a rank that differs between down and up", { "lora_unet_a.lora_down.weight": t([4, 8]), "lora_unet_a.lora_up.weight": t([8, 3]) }, /module lora_unet_a: shape mismatch \(lora_up \[8, 3\] does not take rank 4/],
    ["a missing lora_up", { "lora_unet_a.lora_down.weight": t([4, 8]) }, /module lora_unet_a has no lora_up.weight/],
    ["mixed 2-D and 4-D", { "lora_unet_a.lora_down.weight": t([4, 8]), "lora_unet_a.lora_up.weight": t([8, 4, 1, 1]) }, /must both be 2-D or both 4-D/],
    ["a vector alpha", { "lora_unet_a.lora_down.weight": t([4, 8]), "lora_unet_a.lora_up.weight": t([8, 4]), "lora_unet_a.alpha": t([2]) }, /alpha has shape \[2\], expected a scalar/],
    ["LoHA factors that disagree", { "lora_unet_a.hada_w1_a": t([8, 4]), "lora_unet_a.hada_w1_b": t([4, 6]), "lora_unet_a.hada_w2_a": t([8, 4]), "lora_unet_a.hada_w2_b": t([4, 5]) }, /module lora_unet_a: shape mismatch \(hada_w1_a/],
    ["only one Tucker core", { "lora_unet_a.hada_w1_a": t([4, 8]), "lora_unet_a.hada_w1_b": t([4, 6]), "lora_unet_a.hada_w2_a": t([4, 8]), "lora_unet_a.hada_w2_b": t([4, 6]), "lora_unet_a.hada_t1": t([4, 4, 3, 3]) }, /only one of hada_t1 \/ hada_t2/],
  ];
  for (const [what, tensors, message] of malformed) {
    it(`rejects ${what}, naming the file and module`, () => {
      expect(() => open(tensors, "bad.safetensors")).toThrow(AdapterFormatError);
      expect(() => open(tensors, "bad.safetensors")).toThrow(/^bad\.safetensors: /);
      expect(() => open(tensors, "bad.safetensors")).toThrow(message);
    });
  }
});

function t(shape: number[]) {
  return { dtype: "F32", shape, values: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}

describe("ΔW", () => {
  const cases: [string, ModuleSpec, (rng: () => number) => FixtureTensors][] = [
    ["LoRA linear with alpha", U.ff_proj, (rng) => loraModule(U.ff_proj, { rank: 4, alpha: 2, rng })],
    ["LoRA linear without alpha (alpha = rank)", U.attn2_to_k, (rng) => loraModule(U.attn2_to_k, { rank: 3, rng })],
    ["LoRA 1x1 conv", U.proj_in, (rng) => loraModule(U.proj_in, { rank: 4, alpha: 1, conv: true, rng })],
    ["LoCon 3x3 conv", U.conv1, (rng) => loraModule(U.conv1, { rank: 4, alpha: 8, rng })],
    ["LoCon 3x3 conv with lora_mid (Tucker)", U.conv1, (rng) => loraModule(U.conv1, { rank: 3, alpha: 1.5, mid: true, rng })],
    ["LoHA linear", U.to_q, (rng) => lohaModule(U.to_q, { rank: 4, alpha: 2, rng })],
    ["LoHA 3x3 conv", U.up_conv1, (rng) => lohaModule(U.up_conv1, { rank: 2, alpha: 1, rng })],
    ["LoHA 3x3 conv with Tucker", U.conv1, (rng) => lohaModule(U.conv1, { rank: 3, alpha: 2, tucker: true, rng })],
    ["LoHA stored as BF16", U.time_emb_proj, (rng) => lohaModule(U.time_emb_proj, { rank: 4, alpha: 4, dtype: "BF16", rng })],
    ["LoRA stored as F16", U.shortcut, (rng) => loraModule(U.shortcut, { rank: 2, alpha: 1, dtype: "F16", conv: true, rng })],
  ];
  for (const [what, spec, make] of cases) {
    it(`${what} matches the formula, times the weight, in both layouts`, async () => {
      const tensors = make(fixtureRng(what.length));
      const adapter = open(tensors);
      const [module] = adapter.description.modules;
      const rows = spec.out;
      const cols = spec.in * spec.kh * spec.kw;
      let calls = 0;
      const counting: MatMulKernel = (a, b, m, k, n) => {
        calls++;
        return jsMatMul(a, b, m, k, n);
      };
      for (const weight of [1, 0.7, -0.5]) {
        const reference = referenceDelta(tensors, spec, weight);
        expectClose(await moduleDelta(adapter.file, module, weight), reference);
        const asStored = await moduleDelta(adapter.file, module, weight, { layout: "in_out", matmul: counting });
        expectClose(transpose(asStored, cols, rows), reference);
      }
      expect(calls).toBeGreaterThan(0);
      expect(Array.from(await moduleDelta(adapter.file, module, 0)).every((v) => v === 0)).toBe(true);
    });
  }
});

describe("kernels", () => {
  it("multiplies like the textbook loop, for any inner size", () => {
    const rng = fixtureRng(77);
    for (const [m, k, n] of [[3, 1, 5], [4, 7, 3], [9, 8, 2], [1, 13, 1]]) {
      const a = Float32Array.from({ length: m * k }, rng);
      const b = Float32Array.from({ length: k * n }, rng);
      const c = jsMatMul(a, b, m, k, n) as Float32Array;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
          expect(c[i * n + j]).toBeCloseTo(s, 6);
        }
    }
    const t = transpose(Float32Array.from({ length: 70 * 33 }, (_, i) => i), 70, 33);
    expect(t[5 * 70 + 69]).toBe(69 * 33 + 5);
  });
});
