// SSRF guard for callback URLs: the host is resolved (through a port: node:dns on Node) and EVERY address it
// resolves to must be a public unicast address. Refused: loopback, private (RFC 1918), CGNAT, unique-local,
// link-local (and with it the cloud metadata address 169.254.169.254), multicast, unspecified, broadcast,
// documentation/benchmark/reserved ranges, for IPv4 and IPv6, including IPv4 embedded in IPv6 (mapped,
// compatible, NAT64, 6to4). Pure string/number work: runs anywhere.

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses (A and AAAA). */
export interface HostResolver {
  resolve(hostname: string): Promise<ResolvedAddress[]>;
}

export type TargetCheck =
  | { ok: true; url: URL; hostname: string; addresses: ResolvedAddress[] | null }
  | { ok: false; reason: string };

/** A range refused, and what to call it in the error. */
type V4Range = [base: number, prefix: number, name: string];

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

const V4_REFUSED: V4Range[] = [
  [v4(0, 0, 0, 0), 8, "unspecified (0.0.0.0/8)"],
  [v4(10, 0, 0, 0), 8, "private (10.0.0.0/8)"],
  [v4(100, 64, 0, 0), 10, "carrier-grade NAT (100.64.0.0/10)"],
  [v4(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"],
  [v4(169, 254, 0, 0), 16, "link-local / cloud metadata (169.254.0.0/16)"],
  [v4(172, 16, 0, 0), 12, "private (172.16.0.0/12)"],
  [v4(192, 0, 0, 0), 24, "IETF protocol assignments (192.0.0.0/24)"],
  [v4(192, 0, 2, 0), 24, "documentation (192.0.2.0/24)"],
  [v4(192, 88, 99, 0), 24, "6to4 relay anycast (192.88.99.0/24)"],
  [v4(192, 168, 0, 0), 16, "private (192.168.0.0/16)"],
  [v4(198, 18, 0, 0), 15, "benchmarking (198.18.0.0/15)"],
  [v4(198, 51, 100, 0), 24, "documentation (198.51.100.0/24)"],
  [v4(203, 0, 113, 0), 24, "documentation (203.0.113.0/24)"],
  [v4(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"],
  [v4(240, 0, 0, 0), 4, "reserved / broadcast (240.0.0.0/4)"],
];

export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

/** The 8 groups of an IPv6 address (with an optional trailing dotted IPv4 and %zone), or null. */
export function parseIPv6(text: string): number[] | null {
  let s = text.replace(/^\[|\]$/g, "");
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail: number[] = [];
  if (s.includes(".")) {
    // A trailing dotted IPv4 fills the last two groups ("::ffff:192.0.2.1").
    const at = s.lastIndexOf(":");
    if (at < 0) return null;
    const ipv4 = parseIPv4(s.slice(at + 1));
    if (ipv4 === null) return null;
    tail = [ipv4 >>> 16, ipv4 & 0xffff];
    s = s.slice(0, at + 1);
    if (!s.endsWith("::")) s = s.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parse = (h: string) => (h === "" ? [] : h.split(":").map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if ([...head, ...rest].some(Number.isNaN)) return null;
  const total = 8 - tail.length;
  let groups: number[];
  if (halves.length === 2) {
    const fill = total - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    if (head.length !== total) return null;
    groups = head;
  }
  return [...groups, ...tail];
}

function classifyV4(value: number): string | null {
  if (value === 0xffffffff) return "broadcast (255.255.255.255)";
  for (const [base, prefix, name] of V4_REFUSED) {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    if (((value & mask) >>> 0) === base) return name;
  }
  return null;
}

function classifyV6(g: number[]): string | null {
  const embedded = (hi: number, lo: number) => classifyV4(((hi << 16) | lo) >>> 0);
  const zeroes = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeroes(0, 8)) return "unspecified (::)";
  if (zeroes(0, 7) && g[7] === 1) return "loopback (::1)";
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): what matters is the IPv4 address inside.
  if (zeroes(0, 5) && g[5] === 0xffff) return prefixed("IPv4-mapped", embedded(g[6], g[7]));
  if (zeroes(0, 6)) return prefixed("IPv4-compatible", embedded(g[6], g[7]) ?? "deprecated IPv4-compatible (::/96)");
  // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48) reach the IPv4 address inside.
  if (g[0] === 0x64 && g[1] === 0xff9b && zeroes(2, 6)) return prefixed("NAT64", embedded(g[6], g[7]));
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return "NAT64 local-use (64:ff9b:1::/48)";
  if (g[0] === 0x2002) return prefixed("6to4", embedded(g[1], g[2]));
  if (g[0] === 0x0100 && zeroes(1, 4)) return "discard (100::/64)";
  if (g[0] === 0x2001 && g[1] === 0x0db8) return "documentation (2001:db8::/32)";
  if ((g[0] & 0xfe00) === 0xfc00) return "unique-local (fc00::/7)";
  if ((g[0] & 0xffc0) === 0xfe80) return "link-local (fe80::/10)";
  if ((g[0] & 0xffc0) === 0xfec0) return "site-local (fec0::/10)";
  if ((g[0] & 0xff00) === 0xff00) return "multicast (ff00::/8)";
  return null;
}

function prefixed(kind: string, inner: string | null): string | null {
  return inner === null ? null : `${kind} ${inner}`;
}

/** Why an address may not be a callback target, or null when it is public. Unparseable text is refused. */
export function refusedAddressReason(address: string): string | null {
  const asV4 = parseIPv4(address);
  if (asV4 !== null) return classifyV4(asV4);
  const asV6 = parseIPv6(address);
  if (asV6 !== null) return classifyV6(asV6);
  return "not an IP address";
}

/**
 * Checks a callback URL: http(s) only; an IP literal is classified as it is, a name is resolved and each of its
 * addresses classified. With allowPrivate (development), only the scheme is checked.
 */
export async function checkCallbackTarget(rawUrl: string, resolver: HostResolver, allowPrivate: boolean): Promise<TargetCheck> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { ok: false, reason: "callback_url is not a valid URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { ok: false, reason: `callback_url scheme ${url.protocol} is not http(s)` };
  // WHATWG URL already normalised odd IPv4 spellings (http://2130706433/, http://0x7f.1/) to dotted quads.
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  if (allowPrivate) return { ok: true, url, hostname, addresses: null };
  const literal = parseIPv4(hostname) !== null ? 4 : parseIPv6(hostname) !== null ? 6 : null;
  let addresses: ResolvedAddress[];
  if (literal !== null) {
    addresses = [{ address: hostname, family: literal }];
  } else {
    try {
      addresses = await resolver.resolve(hostname);
    } catch (error) {
      return { ok: false, reason: `callback host ${hostname} could not be resolved: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (addresses.length === 0) return { ok: false, reason: `callback host ${hostname} has no addresses` };
  }
  for (const { address } of addresses) {
    const reason = refusedAddressReason(address);
    if (reason !== null) {
      return {
        ok: false,
        reason: `callback target refused: ${hostname} resolves to ${address}, a ${reason} address (set callback.allow_private_targets to allow)`,
      };
    }
  }
  return { ok: true, url, hostname, addresses };
}
