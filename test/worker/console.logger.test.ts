import { describe, expect, it } from "vitest";
import { createConsoleLogger } from "../../edge/worker/console.logger.js";
import { SubrequestBudget } from "../../edge/worker/subrequest-budget.js";

describe("console logger (Workers)", () => {
  it("writes one JSON object per line, pino's level numbers, and drops lines below the level", () => {
    const lines: Array<[string, string]> = [];
    const sink = (method: string) => (line: string) => void lines.push([method, line]);
    const logger = createConsoleLogger("info", "edge", { error: sink("error"), warn: sink("warn"), info: sink("info"), debug: sink("debug") });
    logger.debug({ a: 1 }, "hidden");
    logger.info({ task_id: "t" }, "task started");
    logger.warn("plain message");
    logger.error({ err: new Error("boom") }, "failed");
    expect(lines.map(([m]) => m)).toEqual(["info", "warn", "error"]);
    const [info, warn, error] = lines.map(([, l]) => JSON.parse(l) as Record<string, unknown>);
    expect(info).toMatchObject({ level: 30, name: "edge", task_id: "t", msg: "task started" });
    expect(typeof info.time).toBe("number");
    expect(warn).toMatchObject({ level: 40, msg: "plain message" });
    expect(error).toMatchObject({ level: 50, err: { name: "Error", message: "boom" } });
  });

  it("is silent at 'silent'", () => {
    const lines: string[] = [];
    const logger = createConsoleLogger("silent", "edge", { error: (l) => void lines.push(l) });
    logger.error("nothing");
    expect(lines).toEqual([]);
  });
});

describe("SubrequestBudget", () => {
  it("counts every call through the fetch it wraps", async () => {
    const budget = new SubrequestBudget(5);
    const fetchImpl = budget.wrap((async () => new Response("ok")) as typeof fetch);
    await fetchImpl("http://a.example");
    await fetchImpl("http://b.example", { method: "POST" });
    expect(budget.used).toBe(2);
    expect(budget.remaining).toBe(3);
  });
});
