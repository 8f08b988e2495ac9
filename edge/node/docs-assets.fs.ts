import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { DocsAssets } from "../ports/docs-assets.port.js";

const require = createRequire(import.meta.url);

function readBundle(specifier: string): string {
  // The source maps are not shipped to browsers; without this line devtools would ask for them (a 404).
  return readFileSync(require.resolve(specifier), "utf8").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
}

/** Swagger UI and ReDoc from node_modules, read once at start-up (the docs pages then work offline). */
export function readDocsAssets(): DocsAssets {
  return {
    swaggerUiBundleJs: readBundle("swagger-ui-dist/swagger-ui-bundle.js"),
    swaggerUiCss: readBundle("swagger-ui-dist/swagger-ui.css").replace(/\n\/\*# sourceMappingURL=\S+ \*\/\s*$/, "\n"),
    redocStandaloneJs: readBundle("redoc/bundles/redoc.standalone.js"),
  };
}
