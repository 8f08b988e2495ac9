import { Hono } from "hono";
import type { AppBindings } from "../../app.types.js";
import type { DocsAssets } from "../../ports/docs-assets.port.js";
import { DOCS_ASSET_PATHS, redocPage, swaggerUiPage } from "./docs.pages.js";

// /openapi.json, /docs and /redoc. Not part of the OpenAPI document itself (as in FastAPI).

const ASSET_TYPES: Record<keyof DocsAssets, string> = {
  swaggerUiBundleJs: "text/javascript; charset=utf-8",
  swaggerUiCss: "text/css; charset=utf-8",
  redocStandaloneJs: "text/javascript; charset=utf-8",
};

export function createDocsRouter(openApiJson: () => string, assets: DocsAssets | undefined): Hono<AppBindings> {
  const router = new Hono<AppBindings>({ strict: false });
  const swagger = swaggerUiPage("/openapi.json");
  const redoc = redocPage("/openapi.json");
  router.get("/openapi.json", (c) => c.body(openApiJson(), 200, { "content-type": "application/json" }));
  router.get("/docs", (c) => c.html(swagger));
  router.get("/redoc", (c) => c.html(redoc));
  if (assets) {
    for (const name of Object.keys(DOCS_ASSET_PATHS) as Array<keyof DocsAssets>) {
      const body = assets[name];
      router.get(DOCS_ASSET_PATHS[name], (c) =>
        c.body(body, 200, { "content-type": ASSET_TYPES[name], "cache-control": "public, max-age=86400" }),
      );
    }
  }
  return router;
}
