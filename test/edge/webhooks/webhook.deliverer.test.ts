// The outbox delivery core over a real libSQL file, a real HTTP receiver and the Node transport; only the clock
// is moved by hand (retries become due without waiting) and host names resolve from a table.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../edge/adapters/silent.logger.js";
import { TaskOutcomes } from "../../../edge/dispatch/task-outcomes.js";
import { noopMetrics, type EdgeMetrics, type WebhookOutcome } from "../../../edge/metrics/metrics.port.js";
import { httpWebhookTransport } from "../../../edge/node/http.webhook-transport.js";
import { OutboxRepo } from "../../../edge/webhooks/outbox.repo.js";
import type { HostResolver } from "../../../edge/webhooks/ssrf.guard.js";
import { retryPolicyFromConfig } from "../../../edge/webhooks/webhook.backoff.js";
import { WebhookDeliverer, type WebhookDelivererDeps } from "../../../edge/webhooks/webhook.deliverer.js";
import { WebhookSigner } from "../../../edge/webhooks/webhook.signing.js";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { verifyStandardWebhook } from "../../helpers/standard-webhooks.verify.js";
import { openTestDb, type TestDb } from "../dispatch/test-db.js";
import { ManualClock } from "../edge-test-app.js";
import { startWebhookReceiver, type WebhookReceiver } from "./webhook-receiver.js";

const SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcy0hIQ==";
let db: TestDb;
let receiver: WebhookReceiver;
let clock: ManualClock;
let outbox: OutboxRepo;
let outcomes: TaskOutcomes;

beforeEach(async () => {
  db = await openTestDb();
  receiver = await startWebhookReceiver();
  clock = new ManualClock(Date.now());
  outbox = new OutboxRepo(db.db);
  outcomes = new TaskOutcomes(db.db);
});
afterEach(async () => {
  await receiver.close();
  db.close();
});

const localResolver: HostResolver = {
  async resolve(hostname) {
    if (hostname === "receiver.test") return [{ address: "127.0.0.1", family: 4 }];
    throw new Error(`ENOTFOUND ${hostname}`);
  },
};

function deliverer(overrides: Partial<WebhookDelivererDeps> = {}, callback: Record<string, unknown> = {}): WebhookDeliverer {
  const config = parseConfig({ callback: { retry_interval: 1, retry_times: 2, max_attempts: 4, ...callback } });
  return new WebhookDeliverer({
    repo: outbox,
    transport: httpWebhookTransport,
    resolver: localResolver,
    signer: new WebhookSigner(SECRET),
    clock,
    logger: silentLogger,
    metrics: noopMetrics,
    instanceId: "edge-a",
    policy: retryPolicyFromConfig(config.callback),
    timeoutMs: 2000,
    allowPrivateTargets: true,
    ...overrides,
  });
}

async function completedTask(url = `${receiver.url}/hook`, urls = ["http://s3/b/0.png"]): Promise<string> {
  const id = await db.insertTask({ callbackUrl: url, status: "processing" });
  expect(await outcomes.finish(id, { status: "completed", resultUrls: urls }, clock.now())).not.toBeNull();
  return id;
}

describe("TaskOutcomes + outbox", () => {
  it("queues one callback per terminal task, in the same transaction, with the spec's payload", async () => {
    const one = await completedTask(undefined, ["http://s3/b/0.png"]);
    const many = await completedTask(undefined, ["http://s3/b/0.png", "http://s3/b/1.png"]);
    const failedId = await db.insertTask({ callbackUrl: `${receiver.url}/hook` });
    await outcomes.finish(failedId, { status: "failed", errorMessage: "boom" }, clock.now());
    const cancelledId = await db.insertTask({ callbackUrl: `${receiver.url}/hook` });
    await outcomes.finish(cancelledId, { status: "cancelled" }, clock.now());
    const silent = await db.insertTask({ callbackUrl: null });
    await outcomes.finish(silent, { status: "completed", resultUrls: ["u"] }, clock.now());

    expect(JSON.parse((await outbox.byTask(one))!.payload)).toEqual({ task_id: one, status: "completed", image_url: "http://s3/b/0.png" });
    expect(JSON.parse((await outbox.byTask(many))!.payload)).toEqual({ task_id: many, status: "completed", image_urls: ["http://s3/b/0.png", "http://s3/b/1.png"] });
    expect(JSON.parse((await outbox.byTask(failedId))!.payload)).toEqual({ task_id: failedId, status: "failed", error_message: "boom" });
    expect(JSON.parse((await outbox.byTask(cancelledId))!.payload)).toEqual({ task_id: cancelledId, status: "cancelled" });
    expect(await outbox.byTask(silent)).toBeUndefined();
    expect((await outbox.byTask(one))!.id).toMatch(/^msg_[0-9a-f]{32}$/);
  });

  it("a second terminal transition changes nothing and queues nothing", async () => {
    const id = await completedTask();
    const first = await outbox.byTask(id);
    expect(await outcomes.finish(id, { status: "failed", errorMessage: "late" }, clock.now())).toBeNull();
    expect(await outcomes.finish(id, { status: "cancelled" }, clock.now())).toBeNull();
    expect(await outbox.byTask(id)).toEqual(first);
    const row = (await db.client.execute({ sql: "SELECT status, error_message FROM tasks WHERE id = ?", args: [id] })).rows[0];
    expect(row).toMatchObject({ status: "completed", error_message: null });
  });
});

