import { OutputFormat } from "../../shared/gen/sd/v1/gpu_pb.js";
import type { TaskRow } from "../db/schema.js";
import type { GenerateRequestInit } from "../gpu/gpu-client.port.js";

/** A task row as the node's GenerateRequest; null columns stay unset so the node applies its defaults. */
export function toGenerateRequest(row: TaskRow, initImage: Uint8Array | undefined): GenerateRequestInit {
  const opt = <T>(value: T | null): T | undefined => (value === null ? undefined : value);
  return {
    taskId: row.id,
    prompt: row.prompt,
    negativePrompt: opt(row.negativePrompt),
    width: opt(row.width),
    height: opt(row.height),
    numImages: row.numImages,
    numInferenceSteps: opt(row.numInferenceSteps),
    guidanceScale: opt(row.guidanceScale),
    strength: opt(row.strength),
    scheduler: opt(row.scheduler),
    seed: opt(row.seed),
    initImage,
    outputFormat: row.outputFormat === "png" ? OutputFormat.PNG : OutputFormat.JPEG,
    loras: row.loras ?? [],
  };
}
