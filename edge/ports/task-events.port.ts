/**
 * Hooks the dispatcher plugs into. The task row is already committed when they run, so a failing hook never
 * loses a task: the dispatcher's own polling picks up whatever a hook missed.
 */
export interface TaskEvents {
  onTaskCreated(taskId: string): void | Promise<void>;
  /** The task's row is now `cancelled`: stop its generation (`node`: where it was sent, if anywhere). */
  onTaskCancelled?(taskId: string, node: string | null): void | Promise<void>;
}
