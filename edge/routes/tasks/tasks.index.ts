import { createRouter } from "../../lib/create-router.js";
import * as handlers from "./tasks.handlers.js";
import * as routes from "./tasks.routes.js";

const router = createRouter()
  .openapi(routes.generate, handlers.generate)
  .openapi(routes.getTask, handlers.getTask)
  .openapi(routes.cancelTask, handlers.cancelTask);

export default router;
