// The fixed `detail` strings of the public API. The first four are the original service's, byte for byte;
// clients compare them. The English ones are FastAPI's/Starlette's own wording for the same situations.
export const API_MESSAGES = {
  taskCreated: "任务已创建，正在处理中",
  missingApiKey: "缺少API Key",
  invalidApiKey: "无效的API Key",
  taskNotFound: "任务不存在",
  // Ours (POST /api/v1/tasks/{task_id}/cancel on a completed, failed or cancelled task).
  taskAlreadyFinished: "任务已结束，无法取消",
  rateLimited: "请求过于频繁，请稍后重试",
  bodyTooLarge: "请求体过大",
  bodyUnreadable: "There was an error parsing the body",
  notFound: "Not Found",
  methodNotAllowed: "Method Not Allowed",
  internalError: "Internal Server Error",
} as const;
