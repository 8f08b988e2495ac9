import type { HostResolver, ResolvedAddress } from "../webhooks/ssrf.guard.js";

// The SSRF guard's resolver on Workers, which have no DNS API: DNS over HTTPS (the JSON API of a public
// resolver), A and AAAA in parallel. Two subrequests per callback host; only used when private targets are
// refused (local development allows them and resolves nothing).

const RR_A = 1;
const RR_AAAA = 28;

interface DohAnswer {
  Status: number;
  Answer?: Array<{ type: number; data: string }>;
}

export interface DohResolverOptions {
  /** A DoH JSON endpoint (https://cloudflare-dns.com/dns-query by default). */
  endpoint?: string;
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
}

export function createDohHostResolver(options: DohResolverOptions = {}): HostResolver {
  const endpoint = options.endpoint ?? "https://cloudflare-dns.com/dns-query";
  const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const timeoutMs = options.timeoutMs ?? 5_000;

  async function query(hostname: string, type: "A" | "AAAA"): Promise<ResolvedAddress[]> {
    const url = `${endpoint}?name=${encodeURIComponent(hostname)}&type=${type}`;
    const res = await fetchImpl(url, { headers: { accept: "application/dns-json" }, signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`DNS over HTTPS answered HTTP ${res.status}`);
    const body = (await res.json()) as DohAnswer;
    // 3 = NXDOMAIN: no addresses, not an error of the resolver.
    if (body.Status !== 0 && body.Status !== 3) throw new Error(`DNS over HTTPS status ${body.Status} for ${type}`);
    const wanted = type === "A" ? RR_A : RR_AAAA;
    // CNAME records come along in Answer; only the address records of the wanted family count.
    return (body.Answer ?? []).filter((a) => a.type === wanted).map((a) => ({ address: a.data, family: type === "A" ? 4 : 6 }));
  }

  return {
    async resolve(hostname) {
      const [v4, v6] = await Promise.all([query(hostname, "A"), query(hostname, "AAAA")]);
      return [...v4, ...v6];
    },
  };
}
