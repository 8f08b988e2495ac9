// THE contract of a gpu-node as the edge sees it, run once per listener through the edge's own client
// adapters (grpc.contract.test.ts: grpc-js; connect.contract.test.ts: gRPC-web over fetch). Everything is real:
// the tiny ONNX model in its worker thread, s3rver for storage, loopback sockets.
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../../shared/config/config.schema.js";
import { create } from "@bufbuild/protobuf";
import { CancelOutcome, LoraWeightSchema, OutputFormat, type GenerateEvent, type GenerateRequest } from "../../../shared/gen/sd/v1/gpu_pb.js";
import { readImage } from "../../../gpu-node/pipeline/image/image.codec.js";
import { startGpuNode, type RunningGpuNode } from "../../../gpu-node/app/gpu-node.app.js";
import { startS3rver, type RunningS3rver } from "../../../gpu-node/dev/s3rver.server.js";
import { createPipelineRunner } from "../../../gpu-node/pipeline/pipeline.host.js";
import type { PipelineRunner } from "../../../gpu-node/pipeline/pipeline.types.js";
import type { GpuClient } from "../../../edge/gpu/gpu-client.port.js";
import { encodeSafetensors, fixtureRng, loraModule, TINY_MODULES, writeSafetensors } from "../../helpers/lora-fixtures.js";

export interface ContractTarget {
  /** A client of `node`'s listener under test, sending `tierSecret` (none when null). */
  client(node: RunningGpuNode, tierSecret: string | null): GpuClient;
}

const SECRET = "contract-tier-secret";
// The tiny model runs a 64x64 step in ~10 ms on one core; 1000 steps keep a task running for seconds, long
// enough to act on it mid-run (it is cancelled or awaited, never timed).
const LONG_STEPS = 1000;

type Event = GenerateEvent["event"];
type RequestFields = Partial<Omit<GenerateRequest, "$typeName" | "$unknown">>;

async function collect(events: AsyncIterable<GenerateEvent>): Promise<Event[]> {
  const out: Event[] = [];
  for await (const event of events) out.push(event.event);
  return out;
}

async function next(iterator: AsyncIterator<GenerateEvent>): Promise<Event> {
  const { value, done } = await iterator.next();
  if (done) throw new Error("the event stream ended early");
  return value.event;
}

/** Reads events until one of `kind` arrives; returns those read, the last being that one. */
async function readUntil(iterator: AsyncIterator<GenerateEvent>, kind: NonNullable<Event["case"]>): Promise<Event[]> {
  const seen: Event[] = [];
  for (;;) {
    const event = await next(iterator);
    seen.push(event);
    if (event.case === kind) return seen;
    if (event.case === "completed" || event.case === "failed") throw new Error(`ended with ${event.case} before ${kind}`);
  }
}

function terminal(events: Event[]): Event {
  const last = events.at(-1);
  if (last?.case !== "completed" && last?.case !== "failed") throw new Error(`no terminal event: ${events.map((e) => e.case)}`);
  return last;
}

function completedOf(events: Event[]) {
  const last = terminal(events);
  if (last.case !== "completed") throw new Error(`failed: ${last.case === "failed" ? `${last.value.code}: ${last.value.message}` : ""}`);
  return last.value;
}

function failedOf(events: Event[]) {
  const last = terminal(events);
  if (last.case !== "failed") throw new Error("expected a failed event");
  return last.value;
}

