// An ObjectStore test double for unit tests of the service core; can be told to fail.
import { DomainError } from "../../../shared/errors/error-codes.js";
import { objectKey, type ObjectStore, type ObjectToStore, type StoredObject } from "../../../gpu-node/storage/object-store.port.js";

export class MemoryStore implements ObjectStore {
  readonly objects = new Map<string, { bytes: Uint8Array; contentType: string }>();
  failing = false;
  /** Awaited before each put completes: lets a test act while an upload is under way. */
  beforePut: (object: ObjectToStore) => Promise<void> = async () => {};

  async prepare(): Promise<void> {}

  async put(object: ObjectToStore): Promise<StoredObject> {
    if (this.failing) throw new DomainError("storage_error", "could not store (memory store told to fail)");
    await this.beforePut(object);
    const key = objectKey("images", object);
    this.objects.set(key, { bytes: object.bytes, contentType: object.contentType });
    return { key, url: `memory://bucket/${key}` };
  }

  async remove(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.objects.delete(key);
  }
}
