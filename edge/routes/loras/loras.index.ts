import { createRouter } from "../../lib/create-router.js";
import * as handlers from "./loras.handlers.js";
import * as routes from "./loras.routes.js";

const router = createRouter().openapi(routes.listLoras, handlers.listLoras);

export default router;
