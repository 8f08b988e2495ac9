import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ApiKeyAuth, constantTimeEquals, presentedKey } from "../../../edge/security/api-key-auth.js";

const sources = (headers: Record<string, string>, query: Record<string, string> = {}) => ({
  header: (name: string) => headers[name.toLowerCase()],
  query: (name: string) => query[name],
});

describe("ApiKeyAuth", () => {
  it("identifies a key by its SHA-256 digest", async () => {
    const auth = new ApiKeyAuth(["alpha", "beta"], "X-API-Key");
    const check = await auth.check(sources({ "x-api-key": "beta" }));
    expect(check).toEqual({ ok: true, ownerKeyHash: createHash("sha256").update("beta").digest("hex") });
    expect(await auth.check(sources({ "x-api-key": "gamma" }))).toEqual({ ok: false, reason: "invalid" });
    expect(await auth.check(sources({}))).toEqual({ ok: false, reason: "missing" });
  });

  it("takes the configured header first, then Bearer, then ?api_key=", () => {
    expect(presentedKey(sources({ "x-k": "h", authorization: "Bearer b" }, { api_key: "q" }), "X-K")).toBe("h");
    expect(presentedKey(sources({ authorization: "Bearer b" }, { api_key: "q" }), "X-K")).toBe("b");
    expect(presentedKey(sources({ authorization: "Basic Zm9vOmJhcg==" }, { api_key: "q" }), "X-K")).toBe("q");
    expect(presentedKey(sources({ "x-k": "  " }, {}), "X-K")).toBeNull();
    expect(presentedKey(sources({ authorization: "Bearer " }, { api_key: "" }), "X-K")).toBeNull();
  });

  it("compares keys in full, whatever their lengths", () => {
    expect(constantTimeEquals("secret-key", "secret-key")).toBe(true);
    expect(constantTimeEquals("secret-kez", "secret-key")).toBe(false);
    expect(constantTimeEquals("secret-ke", "secret-key")).toBe(false);
    expect(constantTimeEquals("secret-key-and-more", "secret-key")).toBe(false);
    expect(constantTimeEquals("", "secret-key")).toBe(false);
    expect(constantTimeEquals("\u0000", "")).toBe(false);
    expect(constantTimeEquals("密钥", "密钥")).toBe(true);
  });
});
