import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { sha256Hex, toHex } from "../../../edge/lib/hex.codec.js";

describe("hex codec", () => {
  it("writes lowercase hex, two digits a byte, and SHA-256 digests in it as node:crypto does", async () => {
    expect(toHex(new Uint8Array([0, 1, 0x0f, 0xa0, 0xff]))).toBe("00010fa0ff");
    expect(await sha256Hex("a")).toBe(createHash("sha256").update("a").digest("hex"));
    expect(await sha256Hex("密钥")).toBe(createHash("sha256").update("密钥").digest("hex"));
  });
});
