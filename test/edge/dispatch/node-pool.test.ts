import { describe, expect, it } from "vitest";
import { NodePool } from "../../../edge/dispatch/node-pool.js";
import { ScriptedNode } from "./scripted.gpu-client.js";

function pool(nodes: ScriptedNode[], now: { ms: number }, prefetch = 1) {
  return new NodePool(
    nodes.map((n) => ({ name: n.name, client: n })),
    { prefetch, now: () => now.ms, statusTtlMs: 2000, backoffMinMs: 1000, backoffMaxMs: 8000 },
  );
}

describe("NodePool", () => {
  it("picks the least loaded healthy node with room, ties to the one idle longest", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    const p = pool([a, b], now);
    await p.refresh();
    expect(p.freeSlots()).toBe(4);
    const first = p.pick()!;
    p.acquire(first.name);
    now.ms++;
    const second = p.pick()!;
    expect(second.name).not.toBe(first.name);
    p.acquire(second.name);
    p.acquire(first.name);
    p.acquire(second.name);
    expect(p.freeSlots()).toBe(0);
    expect(p.pick()).toBeNull();
    p.release("a");
    expect(p.pick()?.name).toBe("a");
  });

  it("prefers the recorded node when it is healthy, even when full", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    const p = pool([a, b], now, 0);
    await p.refresh();
    p.acquire("b");
    expect(p.pick("b")?.name).toBe("b");
    p.markDown("b", new Error("gone"));
    expect(p.pick("b")?.name).toBe("a");
  });

  it("leaves out nodes without their model, not accepting, or whose queue is full", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    a.status_ = { modelLoaded: false };
    const b = new ScriptedNode("b");
    b.status_ = { accepting: false };
    const c = new ScriptedNode("c");
    c.status_ = { queueDepth: 64, capacity: 64 };
    const p = pool([a, b, c], now);
    await p.refresh();
    // Only c is healthy (answers, accepts, has its model), and it has no room.
    expect(p.healthyCount()).toBe(1);
    expect(p.freeSlots()).toBe(0);
    expect(p.pick()).toBeNull();
    expect(await p.modelLoaded()).toBe(true);
  });

  it("probes a down node again only after its backoff, doubling it per failure; a good probe brings it back", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    a.down = true;
    const p = pool([a], now);
    await p.refresh();
    expect(a.statusCalls).toBe(1);
    expect(p.views()[0]).toMatchObject({ up: false, lastError: expect.stringContaining("ECONNREFUSED") });
    now.ms += 999;
    await p.refresh();
    expect(a.statusCalls).toBe(1);
    now.ms += 1;
    await p.refresh();
    expect(a.statusCalls).toBe(2);
    now.ms += 1999;
    await p.refresh();
    expect(a.statusCalls).toBe(2);
    a.down = false;
    now.ms += 1;
    await p.refresh();
    expect(a.statusCalls).toBe(3);
    expect(p.healthyCount()).toBe(1);
  });

  it("caches a status for its TTL (GET /health does not probe every time)", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    const p = pool([a], now);
    expect(await p.modelLoaded()).toBe(true);
    expect(await p.modelLoaded()).toBe(true);
    expect(a.statusCalls).toBe(1);
    now.ms += 2000;
    await p.modelLoaded();
    expect(a.statusCalls).toBe(2);
  });

  it("after a queue_full refusal, sends nothing to the node until a fresh status shows room", async () => {
    const now = { ms: 0 };
    const a = new ScriptedNode("a");
    const p = pool([a], now);
    await p.refresh();
    p.markFull("a");
    expect(p.pick()).toBeNull();
    // A fresh status alone is not enough within the pause...
    await p.refresh();
    expect(p.pick()).toBeNull();
    // ...after it, the node's reported room counts again.
    now.ms += 1000;
    expect(p.pick()?.name).toBe("a");
  });
});
