import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { TASK_STATUSES } from "../../shared/api/task.schema.js";
import type { EdgeMetrics, WebhookOutcome } from "../metrics/metrics.port.js";
import type { NodeView } from "../dispatch/node-pool.js";
import type { TerminalStatus } from "../webhooks/webhook.payload.js";

// The Node edge's Prometheus metrics (prom-client), served at GET /metrics. Gauges that describe state (tasks
// per status, GPU nodes) are read when scraped, from the sources given here.

export interface PromSources {
  /** Tasks per status (a GROUP BY over the tasks table). */
  taskCounts(): Promise<Record<string, number>>;
  nodes(): NodeView[];
}

export class PromMetrics implements EdgeMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<"route" | "method" | "status">;
  readonly #requestSeconds: Histogram<"route" | "method">;
  readonly #finished: Counter<"status">;
  readonly #retried: Counter<"reason">;
  readonly #dispatchLatency: Histogram;
  readonly #webhookAttempts: Counter<"outcome">;
  readonly #webhookSeconds: Histogram;

  constructor(sources: PromSources) {
    collectDefaultMetrics({ register: this.registry, prefix: "sd_edge_node_" });
    const registers = [this.registry];
    this.#requests = new Counter({ name: "sd_edge_http_requests_total", help: "HTTP requests by route pattern, method and status", labelNames: ["route", "method", "status"], registers });
    this.#requestSeconds = new Histogram({
      name: "sd_edge_http_request_duration_seconds",
      help: "HTTP request duration by route pattern",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#finished = new Counter({ name: "sd_edge_tasks_finished_total", help: "Tasks that reached a terminal state through this edge", labelNames: ["status"], registers });
    this.#retried = new Counter({ name: "sd_edge_task_retries_total", help: "Tasks released for another attempt", labelNames: ["reason"], registers });
    // From milliseconds (idle node) to an hour (a long queue).
    this.#dispatchLatency = new Histogram({
      name: "sd_edge_dispatch_latency_seconds",
      help: "From task creation to the GPU node's started event",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.#webhookAttempts = new Counter({ name: "sd_edge_webhook_attempts_total", help: "Webhook delivery attempts by outcome", labelNames: ["outcome"], registers });
    this.#webhookSeconds = new Histogram({
      name: "sd_edge_webhook_attempt_duration_seconds",
      help: "Webhook delivery attempt duration",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    new Gauge({
      name: "sd_edge_tasks",
      help: "Tasks in the database by status (read at scrape time)",
      labelNames: ["status"],
      registers,
      async collect() {
        const counts = await sources.taskCounts();
        // Every status is reported (0 when none), so dashboards need no absent() juggling.
        for (const status of new Set([...TASK_STATUSES, ...Object.keys(counts)])) this.set({ status }, counts[status] ?? 0);
      },
    });
    new Gauge({
      name: "sd_edge_gpu_node_up",
      help: "1 when the GPU node answers, accepts work and has its model loaded",
      labelNames: ["node"],
      registers,
      collect() {
        for (const node of sources.nodes()) this.set({ node: node.name }, node.up ? 1 : 0);
      },
    });
    new Gauge({
      name: "sd_edge_gpu_node_in_flight",
      help: "Tasks this edge is streaming from the GPU node",
      labelNames: ["node"],
      registers,
      collect() {
        for (const node of sources.nodes()) this.set({ node: node.name }, node.inFlight);
      },
    });
  }

  request(route: string, method: string, status: number, seconds: number): void {
    this.#requests.inc({ route, method, status: String(status) });
    this.#requestSeconds.observe({ route, method }, seconds);
  }
  taskFinished(status: TerminalStatus): void {
    this.#finished.inc({ status });
  }
  taskRetried(reason: string): void {
    this.#retried.inc({ reason });
  }
  dispatchLatency(seconds: number): void {
    this.#dispatchLatency.observe(seconds);
  }
  webhookAttempt(outcome: WebhookOutcome, seconds: number): void {
    this.#webhookAttempts.inc({ outcome });
    this.#webhookSeconds.observe(seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
