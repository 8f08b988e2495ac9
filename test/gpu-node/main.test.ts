// The real entry point as a process: starts from SD_CONFIG, serves, and on SIGTERM lets the running task
// finish, fails the queued one as retryable, then exits 0.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../shared/gen/sd/v1/gpu_pb.js";
import { startS3rver, type RunningS3rver } from "../../gpu-node/dev/s3rver.server.js";
import { createGrpcGpuClient } from "../../edge/gpu/grpc.gpu-client.js";

let dir: string;
let s3: RunningS3rver;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gpu-main-"));
  s3 = await startS3rver({ directory: join(dir, "s3") });
});
afterAll(async () => {
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

function startMain(configPath: string): { child: ChildProcess; logs: Array<Record<string, unknown>>; ready: Promise<{ grpc_port: number }> } {
  const child = spawn(process.execPath, ["--import", "tsx", "gpu-node/main.ts"], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SD_CONFIG: configPath },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const logs: Array<Record<string, unknown>> = [];
  const ready = new Promise<{ grpc_port: number }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === "gpu-node ready") resolve(entry as unknown as { grpc_port: number });
    });
    child.once("exit", (code) => reject(new Error(`gpu-node exited (${code}) before it was ready`)));
  });
  return { child, logs, ready };
}

describe("gpu-node/main.ts", () => {
  it("drains on SIGTERM: the running task completes, the queued one fails as unavailable, exit code 0", async () => {
    const configPath = join(dir, "config.yaml");
    writeFileSync(
      configPath,
      [
        "sd_model: { path: models/tiny-sd }",
        `minio: { endpoint: "${s3.endpoint}", bucket: main-test }`,
        "gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0, shutdown_timeout_seconds: 60 }",
        "log_level: info",
      ].join("\n"),
    );
    const { child, logs, ready } = startMain(configPath);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const { grpc_port } = await ready;
      const client = createGrpcGpuClient({ address: `127.0.0.1:${grpc_port}` });
      const base = { prompt: "a lighthouse", width: 64, height: 64, scheduler: "Euler" };
      const running = client.generate({ ...base, taskId: "main-running", numInferenceSteps: 300 })[Symbol.asyncIterator]();
      for (;;) {
        const { value } = await running.next();
        if ((value as GenerateEvent).event.case === "progress") break;
      }
      const queued = client.generate({ ...base, taskId: "main-queued", numInferenceSteps: 2 })[Symbol.asyncIterator]();
      expect((await queued.next()).value?.event.case).toBe("queued");

      child.kill("SIGTERM");
      const rest: GenerateEvent["event"][] = [];
      for await (const event of { [Symbol.asyncIterator]: () => running }) rest.push(event.event);
      expect(rest.at(-1)?.case).toBe("completed");
      const queuedEnd = (await queued.next()).value?.event;
      expect(queuedEnd).toMatchObject({ case: "failed", value: { code: "unavailable", retryable: true } });
      client.close();

      expect(await exited).toBe(0);
      const messages = logs.map((entry) => entry.msg);
      expect(messages).toContain("signal received");
      expect(messages).toContain("gpu-node stopped");
      // Task-scoped lines carry the task id.
      expect(logs.some((entry) => entry.task_id === "main-running" && entry.msg === "task completed")).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("exits 1 naming the key of a bad config, without a stack trace", async () => {
    const configPath = join(dir, "bad.yaml");
    writeFileSync(configPath, "gpu_node:\n  concurrency: 0\n");
    const child = spawn(process.execPath, ["--import", "tsx", "gpu-node/main.ts"], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, SD_CONFIG: configPath },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain("gpu_node.concurrency:");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
