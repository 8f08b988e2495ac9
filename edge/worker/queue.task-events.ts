import type { Queue } from "@cloudflare/workers-types";
import type { TaskEvents } from "../ports/task-events.port.js";
import type { DispatchMessage } from "./worker.env.js";

/**
 * A new task goes out at once: its id is put on the dispatch queue, whose consumer runs it. If the send fails the
 * row is still pending and the cron's reconciliation enqueues it.
 */
export function queueTaskEvents(queue: Queue<DispatchMessage>): TaskEvents {
  return {
    async onTaskCreated(taskId) {
      await queue.send({ taskId }, { contentType: "json" });
    },
  };
}
