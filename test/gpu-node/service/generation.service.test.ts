import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { DomainError } from "../../../shared/errors/error-codes.js";
import { CancelOutcome, GenerateRequestSchema, LoraWeightSchema, type GenerateEvent } from "../../../shared/gen/sd/v1/gpu_pb.js";
import { resolveScheduler } from "../../../shared/schedulers/scheduler-names.js";
import { GenerationService, type GenerationObserver } from "../../../gpu-node/service/generation.service.js";
import type { LoraAdapterInfo } from "../../../gpu-node/pipeline/pipeline.types.js";
import { FakeRunner } from "../support/fake.runner.js";
import { MemoryStore } from "../support/memory.store.js";

class RecordingObserver implements GenerationObserver {
  depths: number[] = [];
  generations: number[] = [];
  steps: number[] = [];
  orts: number[] = [];
  failures: string[] = [];
  queueDepth(depth: number) {
    this.depths.push(depth);
  }
  generationSeconds(seconds: number) {
    this.generations.push(seconds);
  }
  stepSeconds(seconds: number) {
    this.steps.push(seconds);
  }
  ortSeconds(seconds: number) {
    this.orts.push(seconds);
  }
  failure(code: string) {
    this.failures.push(code);
  }
}

const services: GenerationService[] = [];
const STYLE: LoraAdapterInfo = {
  name: "style",
  kind: "lora",
  sizeBytes: 1234,
  matchedModules: 3,
  unmatchedKeys: Array.from({ length: 12 }, (_, i) => `lora_te2_key_${i}`),
  unsupportedKeys: [{ key: "lora_unet_x", reason: "not LoRA or LoHA (parts: lokr_w1)" }],
  triggerWords: ["ink"],
  startupWeight: 0.5,
  error: null,
};
const BROKEN: LoraAdapterInfo = { ...STYLE, name: "broken", kind: "none", matchedModules: 0, unmatchedKeys: [], unsupportedKeys: [], triggerWords: [], startupWeight: null, error: "broken.safetensors: truncated" };

function setup(overrides: Record<string, unknown> = {}) {
  const config = parseConfig({ gpu_node: { queue_capacity: 2 }, ...overrides });
  const runner = new FakeRunner({ stepMs: 2, loras: [BROKEN, STYLE] });
  const store = new MemoryStore();
  const observer = new RecordingObserver();
  const service = new GenerationService({
    runner,
    store,
    config,
    defaultScheduler: resolveScheduler("Euler a")!,
    logger: pino({ level: "silent" }),
    observer,
    nodeId: () => "node-1",
    version: "9.9.9",
  });
  services.push(service);
  return { service, runner, store, observer };
}
afterEach(() => {
  for (const service of services.splice(0)) service.dispose();
});

const request = (init: Parameters<typeof create<typeof GenerateRequestSchema>>[1]) =>
  create(GenerateRequestSchema, { prompt: "a cat", ...init });

async function collect(events: AsyncIterable<GenerateEvent>): Promise<GenerateEvent["event"][]> {
  const out: GenerateEvent["event"][] = [];
  for await (const event of events) out.push(event.event);
  return out;
}

