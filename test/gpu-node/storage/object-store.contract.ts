// The behaviour every ObjectStore driver owes the service (unstorage-style: one suite, run per driver).
import { describe, expect, it } from "vitest";
import type { ObjectStore } from "../../../gpu-node/storage/object-store.port.js";

export function describeObjectStore(name: string, makeStore: () => ObjectStore, options: { prefix: string }): void {
  describe(`ObjectStore contract: ${name}`, () => {
    it("prepares more than once without harm", async () => {
      const store = makeStore();
      await store.prepare();
      await store.prepare();
    });

    it("stores bytes under the dated task key and serves them back with their content type", async () => {
      const store = makeStore();
      const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);
      const stored = await store.put({
        taskId: "task-a",
        index: 2,
        ext: "png",
        contentType: "image/png",
        bytes,
        date: new Date(Date.UTC(2024, 0, 5, 23, 59)),
      });
      expect(stored.key).toBe(`${options.prefix}/2024/01/05/task-a/2.png`);
      const response = await fetch(stored.url);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("image/png");
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
    });

    it("removes objects, and takes keys that do not exist without complaint", async () => {
      const store = makeStore();
      const kept = await store.put({ taskId: "task-r", index: 0, ext: "png", contentType: "image/png", bytes: new Uint8Array([1]) });
      const gone = await store.put({ taskId: "task-r", index: 1, ext: "png", contentType: "image/png", bytes: new Uint8Array([2]) });
      await store.remove([gone.key, `${options.prefix}/2024/01/01/never/0.png`]);
      expect((await fetch(gone.url)).status).toBe(404);
      expect((await fetch(kept.url)).status).toBe(200);
    });

    it("replaces an object stored again under the same key (a retried task)", async () => {
      const store = makeStore();
      const at = new Date(Date.UTC(2024, 5, 1));
      await store.put({ taskId: "task-b", index: 0, ext: "jpg", contentType: "image/jpeg", bytes: new Uint8Array([1]), date: at });
      const again = await store.put({ taskId: "task-b", index: 0, ext: "jpg", contentType: "image/jpeg", bytes: new Uint8Array([2, 2]), date: at });
      const response = await fetch(again.url);
      expect(response.headers.get("content-type")).toBe("image/jpeg");
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([2, 2]));
    });
  });
}
