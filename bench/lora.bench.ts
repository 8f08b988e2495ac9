// npm run bench:lora — LoRA / LoHA merge time and peak memory.
//   tiny-*   every weight of the tiny model's UNet (121 modules) and text encoder (18) patched, rank 8, merged in
//            memory ("inline" unless noted), then an onnxruntime session created from the result.
//   sd15-*   one SD 1.5 transformer block at full size (1280 wide: attn1 q/k/v/out, attn2 q/k/v/out with 768-wide
//            context, ff 1280→10240 and 5120→1280, proj_in/out), 12 modules, 27.6 M weights, as a synthetic
//            model on disk; at rank 4 and 32 these separate the per-element cost (read, add, write) from the
//            per-multiply-add cost of building ΔW, which the SD 1.5 estimate then scales up.
//   worker-*  the same adapters (every tiny module, rank 8) as files in lora.models_dir, applied through the real
//            pipeline host: merge + session creation inside the worker thread, as the gpu-node runs them; then the
//            cached set's run time, and the resident memory each further cached set adds against the estimate the
//            cache counts (the component files' size).
// Each case runs in its own process so its peak RSS is its own.
// Usage: npm run bench:lora [-- --only <case prefix>]   (e.g. --only worker)
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { openAdapter } from "../gpu-node/lora/adapter.js";
import { jsMatMul } from "../gpu-node/lora/adapter.js";
import type { MatMulKernel } from "../gpu-node/lora/adapter.js";
import { mergeAdapters, readModuleMap, sessionOptionsFor } from "../gpu-node/lora/lora-merge.js";
import { createOnnxMatMul } from "../gpu-node/lora/onnx-matmul.kernel.js";
import { OnnxBackend } from "../gpu-node/pipeline/backends/onnx.backend.js";
import type { MergedModel } from "../gpu-node/lora/lora-merge.js";
import { parseSafetensors } from "../gpu-node/lora/safetensors.reader.js";
import { buildOnnxModel, encodeSafetensors, fixtureRng, lohaModule, loraModule } from "../test/helpers/lora-fixtures.js";
import type { FixtureTensors, ModuleSpec, SyntheticInitializer, SyntheticNode } from "../test/helpers/lora-fixtures.js";

const MODEL = join(process.cwd(), "models/tiny-sd");

interface Result {
  name: string;
  modules: number;
  elements: number;
  macs: number;
  mergeMs: number;
  createMs: number | null;
  heldMb: number;
  baseRssMb: number;
  peakRssMb: number;
  strategy: string;
  /** Measured cost of one multiply-add in the kernel (sd15 cases), from a standalone 1280x32 · 32x10240 product. */
  macNs?: number;
}

const mb = (bytes: number) => bytes / (1024 * 1024);

/**
 * Peak RSS of this process in MB. VmHWM, not getrusage's maxRSS: Linux carries ru_maxrss over exec, so a
 * child would report its parent's peak (the parent holds the synthetic model).
 */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** Multiply-adds to build ΔW: LoRA out·in·r; LoHA two such products plus the element-wise one. */
function macsOf(spec: ModuleSpec, rank: number, kind: "lora" | "loha"): number {
  const n = spec.out * spec.in * spec.kh * spec.kw;
  return kind === "lora" ? n * rank : n * (2 * rank + 1);
}

type KernelName = "js" | "ort";

async function kernelOf(kernel: KernelName): Promise<MatMulKernel | undefined> {
  return kernel === "ort" ? (await createOnnxMatMul(new OnnxBackend({ intraOpThreads: 0, graphOptimizationLevel: "basic", device: "cpu" }))).matmul : undefined;
}

