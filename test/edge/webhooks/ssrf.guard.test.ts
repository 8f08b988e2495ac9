import { describe, expect, it } from "vitest";
import { checkCallbackTarget, parseIPv6, refusedAddressReason, type HostResolver } from "../../../edge/webhooks/ssrf.guard.js";

describe("refusedAddressReason", () => {
  it.each([
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["10.1.2.3", /private/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["100.64.0.1", /carrier-grade/],
    ["100.100.100.200", /carrier-grade/],
    ["169.254.169.254", /link-local/],
    ["0.0.0.0", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["239.255.255.250", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["240.0.0.1", /reserved/],
    ["192.0.2.10", /documentation/],
    ["198.18.0.1", /benchmarking/],
    ["::", /unspecified/],
    ["::1", /loopback/],
    ["[::1]", /loopback/],
    ["::ffff:127.0.0.1", /IPv4-mapped loopback/],
    ["::ffff:7f00:1", /IPv4-mapped loopback/],
    ["::ffff:169.254.169.254", /IPv4-mapped link-local/],
    ["::ffff:10.0.0.1", /IPv4-mapped private/],
    ["::127.0.0.1", /IPv4-compatible loopback/],
    ["64:ff9b::10.0.0.1", /NAT64 private/],
    ["2002:c0a8:0101::1", /6to4 private/],
    ["fc00::1", /unique-local/],
    ["fd00:ec2::254", /unique-local/],
    ["fe80::1%eth0", /link-local/],
    ["febf::1", /link-local/],
    ["fec0::1", /site-local/],
    ["ff02::1", /multicast/],
    ["2001:db8::1", /documentation/],
    ["not-an-ip", /not an IP/],
  ])("refuses %s", (address, reason) => {
    expect(refusedAddressReason(address)).toMatch(reason);
  });

  it.each(["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "169.255.0.1", "192.169.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:0808:0808::1", "2a00:1450:4001:82a::200e"])(
    "accepts the public address %s",
    (address) => {
      expect(refusedAddressReason(address)).toBeNull();
    },
  );
});

describe("parseIPv6", () => {
  it("expands :: and trailing dotted quads", () => {
    expect(parseIPv6("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(parseIPv6("1::")).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(parseIPv6("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
    expect(parseIPv6("1:2:3:4:5:6:7:8")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(parseIPv6("1:2:3:4:5:6:1.2.3.4")).toEqual([1, 2, 3, 4, 5, 6, 0x0102, 0x0304]);
  });

  it("refuses malformed text", () => {
    for (const bad of ["1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "1:2:3:4:5:6:7:8::", ":::", "::1.2.3", "g::1"]) expect(parseIPv6(bad), bad).toBeNull();
  });
});

function resolverOf(table: Record<string, string[]>): HostResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async resolve(hostname) {
      asked.push(hostname);
      const found = table[hostname];
      if (!found) throw new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      return found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
    },
  };
}

describe("checkCallbackTarget", () => {
  const resolver = resolverOf({
    "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
  });

  it("accepts a host whose every address is public, returning them for the connection", async () => {
    const check = await checkCallbackTarget("https://hooks.example.com/cb?token=x", resolver, false);
    expect(check).toMatchObject({ ok: true, hostname: "hooks.example.com", addresses: [{ address: "93.184.216.34", family: 4 }, { family: 6 }] });
  });

  it("refuses a host with any private address, naming the address and the way out", async () => {
    for (const [url, address] of [
      ["http://localhost:8080/cb", "127.0.0.1"],
      ["http://rebind.example.com/cb", "10.0.0.5"],
      ["http://metadata.example.com/latest", "169.254.169.254"],
    ]) {
      const check = await checkCallbackTarget(url, resolver, false);
      expect(check.ok, url).toBe(false);
      if (!check.ok) {
        expect(check.reason).toContain(address);
        expect(check.reason).toContain("callback.allow_private_targets");
      }
    }
  });

  it("classifies IP literals without resolving them, including odd IPv4 spellings URL parsing normalises", async () => {
    const asked = resolver.asked.length;
    for (const url of ["http://127.0.0.1/", "http://[::1]:9000/", "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0x7f.1/", "http://0/"]) {
      expect((await checkCallbackTarget(url, resolver, false)).ok, url).toBe(false);
    }
    expect((await checkCallbackTarget("http://8.8.8.8/cb", resolver, false)).ok).toBe(true);
    expect(resolver.asked.length).toBe(asked);
  });

  it("refuses unresolvable hosts and non-http schemes", async () => {
    expect(await checkCallbackTarget("http://nowhere.invalid/", resolver, false)).toMatchObject({ ok: false, reason: expect.stringContaining("could not be resolved") });
    expect(await checkCallbackTarget("ftp://hooks.example.com/", resolver, false)).toMatchObject({ ok: false });
    expect(await checkCallbackTarget("not a url", resolver, false)).toMatchObject({ ok: false });
  });

  it("allows anything http(s) when private targets are allowed (development), resolving nothing", async () => {
    const asked = resolver.asked.length;
    expect(await checkCallbackTarget("http://localhost:8080/cb", resolver, true)).toMatchObject({ ok: true, addresses: null });
    expect(resolver.asked.length).toBe(asked);
  });
});