export function describeGpuNodeContract(listener: string, target: ContractTarget): void {
  describe(`gpu-node contract over ${listener}`, () => {
    let dataDir: string;
    let s3: RunningS3rver;
    let runner: PipelineRunner;
    let config: Config;
    let node: RunningGpuNode;
    let client: GpuClient;

    const request = (init: RequestFields = {}): RequestFields & { taskId: string } => ({
      taskId: `${listener}-${randomUUID()}`,
      prompt: "a watercolor fox in the snow",
      width: 64,
      height: 64,
      numInferenceSteps: 4,
      seed: 1234,
      // Named so the suite does not depend on which scheduler the model ships (the tiny model: PNDM).
      scheduler: "Euler",
      ...init,
    });

    async function expectImage(url: string, format: "png" | "jpeg", width: number, height: number): Promise<void> {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(`image/${format}`);
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      expect({ format: meta.format, width: meta.width, height: meta.height }).toEqual({ format, width, height });
    }

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), `gpu-contract-${listener}-`));
      s3 = await startS3rver({ directory: join(dataDir, "s3") });
      // One usable adapter (with a key of a module the tiny model lacks) and one truncated file.
      const loras = join(dataDir, "loras");
      mkdirSync(loras);
      const rng = fixtureRng(21);
      await writeSafetensors(join(loras, "style.safetensors"), {
        ...loraModule(TINY_MODULES.unet.to_q, { rank: 4, rng }),
        ...loraModule(TINY_MODULES.unet.conv1, { rank: 4, rng }),
        ...loraModule({ ...TINY_MODULES.unet.to_q, key: "lora_unet_down_blocks_9_attentions_0_proj_in" }, { rank: 4, rng }),
      });
      writeFileSync(join(loras, "broken.safetensors"), encodeSafetensors(loraModule(TINY_MODULES.unet.to_q, { rank: 2, rng })).subarray(0, 64));
      config = parseConfig({
        lora: { models_dir: loras },
        tier_secret: SECRET,
        minio: { endpoint: s3.endpoint, bucket: "contract-images" },
        gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0, queue_capacity: 1, result_ttl_seconds: 600 },
        log_level: "warn",
      });
      runner = await createPipelineRunner(config);
      node = await startGpuNode(config, { runner, logger: pino({ level: "warn" }) });
      client = target.client(node, SECRET);
    });

    afterAll(async () => {
      client?.close();
      await node?.shutdown();
      await runner?.close();
      await s3?.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("generates PNGs of the requested size, stores them in S3 and streams every stage", async () => {
      const events = await collect(client.generate(request({ width: 64, height: 96, numImages: 2, seed: 77 })));
      expect(events.map((e) => e.case)).toEqual([
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "progress",
        "image",
        "image",
        "completed",
      ]);
      expect(events[1]).toMatchObject({ case: "started", value: { seed: 77, totalSteps: 4, width: 64, height: 96, numImages: 2 } });
      expect(events.filter((e) => e.case === "progress").map((e) => e.value)).toMatchObject([1, 2, 3, 4].map((step) => ({ step, total: 4 })));
      const completed = completedOf(events);
      expect(completed.seed).toBe(77);
      expect(completed.stepsRun).toBe(4);
      expect(completed.urls).toHaveLength(2);
      expect(completed.timings?.ortMs).toBeGreaterThan(0);
      expect(completed.timings?.totalMs).toBeGreaterThanOrEqual(completed.timings?.pipelineMs ?? Infinity);
      for (const [index, key] of completed.keys.entries()) expect(key).toMatch(new RegExp(`^images/\\d{4}/\\d{2}/\\d{2}/${listener}-[0-9a-f-]+/${index}\\.png$`));
      for (const url of completed.urls) await expectImage(url, "png", 64, 96);
      const images = events.filter((e) => e.case === "image").map((e) => e.value);
      expect(images.map((image) => image.url)).toEqual(completed.urls);
      expect(images[0]).toMatchObject({ index: 0, contentType: "image/png", width: 64, height: 96 });
    });

    it("fills what the request leaves out: the model's scheduler, one image, PNG, a drawn seed", async () => {
      const events = await collect(
        client.generate({ taskId: `${listener}-${randomUUID()}`, prompt: "defaults", width: 64, height: 64, numInferenceSteps: 3 }),
      );
      const started = events.find((e) => e.case === "started");
      // The tiny model ships a PNDM scheduler_config.json; PLMS repeats its second timestep, so 3 steps are 4
      // UNet calls, and `started` announces the total that progress counts to.
      expect(started).toMatchObject({ value: { scheduler: "PNDMScheduler", numImages: 1, totalSteps: 4 } });
      const progress = events.filter((e) => e.case === "progress").map((e) => e.value as { step: number; total: number });
      expect(progress.at(-1)).toEqual(expect.objectContaining({ step: 4, total: 4 }));
      const completed = completedOf(events);
      expect(completed.seed).toBe((started?.value as { seed: number }).seed);
      expect(Number.isInteger(completed.seed)).toBe(true);
      expect(completed.urls).toHaveLength(1);
      await expectImage(completed.urls[0], "png", 64, 64);
    });

    it("generates JPEGs when asked", async () => {
      const completed = completedOf(await collect(client.generate(request({ width: 96, height: 64, outputFormat: OutputFormat.JPEG }))));
      expect(completed.keys[0]).toMatch(/\/0\.jpg$/);
      await expectImage(completed.urls[0], "jpeg", 96, 64);
    });

    it("runs img2img from init image bytes; the output takes the init image's size", async () => {
      const init = await sharp({ create: { width: 72, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
      const events = await collect(client.generate(request({ initImage: init, strength: 0.5, numInferenceSteps: 6 })));
      // `started` already names the init image's size, not the request's placeholder width/height.
      expect(events.find((e) => e.case === "started")).toMatchObject({ value: { totalSteps: 3, width: 72, height: 48 } });
      const completed = completedOf(events);
      expect(completed.stepsRun).toBe(3);
      await expectImage(completed.urls[0], "png", 72, 48);
    });

    it("runs img2img at strength 0 as the VAE round trip of the input (no denoising step)", async () => {
      const init = await sharp({ create: { width: 64, height: 40, channels: 3, background: { r: 20, g: 120, b: 60 } } }).png().toBuffer();
      const events = await collect(client.generate(request({ initImage: init, strength: 0 })));
      expect(events.find((e) => e.case === "started")).toMatchObject({ value: { totalSteps: 0, width: 64, height: 40 } });
      expect(events.some((e) => e.case === "progress")).toBe(false);
      const completed = completedOf(events);
      expect(completed.stepsRun).toBe(0);
      await expectImage(completed.urls[0], "png", 64, 40);
    });

    it("replays a finished task: same outcome, same URLs, no second run", async () => {
      const req = request({ seed: 5 });
      const first = completedOf(await collect(client.generate(req)));
      const replay = await collect(client.generate({ ...req, prompt: "ignored on replay", seed: 6 }));
      expect(replay.map((e) => e.case)).toEqual(["started", "image", "completed"]);
      expect(completedOf(replay).urls).toEqual(first.urls);
      expect(completedOf(replay).seed).toBe(5);
      expect(completedOf(replay).timings?.totalMs).toBe(first.timings?.totalMs);
    });

    it("re-attaches to a running task: a snapshot of it so far, then its live events", async () => {
      const req = request({ numInferenceSteps: 300 });
      const original = client.generate(req)[Symbol.asyncIterator]();
      await readUntil(original, "progress");

      const attached = client.generate(req)[Symbol.asyncIterator]();
      const first = await next(attached);
      expect(first).toMatchObject({ case: "started", value: { totalSteps: 300 } });
      const second = await next(attached);
      expect(second.case).toBe("progress");
      const rest: Event[] = [];
      for (;;) {
        const event = await next(attached);
        rest.push(event);
        if (event.case === "completed" || event.case === "failed") break;
      }
      const steps = [second, ...rest].filter((e) => e.case === "progress").map((e) => (e.value as { step: number }).step);
      // Live steps follow the snapshot's, in order, up to the last one.
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(steps.at(-1)).toBe(300);
      const viaAttach = completedOf(rest);
      const viaOriginal = completedOf(await collect({ [Symbol.asyncIterator]: () => original }));
      expect(viaAttach.urls).toEqual(viaOriginal.urls);
    });

    it("keeps running a task whose client went away", async () => {
      const req = request({ numInferenceSteps: 200 });
      const controller = new AbortController();
      const iterator = client.generate(req, controller.signal)[Symbol.asyncIterator]();
      await readUntil(iterator, "progress");
      controller.abort();
      await expect(iterator.next()).rejects.toMatchObject({ code: "cancelled" });
      const completed = completedOf(await collect(client.generate(req)));
      await expectImage(completed.urls[0], "png", 64, 64);
    });

    it("answers GetStatus while a generation runs (the pipeline works in its own thread)", async () => {
      const req = request({ numInferenceSteps: LONG_STEPS });
      const iterator = client.generate(req)[Symbol.asyncIterator]();
      await readUntil(iterator, "progress");
      const status = await client.status();
      expect(status).toMatchObject({
        modelLoaded: true,
        modelName: "tiny-sd",
        runningTaskIds: [req.taskId],
        busy: true,
        accepting: true,
        capacity: 1,
        concurrency: 1,
      });
      // The task was still running when the answer came: more steps follow it.
      expect(await next(iterator)).toMatchObject({ case: "progress" });
      expect(await client.cancel(req.taskId)).toBe(CancelOutcome.CANCELLING);
      expect(failedOf(await collect({ [Symbol.asyncIterator]: () => iterator })).code).toBe("cancelled");
    });

    it("cancels a running task between steps and a queued one at once", async () => {
      const running = request({ numInferenceSteps: LONG_STEPS });
      const queued = request();
      const runningEvents = client.generate(running)[Symbol.asyncIterator]();
      await readUntil(runningEvents, "progress");
      const queuedEvents = client.generate(queued)[Symbol.asyncIterator]();
      expect(await next(queuedEvents)).toMatchObject({ case: "queued", value: { position: 1 } });

      expect(await client.cancel(queued.taskId)).toBe(CancelOutcome.CANCELLED);
      expect(failedOf(await collect({ [Symbol.asyncIterator]: () => queuedEvents }))).toMatchObject({ code: "cancelled", retryable: false });
      expect(await client.cancel(running.taskId)).toBe(CancelOutcome.CANCELLING);
      const rest = await collect({ [Symbol.asyncIterator]: () => runningEvents });
      expect(failedOf(rest)).toMatchObject({ code: "cancelled", grpcCode: 1 });
      expect(rest.some((e) => e.case === "image")).toBe(false);

      expect(await client.cancel(running.taskId)).toBe(CancelOutcome.ALREADY_FINISHED);
      expect(await client.cancel("never-seen")).toBe(CancelOutcome.NOT_FOUND);
      // A cancelled task replays as cancelled; it is not run again.
      expect(failedOf(await collect(client.generate(running))).code).toBe("cancelled");
    });

    it("refuses a task with RESOURCE_EXHAUSTED (queue_full) when the queue is full", async () => {
      const running = request({ numInferenceSteps: LONG_STEPS });
      const waiting = request();
      const runningEvents = client.generate(running)[Symbol.asyncIterator]();
      await readUntil(runningEvents, "progress");
      const waitingEvents = client.generate(waiting)[Symbol.asyncIterator]();
      await readUntil(waitingEvents, "queued");

      const refused = await collect(client.generate(request())).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: "queue_full", grpcCode: 8, retryable: true });
      expect((await client.status()).queueDepth).toBe(1);

      await client.cancel(waiting.taskId);
      await client.cancel(running.taskId);
      await collect({ [Symbol.asyncIterator]: () => runningEvents });
      await collect({ [Symbol.asyncIterator]: () => waitingEvents });
    });

    it("lists its LoRA adapters and applies one to the task that names it, and to no other", async () => {
      const listed = await client.loras();
      expect(listed.loras.map((l) => l.name)).toEqual(["broken", "style"]);
      expect(listed.loras[1]).toMatchObject({
        name: "style",
        kind: "lora",
        matchedModules: 2,
        unmatchedKeys: 1,
        unmatchedKeyExamples: ["lora_unet_down_blocks_9_attentions_0_proj_in"],
        unsupportedKeys: 0,
        triggerWords: [],
      });
      expect(listed.loras[1].error).toBeUndefined();
      expect(listed.loras[1].startupWeight).toBeUndefined();
      expect(listed.loras[1].sizeBytes).toBeGreaterThan(0);
      expect(listed.loras[0].error).toMatch(/broken\.safetensors/);
      expect(listed.cache).toMatchObject({ entries: 0, bytes: 0, limitBytes: 4096 * 2 ** 20 });

      const pixels = async (url: string) => (await readImage(new Uint8Array(await (await fetch(url)).arrayBuffer()))).data;
      const before = completedOf(await collect(client.generate(request({ seed: 31 }))));
      const styled = completedOf(await collect(client.generate(request({ seed: 31, loras: [create(LoraWeightSchema, { name: "style", weight: 1 })] }))));
      const after = completedOf(await collect(client.generate(request({ seed: 31 }))));
      expect(styled.timings?.loraMs).toBeGreaterThan(0);
      expect(after.timings?.loraMs).toBe(0);
      const [a, b, c] = await Promise.all([before, styled, after].map((done) => pixels(done.urls[0])));
      expect(b).not.toEqual(a);
      expect(c).toEqual(a);
      expect((await client.loras()).cache?.entries).toBe(1);

      for (const [name, message] of [
        ["nope", 'unknown LoRA "nope"; available: style'],
        ["broken", /^LoRA "broken" cannot be used: /],
      ] as const) {
        const failed = failedOf(await collect(client.generate(request({ loras: [create(LoraWeightSchema, { name, weight: 1 })] }))));
        expect(failed).toMatchObject({ code: "invalid_argument", grpcCode: 3, retryable: false });
        expect(failed.message).toMatch(message);
      }
    });

    it("requires the tier secret on every call", async () => {
      for (const secret of [null, "wrong-secret"]) {
        const stranger = target.client(node, secret);
        try {
          await expect(stranger.status()).rejects.toMatchObject({ code: "unauthenticated", grpcCode: 16 });
          await expect(stranger.cancel("x")).rejects.toMatchObject({ code: "unauthenticated" });
          await expect(stranger.loras()).rejects.toMatchObject({ code: "unauthenticated" });
          await expect(collect(stranger.generate(request()))).rejects.toMatchObject({ code: "unauthenticated" });
        } finally {
          stranger.close();
        }
      }
    });

    it("refuses a malformed task id as INVALID_ARGUMENT", async () => {
      await expect(collect(client.generate(request({ taskId: "../../etc/passwd" })))).rejects.toMatchObject({
        code: "invalid_argument",
        grpcCode: 3,
      });
    });

    it("turns bad input into a failed invalid_argument event and keeps serving", async () => {
      const cases: Array<[RequestFields, RegExp]> = [
        [{ initImage: new TextEncoder().encode("this is not an image") }, /init/i],
        [{ scheduler: "Euler z" }, /unknown scheduler "Euler z"/],
        [{ width: 2048, height: 2048 }, /2048x2048 is 4194304 pixels; the limit is 1048576/],
      ];
      for (const [init, message] of cases) {
        const failed = failedOf(await collect(client.generate(request(init))));
        expect(failed).toMatchObject({ code: "invalid_argument", grpcCode: 3, retryable: false });
        expect(failed.message).toMatch(message);
      }
      expect(completedOf(await collect(client.generate(request()))).urls).toHaveLength(1);
      expect((await client.status()).modelLoaded).toBe(true);
    });

    it("shuts down: the running task finishes, queued ones fail as retryable, new ones are refused", async () => {
      // A node of its own (same model runner), so the others' listeners stay up.
      const own = await startGpuNode(config, { runner, logger: pino({ level: "silent" }) });
      const ownClient = target.client(own, SECRET);
      try {
        const running = request({ numInferenceSteps: 200 });
        const queued = request();
        const runningEvents = ownClient.generate(running)[Symbol.asyncIterator]();
        await readUntil(runningEvents, "progress");
        const queuedEvents = ownClient.generate(queued)[Symbol.asyncIterator]();
        await readUntil(queuedEvents, "queued");

        const stopped = own.shutdown();
        expect(failedOf(await collect({ [Symbol.asyncIterator]: () => queuedEvents }))).toMatchObject({
          code: "unavailable",
          grpcCode: 14,
          retryable: true,
        });
        await expect(collect(ownClient.generate(request()))).rejects.toMatchObject({ code: "unavailable", grpcCode: 14 });
        const completed = completedOf(await collect({ [Symbol.asyncIterator]: () => runningEvents }));
        await expectImage(completed.urls[0], "png", 64, 64);
        await stopped;
        await expect(ownClient.status()).rejects.toMatchObject({ code: "unavailable" });
      } finally {
        ownClient.close();
        await own.shutdown();
      }
    });
  });
}