describe("WebhookDeliverer", () => {
  it("retries a 500 with backoff, then delivers; every attempt recorded, the same webhook-id and a valid signature each time", async () => {
    receiver.script([500, 200]);
    const id = await completedTask();
    const d = deliverer();
    expect(await d.deliverDue()).toBe(1);
    let row = (await outbox.byTask(id))!;
    expect(row).toMatchObject({ state: "pending", attempts: 1, lastStatusCode: 500, lastError: "HTTP 500" });
    // Not due before retry_interval (1 s)...
    expect(row.nextAttemptAt.getTime() - clock.ms).toBeGreaterThanOrEqual(1000);
    expect(await d.deliverDue()).toBe(0);
    // ...due once the clock passes it.
    clock.ms = row.nextAttemptAt.getTime();
    expect(await d.deliverDue()).toBe(1);
    row = (await outbox.byTask(id))!;
    expect(row).toMatchObject({ state: "delivered", attempts: 2, lastStatusCode: 200, lastError: null });
    expect(row.finishedAt).not.toBeNull();

    const attempts = await outbox.attempts(row.id);
    expect(attempts.map((a) => [a.attempt, a.statusCode, a.outcome])).toEqual([
      [1, 500, "retry"],
      [2, 200, "delivered"],
    ]);
    expect(attempts.every((a) => a.durationMs >= 0 && a.attemptedAt instanceof Date)).toBe(true);

    expect(receiver.received).toHaveLength(2);
    expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set([row.id]));
    for (const request of receiver.received) {
      expect(request.path).toBe("/hook");
      expect(request.body).toBe(row.payload);
      expect(request.headers["content-type"]).toBe("application/json");
      expect(verifyStandardWebhook(SECRET, request.headers, request.body, 300, Number(request.headers["webhook-timestamp"]))).toBe(true);
      expect(verifyStandardWebhook("whsec_d3Jvbmc=", request.headers, request.body, 300, Number(request.headers["webhook-timestamp"]))).toBe(false);
    }
    // The timestamp is per attempt.
    expect(Number(receiver.received[1].headers["webhook-timestamp"])).toBeGreaterThan(Number(receiver.received[0].headers["webhook-timestamp"]));
  });

  it("gives up past the retry window once retry_times retries were made", async () => {
    receiver.script([503]);
    const id = await completedTask();
    const d = deliverer();
    for (let i = 0; i < 6; i++) {
      await d.deliverDue();
      clock.advance(3_600_000);
    }
    // retry_times 2: attempts 1..3 are made whatever the window says; the next would fall outside it.
    expect(await outbox.byTask(id)).toMatchObject({ state: "failed", attempts: 3 });
  });

  it("with the default policy, a receiver that is down for a minute gets the event when it comes back", async () => {
    const port = receiver.port;
    const id = await completedTask(`http://127.0.0.1:${port}/hook`);
    await receiver.close();
    const d = deliverer({ random: () => 0 }, { retry_interval: 5, retry_times: 3, max_attempts: 20 });
    const start = clock.ms;
    // Down: every attempt is refused. Even the shortest delays the policy can draw add up past a minute.
    while (clock.ms - start < 60_000) {
      expect(await d.deliverDue()).toBe(1);
      const row = (await outbox.byTask(id))!;
      expect(row.state).toBe("pending");
      clock.ms = row.nextAttemptAt.getTime();
    }
    receiver = await startWebhookReceiver([200], port);
    expect(await d.deliverDue()).toBe(1);
    expect(await outbox.byTask(id)).toMatchObject({ state: "delivered" });
    expect(receiver.received).toHaveLength(1);
  });

  it("stops at 410 Gone", async () => {
    receiver.script([410]);
    const id = await completedTask();
    await deliverer().deliverDue();
    expect(await outbox.byTask(id)).toMatchObject({ state: "failed", attempts: 1, lastStatusCode: 410 });
    clock.advance(3_600_000);
    expect(await deliverer().deliverDue()).toBe(0);
    expect(receiver.received).toHaveLength(1);
  });

  it("gives up after max_attempts, recording each attempt", async () => {
    receiver.script([503]);
    const id = await completedTask();
    const outcomesSeen: WebhookOutcome[] = [];
    const metrics: EdgeMetrics = { ...noopMetrics, webhookAttempt: (o) => outcomesSeen.push(o) };
    const d = deliverer({ metrics });
    for (let i = 0; i < 6; i++) {
      await d.deliverDue();
      // Past any backoff (max 600 s), still inside the hour's window.
      clock.advance(601_000);
    }
    const row = (await outbox.byTask(id))!;
    expect(row).toMatchObject({ state: "failed", attempts: 4 });
    expect(outcomesSeen).toEqual(["retry", "retry", "retry", "gave_up"]);
    expect((await outbox.attempts(row.id)).map((a) => a.outcome)).toEqual(["retry", "retry", "retry", "gave_up"]);
  });

  it("refuses a private target when private targets are not allowed: a permanent failure with a clear error, nothing sent", async () => {
    const id = await completedTask("http://receiver.test:1/hook");
    await deliverer({ allowPrivateTargets: false }).deliverDue();
    const row = (await outbox.byTask(id))!;
    expect(row.state).toBe("failed");
    expect(row.lastError).toMatch(/callback target refused: receiver\.test resolves to 127\.0\.0\.1, a loopback/);
    expect((await outbox.attempts(row.id))[0]).toMatchObject({ outcome: "refused", statusCode: null });
    expect(receiver.received).toHaveLength(0);
  });

  it("records a receiver that does not answer in time as a retry with a timeout error", async () => {
    receiver.script(["hang"]);
    const id = await completedTask();
    await deliverer({ timeoutMs: 300 }).deliverDue();
    expect(await outbox.byTask(id)).toMatchObject({ state: "pending", attempts: 1, lastStatusCode: null, lastError: "timed out after 300 ms" });
  });

  it("records a refused connection as a retry", async () => {
    const id = await completedTask("http://127.0.0.1:1/hook");
    await deliverer().deliverDue();
    expect((await outbox.byTask(id))!.lastError).toMatch(/ECONNREFUSED/);
  });

  it("leases rows: two edges polling together send each attempt once", async () => {
    receiver.script([200]);
    const ids = await Promise.all(Array.from({ length: 10 }, () => completedTask()));
    const a = deliverer({ instanceId: "edge-a" });
    const b = deliverer({ instanceId: "edge-b" });
    const [na, nb] = await Promise.all([a.deliverDue(), b.deliverDue()]);
    expect(na + nb).toBe(10);
    expect(receiver.received).toHaveLength(10);
    expect(new Set(receiver.received.map((r) => r.headers["webhook-id"])).size).toBe(10);
    for (const id of ids) expect((await outbox.byTask(id))!.state).toBe("delivered");
  });

  it("an edge whose lease lapsed records nothing; the row is delivered by whoever holds it", async () => {
    receiver.script(["hang"]);
    const id = await completedTask();
    const slow = deliverer({ instanceId: "edge-slow", timeoutMs: 1500 }).deliverDue();
    // While edge-slow waits, its lease lapses (the clock jumps) and edge-fast takes the row.
    await new Promise((r) => setTimeout(r, 200));
    receiver.script([200]);
    clock.advance(3_600_000);
    expect(await deliverer({ instanceId: "edge-fast" }).deliverDue()).toBe(1);
    await slow;
    const row = (await outbox.byTask(id))!;
    expect(row).toMatchObject({ state: "delivered", attempts: 1 });
    expect((await outbox.attempts(row.id)).map((a) => a.outcome)).toEqual(["delivered"]);
  });
});
