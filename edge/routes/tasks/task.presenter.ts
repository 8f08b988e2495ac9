import type { TaskResponse } from "../../../shared/api/task.schema.js";
import type { TaskView } from "../../db/tasks.repo.js";
import { isoUtcNaive } from "../../lib/timestamps.js";

/** A task row as the public JSON: the spec's fields in the spec's order, then ours. */
export function toTaskResponse(row: TaskView): TaskResponse {
  const urls = row.resultUrls ?? [];
  return {
    task_id: row.id,
    status: row.status,
    // One image: result_url; several: result_urls (the spec's two shapes).
    result_url: urls.length === 1 ? urls[0] : null,
    result_urls: urls.length > 1 ? urls : null,
    error_message: row.errorMessage,
    created_at: isoUtcNaive(row.createdAt),
    updated_at: isoUtcNaive(row.updatedAt),
    seed: row.seed,
    width: row.width,
    height: row.height,
    scheduler: row.scheduler,
    num_images: row.numImages,
    progress: row.progressStep !== null && row.progressTotal !== null ? { step: row.progressStep, total: row.progressTotal } : null,
    queue_position: row.queuePosition,
    prompt: row.prompt,
    negative_prompt: row.negativePrompt,
    loras: row.loras ?? [],
  };
}
