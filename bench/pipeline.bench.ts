// npm run bench:pipeline — txt2img on the tiny model through the worker-thread host, 20 steps, at 64x64 and
// 256x256, one image and four images in one batch (plus four single runs at 64x64 for the batching gain).
// Each case runs in its own process so its peak RSS is its own. Figures:
//   wall   host-side time of generate() (worker messaging, PNG encoding and all)
//   ort    time inside onnxruntime run() calls (measured in the worker's backend)
//   ratio  wall / ort (target <= 1.05: the pipeline adds almost nothing around the model)
//   img/s  images per second of wall time
// Each figure is the median of several repetitions (15 at 64x64, 3 at 256x256).
// Usage: npm run bench:pipeline [-- --reps N]
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../shared/config/config.schema.js";
import { createPipelineRunner } from "../gpu-node/pipeline/pipeline.host.js";
import type { GenerateParams } from "../gpu-node/pipeline/pipeline.types.js";
import { generateParams } from "../test/helpers/generate-params.js";

interface Case {
  name: string;
  size: number;
  images: number;
  /** Runs per measurement: 4 single runs are measured together as one. */
  runs: number;
}

const CASES: Case[] = [
  { name: "64x64 x1", size: 64, images: 1, runs: 1 },
  { name: "64x64 x4 batch", size: 64, images: 4, runs: 1 },
  { name: "64x64 4 single runs", size: 64, images: 1, runs: 4 },
  { name: "256x256 x1", size: 256, images: 1, runs: 1 },
  { name: "256x256 x4 batch", size: 256, images: 4, runs: 1 },
];

interface Result {
  name: string;
  images: number;
  wallMs: number;
  ortMs: number;
  pipelineMs: number;
  peakRssMb: number;
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function params(c: Case, seed: number): GenerateParams {
  return generateParams({
    prompt: "a photo of an astronaut riding a horse on the moon",
    negativePrompt: "blurry",
    width: c.size,
    height: c.size,
    numImages: c.images,
    numInferenceSteps: 20,
    seed,
  });
}

async function runCase(c: Case, reps: number): Promise<Result> {
  const runner = await createPipelineRunner(parseConfig({}));
  try {
    // Warm-up: the first runs grow onnxruntime's arenas, JIT the JS paths and load sharp's codecs.
    for (let w = 0; w < (c.size <= 64 ? 3 : 1); w++) await runner.generate(params(c, w), {});
    const samples: Array<{ wallMs: number; ortMs: number; pipelineMs: number }> = [];
    for (let r = 0; r < reps; r++) {
      const sample = { wallMs: 0, ortMs: 0, pipelineMs: 0 };
      for (let k = 0; k < c.runs; k++) {
        const started = performance.now();
        const out = await runner.generate(params(c, 1000 * r + k), {});
        sample.wallMs += performance.now() - started;
        sample.ortMs += out.timings.ortMs;
        sample.pipelineMs += out.timings.totalMs;
      }
      samples.push(sample);
    }
    // The median repetition: the machine is shared, and a burst of other work should not decide the figure.
    samples.sort((a, b) => a.wallMs - b.wallMs);
    const median = samples[Math.floor(samples.length / 2)];
    return {
      name: c.name,
      images: c.images * c.runs,
      ...median,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await runner.close();
  }
}

async function main(): Promise<void> {
  const only = argValue("--case");
  const reps = Number(argValue("--reps") ?? 0);
  if (only !== undefined) {
    const c = CASES[Number(only)];
    const result = await runCase(c, reps > 0 ? reps : c.size <= 64 ? 15 : 3);
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (let i = 0; i < CASES.length; i++) {
    const child = spawnSync(process.execPath, [...process.execArgv, self, "--case", String(i), ...(reps ? ["--reps", String(reps)] : [])], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (child.status !== 0 || !line) throw new Error(`case ${CASES[i].name} failed (exit ${child.status})`);
    const result = JSON.parse(line.slice("RESULT ".length)) as Result;
    results.push(result);
    process.stderr.write(`done: ${result.name}\n`);
  }

  const rows = results.map((r) => ({
    case: r.name,
    "wall ms": r.wallMs.toFixed(1),
    "ort ms": r.ortMs.toFixed(1),
    "wall/ort": (r.wallMs / r.ortMs).toFixed(3),
    "pipeline/ort": (r.pipelineMs / r.ortMs).toFixed(3),
    "img/s": ((1000 * r.images) / r.wallMs).toFixed(2),
    "peak RSS MB": r.peakRssMb.toFixed(0),
  }));
  console.table(rows);

  const rate = (name: string) => {
    const r = results.find((x) => x.name === name)!;
    return (1000 * r.images) / r.wallMs;
  };
  const gain = rate("64x64 x4 batch") / rate("64x64 4 single runs");
  const worstRatio = Math.max(...results.map((r) => r.wallMs / r.ortMs));
  console.log(`batching gain at 64x64 (4 in one batch vs 4 single runs): ${gain.toFixed(2)}x (target >= 1.5)`);
  console.log(`worst wall/ort ratio: ${worstRatio.toFixed(3)} (target <= 1.05)`);
}

await main();
