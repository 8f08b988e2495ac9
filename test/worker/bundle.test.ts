// `wrangler deploy --dry-run` bundles the worker exactly as a deploy would (wrangler.toml, its build step, esbuild
// with nodejs_compat): no error, no warning, nothing Node-only inside, and a gzipped size well under the limit.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
// Modules that cannot run in workerd (http2, native addons, eval-based codegen, file access) or belong to the
// Node edge only.
const NODE_ONLY = [
  "@grpc/grpc-js",
  "@grpc/proto-loader",
  "protobufjs",
  "@connectrpc/connect-node",
  "@libsql/client/lib-esm/node.js",
  "node_modules/libsql/",
  "@hono/node-server",
  "pino",
  "prom-client",
  "minio",
  "onnxruntime",
  "sharp",
  "edge/node/",
  "shared/node/",
  "gpu-node/",
];

interface Metafile {
  outputs: Record<string, { imports: Array<{ path: string; external?: boolean }>; inputs: Record<string, unknown> }>;
}

let dir: string;
let log: string;
let bundle: Buffer;
let output: Metafile["outputs"][string];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "worker-bundle-"));
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", dir, "--metafile", join(dir, "meta.json")],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" }, maxBuffer: 16 * 1024 * 1024 },
  );
  log = `${stdout}\n${stderr}`;
  bundle = readFileSync(join(dir, "main.js"));
  const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as Metafile;
  output = Object.entries(meta.outputs).find(([path]) => path.endsWith("main.js"))![1];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("wrangler deploy --dry-run", () => {
  it("bundles with no error or warning", () => {
    expect(log).toContain("--dry-run: exiting now.");
    expect(log).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(log).toMatch(/env\.DISPATCH_QUEUE \(sd-dispatch\)\s+Queue/);
  });

  it("contains the shared app and no Node-only module", () => {
    const inputs = Object.keys(output.inputs);
    expect(inputs.some((f) => f.endsWith("edge/worker/main.ts"))).toBe(true);
    expect(inputs.some((f) => f.endsWith("edge/routes/tasks/tasks.handlers.ts"))).toBe(true);
    expect(inputs.some((f) => f.includes("@libsql/client/lib-esm/web.js"))).toBe(true);
    expect(inputs.some((f) => f.includes("@connectrpc/connect-web"))).toBe(true);
    expect(inputs.filter((f) => NODE_ONLY.some((name) => f.includes(name)))).toEqual([]);
    // nodejs_compat would let node: imports through as externals: none is needed.
    expect(output.imports.map((i) => i.path)).toEqual([]);
  });

  it("stays far below Workers' size limit once gzipped", () => {
    const gzipped = gzipSync(bundle, { level: 9 }).length;
    console.log(`worker bundle: ${(bundle.length / 1024).toFixed(0)} KiB, gzipped ${(gzipped / 1024).toFixed(0)} KiB`);
    expect(gzipped).toBeLessThan(1024 * 1024);
  });
});
