import type { Queue } from "@cloudflare/workers-types";
import { cancelOnNode, type GpuClient } from "../gpu/gpu-client.port.js";
import type { Logger } from "../ports/logger.port.js";
import type { TaskEvents } from "../ports/task-events.port.js";
import type { DispatchMessage } from "./worker.env.js";

/**
 * A new task goes out at once: a `dispatch` message wakes a consumer, which claims it. If the send fails the row
 * is still pending and the cron's pass enqueues it. A cancelled task's node is told to stop (the consumer holding
 * its stream then sees the row is no longer its own), and its callback is delivered by the next consumer.
 */
export function queueTaskEvents(queue: Queue<DispatchMessage>, nodes: ReadonlyMap<string, GpuClient>, logger: Logger): TaskEvents {
  return {
    async onTaskCreated(taskId) {
      await queue.send({ kind: "dispatch", taskId }, { contentType: "json" });
    },
    async onTaskCancelled(taskId, node) {
      const client = node === null ? undefined : nodes.get(node);
      const cancelling = client && node !== null ? cancelOnNode(client, node, taskId, logger) : undefined;
      await Promise.all([cancelling, queue.send({ kind: "webhooks" }, { contentType: "json" })]);
    },
  };
}
