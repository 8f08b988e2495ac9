// The worker thread that owns onnxruntime: its run() blocks the calling thread for the whole UNet pass, so the
// service's event loop must not be the one calling it. Loads the model once, then serves jobs one at a time.
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import { DomainError } from "../../../shared/errors/error-codes.js";
import { createSdPipeline } from "../sd-pipeline.factory.js";
import type { SdPipeline } from "../sd.pipeline.js";
import { CANCEL_FLAG, type HostMessage, type SerializedError, type WorkerData, type WorkerMessage } from "./worker.protocol.js";

/**
 * Progress crosses threads at most this often (and always for the last step); the host replays the steps in
 * between. Posting each of the ~5 ms steps of a small image woke the service thread 200 times a second and
 * cost 3-4% of the run on a 2-core machine.
 */
const PROGRESS_INTERVAL_MS = 50;

const port = parentPort;
if (!port) throw new Error("pipeline.worker.ts must run in a worker thread");
const { settings } = workerData as WorkerData;

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

function serialize(err: unknown): SerializedError {
  if (err instanceof DomainError) return { name: err.name, code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  // onnxruntime reports allocation failures as errors (bad_alloc) rather than killing the thread.
  if (/bad_alloc|out of memory|failed to allocate/i.test(message)) {
    return { name: "DomainError", code: "out_of_memory", message: `out of memory while generating: ${message}` };
  }
  return { name: "DomainError", code: "internal", message: `pipeline error: ${message}` };
}

async function main(): Promise<void> {
  let pipeline: SdPipeline;
  try {
    pipeline = await createSdPipeline(settings);
  } catch (err) {
    const error = err instanceof Error ? { name: err.name, message: err.message } : { name: "Error", message: String(err) };
    post({ type: "load-failed", error });
    // Let the message flush, then end the thread.
    setImmediate(() => process.exit(1));
    return;
  }
  post({ type: "ready", status: pipeline.status(), loras: pipeline.loras() });

  // Jobs run one at a time, in arrival order.
  let queue = Promise.resolve();
  port!.on("message", (message: HostMessage) => {
    if (message.type === "crash") {
      // Fault injection for the host's recovery tests (only sent when the host was created with it enabled).
      if (message.how === "exit") process.exit(3);
      setImmediate(() => {
        throw new Error("injected worker crash");
      });
      return;
    }
    const { id, params, cancel } = message;
    const flag = new Int32Array(cancel);
    queue = queue.then(async () => {
      let lastPost = performance.now();
      try {
        const output = await pipeline.generate(params, {
          onStart: (event) => post({ type: "started", id, ...event }),
          onProgress: ({ step, total }) => {
            const now = performance.now();
            if (step !== total && now - lastPost < PROGRESS_INTERVAL_MS) return;
            lastPost = now;
            post({ type: "progress", id, step, total });
          },
          isCancelled: () => Atomics.load(flag, CANCEL_FLAG) === 1,
        });
        // Ahead of the outcome, so the host's figures are current once the job settles.
        post({ type: "lora-cache", cache: pipeline.loras().cache });
        const transfer = output.images.map((image) => image.bytes.buffer as ArrayBuffer);
        post({ type: "done", id, output }, transfer);
      } catch (err) {
        post({ type: "lora-cache", cache: pipeline.loras().cache });
        post({ type: "failed", id, error: serialize(err) });
      }
    });
  });
}

await main();
