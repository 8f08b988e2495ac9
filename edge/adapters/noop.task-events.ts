import type { TaskEvents } from "../ports/task-events.port.js";

/** No dispatcher yet: new tasks simply wait in the database as pending. */
export const noopTaskEvents: TaskEvents = { onTaskCreated: () => {} };
