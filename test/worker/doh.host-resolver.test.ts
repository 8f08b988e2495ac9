import { describe, expect, it } from "vitest";
import { createDohHostResolver } from "../../edge/worker/doh.host-resolver.js";
import { checkCallbackTarget } from "../../edge/webhooks/ssrf.guard.js";

// A DoH server double: the unit isolates the resolver (no internet here); the guard's classification is real.
function dohServer(records: Record<string, Array<{ type: number; data: string }>>, status = 0) {
  const asked: string[] = [];
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    asked.push(`${url.searchParams.get("name")} ${url.searchParams.get("type")} ${new Headers(init?.headers).get("accept")}`);
    const type = url.searchParams.get("type") === "A" ? 1 : 28;
    const answer = (records[url.searchParams.get("name")!] ?? []).filter((r) => r.type === type || r.type === 5);
    return new Response(JSON.stringify({ Status: status, Answer: answer }), { headers: { "content-type": "application/dns-json" } });
  }) as typeof fetch;
  return { fetchImpl, asked };
}

describe("DNS-over-HTTPS resolver", () => {
  it("asks for A and AAAA and returns every address record (CNAMEs skipped)", async () => {
    const { fetchImpl, asked } = dohServer({
      "hooks.example": [
        { type: 5, data: "edge.example." },
        { type: 1, data: "93.184.215.14" },
        { type: 28, data: "2606:2800:21f:cb07:6820:80da:af6b:8b2c" },
      ],
    });
    const resolver = createDohHostResolver({ fetch: fetchImpl });
    expect(await resolver.resolve("hooks.example")).toEqual([
      { address: "93.184.215.14", family: 4 },
      { address: "2606:2800:21f:cb07:6820:80da:af6b:8b2c", family: 6 },
    ]);
    expect(asked.sort()).toEqual(["hooks.example A application/dns-json", "hooks.example AAAA application/dns-json"]);
  });

  it("lets the SSRF guard refuse a name that resolves to a private address", async () => {
    const { fetchImpl } = dohServer({ "sneaky.example": [{ type: 1, data: "10.1.2.3" }] });
    const check = await checkCallbackTarget("https://sneaky.example/hook", createDohHostResolver({ fetch: fetchImpl }), false);
    expect(check).toMatchObject({ ok: false });
    expect((check as { reason: string }).reason).toContain("10.1.2.3");
  });

  it("reports a resolver failure (SERVFAIL) as an error, an unknown name as no addresses", async () => {
    await expect(createDohHostResolver({ fetch: dohServer({}, 2).fetchImpl }).resolve("x.example")).rejects.toThrow(/status 2/);
    expect(await createDohHostResolver({ fetch: dohServer({}, 3).fetchImpl }).resolve("nx.example")).toEqual([]);
  });
});
