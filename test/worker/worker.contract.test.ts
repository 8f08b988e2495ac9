// The public-API contract (test/contract/public-api.contract.ts, unchanged) against the worker in workerd,
// over libSQL HTTP to a real sqld.
import { afterAll, beforeAll } from "vitest";
import { describePublicApiContract } from "../contract/public-api.contract.js";
import { startTestWorker, startWorkerTestBed, type WorkerTestBed } from "./worker-harness.js";

let bed: WorkerTestBed;
beforeAll(async () => {
  bed = await startWorkerTestBed("contract-worker-");
});
afterAll(async () => {
  await bed?.close();
});

let instance = 0;
describePublicApiContract("Workers edge (workerd)", async (rawConfig) => {
  const worker = await startTestWorker({ config: rawConfig, databaseUrl: bed.sqld.url, persistTo: `${bed.dir}/wrangler-${++instance}` });
  return { baseUrl: worker.baseUrl, close: () => worker.stop() };
});
