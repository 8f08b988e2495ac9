// Worker threads do not inherit the parent's TypeScript loader (tsx, or vitest's transform), and Node 20 ignores
// `--import tsx` in a worker's execArgv for its entry module. This plain-JS entry registers tsx for the thread's
// own imports, then loads the TypeScript worker named in workerData.entry.
import { workerData } from "node:worker_threads";
import { tsImport } from "tsx/esm/api";

await tsImport(workerData.entry, import.meta.url);
