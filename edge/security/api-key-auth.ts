// API keys: accepted from the configured header, `Authorization: Bearer`, or `?api_key=` (as the original
// service did). Keys are compared as SHA-256 digests in constant time, and only the digest (hex) identifies the
// owner of a task, so no key reaches the database or the logs. Web Crypto: runs on Workers too.

const encoder = new TextEncoder();

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Compares two equal-length digests without an early exit. */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export type KeyCheck = { ok: true; ownerKeyHash: string } | { ok: false; reason: "missing" | "invalid" };

export interface KeySources {
  header(name: string): string | undefined;
  query(name: string): string | undefined;
}

const BEARER = /^\s*bearer\s+(\S+)\s*$/i;

/** The presented key, from the first source that has a non-empty one. */
export function presentedKey(sources: KeySources, headerName: string): string | null {
  const fromHeader = sources.header(headerName)?.trim();
  if (fromHeader) return fromHeader;
  const authorization = sources.header("authorization");
  const bearer = authorization ? BEARER.exec(authorization)?.[1] : undefined;
  if (bearer) return bearer;
  const fromQuery = sources.query("api_key")?.trim();
  return fromQuery ? fromQuery : null;
}

export class ApiKeyAuth {
  readonly headerName: string;
  readonly #digests: Promise<Uint8Array[]>;

  constructor(keys: readonly string[], headerName: string) {
    this.headerName = headerName;
    // Digested once, lazily: app construction stays synchronous.
    this.#digests = Promise.all(keys.map(sha256));
  }

  async check(sources: KeySources): Promise<KeyCheck> {
    const key = presentedKey(sources, this.headerName);
    if (key === null) return { ok: false, reason: "missing" };
    const digest = await sha256(key);
    let match = false;
    // Every configured key is compared, so the time taken does not reveal which one matched.
    for (const known of await this.#digests) match = digestsEqual(digest, known) || match;
    return match ? { ok: true, ownerKeyHash: toHex(digest) } : { ok: false, reason: "invalid" };
  }
}
