import { API_MESSAGES } from "../../../shared/api/api-messages.js";
import type { AppRouteHandler } from "../../app.types.js";
import { ownedBy } from "../../db/tasks.repo.js";
import type { CancelTaskRoute, GenerateRoute, GetTaskRoute } from "./tasks.routes.js";
import { loraRequestErrors } from "./lora-request.check.js";
import { toTaskResponse } from "./task.presenter.js";

// Task IDs are lowercase UUIDs (crypto.randomUUID); anything else cannot exist, so it is a 404 without a query.
const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Seeds drawn here are 32-bit, the range most SD front-ends use, so any tool can reproduce them. They come from
// a pool refilled 1,024 at a time: one getRandomValues call per request was a few percent of a POST's CPU.
const seedPool = new Uint32Array(1024);
let seedsLeft = 0;
function drawSeed(): number {
  if (seedsLeft === 0) {
    crypto.getRandomValues(seedPool);
    seedsLeft = seedPool.length;
  }
  return seedPool[--seedsLeft];
}

export const generate: AppRouteHandler<GenerateRoute> = async (c) => {
  const { tasks, clock, taskEvents, logger, loraCatalog } = c.get("services");
  const req = c.get("body");
  const loras = req.loras ?? [];
  if (loras.length > 0) {
    let errors: ReturnType<typeof loraRequestErrors> = [];
    try {
      errors = loraRequestErrors(loras, await loraCatalog.snapshot());
    } catch (err) {
      // Nothing to check against: the node that runs the task refuses a name it lacks.
      logger.warn({ err: (err as Error).message }, "LoRA catalog unavailable");
    }
    if (errors.length > 0) return c.json({ detail: errors }, 422);
  }
  const now = clock.now();
  const id = crypto.randomUUID();
  await tasks.create(
    {
      id,
      ownerKeyHash: c.get("ownerKeyHash"),
      prompt: req.prompt,
      negativePrompt: req.negative_prompt,
      width: req.width,
      height: req.height,
      numImages: req.num_images,
      numInferenceSteps: req.num_inference_steps,
      guidanceScale: req.guidance_scale,
      strength: req.strength,
      scheduler: req.scheduler,
      // Drawn at the edge so GET shows the seed at once and a retried attempt reuses it.
      seed: req.seed ?? drawSeed(),
      outputFormat: req.output_format,
      callbackUrl: req.callback_url,
      loras: loras.length > 0 ? loras : null,
      createdAt: now,
      updatedAt: now,
    },
    req.init_image,
  );
  try {
    await taskEvents.onTaskCreated(id);
  } catch (err) {
    // The row is committed; the dispatcher's polling still finds it.
    logger.warn({ task_id: id, err: (err as Error).message }, "onTaskCreated hook failed");
  }
  logger.debug({ task_id: id }, "task created");
  return c.json({ task_id: id, status: "pending" as const, message: API_MESSAGES.taskCreated }, 200);
};

export const getTask: AppRouteHandler<GetTaskRoute> = async (c) => {
  const { task_id } = c.req.valid("param");
  const row = TASK_ID.test(task_id) ? await c.get("services").tasks.getViewForOwner(task_id, c.get("ownerKeyHash")) : undefined;
  if (!row) return c.json({ detail: API_MESSAGES.taskNotFound }, 404);
  return c.json(toTaskResponse(row), 200);
};

export const cancelTask: AppRouteHandler<CancelTaskRoute> = async (c) => {
  const { task_id } = c.req.valid("param");
  const { tasks, taskOutcomes, taskEvents, clock, logger, metrics } = c.get("services");
  const owner = c.get("ownerKeyHash");
  if (!TASK_ID.test(task_id)) return c.json({ detail: API_MESSAGES.taskNotFound }, 404);
  // The row is the truth: it is cancelled here even if its GPU node is gone; the node is told afterwards.
  const cancelled = await taskOutcomes.finish(task_id, { status: "cancelled" }, clock.now(), ownedBy(owner));
  if (cancelled) {
    metrics.taskFinished("cancelled");
    logger.info({ task_id, node: cancelled.node }, "task cancelled");
    try {
      await taskEvents.onTaskCancelled?.(task_id, cancelled.node);
    } catch (err) {
      logger.warn({ task_id, err: (err as Error).message }, "onTaskCancelled hook failed");
    }
  }
  const row = await tasks.getViewForOwner(task_id, owner);
  if (!row) return c.json({ detail: API_MESSAGES.taskNotFound }, 404);
  if (!cancelled) return c.json({ detail: API_MESSAGES.taskAlreadyFinished }, 409);
  return c.json(toTaskResponse(row), 200);
};
