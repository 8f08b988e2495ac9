// Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature: v1,<base64>` where the
// base64 is HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}`. Web Crypto only, so the Workers
// edge signs the same way.
//
// The key: a secret "whsec_<base64>" (the convention's form) is the base64-decoded bytes after the prefix;
// any other string is used as its UTF-8 bytes (so `openssl rand -hex 32` output works as it is).

const encoder = new TextEncoder();

export function secretKeyBytes(secret: string): Uint8Array {
  if (secret.startsWith("whsec_")) {
    const binary = atob(secret.slice("whsec_".length));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  return encoder.encode(secret);
}

function toBase64(bytes: ArrayBuffer): string {
  let binary = "";
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary);
}

export class WebhookSigner {
  readonly #key: ReturnType<typeof crypto.subtle.importKey>;

  constructor(secret: string) {
    const raw = secretKeyBytes(secret);
    if (raw.byteLength === 0) throw new Error("callback.secret: the key is empty");
    this.#key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  /** The `webhook-signature` header value for one attempt. */
  async sign(id: string, timestampSeconds: number, body: string): Promise<string> {
    const mac = await crypto.subtle.sign("HMAC", await this.#key, encoder.encode(`${id}.${timestampSeconds}.${body}`));
    return `v1,${toBase64(mac)}`;
  }
}

/** The headers of one delivery attempt: id stable across retries, timestamp per attempt, signature when a secret is set. */
export async function webhookHeaders(
  signer: WebhookSigner | null,
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<Record<string, string>> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "sd-image-api-webhooks/1",
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
  };
  if (signer) headers["webhook-signature"] = await signer.sign(id, timestampSeconds, body);
  return headers;
}
