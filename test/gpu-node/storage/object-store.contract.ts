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