/** An adapter (rank 8, F16, same seed) touching every module of the tiny model's UNet and text encoder, with its size. */
async function fullModelAdapter(kind: "lora" | "loha"): Promise<{ tensors: FixtureTensors; modules: number; elements: number; macs: number }> {
  const rng = fixtureRng(1);
  const rank = 8;
  const tensors: FixtureTensors = {};
  let modules = 0;
  let elements = 0;
  let macs = 0;
  for (const [component, prefix] of [
    ["unet", "lora_unet_"],
    ["text_encoder", "lora_te_"],
  ] as const) {
    const map = await readModuleMap(join(MODEL, component));
    for (const target of new Set(map.targets.values())) {
      const spec = { key: prefix + target.names[target.names.length - 1], out: target.out, in: target.in, kh: target.kh, kw: target.kw };
      const r = Math.min(rank, spec.out, spec.in);
      Object.assign(tensors, kind === "lora" ? loraModule(spec, { rank: r, alpha: r / 2, dtype: "F16", rng }) : lohaModule(spec, { rank: r, alpha: r / 2, dtype: "F16", tucker: spec.kh > 1, rng }));
      modules++;
      elements += spec.out * spec.in * spec.kh * spec.kw;
      macs += macsOf(spec, r, kind);
    }
  }
  return { tensors, modules, elements, macs };
}

async function tinyCase(name: string, kind: "lora" | "loha", inlineLimitBytes?: number): Promise<Result> {
  const { tensors, modules, elements, macs } = await fullModelAdapter(kind);
  const baseRss = process.memoryUsage().rss;
  const started = performance.now();
  const adapter = openAdapter(name, parseSafetensors(encodeSafetensors(tensors), `${name}.safetensors`));
  const merged: MergedModel[] = [];
  for (const component of ["unet", "text_encoder"]) {
    merged.push(await mergeAdapters(join(MODEL, component), [{ adapter, weight: 0.8 }], { inlineLimitBytes }));
  }
  const mergeMs = performance.now() - started;
  const created = performance.now();
  for (const m of merged) {
    const session = await ort.InferenceSession.create(m.modelBytes, { logSeverityLevel: 3, ...sessionOptionsFor(m) });
    await session.release();
  }
  return {
    name,
    modules,
    elements,
    macs,
    mergeMs,
    createMs: performance.now() - created,
    heldMb: mb(merged.reduce((n, m) => n + m.heldBytes, 0)),
    baseRssMb: mb(baseRss),
    peakRssMb: peakRssMb(),
    strategy: [...new Set(merged.map((m) => m.strategy))].join("+"),
  };
}

/** One SD 1.5 transformer block (the 1280-wide kind: down_blocks.2, mid, up_blocks.1), weights in an external file. */
const SD15_BLOCK: (ModuleSpec & { scope: string; op: "MatMul" | "Conv" })[] = (() => {
  const d = 1280;
  const base = "mid_block/attentions.0";
  const tb = `${base}/transformer_blocks.0`;
  const lin = (scope: string, out: number, inDim: number) => ({ scope, out, in: inDim, kh: 1, kw: 1, op: "MatMul" as const, key: "" });
  const mods = [
    { scope: `${base}/proj_in`, out: d, in: d, kh: 1, kw: 1, op: "Conv" as const, key: "" },
    lin(`${tb}/attn1/to_q`, d, d),
    lin(`${tb}/attn1/to_k`, d, d),
    lin(`${tb}/attn1/to_v`, d, d),
    lin(`${tb}/attn1/to_out.0`, d, d),
    lin(`${tb}/attn2/to_q`, d, d),
    lin(`${tb}/attn2/to_k`, d, 768),
    lin(`${tb}/attn2/to_v`, d, 768),
    lin(`${tb}/attn2/to_out.0`, d, d),
    lin(`${tb}/ff/net.0/proj`, 8 * d, d),
    lin(`${tb}/ff/net.2`, d, 4 * d),
    { scope: `${base}/proj_out`, out: d, in: d, kh: 1, kw: 1, op: "Conv" as const, key: "" },
  ];
  return mods.map((m) => ({ ...m, key: `lora_unet_${m.scope.replace(/[./]/g, "_")}` }));
})();

/** Writes the synthetic SD 1.5 block (model.onnx + weights.bin, 139 MB) under dir/unet; built once by the parent. */
async function writeSd15Block(dir: string): Promise<string> {
  const nodes: SyntheticNode[] = [];
  const initializers: SyntheticInitializer[] = [];
  SD15_BLOCK.forEach((m, i) => {
    const weight = `onnx::${m.op}_${i}`;
    nodes.push({ name: `/${m.scope}/${m.op}`, opType: m.op, inputs: ["x", weight], outputs: [`y${i}`] });
    const dims = m.op === "Conv" ? [m.out, m.in, 1, 1] : [m.in, m.out];
    initializers.push({ name: weight, dims, dataType: 1, values: new Float32Array(m.out * m.in), storage: "external" });
  });
  const { model, external } = buildOnnxModel({ nodes, initializers, inputs: [{ name: "x", dims: [1, 1280] }], outputs: [{ name: "y0", dims: [1, 1280] }] });
  const unet = join(dir, "unet");
  await mkdir(unet, { recursive: true });
  await writeFile(join(unet, "model.onnx"), model);
  await writeFile(join(unet, "weights.bin"), external);
  return unet;
}

