// A complete NewTask (the request's part of a task row) for repository tests: owner "owner-a", created
// 2024-01-01T00:00:00Z. Tests override what they vary.
import type { NewTask } from "../../edge/db/tasks.repo.js";

export function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id,
    ownerKeyHash: "owner-a",
    prompt: "p",
    negativePrompt: null,
    width: 512,
    height: null,
    numImages: 2,
    numInferenceSteps: null,
    guidanceScale: 7.5,
    strength: 0.75,
    scheduler: "DDIMScheduler",
    seed: 42,
    outputFormat: "png",
    callbackUrl: null,
    loras: null,
    createdAt: new Date(Date.UTC(2024, 0, 1)),
    updatedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, 5)),
    ...overrides,
  };
}
