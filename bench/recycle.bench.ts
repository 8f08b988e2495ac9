// npm run bench:recycle — what gpu_node.recycle_rss_mb gives back. onnxruntime keeps its memory pools at their
// peak for a session's life, so one large job leaves a node holding gigabytes. Each case runs in its own process
// (tiny model, one txt2img job of N images at 512x512, 1 step): "keep" leaves the worker as it is; "recycle" sets the
// limit to twice the RSS after the model loaded, so that job is followed by a fresh worker. Figures: RSS after the
// model loaded, right after the job, and once the node is idle again (for "recycle": the new worker loaded), plus
// the ratio of the idle RSS (recycle / keep) and how long the reload took.
// Usage: npm run bench:recycle [-- --images N]
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createPipelineRunner, type PipelineHost } from "../gpu-node/pipeline/pipeline.host.js";
import { parseConfig } from "../shared/config/config.schema.js";
import { TINY_SD_DIR } from "../test/helpers/goldens.js";
import { generateParams } from "../test/helpers/generate-params.js";

const { values: args } = parseArgs({ options: { images: { type: "string", default: "2" }, case: { type: "string" } } });
const IMAGES = Number(args.images);
const MIB = 1024 * 1024;
const rssMb = () => Math.round(process.memoryUsage.rss() / MIB);

interface CaseResult {
  loadedMb: number;
  afterJobMb: number;
  idleMb: number;
  reloadMs: number | null;
}

async function runCase(recycle: boolean): Promise<CaseResult> {
  const config = parseConfig({ sd_model: { path: TINY_SD_DIR } });
  // Measured on a throw-away host first: the limit is relative to what the model itself takes.
  const host = (await createPipelineRunner(config, { recycleRssBytes: null })) as PipelineHost;
  const loadedMb = rssMb();
  await host.close();
  const node = (await createPipelineRunner(config, { recycleRssBytes: recycle ? 2 * loadedMb * MIB : null })) as PipelineHost;
  try {
    await node.generate(generateParams({ width: 512, height: 512, numImages: IMAGES, numInferenceSteps: 1, guidanceScale: 1 }));
    const afterJobMb = rssMb();
    let reloadMs: number | null = null;
    if (recycle) {
      const start = performance.now();
      // status() stays "loaded" during a recycle; a job waits for the new worker, so one tiny job marks the end.
      await node.generate(generateParams({ width: 64, height: 64, numInferenceSteps: 1 }));
      reloadMs = Math.round(performance.now() - start);
      if (node.recycles < 1) throw new Error("the worker was not replaced; raise --images");
    }
    await new Promise((r) => setTimeout(r, 1000));
    return { loadedMb, afterJobMb, idleMb: rssMb(), reloadMs };
  } finally {
    await node.close();
  }
}

if (args.case) {
  const result = await runCase(args.case === "recycle");
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
function inChild(name: "keep" | "recycle"): CaseResult {
  const run = spawnSync(process.execPath, ["--import", "tsx", self, "--case", name, "--images", String(IMAGES)], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`case ${name} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as CaseResult;
}

const keep = inChild("keep");
const recycle = inChild("recycle");
console.log(`tiny model, one job of ${IMAGES} images at 512x512 (1 step), RSS in MiB`);
console.log("case       model loaded   after the job   idle after");
for (const [name, r] of [["keep", keep], ["recycle", recycle]] as const) {
  console.log(`${name.padEnd(10)} ${String(r.loadedMb).padStart(12)} ${String(r.afterJobMb).padStart(15)} ${String(r.idleMb).padStart(12)}`);
}
console.log(`idle RSS recycle / keep: ${(recycle.idleMb / keep.idleMb).toFixed(3)}; reload before the next job: ${recycle.reloadMs} ms`);
