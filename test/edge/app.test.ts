import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../edge/ports/logger.port.js";
import { KEY_1, createTestEdge, type TestEdge } from "./edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("logs", () => {
  it("never contain the API key, whichever way it came", async () => {
    const lines: string[] = [];
    const capture = (level: string) => (obj: unknown, msg?: string) => void lines.push(`${level} ${JSON.stringify(obj)} ${msg ?? ""}`);
    const logger: Logger = { error: capture("error"), warn: capture("warn"), info: capture("info"), debug: capture("debug") };
    edge = await createTestEdge({}, { logger, taskEvents: { onTaskCreated: async () => Promise.reject(new Error("hook down")) } });
    await edge.generate({ prompt: "p" });
    await edge.request(`/api/v1/tasks/x?api_key=${KEY_1}`);
    await edge.request("/api/v1/tasks/x", { headers: { Authorization: `Bearer ${KEY_1}` } });
    await edge.request(`/nope?api_key=${KEY_1}`);
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join("\n")).not.toContain(KEY_1);
  });
});

describe("portability", () => {
  it("bundles for Workers without Node built-ins (no node: imports outside edge/node/)", async () => {
    // esbuild comes with wrangler/tsx; a neutral-platform build fails on any Node built-in it cannot resolve.
    const { build } = await import("esbuild");
    const result = await build({
      entryPoints: [new URL("../../edge/app.ts", import.meta.url).pathname],
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser", "import"],
      mainFields: ["browser", "module", "main"],
      logLevel: "silent",
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((f) => f.includes("edge/routes/tasks/tasks.handlers.ts"))).toBe(true);
    expect(inputs.filter((f) => f.startsWith("node:") || f.includes("/edge/node/") || f.includes("@libsql/client"))).toEqual([]);
  });
});
