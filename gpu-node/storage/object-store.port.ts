// Where generated images go. One implementation per backend (minio.store.ts speaks the S3 API to MinIO,
// s3rver or any S3 server); the service only sees this port.

export interface ObjectToStore {
  taskId: string;
  index: number;
  ext: string;
  contentType: string;
  bytes: Uint8Array;
  /** The day the key is filed under; now when absent. */
  date?: Date;
}

export interface StoredObject {
  key: string;
  /** Public or presigned, as configured. */
  url: string;
}

export interface ObjectStore {
  /** Makes the store ready to take objects (bucket, access policy). Safe to call more than once. */
  prepare(): Promise<void>;
  /** Stores one object, retrying transient failures; rejects with DomainError storage_error when it gives up. */
  put(object: ObjectToStore): Promise<StoredObject>;
  /** Deletes stored objects (a task cancelled while its images went up); keys that do not exist are fine. */
  remove(keys: readonly string[]): Promise<void>;
}

/** `<prefix>/<yyyy>/<mm>/<dd>/<task_id>/<index>.<ext>`, dated in UTC so every node files a day the same way. */
export function objectKey(prefix: string, object: Pick<ObjectToStore, "taskId" | "index" | "ext" | "date">): string {
  const date = object.date ?? new Date();
  const yyyy = String(date.getUTCFullYear()).padStart(4, "0");
  const mm = String(date.getUTCMonth() + 1).padStart(2, "0");
  const dd = String(date.getUTCDate()).padStart(2, "0");
  const parts = [yyyy, mm, dd, object.taskId, `${object.index}.${object.ext}`];
  const trimmed = prefix.replace(/^\/+|\/+$/g, "");
  return (trimmed ? [trimmed, ...parts] : parts).join("/");
}
