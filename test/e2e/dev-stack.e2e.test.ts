// `npm run dev` (scripts/dev.ts) as a user runs it: the three children come up on the configured ports, the
// README's generate → poll → fetch flow produces an image, one SIGINT stops everything; a child that dies
// takes the others down with a message.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { ApiClient } from "./support/api.client.js";
import { ROOT, waitFor, writeConfig } from "./support/processes.js";
import { freePort } from "../../shared/node/free-port.js";

const KEY = "dev-stack-key";
const dirs: string[] = [];
interface DevStack {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}
const stacks: DevStack[] = [];

afterEach(async () => {
  for (const stack of stacks.splice(0)) {
    if (stack.child.exitCode === null) stack.child.kill("SIGKILL");
    await stack.exited;
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});


function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function devConfig(overrides: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "dev-stack-"));
  dirs.push(dir);
  const [edge, grpc, web, metrics, s3] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const config = {
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: edge },
    task_db: { path: join(dir, "tasks.db") },
    sd_model: { path: "models/tiny-sd" },
    generation_defaults: { width: 64, height: 64, num_inference_steps: 4 },
    gpu_nodes: [{ grpc: `127.0.0.1:${grpc}` }],
    gpu_node: { grpc_port: grpc, web_port: web, metrics_port: metrics, shutdown_timeout_seconds: 5 },
    minio: { endpoint: `127.0.0.1:${s3}`, bucket: "dev-stack" },
    callback: { allow_private_targets: true },
    log_level: "info",
    ...overrides,
  };
  return { dir, ports: { edge, grpc, web, metrics, s3 }, path: writeConfig(dir, "config.yaml", config) };
}

function startDev(configPath: string, dataDir: string): DevStack {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/dev.ts", "--data-dir", dataDir], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", SD_CONFIG: configPath },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stack = { child, exited, output: () => output };
  stacks.push(stack);
  return stack;
}

describe("npm run dev", () => {
  it("starts s3rver, a gpu-node and the edge; the README flow gives an image; one SIGINT stops all three", async () => {
    const { dir, ports, path } = await devConfig();
    const dev = startDev(path, dir);
    await waitFor("the stack", () => dev.output().includes("The stack is up."), 180_000, 100);
    const out = dev.output();
    expect(out).toContain(`API          http://127.0.0.1:${ports.edge}`);
    expect(out).toMatch(/\[s3\]\s+s3rver listening/);
    expect(out).toMatch(/\[gpu\]\s+\S+ info\s+gpu-node ready/);
    expect(out).toMatch(/\[edge\]\s+\S+ info\s+edge listening/);
    expect(out).toContain(`-H "X-API-Key: ${KEY}"`);

    const api = new ApiClient(`http://127.0.0.1:${ports.edge}`, KEY);
    const id = await api.generate({ prompt: "a lighthouse on a cliff at dusk", seed: 42 });
    const done = await api.waitTask(id);
    expect(done).toMatchObject({ status: "completed", width: 64, height: 64, seed: 42 });
    expect(done.result_url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${ports.s3}/dev-stack/`));
    const image = await fetch(done.result_url!);
    expect(await sharp(Buffer.from(await image.arrayBuffer())).metadata()).toMatchObject({ format: "png", width: 64, height: 64 });

    dev.child.kill("SIGINT");
    expect(await dev.exited).toBe(0);
    expect(dev.output()).toContain("Ctrl-C: stopping the stack");
    for (const port of Object.values(ports)) expect(await portOpen(port), `port ${port}`).toBe(false);
  });

  it("stops everything, naming the culprit, when a child dies", async () => {
    const { dir, ports, path } = await devConfig({ sd_model: { path: "models/does-not-exist" } });
    const dev = startDev(path, dir);
    expect(await dev.exited).toBe(1);
    expect(dev.output()).toMatch(/gpu exited \(code 1\)/);
    expect(dev.output()).not.toContain("The stack is up.");
    expect(await portOpen(ports.s3)).toBe(false);
  });
});
