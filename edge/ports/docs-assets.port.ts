/**
 * The Swagger UI and ReDoc bundles the docs pages load. The Node entry reads them from node_modules once at
 * start-up; on Workers they come from static assets at the same paths, so the app serves them only when given.
 */
export interface DocsAssets {
  swaggerUiBundleJs: string;
  swaggerUiCss: string;
  redocStandaloneJs: string;
}
