import { describe, expect, it } from "vitest";
import { secretKeyBytes, WebhookSigner, webhookHeaders } from "../../../edge/webhooks/webhook.signing.js";

// Expected signatures computed independently of this code, with Python's hmac module and with
// `openssl dgst -sha256 -mac HMAC` (both gave the same bytes):
//   base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
// The first is the Standard Webhooks specification's own example message and secret.
const SPEC_VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

describe("WebhookSigner", () => {
  it("matches the Standard Webhooks test vector (whsec_ secret: base64 key bytes)", async () => {
    const signer = new WebhookSigner(SPEC_VECTOR.secret);
    expect(await signer.sign(SPEC_VECTOR.id, SPEC_VECTOR.timestamp, SPEC_VECTOR.body)).toBe(SPEC_VECTOR.signature);
  });

  it("uses a plain secret's UTF-8 bytes as the key, and signs the body's UTF-8 bytes", async () => {
    const body = '{"task_id":"t","status":"completed","image_url":"http://x/猫.png"}';
    const signer = new WebhookSigner("plain-secret");
    expect(await signer.sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, body)).toBe("v1,82z+mpGavSsGaUzYvNUNoMhrmnrgkp1gR2LDbeN4L+8=");
    expect(secretKeyBytes("plain-secret")).toEqual(new TextEncoder().encode("plain-secret"));
  });

  it("changes with every signed part", async () => {
    const signer = new WebhookSigner(SPEC_VECTOR.secret);
    const base = await signer.sign("msg_a", 1, "{}");
    expect(await signer.sign("msg_b", 1, "{}")).not.toBe(base);
    expect(await signer.sign("msg_a", 2, "{}")).not.toBe(base);
    expect(await signer.sign("msg_a", 1, "{ }")).not.toBe(base);
  });

  it("refuses an empty key", () => {
    expect(() => new WebhookSigner("whsec_")).toThrow(/empty/);
  });
});

describe("webhookHeaders", () => {
  it("carries id, timestamp and signature; no signature without a secret", async () => {
    const signed = await webhookHeaders(new WebhookSigner(SPEC_VECTOR.secret), SPEC_VECTOR.id, SPEC_VECTOR.timestamp, SPEC_VECTOR.body);
    expect(signed).toMatchObject({
      "content-type": "application/json",
      "webhook-id": SPEC_VECTOR.id,
      "webhook-timestamp": "1614265330",
      "webhook-signature": SPEC_VECTOR.signature,
    });
    const unsigned = await webhookHeaders(null, "msg_x", 5, "{}");
    expect(unsigned["webhook-id"]).toBe("msg_x");
    expect(unsigned["webhook-signature"]).toBeUndefined();
  });
});
