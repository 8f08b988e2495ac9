import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Client } from "@libsql/client";
import type { Logger } from "../ports/logger.port.js";

// SQLite checkpoints a WAL file in the connection that commits past wal_autocheckpoint pages, synchronously:
// with @libsql/client that is the event loop, stalled for the copy and its fsyncs, and every request waits.
// Here a worker thread with its own connection does the bulk of the copying with PASSIVE checkpoints (they
// never block readers or the writer) on a timer. The request connection still checkpoints, but rarely and
// briefly: only past a larger threshold, when almost everything is already copied. That last step cannot
// move to the worker: the WAL only rewinds when a write begins with every frame copied, which under steady
// writes happens only if the writer itself checkpoints between commits; without it the file grows for as
// long as the load lasts.

// Pages (4 KiB) the WAL may reach before the request connection tops the checkpoint up (SQLite: 1000).
const REQUEST_CONNECTION_AUTOCHECKPOINT = 4000;
// The WAL file is cut back to this size when it rewinds after a burst.
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

const require = createRequire(import.meta.url);

// Plain CommonJS, run with eval: no TypeScript loader needed in the worker under tsx, vitest or plain node.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.libsqlPath);
const db = new Database(workerData.path, { timeout: 5000 });
const checkpoint = (mode) => {
  try {
    db.exec("PRAGMA wal_checkpoint(" + mode + ")");
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
};
const timer = setInterval(() => checkpoint("PASSIVE"), workerData.intervalMs);
parentPort.on("message", (message) => {
  if (message !== "stop") return;
  clearInterval(timer);
  checkpoint("TRUNCATE");
  db.close();
  parentPort.postMessage({ stopped: true });
  parentPort.close();
});
`;

export interface WalCheckpointer {
  /** Stops the worker after a final checkpoint that truncates the WAL file. */
  stop(): Promise<void>;
}

/** The checkpoint settings of a connection that serves requests (every writer of the file but the worker's). */
export const REQUEST_CONNECTION_CHECKPOINT_PRAGMAS = [
  `PRAGMA wal_autocheckpoint=${REQUEST_CONNECTION_AUTOCHECKPOINT}`,
  `PRAGMA journal_size_limit=${JOURNAL_SIZE_LIMIT_BYTES}`,
] as const;

/** Moves checkpoints of the local database file at `path` (used by `client`) to a worker thread. */
export async function startWalCheckpointer(client: Client, path: string, logger: Logger, intervalMs = 250): Promise<WalCheckpointer> {
  for (const pragma of REQUEST_CONNECTION_CHECKPOINT_PRAGMAS) await client.execute(pragma);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { libsqlPath: require.resolve("libsql"), path, intervalMs } });
  worker.unref();
  let stopped = false;
  const restoreAutocheckpoint = () => {
    // Without the worker, the request connection takes all checkpoints again, at SQLite's default pace.
    client.execute("PRAGMA wal_autocheckpoint=1000").catch(() => {});
  };
  worker.on("message", (message: { error?: string }) => {
    if (message.error) logger.warn({ err: message.error }, "WAL checkpoint failed");
  });
  worker.on("error", (err) => {
    logger.error({ err: err.message }, "WAL checkpoint worker failed; checkpointing on the request connection again");
    restoreAutocheckpoint();
  });
  worker.on("exit", () => {
    if (!stopped) restoreAutocheckpoint();
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        if (stopped) return resolve();
        stopped = true;
        worker.once("exit", () => resolve());
        // Unref'd while it runs; held now, or a process with nothing else to do would exit before the final checkpoint.
        worker.ref();
        worker.postMessage("stop");
      }),
  };
}
