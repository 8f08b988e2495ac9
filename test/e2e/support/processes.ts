// Real processes for the end-to-end suites: gpu-node and Node-edge child processes started from their real entry
// points with a config file, their JSON log lines captured; plus polling helpers. Not a test file itself.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ChildHandle {
  child: ChildProcess;
  logs: LogLine[];
  exited: Promise<number | null>;
  /** Lines seen with this msg (and task id, when given). */
  linesWith(msg: string, taskId?: string): LogLine[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** JSON is YAML: the config files are written as JSON. */
export function writeConfig(dir: string, name: string, config: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

function startChild(script: string, configPath: string, ready: (line: LogLine) => boolean): { handle: ChildHandle; ready: Promise<LogLine> } {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    // Only what the suite sets: none of the developer's SD_* / PORT variables leak in.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", SD_CONFIG: configPath },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const readyPromise = new Promise<LogLine>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      logs.push(line);
      if (ready(line)) resolve(line);
    });
    void exited.then((code) => reject(new Error(`${script} exited (${code}) before it was ready: ${stderr.slice(-2000)}`)));
  });
  const handle: ChildHandle = {
    child,
    logs,
    exited,
    linesWith: (msg, taskId) => logs.filter((l) => l.msg === msg && (taskId === undefined || l.task_id === taskId)),
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  return { handle, ready: readyPromise };
}

export interface GpuNodeProcess extends ChildHandle {
  grpcPort: number;
  webPort: number;
  metricsPort: number;
  /** host:port for config.gpu_nodes[].grpc. */
  address: string;
}

/** `tsx gpu-node/main.ts` with the tiny model, ephemeral ports and the given S3 endpoint; `extra` adds top-level keys (e.g. lora). */
export async function startGpuNodeProcess(dir: string, name: string, s3Endpoint: string, bucket: string, extra: Record<string, unknown> = {}): Promise<GpuNodeProcess> {
  const configPath = writeConfig(dir, `${name}.yaml`, {
    sd_model: { path: "models/tiny-sd" },
    minio: { endpoint: s3Endpoint, bucket },
    gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0, shutdown_timeout_seconds: 5 },
    // One ORT thread per node: the suites run up to two nodes, the edge and other test files on two cores.
    onnx: { intra_op_threads: 1 },
    log_level: "info",
    ...extra,
  });
  const { handle, ready } = startChild("gpu-node/main.ts", configPath, (line) => line.msg === "gpu-node ready");
  const line = (await ready) as LogLine & { grpc_port: number; web_port: number; metrics_port: number };
  return { ...handle, grpcPort: line.grpc_port, webPort: line.web_port, metricsPort: line.metrics_port, address: `127.0.0.1:${line.grpc_port}` };
}

export interface EdgeProcess extends ChildHandle {
  url: string;
}

/** `tsx edge/node/main.ts` with the given config file. */
export async function startEdgeProcess(configPath: string): Promise<EdgeProcess> {
  const { handle, ready } = startChild("edge/node/main.ts", configPath, (line) => line.msg === "edge listening");
  const line = await ready;
  return { ...handle, url: String(line.url) };
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 120_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
