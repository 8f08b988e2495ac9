// The public-API contract against the Node edge: the real server (startEdgeServer) on an ephemeral port, over a
// libSQL file in a temp directory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../edge/adapters/silent.logger.js";
import { startEdgeServer } from "../../edge/node/edge-server.js";
import { parseConfig } from "../../shared/config/config.schema.js";
import { describePublicApiContract } from "./public-api.contract.js";

describePublicApiContract("Node edge", async (rawConfig) => {
  const dir = mkdtempSync(join(tmpdir(), "contract-node-"));
  const config = parseConfig({ ...rawConfig, task_db: { path: join(dir, "tasks.db") }, server: { host: "127.0.0.1", port: 0 } });
  const server = await startEdgeServer(config, { logger: silentLogger });
  return {
    baseUrl: server.url,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
