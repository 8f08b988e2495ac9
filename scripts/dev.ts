// `npm run dev`: the whole stack on loopback with the embedded defaults (config.yaml, or SD_CONFIG, + environment):
// s3rver (data in .data/s3), a gpu-node (the tiny model on the CPU) and the Node edge, each a child process with
// its log lines prefixed. Waits until all three are ready, prints the URLs and a curl line. One Ctrl-C stops
// everything (a second one kills); if any child exits, the others are stopped and the reason printed.
// `--data-dir <dir>` keeps the S3 objects in <dir>/s3 instead (the database is config's task_db.path).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadNodeConfigOrExit } from "../shared/node/config.load.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const READY_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 75_000;

const tty = process.stdout.isTTY;
const paint = (code: number, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };

interface Child {
  name: string;
  process: ChildProcess;
  ready: Promise<Record<string, unknown> | string>;
  exited: Promise<number | null>;
}

/** pino JSON lines as "12:00:00 info  message key=value"; anything else as it came. */
function formatLine(line: string): string {
  if (!line.startsWith("{")) return line;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const { level, time, msg, pid: _pid, hostname: _host, service: _service, name: _name, ...rest } = entry;
    const when = typeof time === "number" ? new Date(time).toISOString().slice(11, 19) : "";
    const levelName = LEVELS[level as number] ?? String(level);
    const colored = (level as number) >= 50 ? paint(31, levelName) : (level as number) >= 40 ? paint(33, levelName) : levelName;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    return `${when} ${colored.padEnd(tty ? 14 : 5)} ${msg ?? ""}${fields ? `  ${paint(2, fields)}` : ""}`;
  } catch {
    return line;
  }
}

function start(name: string, color: number, script: string, args: string[], isReady: (line: string) => Record<string, unknown> | string | null): Child {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    env: process.env,
    // Own process group: the terminal's Ctrl-C reaches only this script, which stops the children in order.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const prefix = paint(color, `[${name}]`.padEnd(7));
  let resolveReady!: (value: Record<string, unknown> | string) => void;
  const ready = new Promise<Record<string, unknown> | string>((resolve) => (resolveReady = resolve));
  let isUp = false;
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      console.log(`${prefix} ${formatLine(line)}`);
      if (!isUp) {
        const found = isReady(line);
        if (found !== null) {
          isUp = true;
          resolveReady(found);
        }
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : null))));
  return { name, process: child, ready, exited };
}

function jsonMessage(msg: string): (line: string) => Record<string, unknown> | null {
  return (line) => {
    if (!line.startsWith("{")) return null;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return entry.msg === msg ? entry : null;
    } catch {
      return null;
    }
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { "data-dir": { type: "string", default: ".data" } } });
  const s3Dir = join(values["data-dir"], "s3");
  const config = loadNodeConfigOrExit();

  const children: Child[] = [
    start("s3", 35, "scripts/s3rver.ts", ["--dir", s3Dir], (line) => (line.includes("s3rver listening") ? line : null)),
    start("gpu", 36, "gpu-node/main.ts", [], jsonMessage("gpu-node ready")),
  ];

  let stopping = false;
  const stopAll = async (reason: string, code: number): Promise<never> => {
    if (stopping) process.exit(code);
    stopping = true;
    console.log(paint(1, `\n${reason}: stopping the stack…`));
    // The edge first (it hands its leases over), then the node (it finishes its running task), then storage.
    for (const name of ["edge", "gpu", "s3"]) {
      const child = children.find((c) => c.name === name);
      if (!child || child.process.exitCode !== null || child.process.signalCode !== null) continue;
      child.process.kill("SIGTERM");
      const timer = setTimeout(() => child.process.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await child.exited;
      clearTimeout(timer);
    }
    process.exit(code);
  };
  process.on("SIGINT", () => {
    if (stopping) {
      for (const child of children) child.process.kill("SIGKILL");
      process.exit(130);
    }
    void stopAll("Ctrl-C", 0);
  });
  process.on("SIGTERM", () => void stopAll("SIGTERM", 0));
  const watch = (child: Child) =>
    void child.exited.then((code) => {
      if (!stopping) void stopAll(`${child.name} exited (code ${code}); see its lines above`, 1);
    });
  for (const child of children) watch(child);

  const timeout = setTimeout(() => void stopAll(`not ready after ${READY_TIMEOUT_MS / 1000} s`, 1), READY_TIMEOUT_MS);
  const [, gpu] = await Promise.all(children.map((c) => c.ready));
  // The edge last, so its first dispatch pass already finds the node up.
  if (stopping) return;
  const edgeChild = start("edge", 32, "edge/node/main.ts", [], jsonMessage("edge listening"));
  children.push(edgeChild);
  watch(edgeChild);
  const edge = await edgeChild.ready;
  clearTimeout(timeout);
  if (stopping) return;
  const edgeUrl = String((edge as Record<string, unknown>).url);
  const node = gpu as Record<string, unknown>;
  const key = config.api.keys[0] ?? "<your key>";
  const line = "─".repeat(72);
  console.log(
    [
      "",
      paint(1, line),
      paint(1, " The stack is up."),
      `  API          ${edgeUrl}        (keys: ${config.api.keys.join(", ") || "none configured"})`,
      `  Docs         ${edgeUrl}/docs   ${edgeUrl}/redoc`,
      `  Metrics      ${edgeUrl}/metrics   gpu-node: http://${config.gpu_node.host}:${node.metrics_port}/metrics`,
      `  gpu-node     grpc ${config.gpu_node.host}:${node.grpc_port}   grpc-web http://${config.gpu_node.host}:${node.web_port}`,
      `  S3 (s3rver)  http://${config.minio.endpoint}/${config.minio.bucket}   (data in ${s3Dir})`,
      "",
      "  Try it:",
      `    curl -s -X POST ${edgeUrl}/api/v1/generate -H "Content-Type: application/json" \\`,
      `      -H "X-API-Key: ${key}" -d '{"prompt": "a lighthouse at dusk"}'`,
      `    curl -s ${edgeUrl}/api/v1/tasks/<task_id> -H "X-API-Key: ${key}"`,
      "",
      "  Ctrl-C stops everything.",
      paint(1, line),
      "",
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
