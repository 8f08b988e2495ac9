// Prometheus metrics of a gpu-node (prom-client), served at /metrics with /healthz beside them.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { GenerationObserver } from "../service/generation.service.js";

export class NodeMetrics implements GenerationObserver {
  readonly registry = new Registry();
  private readonly depth: Gauge;
  private readonly generation: Histogram;
  private readonly step: Histogram;
  private readonly ort: Histogram;
  private readonly failures: Counter<"code">;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "sd_gpu_node_" });
    const registers = [this.registry];
    this.depth = new Gauge({ name: "sd_gpu_queue_depth", help: "Tasks waiting in the queue", registers });
    // From a tiny CPU model (tens of ms) to large models on CPU (minutes).
    this.generation = new Histogram({
      name: "sd_gpu_generation_seconds",
      help: "Pipeline wall time of successful generations",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.step = new Histogram({
      name: "sd_gpu_step_seconds",
      help: "Time between two denoising steps (progress events)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.ort = new Histogram({
      name: "sd_gpu_ort_seconds",
      help: "Time inside onnxruntime run() per successful generation",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.failures = new Counter({
      name: "sd_gpu_failures_total",
      help: "Failed tasks by domain error code",
      labelNames: ["code"],
      registers,
    });
  }

  queueDepth(depth: number): void {
    this.depth.set(depth);
  }
  generationSeconds(seconds: number): void {
    this.generation.observe(seconds);
  }
  stepSeconds(seconds: number): void {
    this.step.observe(seconds);
  }
  ortSeconds(seconds: number): void {
    this.ort.observe(seconds);
  }
  failure(code: string): void {
    this.failures.inc({ code });
  }
}

export interface MetricsServerOptions {
  metrics: NodeMetrics;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Body of /healthz; `ok: false` answers 503. */
  health: () => { ok: boolean; [key: string]: unknown };
}

export interface RunningMetricsServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<RunningMetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      options.metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { "content-type": options.metrics.registry.contentType });
          res.end(text);
        })
        .catch((error: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(String(error));
        });
      return;
    }
    if (req.method === "GET" && path === "/healthz") {
      const body = options.health();
      res.writeHead(body.ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
