import { describe, expect, it } from "vitest";
import { InsertCoalescer } from "../../../edge/db/insert-coalescer.js";

function recorder(failOn?: (row: number) => boolean) {
  const calls: Array<{ kind: "one" | "many"; rows: number[] }> = [];
  const coalescer = new InsertCoalescer<number>({
    insertOne: async (row) => {
      calls.push({ kind: "one", rows: [row] });
      if (failOn?.(row)) throw new Error(`row ${row} refused`);
    },
    insertMany: async (rows) => {
      calls.push({ kind: "many", rows });
      if (rows.some((r) => failOn?.(r))) throw new Error("batch refused");
    },
    maxBatch: 3,
  });
  return { calls, coalescer };
}

describe("InsertCoalescer", () => {
  it("commits rows that arrive in the same turn together, in order, at most maxBatch per statement", async () => {
    const { calls, coalescer } = recorder();
    await Promise.all([1, 2, 3, 4, 5].map((r) => coalescer.insert(r)));
    expect(calls).toEqual([
      { kind: "many", rows: [1, 2, 3] },
      { kind: "many", rows: [4, 5] },
    ]);
  });

  it("inserts a lone row on its own", async () => {
    const { calls, coalescer } = recorder();
    await coalescer.insert(7);
    await coalescer.insert(8);
    expect(calls).toEqual([
      { kind: "one", rows: [7] },
      { kind: "one", rows: [8] },
    ]);
  });

  it("fails only the row that fails, after retrying the batch row by row", async () => {
    const { calls, coalescer } = recorder((r) => r === 2);
    const results = await Promise.allSettled([1, 2, 3].map((r) => coalescer.insert(r)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe("row 2 refused");
    expect(calls.map((c) => c.kind)).toEqual(["many", "one", "one", "one"]);
  });

  it("settles a caller only after its row is committed", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const coalescer = new InsertCoalescer<number>({ insertOne: () => gate, insertMany: () => gate });
    let settled = false;
    const done = coalescer.insert(1).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    release();
    await done;
    expect(settled).toBe(true);
  });
});