async function sd15Case(name: string, kind: "lora" | "loha", rank: number, kernel: KernelName): Promise<Result> {
  const unet = argValue("--sd15-dir");
  if (!unet) throw new Error("--sd15-dir is required (the parent process writes the synthetic block)");
  const matmul = await kernelOf(kernel);
  if (matmul) await matmul(new Float32Array(64), new Float32Array(64), 8, 8, 8); // session warm-up
  const rng = fixtureRng(2);
  const tensors: FixtureTensors = {};
  let elements = 0;
  let macs = 0;
  for (const m of SD15_BLOCK) {
    Object.assign(tensors, kind === "lora" ? loraModule(m, { rank, alpha: rank, dtype: "F16", conv: m.op === "Conv", rng }) : lohaModule(m, { rank, alpha: rank, dtype: "F16", rng }));
    elements += m.out * m.in;
    macs += macsOf(m, rank, kind);
  }
  const file = encodeSafetensors(tensors);
  const baseRss = process.memoryUsage().rss;
  // Best of two for time (the machine is shared, and the first run pays for JIT warm-up); peak memory from the first.
  let mergeMs = Infinity;
  let merged: MergedModel | null = null;
  let peak = 0;
  for (let rep = 0; rep < 2; rep++) {
    merged = null;
    const started = performance.now();
    const adapter = openAdapter(name, parseSafetensors(file, `${name}.safetensors`));
    merged = await mergeAdapters(unet, [{ adapter, weight: 1 }], { matmul });
    mergeMs = Math.min(mergeMs, performance.now() - started);
    if (rep === 0) peak = peakRssMb();
  }
  const mm = matmul ?? jsMatMul;
  const a = Float32Array.from({ length: 1280 * 32 }, rng);
  const b = Float32Array.from({ length: 32 * 10240 }, rng);
  let productMs = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const t = performance.now();
    await mm(a, b, 1280, 32, 10240);
    productMs = Math.min(productMs, performance.now() - t);
  }
  return {
    name,
    modules: SD15_BLOCK.length,
    elements,
    macs,
    mergeMs,
    createMs: null,
    heldMb: mb(merged!.heldBytes),
    baseRssMb: mb(baseRss),
    peakRssMb: peak,
    strategy: merged!.strategy,
    macNs: (productMs * 1e6) / (1280 * 32 * 10240),
  };
}

interface WorkerResult {
  name: string;
  startMs: number;
  rssLoadedMb: number;
  firstMergeMs: number;
  firstTotalMs: number;
  cachedTotalMs: number;
  baseTotalMs: number;
  peakRssMb: number;
  perSetRssMb: number;
  perSetEstimateMb: number;
}

function rssMb(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) / 1024 : mb(process.memoryUsage().rss);
}