describe("GenerationService", () => {
  it("runs a task end to end: resolved params to the runner, events in order, images stored under dated keys", async () => {
    const { service, runner, store, observer } = setup();
    const events = await collect(service.generate(request({ taskId: "t1", numInferenceSteps: 3, numImages: 2, seed: 11 })));
    expect(events.map((e) => e.case)).toEqual(["queued", "started", "progress", "progress", "progress", "image", "image", "completed"]);
    expect(events[1]).toMatchObject({
      case: "started",
      value: { seed: 11, totalSteps: 3, width: 64, height: 64, numImages: 2, scheduler: "Euler a" },
    });
    expect(runner.calls[0]).toMatchObject({ seed: 11, width: 64, height: 64, scheduler: { className: "EulerAncestralDiscreteScheduler" } });
    const completed = events.at(-1);
    if (completed?.case !== "completed") throw new Error("no completed event");
    expect(completed.value.seed).toBe(11);
    expect(completed.value.stepsRun).toBe(3);
    expect(completed.value.keys).toHaveLength(2);
    for (const [i, key] of completed.value.keys.entries()) {
      expect(key).toMatch(new RegExp(`^images/\\d{4}/\\d{2}/\\d{2}/t1/${i}\\.png$`));
      expect(store.objects.get(key)?.contentType).toBe("image/png");
    }
    expect(completed.value.urls).toEqual(completed.value.keys.map((key) => `memory://bucket/${key}`));
    const timings = completed.value.timings!;
    expect(timings.totalMs).toBeGreaterThanOrEqual(timings.pipelineMs + timings.queueMs);
    expect(timings.ortMs).toBeGreaterThan(0);
    expect(observer.steps).toHaveLength(3);
    expect(observer.generations).toHaveLength(1);
    expect(observer.orts).toHaveLength(1);
  });

  it("answers bad input with a failed invalid_argument event, never calling the pipeline", async () => {
    const { service, runner, observer } = setup();
    const events = await collect(service.generate(request({ taskId: "bad", scheduler: "no-such" })));
    expect(events).toEqual([expect.objectContaining({ case: "failed", value: expect.objectContaining({ code: "invalid_argument", grpcCode: 3, retryable: false }) })]);
    expect(runner.calls).toHaveLength(0);
    expect(observer.failures).toEqual(["invalid_argument"]);
    // The node keeps serving.
    expect((await collect(service.generate(request({ taskId: "good", numInferenceSteps: 1 })))).at(-1)?.case).toBe("completed");
  });

  it("passes the pipeline's own invalid_argument (an undecodable init image) through as a failed event", async () => {
    const { service } = setup();
    const events = await collect(service.generate(request({ taskId: "img", initImage: new TextEncoder().encode("not an image") })));
    expect(events.at(-1)).toMatchObject({ case: "failed", value: { code: "invalid_argument", message: "init_image is not a decodable image" } });
  });

  it("refuses a malformed task id as a call error", () => {
    const { service } = setup();
    expect(() => service.generate(request({ taskId: "../etc" }))).toThrow(DomainError);
  });

  it("fails with a retryable storage_error when uploads fail, and runs the task again once storage is back", async () => {
    const { service, store } = setup();
    store.failing = true;
    const events = await collect(service.generate(request({ taskId: "s3", numInferenceSteps: 1 })));
    expect(events.at(-1)).toMatchObject({ case: "failed", value: { code: "storage_error", retryable: true } });
    store.failing = false;
    expect((await collect(service.generate(request({ taskId: "s3", numInferenceSteps: 1 })))).at(-1)?.case).toBe("completed");
  });

  it("reports its state in status() and cancels a running task between steps without storing anything", async () => {
    const { service, runner, store } = setup();
    runner.stepMs = 20;
    const running = service.generate(request({ taskId: "long", numInferenceSteps: 500 }));
    const waiting = service.generate(request({ taskId: "next", numInferenceSteps: 1 }));
    for await (const event of running) if (event.event.case === "progress") break;
    expect(service.status()).toMatchObject({
      nodeId: "node-1",
      version: "9.9.9",
      modelLoaded: true,
      modelName: "fake-sd",
      queueDepth: 1,
      capacity: 2,
      concurrency: 1,
      runningTaskIds: ["long"],
      busy: true,
      accepting: true,
      nativeWidth: 64,
    });
    expect(service.cancel("long")).toBe(CancelOutcome.CANCELLING);
    const replay = await collect(service.generate(request({ taskId: "long" })));
    expect(replay.at(-1)).toMatchObject({ case: "failed", value: { code: "cancelled" } });
    expect([...store.objects.keys()].some((key) => key.includes("/long/"))).toBe(false);
    expect((await collect(waiting)).at(-1)?.case).toBe("completed");
    expect(service.status()).toMatchObject({ queueDepth: 0, runningTaskIds: [], busy: false });
  });

  it("cancelled while its images go up: takes down what was stored and ends cancelled, not completed", async () => {
    const { service, store } = setup();
    let cancelled!: () => void;
    const cancelledNow = new Promise<void>((resolve) => (cancelled = resolve));
    store.beforePut = async (object) => {
      // The cancel lands while the second of three images is going up.
      if (object.taskId === "uploading" && object.index === 1) {
        expect(service.cancel("uploading")).toBe(CancelOutcome.CANCELLING);
        cancelled();
      }
    };
    const events = collect(service.generate(request({ taskId: "uploading", numImages: 3, numInferenceSteps: 2 })));
    await cancelledNow;
    const outcome = await events;
    expect(outcome.at(-1)).toMatchObject({ case: "failed", value: { code: "cancelled" } });
    expect(outcome.some((e) => e?.case === "completed")).toBe(false);
    expect([...store.objects.keys()].filter((key) => key.includes("/uploading/"))).toEqual([]);
    // The next task is unaffected.
    expect((await collect(service.generate(request({ taskId: "after", numImages: 2, numInferenceSteps: 1 })))).at(-1)?.case).toBe("completed");
    expect([...store.objects.keys()].filter((key) => key.includes("/after/"))).toHaveLength(2);
  });

  it("lists the pipeline's LoRA adapters without node paths, a few unmatched keys as examples", () => {
    const { service } = setup();
    const listed = service.listLoras();
    expect(listed.loras.map((l) => l.name)).toEqual(["broken", "style"]);
    expect(listed.loras[1]).toMatchObject({
      name: "style",
      kind: "lora",
      sizeBytes: 1234,
      matchedModules: 3,
      unmatchedKeys: 12,
      unmatchedKeyExamples: STYLE.unmatchedKeys.slice(0, 10),
      unsupportedKeys: 1,
      triggerWords: ["ink"],
      startupWeight: 0.5,
    });
    expect(listed.loras[1].error).toBeUndefined();
    expect(listed.loras[0]).toMatchObject({ error: "broken.safetensors: truncated" });
    expect(listed.loras[0].startupWeight).toBeUndefined();
  });

  it("refuses a task naming an unknown or broken adapter when it arrives, without queueing it", async () => {
    const { service, runner } = setup();
    for (const [name, message] of [
      ["nope", 'unknown LoRA "nope"; available: style'],
      ["broken", 'LoRA "broken" cannot be used: broken.safetensors: truncated'],
    ]) {
      const events = await collect(service.generate(request({ taskId: `t-${name}`, loras: [create(LoraWeightSchema, { name, weight: 1 })] })));
      expect(events).toMatchObject([{ case: "failed", value: { code: "invalid_argument", message } }]);
    }
    expect(runner.calls).toHaveLength(0);
    const events = await collect(service.generate(request({ taskId: "t-style", numInferenceSteps: 1, loras: [create(LoraWeightSchema, { name: "style", weight: 0.7 })] })));
    expect(events.at(-1)?.case).toBe("completed");
    expect(runner.calls[0].loras).toEqual([{ name: "style", weight: 0.7 }]);
  });

  it("refuses new tasks with unavailable after shutdown starts", async () => {
    const { service } = setup();
    await service.shutdown(1000);
    expect(() => service.generate(request({ taskId: "late" }))).toThrow(expect.objectContaining({ code: "unavailable" }));
    expect(service.status().accepting).toBe(false);
  });
});

describe("GenerationService step metrics", () => {
  it("shares the time between deliveries among steps the pipeline reports together", async () => {
    const { service, runner, observer } = setup();
    // A runner that reports three steps at once after 30 ms, as the pipeline host does when it batches.
    runner.generate = async (params, hooks) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      for (let step = 1; step <= 3; step++) hooks.onProgress?.({ step, total: 3 });
      return { images: [], seed: params.seed, stepsRun: 3, promptTruncated: false, timings: { totalMs: 30, ortMs: 20, encodeMs: 0 } };
    };
    await collect(service.generate(request({ taskId: "batched", numInferenceSteps: 3 })));
    expect(observer.steps).toHaveLength(3);
    for (const seconds of observer.steps) expect(seconds).toBeCloseTo(observer.steps[0], 6);
    expect(observer.steps[0]).toBeGreaterThan(0.005);
  });
});
