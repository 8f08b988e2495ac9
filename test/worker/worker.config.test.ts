import { describe, expect, it } from "vitest";
import { parseWorkerConfig, parseWorkerLimits, stringBindings } from "../../edge/worker/worker.config.js";
import type { WorkerEnv } from "../../edge/worker/worker.env.js";

const queue = {} as WorkerEnv["DISPATCH_QUEUE"];
const base: WorkerEnv = { DISPATCH_QUEUE: queue, DATABASE_URL: "http://127.0.0.1:8080", GPU_NODES: "10.0.0.5:50051|https://gpu-1.example" };

describe("parseWorkerConfig", () => {
  it("reads the CONFIG table (object or JSON string) with the secrets applied as the Node edge's env overrides", () => {
    for (const CONFIG of [{ api: { key_header: "X-Key" }, dispatch: { max_attempts: 5 } }, '{"api":{"key_header":"X-Key"},"dispatch":{"max_attempts":5}}']) {
      const config = parseWorkerConfig({ ...base, CONFIG, SD_API_KEYS: "a, b", WEBHOOK_SECRET: "whsec_AAAA", TIER_SECRET: "t", LOG_LEVEL: "warn" });
      expect(config.api).toMatchObject({ keys: ["a", "b"], key_header: "X-Key" });
      expect(config.dispatch.max_attempts).toBe(5);
      expect(config.callback.secret).toBe("whsec_AAAA");
      expect(config.tier_secret).toBe("t");
      expect(config.log_level).toBe("warn");
      expect(config.database.url).toBe("http://127.0.0.1:8080");
      expect(config.gpu_nodes).toEqual([{ grpc: "10.0.0.5:50051", web: "https://gpu-1.example" }]);
    }
  });

  it("refuses what cannot work in workerd, naming the key", () => {
    expect(() => parseWorkerConfig({ DISPATCH_QUEUE: queue, GPU_NODES: base.GPU_NODES })).toThrow(/database\.url \(DATABASE_URL\): required on Workers/);
    expect(() => parseWorkerConfig({ ...base, DATABASE_URL: "file:data/tasks.db" })).toThrow(/Workers reach libSQL over HTTP; got a file: URL/);
    expect(() => parseWorkerConfig({ ...base, GPU_NODES: "10.0.0.5:50051" })).toThrow(/gpu_nodes\.0\.web: required on Workers/);
    expect(() => parseWorkerConfig({ ...base, CONFIG: "{not json" })).toThrow(/CONFIG: not valid JSON/);
    expect(() => parseWorkerConfig({ ...base, CONFIG: { dispatch: { max_attempts: 0 } } })).toThrow(/dispatch\.max_attempts/);
  });

  it("takes only string bindings as environment (queues and JSON vars are not overrides)", () => {
    expect(stringBindings({ A: "x", B: 1, C: { d: 1 }, D: queue })).toEqual({ A: "x" });
  });
});

describe("parseWorkerLimits", () => {
  it("defaults to the Paid plan's subrequests and a minute under the consumers' 15 minutes", () => {
    expect(parseWorkerLimits(base)).toEqual({ subrequests: 1000, consumerWallMs: 840_000 });
    expect(parseWorkerLimits({ ...base, SUBREQUEST_LIMIT: "50", CONSUMER_WALL_SECONDS: "60" })).toEqual({ subrequests: 50, consumerWallMs: 60_000 });
    expect(() => parseWorkerLimits({ ...base, CONSUMER_WALL_SECONDS: "3600" })).toThrow(/CONSUMER_WALL_SECONDS/);
    expect(() => parseWorkerLimits({ ...base, SUBREQUEST_LIMIT: "lots" })).toThrow(/SUBREQUEST_LIMIT/);
  });
});
