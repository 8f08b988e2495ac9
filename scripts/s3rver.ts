// `tsx scripts/s3rver.ts [--port 9000] [--dir .data/s3]`: a local S3 server for development (see config.minio).
import { parseArgs } from "node:util";
import { startS3rver } from "../gpu-node/dev/s3rver.server.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "9000" },
    host: { type: "string", default: "127.0.0.1" },
    dir: { type: "string", default: ".data/s3" },
  },
});

const s3 = await startS3rver({ directory: values.dir, port: Number(values.port), host: values.host });
console.log(`s3rver listening on http://${s3.endpoint} (data in ${values.dir}; credentials S3RVER / S3RVER)`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void s3.close().then(() => process.exit(0));
  });
}
