// `tsx scripts/s3rver.ts [--port 9000] [--dir .data/s3]`: a local S3 server for development. Without --port it
// listens on the port of config.minio.endpoint (SD_CONFIG or ./config.yaml), so the gpu-node finds it.
import { parseArgs } from "node:util";
import { loadNodeConfigOrExit } from "../shared/node/config.load.js";
import { startS3rver } from "../gpu-node/dev/s3rver.server.js";
import { parseEndpoint } from "../gpu-node/storage/minio.store.js";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    dir: { type: "string", default: ".data/s3" },
  },
});

const port = values.port !== undefined ? Number(values.port) : (() => {
  const { minio } = loadNodeConfigOrExit();
  return parseEndpoint(minio.endpoint, minio.secure).port ?? (minio.secure ? 443 : 80);
})();
const s3 = await startS3rver({ directory: values.dir, port, host: values.host });
console.log(`s3rver listening on http://${s3.endpoint} (data in ${values.dir}; credentials S3RVER / S3RVER)`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void s3.close().then(() => process.exit(0));
  });
}
