import type { AppRouteHandler } from "../../app.types.js";
import type { HealthRoute } from "./health.routes.js";

export const health: AppRouteHandler<HealthRoute> = async (c) => {
  const { gpuStatus, logger } = c.get("services");
  let modelLoaded = false;
  try {
    modelLoaded = await gpuStatus.modelLoaded();
  } catch (err) {
    // The edge itself is up; an unreachable GPU tier only means no model is available.
    logger.warn({ err: (err as Error).message }, "gpu status unavailable");
  }
  return c.json({ status: "ok" as const, model_loaded: modelLoaded }, 200);
};
