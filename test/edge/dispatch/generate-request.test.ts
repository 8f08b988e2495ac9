import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tasks } from "../../../edge/db/schema.js";
import { toGenerateRequest } from "../../../edge/dispatch/generate-request.js";
import { OutputFormat } from "../../../shared/gen/sd/v1/gpu_pb.js";
import { openTestDb, type TestDb } from "./test-db.js";

// Rows read back from a real libSQL file, so the JSON column's mapping is part of what is checked.
let db: TestDb;
beforeEach(async () => {
  db = await openTestDb();
});
afterEach(() => db.close());

async function stored(fields: Parameters<TestDb["insertTask"]>[0]) {
  const id = await db.insertTask(fields);
  return (await db.db.select().from(tasks).where(eq(tasks.id, id)).get())!;
}

describe("toGenerateRequest", () => {
  it("forwards the task's adapters with their weights, in the request's order", async () => {
    const row = await stored({ loras: [{ name: "style", weight: 0.5 }, { name: "ink", weight: -1 }] });
    expect(toGenerateRequest(row, undefined).loras).toEqual([
      { name: "style", weight: 0.5 },
      { name: "ink", weight: -1 },
    ]);
  });

  it("sends no adapters for a task without any, and leaves null parameters unset", async () => {
    const row = await stored({ outputFormat: "jpg", negativePrompt: null, width: null });
    const request = toGenerateRequest(row, undefined);
    expect(request.loras).toEqual([]);
    expect(request).toMatchObject({ taskId: row.id, prompt: "a lighthouse", seed: 42, numImages: 1, outputFormat: OutputFormat.JPEG });
    expect(request.negativePrompt).toBeUndefined();
    expect(request.width).toBeUndefined();
  });
});
