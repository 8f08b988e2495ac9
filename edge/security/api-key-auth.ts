import { sha256Hex } from "../lib/hex.codec.js";

// API keys: accepted from the configured header, `Authorization: Bearer`, or `?api_key=` (as the original
// service did), compared in constant time against every configured key. A task's owner is the SHA-256 (hex) of
// its key, digested once per configured key with Web Crypto (runs on Workers too), so no key reaches the
// database or the logs and no request pays for a digest.

/**
 * Whether `presented` equals `known`, in time that depends only on known's length: every character is
 * compared, with no early exit on the first difference or on a length mismatch.
 */
export function constantTimeEquals(presented: string, known: string): boolean {
  let diff = presented.length ^ known.length;
  for (let i = 0; i < known.length; i++) {
    diff |= (presented.charCodeAt(i) | 0) ^ known.charCodeAt(i);
  }
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
  readonly #keys: readonly string[];
  // Digested once, on first use: app construction stays synchronous and does no crypto at start-up
  // (Workers allow it only while handling a request).
  #ownerHashes: Promise<string[]> | undefined;

  constructor(keys: readonly string[], headerName: string) {
    this.headerName = headerName;
    this.#keys = [...keys];
  }

  async check(sources: KeySources): Promise<KeyCheck> {
    const key = presentedKey(sources, this.headerName);
    if (key === null) return { ok: false, reason: "missing" };
    let matched = -1;
    // Every configured key is compared, so the time taken does not reveal which one matched.
    for (let i = 0; i < this.#keys.length; i++) {
      if (constantTimeEquals(key, this.#keys[i])) matched = i;
    }
    if (matched < 0) return { ok: false, reason: "invalid" };
    this.#ownerHashes ??= Promise.all(this.#keys.map(sha256Hex));
    return { ok: true, ownerKeyHash: (await this.#ownerHashes)[matched] };
  }
}
