// `npm run db:migrate`: applies pending migrations to the configured database (the edge also does at start-up).
import { ConfigError } from "../../shared/config/config.schema.js";
import { loadNodeConfig } from "../../shared/node/config.load.js";
import { openMigratedDatabase } from "./open-database.js";

try {
  const config = loadNodeConfig();
  const { url, client, applied } = await openMigratedDatabase(config);
  client.close();
  const where = url.startsWith("file:") ? url : "the configured database";
  console.log(applied.length > 0 ? `applied ${applied.join(", ")} to ${where}` : `${where} is up to date`);
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err instanceof Error ? err.message : err);
  process.exit(1);
}
