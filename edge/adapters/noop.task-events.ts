import type { TaskEvents } from "../ports/task-events.port.js";

/** An app without a dispatcher (the HTTP tests): new tasks simply wait in the database as pending. */
export const noopTaskEvents: TaskEvents = { onTaskCreated: () => {} };
