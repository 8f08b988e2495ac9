import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

// The real entry points as child processes: config from SD_CONFIG + environment, a real server on loopback.

const ROOT = new URL("../../../", import.meta.url).pathname;
let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "edge-main-"));
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function start(script: string, env: Record<string, string>) {
  // Only what the test sets: none of the developer's own SD_*/PORT variables leak in.
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function listeningUrl(proc: ReturnType<typeof start>): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const line = proc.output().stdout.split("\n").find((l) => l.includes('"edge listening"'));
    if (line) return (JSON.parse(line) as { url: string }).url;
    if (proc.child.exitCode !== null) throw new Error(`edge exited: ${proc.output().stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("edge did not start");
}

describe("edge/node/main.ts", () => {
  it("serves the API with SD_CONFIG, PORT, SD_API_KEYS and DATABASE_URL applied, and stops on SIGTERM", async () => {
    const configPath = join(dir, "edge.yaml");
    writeFileSync(configPath, 'api:\n  keys: ["file-key"]\n  key_header: "X-Edge-Key"\nlog_level: info\n');
    const dbPath = join(dir, "nested", "dir", "tasks.db");
    const edge = start("edge/node/main.ts", { SD_CONFIG: configPath, PORT: "0", SD_API_KEYS: "env-key", DATABASE_URL: `file:${dbPath}` });
    const url = await listeningUrl(edge);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: "ok", model_loaded: false });
    // SD_API_KEYS replaced the file's keys; the header name still comes from the file.
    expect((await fetch(`${url}/api/v1/tasks/x`, { headers: { "X-Edge-Key": "file-key" } })).status).toBe(401);
    const created = await fetch(`${url}/api/v1/generate`, {
      method: "POST",
      headers: { "X-Edge-Key": "env-key", "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a cat" }),
    });
    expect(created.status).toBe(200);
    const { task_id } = (await created.json()) as { task_id: string };
    const task = await fetch(`${url}/api/v1/tasks/${task_id}?api_key=env-key`);
    expect(await task.json()).toMatchObject({ task_id, status: "pending" });

    edge.child.kill("SIGTERM");
    expect(await edge.exited).toBe(0);
    expect(edge.output().stdout).not.toContain("env-key");

    // DATABASE_URL was used (its directory created), in WAL mode, with the task in it.
    const db = createClient({ url: `file:${dbPath}` });
    try {
      expect((await db.execute("PRAGMA journal_mode")).rows[0].journal_mode).toBe("wal");
      expect((await db.execute({ sql: "SELECT status FROM tasks WHERE id = ?", args: [task_id] })).rows[0].status).toBe("pending");
    } finally {
      db.close();
    }
  });

  it("defaults to a local file at task_db.path", async () => {
    const configPath = join(dir, "edge.yaml");
    writeFileSync(configPath, `task_db:\n  path: ${JSON.stringify(join(dir, "default.db"))}\n`);
    const edge = start("edge/node/main.ts", { SD_CONFIG: configPath, PORT: "0" });
    await listeningUrl(edge);
    edge.child.kill("SIGINT");
    expect(await edge.exited).toBe(0);
    const db = createClient({ url: `file:${join(dir, "default.db")}` });
    try {
      expect((await db.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(0);
    } finally {
      db.close();
    }
  });

  it.each([
    ["server:\n  port: 99999\n", {}, "server.port"],
    ["api:\n  keys: 12\n", {}, "api.keys"],
    ["health_check:\n  no_auth: maybe\n", {}, "health_check.no_auth"],
    ["", { PORT: "not-a-port" }, "server.port"],
  ])("exits non-zero naming the key for a bad config (%j)", async (yaml, env, key) => {
    const configPath = join(dir, "bad.yaml");
    writeFileSync(configPath, yaml);
    const edge = start("edge/node/main.ts", { SD_CONFIG: configPath, ...env });
    expect(await edge.exited).toBe(1);
    expect(edge.output().stderr).toContain(`${key}:`);
    expect(edge.output().stderr).not.toMatch(/\n\s+at /);
  });

  it("exits non-zero when SD_CONFIG names a missing file", async () => {
    const edge = start("edge/node/main.ts", { SD_CONFIG: join(dir, "missing.yaml") });
    expect(await edge.exited).toBe(1);
    expect(edge.output().stderr).toContain("SD_CONFIG");
  });
});

describe("edge/node/migrate.main.ts (npm run db:migrate)", () => {
  it("applies the migrations once, then reports the database up to date", async () => {
    const env = { SD_CONFIG: join(dir, "none.yaml"), DATABASE_URL: `file:${join(dir, "m", "tasks.db")}` };
    writeFileSync(env.SD_CONFIG, "");
    const first = start("edge/node/migrate.main.ts", env);
    expect(await first.exited).toBe(0);
    expect(first.output().stdout).toMatch(/^applied 0000_/);
    const second = start("edge/node/migrate.main.ts", env);
    expect(await second.exited).toBe(0);
    expect(second.output().stdout).toMatch(/is up to date/);
  });
});

describe("edge/node/main.ts on a busy port", () => {
  it("exits non-zero naming server.port", async () => {
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const configPath = join(dir, "edge.yaml");
      writeFileSync(configPath, `task_db:\n  path: ${JSON.stringify(join(dir, "busy.db"))}\n`);
      const edge = start("edge/node/main.ts", { SD_CONFIG: configPath, PORT: String(port) });
      expect(await edge.exited).toBe(1);
      expect(edge.output().stderr).toContain(`server.port: 127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });
});