/** The tinyCase adapter written to a directory, then applied through the pipeline host (worker thread). */
async function workerCase(name: string, kind: "lora" | "loha"): Promise<WorkerResult> {
  const { createPipelineRunner } = await import("../gpu-node/pipeline/pipeline.host.js");
  const { parseConfig } = await import("../shared/config/config.schema.js");
  const { generateParams } = await import("../test/helpers/generate-params.js");
  const { tensors } = await fullModelAdapter(kind);
  const dir = await mkdtemp(join(tmpdir(), "lora-worker-bench-"));
  try {
    await writeFile(join(dir, "all.safetensors"), encodeSafetensors(tensors));
    const started = performance.now();
    const runner = await createPipelineRunner(parseConfig({ lora: { models_dir: dir } }));
    const startMs = performance.now() - started;
    const params = (weight: number | null) =>
      generateParams({ numInferenceSteps: 4, seed: 1, loras: weight === null ? [] : [{ name: "all", weight }] });
    const best = async (weight: number | null) => {
      let ms = Infinity;
      for (let i = 0; i < 3; i++) ms = Math.min(ms, (await runner.generate(params(weight))).timings.totalMs);
      return ms;
    };
    const baseTotalMs = await best(null);
    const rssLoadedMb = rssMb();
    const first = await runner.generate(params(1));
    const peak = peakRssMb();
    const cachedTotalMs = await best(1);
    // Further sets (other weights): resident memory each adds once cached, against the cache's estimate.
    const before = rssMb();
    const sets = 6;
    for (let i = 1; i <= sets; i++) await runner.generate(params(i / 10));
    const perSetRssMb = (rssMb() - before) / sets;
    const cache = runner.loras().cache;
    await runner.close();
    return {
      name,
      startMs,
      rssLoadedMb,
      firstMergeMs: first.lora!.mergeMs,
      firstTotalMs: first.timings.totalMs,
      cachedTotalMs,
      baseTotalMs,
      peakRssMb: peak,
      perSetRssMb,
      perSetEstimateMb: mb(cache.bytes) / cache.entries,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/**
 * Resident memory an ORT CPU session adds, against its weights: what the merged-session cache must count.
 * A synthetic model of SD 1.5-sized tensors (1280-wide MatMul [1280, 2560] and 3x3 Conv [1280, 1280, 3, 3],
 * 275 MB in an external file), and the tiny UNet; four sessions each, the first ignored (it pays for warm-up
 * and the build buffers' garbage collection).
 */
async function sessionMemoryCase(): Promise<WorkerResult> {
  const backend = new OnnxBackend({ intraOpThreads: 0, graphOptimizationLevel: "all", device: "cpu" });
  const nodes: SyntheticNode[] = [];
  const initializers: SyntheticInitializer[] = [];
  for (let i = 0; i < 8; i++) {
    const conv = i % 2 === 0;
    nodes.push({ name: `/block/${conv ? "Conv" : "MatMul"}_${i}`, opType: conv ? "Conv" : "MatMul", inputs: [conv ? "xc" : "x", `w${i}`], outputs: [`y${i}`] });
    const dims = conv ? [1280, 1280, 3, 3] : [1280, 2560];
    initializers.push({ name: `w${i}`, dims, dataType: 1, values: new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01), storage: "external" });
  }
  const { model, external } = buildOnnxModel({
    nodes,
    initializers,
    inputs: [{ name: "x", dims: [1, 1280] }, { name: "xc", dims: [1, 1280, 8, 8] }],
    outputs: nodes.map((_, i) => ({ name: `y${i}`, dims: [1] })),
  });
  const dir = await mkdtemp(join(tmpdir(), "lora-session-bench-"));
  const perSession = async (path: string): Promise<number> => {
    const held = [];
    held.push(await backend.createSession({ path }));
    const before = rssMb();
    for (let i = 0; i < 3; i++) held.push(await backend.createSession({ path }));
    const grown = (rssMb() - before) / 3;
    await Promise.all(held.map((h) => h.release()));
    return grown;
  };
  try {
    await writeFile(join(dir, "model.onnx"), model);
    await writeFile(join(dir, "weights.bin"), external);
    const weightsMb = mb(external.byteLength);
    const syntheticMb = await perSession(join(dir, "model.onnx"));
    const tinyMb = await perSession(join(MODEL, "unet", "model.onnx"));
    console.error(`session memory: synthetic ${weightsMb.toFixed(0)} MB weights → ${syntheticMb.toFixed(0)} MB RSS per session; tiny UNet 4.9 MB weights → ${tinyMb.toFixed(1)} MB RSS per session`);
    return { name: "session-memory", startMs: 0, rssLoadedMb: rssMb(), firstMergeMs: 0, firstTotalMs: 0, cachedTotalMs: 0, baseTotalMs: 0, peakRssMb: peakRssMb(), perSetRssMb: syntheticMb, perSetEstimateMb: weightsMb };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const WORKER_CASES: Record<string, () => Promise<WorkerResult>> = {
  "worker-tiny-lora": () => workerCase("worker-tiny-lora", "lora"),
  "worker-tiny-loha": () => workerCase("worker-tiny-loha", "loha"),
  "worker-session-memory": () => sessionMemoryCase(),
};

function reportWorker(results: WorkerResult[]): void {
  if (results.length === 0) return;
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`\nthrough the pipeline host (merge + session creation in the worker thread; 64x64, 4 Euler steps):`);
  console.log(
    `${pad("case", 19)}${pad("start ms", 10)}${pad("merge+create ms", 17)}${pad("1st run ms", 12)}${pad("cached run ms", 15)}${pad("base run ms", 13)}${pad("RSS loaded", 12)}${pad("peak RSS", 10)}per cached set: RSS vs estimate`,
  );
  for (const r of results) {
    if (r.name === "session-memory") {
      console.log(`session memory: an ORT session of ${r.perSetEstimateMb.toFixed(0)} MB of SD 1.5-sized weights adds ${r.perSetRssMb.toFixed(0)} MB RSS (the cache counts weights + 8 MiB)`);
      continue;
    }
    console.log(
      `${pad(r.name, 19)}${pad(r.startMs.toFixed(0), 10)}${pad(r.firstMergeMs.toFixed(0), 17)}${pad(r.firstTotalMs.toFixed(0), 12)}${pad(r.cachedTotalMs.toFixed(0), 15)}${pad(r.baseTotalMs.toFixed(0), 13)}${pad(r.rssLoadedMb.toFixed(0) + " MB", 12)}${pad(r.peakRssMb.toFixed(0) + " MB", 10)}${r.perSetRssMb.toFixed(1)} MB vs ${r.perSetEstimateMb.toFixed(1)} MB`,
    );
  }
}

const CASES: Record<string, () => Promise<Result>> = {
  "tiny-lora": () => tinyCase("tiny-lora", "lora"),
  "tiny-loha": () => tinyCase("tiny-loha", "loha"),
  "tiny-lora-copy": () => tinyCase("tiny-lora-copy", "lora", 0),
  "sd15-block-lora-r4-js": () => sd15Case("sd15-block-lora-r4-js", "lora", 4, "js"),
  "sd15-block-lora-r32-js": () => sd15Case("sd15-block-lora-r32-js", "lora", 32, "js"),
  "sd15-block-loha-r16-js": () => sd15Case("sd15-block-loha-r16-js", "loha", 16, "js"),
  "sd15-block-lora-r4-ort": () => sd15Case("sd15-block-lora-r4-ort", "lora", 4, "ort"),
  "sd15-block-lora-r32-ort": () => sd15Case("sd15-block-lora-r32-ort", "lora", 32, "ort"),
  "sd15-block-loha-r16-ort": () => sd15Case("sd15-block-loha-r16-ort", "loha", 16, "ort"),
};

/** SD 1.5 UNet: 16 Transformer2D blocks (five 320-wide, five 640-wide, six 1280-wide), 12 LoRA'd modules each. */
function sd15Attention(): { modules: number; elements: number } {
  let elements = 0;
  for (const [d, count] of [
    [320, 5],
    [640, 5],
    [1280, 6],
  ]) {
    // 6 d×d (attn1 ×4, attn2 q/out) + 2 proj + ff (8d² + 4d²) + attn2 k/v (768·d each)
    elements += count * (8 * d * d + 12 * d * d + 2 * 768 * d);
  }
  return { modules: 16 * 12, elements };
}

function report(results: Result[]): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(
    `${pad("case", 25)}${pad("modules", 9)}${pad("weights", 11)}${pad("MACs", 10)}${pad("merge ms", 10)}${pad("ORT create ms", 15)}${pad("held MB", 9)}${pad("RSS before", 12)}${pad("peak RSS", 10)}strategy`,
  );
  for (const r of results) {
    console.log(
      `${pad(r.name, 25)}${pad(String(r.modules), 9)}${pad((r.elements / 1e6).toFixed(2) + " M", 11)}${pad((r.macs / 1e9).toFixed(2) + " G", 10)}${pad(r.mergeMs.toFixed(0), 10)}${pad(r.createMs === null ? "-" : r.createMs.toFixed(0), 15)}${pad(r.heldMb.toFixed(1), 9)}${pad(r.baseRssMb.toFixed(0) + " MB", 12)}${pad(r.peakRssMb.toFixed(0) + " MB", 10)}${r.strategy}`,
    );
  }
  const sd = sd15Attention();
  const heldGb = (sd.elements * 4) / 1024 ** 3;
  const block = results.filter((r) => r.name.startsWith("sd15-"));
  const over = Math.max(...block.map((r) => r.peakRssMb - r.baseRssMb));
  // Not with --only cases that skip the SD 1.5 block.
  if (block.length > 0) console.log(`\nmemory: merging the SD 1.5 block raised peak RSS by at most ${over.toFixed(0)} MB over the process baseline for ${block[0]?.heldMb.toFixed(0)} MB of patched weights held (the rest: the largest tensor's base, ΔW and scratch, ~52 MB each, plus GC lag)`);
  console.log(`\nSD 1.5 UNet estimate: ${sd.modules} attention modules, ${(sd.elements / 1e6).toFixed(0)} M fp32 weights = ${heldGb.toFixed(2)} GB patched, held as the inline model bytes (graph + patched tensors)`);
  for (const kernel of ["js", "ort"] as const) {
    const r4 = results.find((r) => r.name === `sd15-block-lora-r4-${kernel}`);
    const r32 = results.find((r) => r.name === `sd15-block-lora-r32-${kernel}`);
    const loha = results.find((r) => r.name === `sd15-block-loha-r16-${kernel}`);
    if (!r4 || !r32) continue;
    // time = elements·tElem + macs·tMac: tMac from the standalone product, tElem from the rank-4 merge.
    const tMac = (r4.macNs! + r32.macNs!) / 2 / 1e6;
    const tElem = (r4.mergeMs - r4.macs * tMac) / r4.elements;
    const est = (rank: number, kind: "lora" | "loha") => {
      const macs = kind === "lora" ? sd.elements * rank : sd.elements * (2 * rank + 1);
      return (sd.elements * tElem + macs * tMac) / 1000;
    };
    console.log(`  ${kernel} kernel: ${(tElem * 1e6).toFixed(1)} ns per weight (read, decode, add, encode, write), ${(tMac * 1e6).toFixed(3)} ns per ΔW multiply-add`);
    const parts = ([["lora", 8], ["lora", 32], ["lora", 128], ["loha", 16]] as const).map(([kind, rank]) => `${kind} r${rank} ~${est(rank, kind).toFixed(1)} s`);
    console.log(`    ${parts.join(", ")}`);
    for (const check of [r32, loha]) {
      if (check) console.log(`    (check: predicts ${(check.elements * tElem + check.macs * tMac).toFixed(0)} ms for ${check.name}, measured ${check.mergeMs.toFixed(0)} ms)`);
    }
    const full = 859.5e6;
    console.log(`    a full LoCon (~${(full / 1e6).toFixed(0)} M weights) at r32: ~${((full * tElem + full * 32 * tMac) / 1000).toFixed(0)} s, and past the inline limit: "copy" holds the whole 3.4 GB weights file`);
  }
}

async function main(): Promise<void> {
  const name = argValue("--case");
  if (name) {
    const run = CASES[name] ?? WORKER_CASES[name];
    if (!run) throw new Error(`unknown case ${name}; cases: ${[...Object.keys(CASES), ...Object.keys(WORKER_CASES)].join(", ")}`);
    console.log(JSON.stringify(await run()));
    return;
  }
  const only = argValue("--only");
  const results: Result[] = [];
  const workerResults: WorkerResult[] = [];
  const self = fileURLToPath(import.meta.url);
  const dir = await mkdtemp(join(tmpdir(), "lora-bench-"));
  try {
    const sd15 = await writeSd15Block(dir);
    for (const name of [...Object.keys(CASES), ...Object.keys(WORKER_CASES)]) {
      if (only && !name.startsWith(only)) continue;
      const child = spawnSync(process.execPath, ["--import", "tsx", self, "--case", name, "--sd15-dir", sd15], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      if (child.status !== 0) throw new Error(`case ${name} failed (exit ${child.status})`);
      const line = child.stdout.trim().split("\n").pop()!;
      if (name in WORKER_CASES) workerResults.push(JSON.parse(line) as WorkerResult);
      else results.push(JSON.parse(line) as Result);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (results.length > 0) report(results);
  reportWorker(workerResults);
}

await main();
