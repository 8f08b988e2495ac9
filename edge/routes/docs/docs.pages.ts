// The interactive docs pages. Every URL they load is served by this app (or, on Workers, by its static
// assets at the same paths): they work without internet access.

export const DOCS_ASSET_PATHS = {
  swaggerUiBundleJs: "/docs/assets/swagger-ui-bundle.js",
  swaggerUiCss: "/docs/assets/swagger-ui.css",
  redocStandaloneJs: "/redoc/assets/redoc.standalone.js",
} as const;

const TITLE = "SD Image API";

export function swaggerUiPage(openApiUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${TITLE} - Swagger UI</title>
<link rel="stylesheet" href="${DOCS_ASSET_PATHS.swaggerUiCss}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${DOCS_ASSET_PATHS.swaggerUiBundleJs}"></script>
<script>
window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(openApiUrl)},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default validator badge would call validator.swagger.io.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
</script>
</body>
</html>
`;
}

export function redocPage(openApiUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${TITLE} - ReDoc</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url=${JSON.stringify(openApiUrl)}></redoc>
<script src="${DOCS_ASSET_PATHS.redocStandaloneJs}"></script>
</body>
</html>
`;
}
