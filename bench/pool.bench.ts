// npm run bench:pool — what gpu_node.concurrency buys on this machine: eight single-image txt2img jobs (tiny model,
// 20 steps) submitted at once to one pipeline worker using every core, and to a pool of N workers with
// cores / N onnxruntime threads each. Figures: images per second of wall time for the eight jobs (median of
// several rounds), their ratio (pool / single), and peak RSS (the pool holds N model copies).
// On a CPU, N single-threaded sessions can beat one session spread over N threads: onnxruntime's intra-op
// parallelism leaves cores idle between and inside small ops, which a second job fills. On a GPU the pool lets one
// job's CPU work (text encoder, scheduler, PNG encoding) overlap another's UNet runs.
// Usage: npm run bench:pool [-- --workers N --rounds R]
import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createPipelineRunner } from "../gpu-node/pipeline/pipeline.host.js";
import type { GenerateParams } from "../gpu-node/pipeline/pipeline.types.js";
import { parseConfig } from "../shared/config/config.schema.js";
import { generateParams } from "../test/helpers/generate-params.js";

const { values: args } = parseArgs({
  options: {
    workers: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    size: { type: "string" },
    concurrency: { type: "string" },
  },
});
const JOBS = 8;
const cores = availableParallelism();

/** The run bench:pipeline times (same prompt, 20 Euler steps), at this size and seed. */
function params(size: number, seed: number): GenerateParams {
  return generateParams({ prompt: "a photo of an astronaut riding a horse on the moon", negativePrompt: "blurry", width: size, height: size, numInferenceSteps: 20, seed });
}

/** One configuration in this process: the median images/s over the rounds. */
async function measure(size: number, concurrency: number, rounds: number): Promise<{ imgPerS: number; peakRssMb: number }> {
  const threads = Math.max(1, Math.floor(cores / concurrency));
  const runner = await createPipelineRunner(parseConfig({ gpu_node: { concurrency }, onnx: { intra_op_threads: threads } }));
  try {
    // Warm-up: every worker grows its arenas and JITs its paths once.
    await Promise.all(Array.from({ length: concurrency }, (_, i) => runner.generate(params(size, i), {})));
    const rates: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const started = performance.now();
      await Promise.all(Array.from({ length: JOBS }, (_, k) => runner.generate(params(size, 100 * r + k), {})));
      rates.push((1000 * JOBS) / (performance.now() - started));
    }
    rates.sort((a, b) => a - b);
    return { imgPerS: rates[Math.floor(rates.length / 2)], peakRssMb: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await runner.close();
  }
}

if (args.size !== undefined) {
  // A child: one configuration, so its peak RSS is its own.
  const result = await measure(Number(args.size), Number(args.concurrency), Number(args.rounds));
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} else {
  const workers = Number(args.workers);
  const self = fileURLToPath(import.meta.url);
  const run = (size: number, concurrency: number) => {
    const child = spawnSync(process.execPath, [...process.execArgv, self, "--size", String(size), "--concurrency", String(concurrency), "--rounds", args.rounds], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (child.status !== 0 || !line) throw new Error(`size ${size} concurrency ${concurrency} failed (exit ${child.status})`);
    return JSON.parse(line.slice("RESULT ".length)) as { imgPerS: number; peakRssMb: number };
  };
  const rows = [];
  for (const size of [64, 256]) {
    const single = run(size, 1);
    const pool = run(size, workers);
    rows.push({
      size: `${size}x${size}`,
      [`1 worker x ${cores} threads img/s`]: single.imgPerS.toFixed(2),
      [`${workers} workers x ${Math.max(1, Math.floor(cores / workers))} threads img/s`]: pool.imgPerS.toFixed(2),
      "pool / single": (pool.imgPerS / single.imgPerS).toFixed(2),
      "peak RSS MB (single, pool)": `${single.peakRssMb.toFixed(0)}, ${pool.peakRssMb.toFixed(0)}`,
    });
  }
  console.log(`${JOBS} single-image jobs at once, 20 steps, tiny model, ${cores} cores`);
  console.table(rows);
}
