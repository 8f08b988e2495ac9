import { createRouter } from "../../lib/create-router.js";
import * as handlers from "./health.handlers.js";
import * as routes from "./health.routes.js";

const router = createRouter().openapi(routes.health, handlers.health).openapi(routes.apiHealth, handlers.health);

export default router;
