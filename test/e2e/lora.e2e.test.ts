// LoRA end to end with real processes: a tiny adapter written by test/helpers/lora-fixtures.ts against the tiny
// model's real module names into a temp lora.models_dir, a gpu-node PROCESS configured with it, s3rver, and the
// Node edge as a PROCESS. The public API lists the adapter, checks names, and a task naming it runs it.
import { mkdtempSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3rver, type RunningS3rver } from "../../gpu-node/dev/s3rver.server.js";
import { encodeSafetensors, fixtureRng, loraModule, TINY_MODULES, writeSafetensors } from "../helpers/lora-fixtures.js";
import { ApiClient } from "./support/api.client.js";
import { startEdgeProcess, startGpuNodeProcess, waitFor, writeConfig, type EdgeProcess, type GpuNodeProcess } from "./support/processes.js";

const KEY = "e2e-key";
const U = TINY_MODULES.unet;
const T = TINY_MODULES.text_encoder;
// Small and quick; the same seed for every task so only the adapter differs.
const RUN = { prompt: "a red bicycle", width: 64, height: 64, num_inference_steps: 4, guidance_scale: 7.5, scheduler: "Euler", seed: 4242 };

let dir: string;
let s3: RunningS3rver;
let node: GpuNodeProcess;
let edge: EdgeProcess;
let api: ApiClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "e2e-lora-"));
  const loras = join(dir, "loras");
  const rng = fixtureRng(7);
  // UNet (attention MatMul, 3x3 conv) and text encoder, as a style LoRA touches both.
  await writeSafetensors(join(loras, "style.safetensors"), {
    ...loraModule(U.to_q, { rank: 4, alpha: 4, rng }),
    ...loraModule(U.conv1, { rank: 4, rng }),
    ...loraModule(U.ff_proj, { rank: 4, dtype: "F16", rng }),
    ...loraModule(T.q_proj, { rank: 4, rng }),
    ...loraModule(T.fc1, { rank: 4, rng }),
  });
  // Cut off inside its header: listed with its error, refused by name.
  await writeFile(join(loras, "broken.safetensors"), encodeSafetensors(loraModule(U.to_q, { rank: 2, rng })).subarray(0, 90));
  s3 = await startS3rver({ directory: join(dir, "s3") });
  node = await startGpuNodeProcess(dir, "node-a", s3.endpoint, "e2e-lora", { lora: { models_dir: loras } });
  const configPath = writeConfig(dir, "edge.yaml", {
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: 0 },
    task_db: { path: join(dir, "tasks.db") },
    gpu_nodes: [{ name: "node-a", grpc: node.address }],
    dispatch: { reconcile_interval_seconds: 1 },
    log_level: "info",
  });
  edge = await startEdgeProcess(configPath);
  api = new ApiClient(edge.url, KEY);
});

afterAll(async () => {
  await edge?.kill("SIGTERM");
  await node?.kill();
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function image(url: string): Promise<{ pixels: Buffer; parameters: string | undefined }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  const meta = await sharp(bytes).metadata();
  return { pixels: await sharp(bytes).raw().toBuffer(), parameters: meta.comments?.find((c) => c.keyword === "parameters")?.text };
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

async function post(body: Record<string, unknown>): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${edge.url}/api/v1/generate`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": KEY }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe("end to end: LoRA through the public API", () => {
  it("GET /api/v1/loras lists the node's adapters, checked against its model", async () => {
    await waitFor("model_loaded", async () => ((await (await fetch(`${edge.url}/health`)).json()) as { model_loaded: boolean }).model_loaded);
    const res = await fetch(`${edge.url}/api/v1/loras`, { headers: { "x-api-key": KEY } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { loras: Array<Record<string, unknown>>; nodes_total: number; nodes_answered: number };
    expect(body).toMatchObject({ nodes_total: 1, nodes_answered: 1 });
    expect(body.loras.map((l) => l.name)).toEqual(["broken", "style"]);
    expect(body.loras[1]).toEqual({
      name: "style",
      kind: "lora",
      trigger_words: [],
      default_weight: null,
      matched_modules: 5,
      unmatched_keys: 0,
      unmatched_key_examples: [],
      unsupported_keys: 0,
      size_bytes: expect.any(Number),
      error: null,
    });
    expect(body.loras[0].error).toMatch(/broken\.safetensors/);
    expect((await fetch(`${edge.url}/api/v1/loras`)).status).toBe(401);
  });

  it("refuses an unknown name and an unusable one with 422 before creating a task", async () => {
    const unknown = await post({ ...RUN, loras: [{ name: "style" }, { name: "stlye", weight: 0.7 }] });
    expect(unknown).toEqual({
      status: 422,
      json: { detail: [{ type: "value_error", loc: ["body", "loras", 1, "name"], msg: "Value error, unknown LoRA 'stlye'; available: style", input: "stlye", ctx: { error: {} } }] },
    });
    const broken = await post({ ...RUN, loras: [{ name: "broken" }] });
    expect(broken.status).toBe(422);
    expect(JSON.stringify(broken.json)).toMatch(/LoRA 'broken' cannot be used: .*broken\.safetensors/);
    expect(node.linesWith("task accepted")).toHaveLength(0);
  });

  it("a task with the adapter completes, names it in the PNG parameters, and differs from the base; weight 0 equals the base", async () => {
    const [baseId, styledId, zeroId] = [
      await api.generate(RUN),
      await api.generate({ ...RUN, loras: [{ name: "style" }] }),
      await api.generate({ ...RUN, loras: [{ name: "style", weight: 0 }] }),
    ];
    const [base, styled, zero] = [await api.waitTask(baseId), await api.waitTask(styledId), await api.waitTask(zeroId)];
    for (const task of [base, styled, zero]) expect(task, task.task_id).toMatchObject({ status: "completed", error_message: null, seed: RUN.seed });
    expect(base.loras).toEqual([]);
    expect(styled.loras).toEqual([{ name: "style", weight: 1 }]);
    expect(zero.loras).toEqual([{ name: "style", weight: 0 }]);
    // What the node was asked to apply (the dispatcher forwarded the stored list).
    expect(node.linesWith("task accepted", styledId)[0]?.loras).toEqual([{ name: "style", weight: 1 }]);
    expect(node.linesWith("task accepted", baseId)[0]?.loras).toBeUndefined();

    const [baseImage, styledImage, zeroImage] = [await image(base.result_url!), await image(styled.result_url!), await image(zero.result_url!)];
    expect(styledImage.parameters).toMatch(/^a red bicycle\n/);
    expect(styledImage.parameters).toMatch(/LoRA: "style: 1"$/);
    expect(baseImage.parameters).toBeDefined();
    expect(baseImage.parameters).not.toMatch(/LoRA/);
    expect(meanAbsDiff(styledImage.pixels, baseImage.pixels)).toBeGreaterThan(0.5);
    // Weight 0 applies nothing: the base model's image exactly.
    expect(zeroImage.pixels.equals(baseImage.pixels)).toBe(true);
    expect(zeroImage.parameters).toBe(baseImage.parameters);
  });
});
