// The node's side channels (grpc.health.v1, /metrics, /healthz) around a stand-in pipeline; the generation
// contract itself is test/gpu-node/contract/ with the real model.
import { create } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ClientReadableStream } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../../shared/gen/grpc/health/v1/health_pb.js";
import { grpcServiceDefinition } from "../../../shared/node/grpc-service.definition.js";
import { startGpuNode, type RunningGpuNode } from "../../../gpu-node/app/gpu-node.app.js";
import { createGrpcGpuClient } from "../../../edge/gpu/grpc.gpu-client.js";
import { FakeRunner } from "../support/fake.runner.js";
import { MemoryStore } from "../support/memory.store.js";

const health = grpcServiceDefinition(Health);
const nodes: RunningGpuNode[] = [];
const clients: Client[] = [];

async function start(): Promise<RunningGpuNode> {
  const config = parseConfig({ gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0 } });
  const node = await startGpuNode(config, { runner: new FakeRunner({ stepMs: 1 }), logger: pino({ level: "silent" }), store: new MemoryStore() });
  nodes.push(node);
  return node;
}

function healthClient(node: RunningGpuNode): Client {
  const client = new Client(`127.0.0.1:${node.grpcPort}`, credentials.createInsecure());
  clients.push(client);
  return client;
}

function check(client: Client, service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      health.Check.path,
      health.Check.requestSerialize,
      health.Check.responseDeserialize,
      create(HealthCheckRequestSchema, { service }),
      new Metadata(),
      {},
      (error, response) => (error ? reject(error) : resolve(response as HealthCheckResponse)),
    );
  });
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const node of nodes.splice(0)) await node.shutdown();
});

describe("gpu-node app", () => {
  it("serves grpc.health.v1: SERVING while up, NOT_SERVING to watchers once it shuts down", async () => {
    const node = await start();
    const client = healthClient(node);
    expect((await check(client, "")).status).toBe(ServingStatus.SERVING);
    expect((await check(client, "sd.v1.GpuNode")).status).toBe(ServingStatus.SERVING);
    await expect(check(client, "no.such.Service")).rejects.toMatchObject({ code: 5 });

    const watch: ClientReadableStream<HealthCheckResponse> = client.makeServerStreamRequest(
      health.Watch.path,
      health.Watch.requestSerialize,
      health.Watch.responseDeserialize,
      create(HealthCheckRequestSchema, { service: "sd.v1.GpuNode" }),
      new Metadata(),
    );
    const statuses: ServingStatus[] = [];
    const ended = new Promise<void>((resolve) => {
      watch.on("data", (response: HealthCheckResponse) => statuses.push(response.status));
      watch.on("end", resolve);
      watch.on("error", () => resolve());
    });
    await new Promise((resolve) => watch.once("data", resolve));
    await node.shutdown();
    await ended;
    expect(statuses[0]).toBe(ServingStatus.SERVING);
    expect(statuses).toContain(ServingStatus.NOT_SERVING);
  });

  it("answers the Connect protocol (JSON over HTTP/1.1) on the web listener too", async () => {
    const node = await start();
    const response = await fetch(`http://127.0.0.1:${node.webPort}/sd.v1.GpuNode/GetStatus`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ modelLoaded: true, modelName: "fake-sd", capacity: 64, concurrency: 1, accepting: true });
  });

  it("exposes queue, generation, step, ORT and failure metrics at /metrics and a /healthz", async () => {
    const node = await start();
    const client = createGrpcGpuClient({ address: `127.0.0.1:${node.grpcPort}` });
    try {
      for await (const _ of client.generate({ taskId: "m1", prompt: "x", width: 64, height: 64, numInferenceSteps: 3 })) void _;
      for await (const _ of client.generate({ taskId: "m2", prompt: "x", scheduler: "nope" })) void _;
    } finally {
      client.close();
    }
    const text = await (await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^sd_gpu_queue_depth 0$/m);
    expect(text).toMatch(/^sd_gpu_generation_seconds_count 1$/m);
    expect(text).toMatch(/^sd_gpu_step_seconds_count 3$/m);
    expect(text).toMatch(/^sd_gpu_ort_seconds_count 1$/m);
    expect(text).toMatch(/^sd_gpu_failures_total\{code="invalid_argument"\} 1$/m);
    expect(text).toMatch(/^sd_gpu_node_process_cpu_seconds_total /m);

    const healthz = await fetch(`http://127.0.0.1:${node.metricsPort}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toMatchObject({ ok: true, status: "ok", model_loaded: true, queue_depth: 0 });
    expect((await fetch(`http://127.0.0.1:${node.metricsPort}/nope`)).status).toBe(404);
  });
});
