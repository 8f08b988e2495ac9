// Writes the Swagger UI and ReDoc bundles the docs pages load into dist/worker-assets/, the static assets
// directory of wrangler.toml, at the paths the pages use. wrangler runs it ([build] command) before every
// `wrangler dev` and `wrangler deploy`, so nothing large is committed and a fresh clone deploys after npm install.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readDocsAssets } from "../edge/node/docs-assets.fs.js";
import { DOCS_ASSET_PATHS } from "../edge/routes/docs/docs.pages.js";
import type { DocsAssets } from "../edge/ports/docs-assets.port.js";

export const WORKER_ASSETS_DIR = resolve(fileURLToPath(new URL("../dist/worker-assets", import.meta.url)));

export function writeWorkerAssets(dir: string = WORKER_ASSETS_DIR): string[] {
  const assets = readDocsAssets();
  const written: string[] = [];
  for (const name of Object.keys(DOCS_ASSET_PATHS) as Array<keyof DocsAssets>) {
    const path = join(dir, DOCS_ASSET_PATHS[name]);
    mkdirSync(dirname(path), { recursive: true });
    // Write then rename: a worker already serving the directory (another `wrangler dev`) never reads half a file.
    const partial = `${path}.${process.pid}.partial`;
    writeFileSync(partial, assets[name]);
    renameSync(partial, path);
    written.push(path);
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const written = writeWorkerAssets();
  console.log(`worker assets: ${written.length} files in ${WORKER_ASSETS_DIR}`);
}
