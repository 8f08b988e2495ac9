import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdgeServer, type TestEdgeServer } from "../../edge-test-app.js";

// /docs and /redoc rendered by a real browser with every host but 127.0.0.1 unresolvable: the pages must draw the
// API from our own assets and /openapi.json, with no CDN. The HTTP-level contract test checks the URLs the pages
// name; only a browser shows that the scripts actually run and render the operations.
//
// Needs Debian's chromium (`apt-get install chromium`); npm cannot carry a browser here (puppeteer downloads one at
// install). Where it is absent the suite is skipped, and says so.
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => existsSync(p));

const run = promisify(execFile);

async function renderedDom(url: string, profile: string): Promise<string> {
  const { stdout } = await run(
    CHROMIUM!,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      `--user-data-dir=${profile}`,
      // Anything but loopback fails to resolve: a page that needs the internet renders nothing.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      // Virtual time runs the page's scripts and fetches to completion before the DOM is dumped.
      "--virtual-time-budget=15000",
      "--dump-dom",
      url,
    ],
    { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

// The title says why when it is skipped, and nothing of the kind when it runs.
describe.skipIf(!CHROMIUM)(`docs pages in a headless browser${CHROMIUM ? "" : " (skipped: no chromium on this machine)"}`, () => {
  let edge: TestEdgeServer;
  beforeAll(async () => {
    edge = await startTestEdgeServer("docs-browser-");
  });
  afterAll(() => edge.close());

  it("/docs: Swagger UI renders every operation and the API-key authorize button", async () => {
    const dom = await renderedDom(`${edge.server.url}/docs`, join(edge.dir, "profile-docs"));
    for (const path of ["/health", "/api/health", "/api/v1/generate", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/cancel", "/api/v1/loras"]) {
      expect(dom).toContain(`data-path="${path}"`);
    }
    expect(dom).toMatch(/class="btn authorize/);
    expect(dom).toContain("Create an image generation task");
  });

  it("/redoc: ReDoc renders the operations from /openapi.json", async () => {
    const dom = await renderedDom(`${edge.server.url}/redoc`, join(edge.dir, "profile-redoc"));
    expect(dom).toContain("SD Image API");
    expect(dom).toContain("Create an image generation task");
    expect(dom).toContain("Cancel a pending or processing task");
    expect(dom).not.toMatch(/Something went wrong/i);
  });
});
