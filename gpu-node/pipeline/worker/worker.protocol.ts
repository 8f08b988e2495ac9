// Messages between pipeline.host.ts (service thread) and pipeline.worker.ts (the thread that runs onnxruntime).
import type { ErrorCode } from "../../../shared/errors/error-codes.js";
import type { GenerateOutput, GenerateParams, LoraAdapterInfo, LoraCacheStats, PipelineStatus } from "../pipeline.types.js";
import type { PipelineSettings } from "../sd-pipeline.factory.js";

export interface WorkerData {
  settings: PipelineSettings;
}

/** Index 0 of a job's cancel flag: set to 1 by the host, read by the worker between steps. */
export const CANCEL_FLAG = 0;

export type HostMessage =
  | { type: "generate"; id: number; params: GenerateParams; cancel: SharedArrayBuffer }
  | { type: "crash"; how: "exit" | "throw" | "heap" };

export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
}

export type WorkerMessage =
  | { type: "ready"; status: PipelineStatus; loras: { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } }
  /** After every job: the merged-session cache may have changed. */
  | { type: "lora-cache"; cache: LoraCacheStats }
  | { type: "load-failed"; error: { name: string; message: string } }
  | { type: "started"; id: number; totalSteps: number; width: number; height: number }
  | { type: "progress"; id: number; step: number; total: number }
  | { type: "done"; id: number; output: GenerateOutput }
  | { type: "failed"; id: number; error: SerializedError };
